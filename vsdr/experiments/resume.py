"""Resuming jobs and sweeps (docs/METHOD.md §9, issue 6).

Two levels:

- **job**: a job whose ``metrics.json`` in its output dir carries the same *results hash*
  (the hash of the resolved config minus keys that do not change results, ``IGNORED``) is
  finished: it is skipped with a log line. A missing, unreadable or stale file reruns it.
  For a Hydra multirun the job dir is ``${hydra.sweep.dir}/${hydra.job.num}``, so rerunning
  with the same ``hydra.sweep.dir=`` resumes the sweep.
- **chunk**: a job that samples its test points in chunks (``data.batch_size``) saves each
  finished chunk atomically under ``partial/`` (named by the results hash and the chunk's
  test-point range); a requeued job loads those and samples only the rest. Because every
  test point has its own seed (``vsdr.diffusion.noise``), the loaded and the fresh chunks are
  what one uninterrupted run gives.
"""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from vsdr.experiments.hashing import config_hash
from vsdr.experiments.writer import atomic_write
from vsdr.models.checkpoint import CodeInCheckpoint, read_checkpoint

log = logging.getLogger(__name__)

#: dotted config keys that never change a job's results (progress bars, logging, where
#: caches live, how the test points are chunked for sampling, whether the reconstructions are
#: also written as PNGs: ``outputs``, copies of samples.npz)
IGNORED = ("progress", "logger", "hydra", "paths", "data.batch_size", "outputs")
#: keys that change results but are left out of the hash at their default value, so that jobs
#: finished before the keys existed keep their hash (and are still skipped on a rerun)
OMITTED_AT_DEFAULT = {"precision": "fp32", "channels_last": False, "data.samples_per_image": 1,
                      "operator.boundary": "reflect"}


def results_config(cfg: DictConfig | dict) -> dict:
    """The resolved config without the ``IGNORED`` keys and the ``OMITTED_AT_DEFAULT`` keys
    that hold their default."""
    out = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    out = json.loads(json.dumps(out, default=str))  # deep copy
    for key in IGNORED:
        node, *rest = key.split(".")
        if not rest:
            out.pop(node, None)
        elif isinstance(out.get(node), dict):
            out[node].pop(rest[0], None)
    for key, default in OMITTED_AT_DEFAULT.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            del node[leaf]
    return out


def results_hash(cfg: DictConfig | dict) -> str:
    """Hash of ``results_config(cfg)``: equal hashes mean equal ``metrics.csv``."""
    return config_hash(results_config(cfg))


def finished_rows(job_dir: str | Path, expected_hash: str) -> list[dict] | None:
    """The rows of ``job_dir/metrics.json`` when it exists, parses and carries
    ``expected_hash`` (and ``metrics.csv`` is there too); otherwise ``None``."""
    path = Path(job_dir) / "metrics.json"
    if not path.is_file() or not (Path(job_dir) / "metrics.csv").is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        log.warning("vsdr: %s is unreadable: rerunning the job", path)
        return None
    if meta.get("config_hash") != expected_hash:
        log.info("vsdr: %s has config hash %s, not %s: stale, rerunning the job", path,
                 meta.get("config_hash"), expected_hash)
        return None
    return meta.get("rows")


class ChunkStore:
    """Finished sampling chunks of one job, ``partial/<hash>-<start>-<stop>.pt`` in its dir.

    A chunk holds the reconstructions of test points ``start..stop-1`` for every knob value
    ``(V, stop-start, ...)`` and the sampler's nfe. Files of another hash are ignored. A
    chunk is read as data: a damaged one is sampled again, one that holds Python objects
    beyond tensors (someone else's file: loading it would run code) stops the job
    (``CodeInCheckpoint``, exit 2).
    """

    def __init__(self, job_dir: str | Path, hash_: str):
        self.dir = Path(job_dir) / "partial"
        self.hash = hash_

    def path(self, start: int, stop: int) -> Path:
        return self.dir / f"{self.hash}-{start:07d}-{stop:07d}.pt"

    def load(self, start: int, stop: int) -> tuple[torch.Tensor, int] | None:
        p = self.path(start, stop)
        if not p.is_file():
            return None
        try:
            payload = read_checkpoint(p, "resume chunk")  # a chunk that carries code: refused
            return payload["samples"], int(payload["nfe"])
        except CodeInCheckpoint:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged chunk is resampled, never trusted
            log.warning("vsdr: chunk %s is unreadable (%s): sampling it again", p.name, e)
            return None

    def save(self, start: int, stop: int, samples: torch.Tensor, nfe: int) -> None:
        payload = {"samples": samples.detach().cpu().contiguous(), "nfe": int(nfe)}
        atomic_write(self.path(start, stop), lambda p: torch.save(payload, p))

    def clear(self) -> None:
        """Remove the chunk files once the job's results are written."""
        shutil.rmtree(self.dir, ignore_errors=True)
