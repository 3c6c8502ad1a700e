"""Large evaluations split into shards (issue 6): ``data.shard=i data.num_shards=n`` runs
the ``i``-th of ``n`` contiguous blocks of the test points; ``gather_shards`` merges the
shards' per-item reconstructions (``samples.npz``) into one job dir whose ``samples.npz``,
``items.csv`` and ``metrics.csv`` are identical to those of the unsharded run.

Identity holds because test point ``j`` draws its measurement noise and its sampler chain
from seeds of ``(seed, j)`` only (``vsdr.diffusion.noise.per_sample_seeds``), whichever
shard or chunk it lands in, and the metrics are computed once over the merged items.

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
from vsdr.experiments.resume import results_hash
from vsdr.experiments.writer import write_csv, write_npz

log = logging.getLogger(__name__)

#: coordinates per item written into items.csv (larger items: index, value and error only)
MAX_ITEM_COORDS = 16


def num_shards(cfg: DictConfig) -> int:
    return int(cfg.data.get("num_shards", 1) or 1)


def shard_indices(cfg: DictConfig) -> np.ndarray:
    """Global indices of the test points of this job's shard (all of them when unsharded)."""
    n, k = int(cfg.data.n_test), num_shards(cfg)
    shard = int(cfg.data.get("shard", 0) or 0)
    if k < 1 or k > n:
        raise ConfigError(f"data.num_shards={k} does not fit data.n_test={n}: give 1 <= num_shards <= n_test")
    if not 0 <= shard < k:
        raise ConfigError(f"data.shard={shard} is outside 0..{k - 1} for data.num_shards={k}")
    return np.array_split(np.arange(n), k)[shard]


def item_rows(index: np.ndarray, values, knob: str, x0: np.ndarray, y: np.ndarray,
              samples: np.ndarray) -> list[dict]:
    """One row per (knob value, test point): ``index``, knob, value, squared error and, for
    small items, the coordinates of ``x0``, ``y`` and the reconstruction."""
    rows = []
    flat = x0.reshape(len(x0), -1)
    small = flat.shape[1] <= MAX_ITEM_COORDS
    for v, rec in zip(values, samples):
        r_flat = rec.reshape(len(rec), -1)
        err = ((r_flat.astype(np.float64) - flat.astype(np.float64)) ** 2).sum(axis=1)
        for p, j in enumerate(index):
            row = {"index": int(j), "knob": knob, "value": float(v), "sq_err": float(err[p])}
            if small:
                yf = y.reshape(len(y), -1)[p]
                row.update({f"x0_{c}": float(flat[p, c]) for c in range(flat.shape[1])})
                row.update({f"y_{c}": float(yf[c]) for c in range(len(yf))})
                row.update({f"recon_{c}": float(r_flat[p, c]) for c in range(r_flat.shape[1])})
            rows.append(row)
    return rows


def _shard_cfg(job_dir: Path) -> DictConfig:
    meta = json.loads((job_dir / "metrics.json").read_text())
    return OmegaConf.create(meta["config"])


def _unsharded_key(cfg: DictConfig) -> str:
    """The results hash of the unsharded job (``shard=0, num_shards=1``)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c["data"].update(shard=0, num_shards=1)
    return results_hash(c)


def gather_shards(job_dirs: list[str | Path], out_dir: str | Path) -> list[dict]:
    """Merge the shard jobs ``job_dirs`` (same config but ``data.shard``, together covering
    every test point once) into ``out_dir``: ``samples.npz``, ``items.csv``, ``metrics.csv``
    and ``metrics.json`` as the unsharded job writes them. Returns the metrics rows."""
    from vsdr.experiments.job import COLUMNS, evaluate

    job_dirs = [Path(d) for d in job_dirs]
    missing = [str(d) for d in job_dirs if not (d / "samples.npz").is_file()]
    if missing:
        raise ConfigError(f"shard dirs {missing[:3]} have no samples.npz: run those shards first")
    cfgs = [_shard_cfg(d) for d in job_dirs]
    keys = {_unsharded_key(c) for c in cfgs}
    if len(keys) != 1:
        raise ConfigError(f"the shard dirs hold {len(keys)} different configs: "
                          "gather one sweep point at a time")
    cfg = cfgs[0]
    parts = [np.load(d / "samples.npz") for d in job_dirs]
    index = np.concatenate([p["index"] for p in parts])
    n = int(cfg.data.n_test)
    if sorted(index.tolist()) != list(range(n)):
        raise ConfigError(f"the shards cover {len(set(index.tolist()))} distinct test points of "
                          f"{n} (or some twice): give every shard of data.num_shards={num_shards(cfg)} once")
    order = np.argsort(index, kind="stable")
    x0 = np.concatenate([p["x0"] for p in parts])[order]
    y = np.concatenate([p["y"] for p in parts])[order]
    samples = np.concatenate([p["samples"] for p in parts], axis=1)[:, order]
    values = [float(v) for v in parts[0]["values"]]
    knob = str(parts[0]["knob"])
    nfe = int(json.loads((job_dirs[0] / "metrics.json").read_text())["nfe"])
    merged = OmegaConf.merge(cfg, {"data": {"shard": 0, "num_shards": 1}})
    rows = evaluate(merged, torch.from_numpy(x0), torch.from_numpy(samples), values, nfe)
    out_dir = Path(out_dir)
    write_npz(out_dir / "samples.npz", x0=x0, y=y, samples=samples, values=np.asarray(values),
              knob=np.asarray(knob), index=np.arange(n))
    write_csv(out_dir / "items.csv", item_rows(np.arange(n), values, knob, x0, y, samples))
    write_csv(out_dir / "metrics.csv", rows, COLUMNS)
    from vsdr.experiments.writer import write_json

    write_json(out_dir / "metrics.json", {
        "rows": rows, "config": OmegaConf.to_container(merged, resolve=True),
        "config_hash": results_hash(merged), "seed": int(cfg.seed), "nfe": nfe,
        "gathered_from": [str(d) for d in job_dirs],
    })
    log.info("vsdr: gathered %d shards (%d test points) into %s", len(job_dirs), n, out_dir)
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
    except ConfigError as e:
        print(f"vsdr: {e}", file=sys.stderr)
        return 2
    from vsdr.experiments.job import print_table

    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
