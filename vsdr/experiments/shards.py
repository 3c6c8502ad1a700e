"""Large evaluations split into shards: ``data.shard=i data.num_shards=n`` runs the ``i``-th
of ``n`` contiguous blocks of the test items (points or images); ``gather_shards`` merges the
shards' per-item reconstructions (``samples.npz``) into one job dir whose ``samples.npz``,
``items.csv`` and ``metrics.csv`` are identical to those of the unsharded run; the PNGs of the
shards' ``restored/`` (``outputs.images``) are copied into its ``restored/``.

Identity holds because test item ``j`` draws its measurement noise and its sampler chain
from seeds of ``(seed, j)`` only (``vsdr.diffusion.noise.per_sample_seeds``), whichever
shard or chunk it lands in, the network sees a fixed number of rows per call
(``data.net_batch``), and the metrics are computed once over the merged items.

    python -m vsdr.experiments.shards OUT_DIR SHARD_DIR [SHARD_DIR ...]
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vsdr.errors import ConfigError
from vsdr.experiments.build import build_job
from vsdr.experiments.outputs import make_rows, metadata, write_figures, write_metadata, write_tables
from vsdr.experiments.restored import copy_restored
from vsdr.experiments.resume import results_hash
from vsdr.experiments.writer import result_set
from vsdr.tasks.base import TestSet

log = logging.getLogger(__name__)


def shard_indices(n: int, shard: int = 0, num_shards: int = 1,
                  size_name: str = "data.n_test") -> np.ndarray:
    """Global indices of the test items of shard ``shard`` of ``num_shards`` contiguous blocks
    of ``n`` items (all of them when unsharded); ``size_name`` names ``n`` in messages."""
    if num_shards < 1 or num_shards > n:
        raise ConfigError(f"data.num_shards={num_shards} does not fit {size_name}={n}: "
                          f"give 1 <= num_shards <= {n}")
    if not 0 <= shard < num_shards:
        raise ConfigError(f"data.shard={shard} is outside 0..{num_shards - 1} for "
                          f"data.num_shards={num_shards}")
    return np.array_split(np.arange(n), num_shards)[shard]


def num_shards(cfg: DictConfig) -> int:
    return int(cfg.data.get("num_shards", 1) or 1)


def _shard_cfg(job_dir: Path) -> DictConfig:
    """The config of the finished job in ``job_dir``: its ``metrics.json`` must carry the
    results hash of the config it holds (a file written whole by the job), else ``ValueError``."""
    meta = json.loads((job_dir / "metrics.json").read_text())
    if meta.get("config_hash") != results_hash(meta["config"]):
        raise ValueError(f"{job_dir / 'metrics.json'} does not carry its config's hash")
    return OmegaConf.create(meta["config"])


def finished(job_dir: Path) -> bool:
    """Whether ``job_dir`` holds a finished job: ``samples.npz`` and a ``metrics.json`` that
    carries its config's hash (``_shard_cfg``)."""
    try:
        _shard_cfg(job_dir)
    except (OSError, ValueError, KeyError):
        return False
    return (job_dir / "samples.npz").is_file()


def _unsharded_key(cfg: DictConfig) -> str:
    """The results hash of the unsharded job (``shard=0, num_shards=1``)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c["data"].update(shard=0, num_shards=1)
    return results_hash(c)


def gather_shards(job_dirs: list[str | Path], out_dir: str | Path) -> list[dict]:
    """Merge the shard jobs ``job_dirs`` (same config but ``data.shard``, together covering
    every test item once) into ``out_dir``: the result files of the unsharded job (its
    figures included). Returns the metrics rows."""
    job_dirs = [Path(d) for d in job_dirs]
    missing = [str(d) for d in job_dirs if not finished(d)]
    if missing:
        raise ConfigError(f"shard dirs {missing[:3]} hold no finished job (samples.npz and a "
                          "metrics.json that carries its config hash): run those shards first")
    cfgs = [_shard_cfg(d) for d in job_dirs]
    keys = {_unsharded_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ConfigError(f"the shard dirs hold {len(keys)} different configs: "
                          "gather one sweep point at a time")
    parts = [np.load(d / "samples.npz") for d in job_dirs]
    index = np.concatenate([p["index"] for p in parts])
    per_image = int(cfgs[0].data.get("samples_per_image", 1) or 1)
    n = int(json.loads((job_dirs[0] / "metrics.json").read_text())["test_items"]) * per_image
    if sorted(index.tolist()) != list(range(n)):
        raise ConfigError(f"the shards cover {len(set(index.tolist()))} distinct test points of "
                          f"{n} (or some twice): give every shard of "
                          f"data.num_shards={num_shards(cfgs[0])} once")
    order = np.argsort(index, kind="stable")
    test = TestSet(torch.from_numpy(np.concatenate([p["x0"] for p in parts])[order]),
                   torch.from_numpy(np.concatenate([p["y"] for p in parts])[order]))
    samples = torch.from_numpy(np.concatenate([p["samples"] for p in parts], axis=1)[:, order])
    values = [float(v) for v in parts[0]["values"]]
    knob = str(parts[0]["knob"])
    nfe = int(json.loads((job_dirs[0] / "metrics.json").read_text())["nfe"])
    merged = OmegaConf.merge(cfgs[0], {"data": {"shard": 0, "num_shards": 1}})
    job = build_job(merged)
    seed = int(merged.seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = job.task.evaluate(test, samples, values, seed, workdir=out_dir)
    rows = make_rows(job.base_row, values, metrics, n, nfe, seed)
    with result_set(out_dir) as stage:  # whole, metrics.json last, or nothing
        write_tables(stage, job.task, rows, test, samples, values, knob, np.arange(n), per_image)
        write_figures(stage, job.task, rows, test, samples, values, knob, job.title, seed=seed)
        copy_restored(job_dirs, stage)  # restored/: each shard wrote its own items
        write_metadata(stage, metadata(job.task, rows, OmegaConf.to_container(merged, resolve=True),
                                       results_hash(merged), seed, test_items=n // per_image,
                                       samples_per_image=per_image,
                                       gathered_from=[str(d) for d in job_dirs]))
    log.info("vsdr: gathered %d shards (%d test items) into %s", len(job_dirs), n, out_dir)
    return rows


def is_shard_job(job_dir: str | Path) -> bool:
    """Whether ``job_dir`` holds one shard of a sharded evaluation."""
    try:
        return num_shards(_shard_cfg(Path(job_dir))) > 1
    except (OSError, ValueError, KeyError):
        return False


def gather_sweep_shards(sweep_dir: str | Path) -> list[Path]:
    """In a multirun's sweep dir, merge every complete group of shard jobs into
    ``sweep_dir/merged/<hash>/``; return the merged dirs."""
    sweep_dir = Path(sweep_dir)
    groups: dict[str, list[Path]] = {}
    for meta in sorted(sweep_dir.glob("*/metrics.json")):
        try:
            cfg = _shard_cfg(meta.parent)
        except (OSError, ValueError, KeyError):
            continue
        if num_shards(cfg) > 1:
            groups.setdefault(_unsharded_key(cfg), []).append(meta.parent)
    out = []
    for key, dirs in groups.items():
        if len(dirs) != num_shards(_shard_cfg(dirs[0])):
            log.warning("vsdr: %d of %d shards of %s finished: not merging", len(dirs),
                        num_shards(_shard_cfg(dirs[0])), key)
            continue
        gather_shards(dirs, sweep_dir / "merged" / key)
        out.append(sweep_dir / "merged" / key)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rows = gather_shards(argv[1:], argv[0])
        build_job(_shard_cfg(Path(argv[0]))).task.print_table(rows)
    except ConfigError as e:
        print(f"vsdr: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
