"""One job, for every kind of data: validate → build → sample in resumable chunks →
evaluate → write (docs/METHOD.md §9 lists the files).

The kind of data (point clouds, a closed-form posterior, images) is a ``vsdr.tasks.Task``;
everything else is the same path: results-hash skip of a finished job, shards
(``data.shard``/``data.num_shards``), chunks saved under ``partial/`` and reused by a rerun,
the network called on a fixed number of rows (``data.net_batch``), one seed per test item.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vsdr.diffusion.noise import sample_seeds
from vsdr.errors import JobFault
from vsdr.experiments import tracking
from vsdr.experiments.build import JobParts, apply_threads, build_job, build_logger, build_sampling_model
from vsdr.experiments.lock import job_lock
from vsdr.experiments.memory import keep_freed_memory
from vsdr.experiments.outputs import (
    columns_of,
    make_rows,
    metadata,
    write_figures,
    write_metadata,
    write_tables,
)
from vsdr.experiments.prior import ddp_worker_rank
from vsdr.experiments.restored import restore_finished_job, write_restored
from vsdr.experiments.resume import ChunkStore, finished_rows, results_hash
from vsdr.experiments.shards import shard_indices
from vsdr.experiments.validate import validate_config
from vsdr.experiments.writer import ensure_writable, result_set
from vsdr.samplers.base import Sampler
from vsdr.tasks.base import expand_items

log = logging.getLogger(__name__)


def sample_all(sampler: Sampler, model, y: torch.Tensor, operator, sigma_y: float,
               values: Sequence[float], schedule, device: torch.device, seed: int,
               indices: np.ndarray | None = None, batch_size: int | None = None,
               store: ChunkStore | None = None,
               samples_per_item: int = 1) -> tuple[torch.Tensor, int, float]:
    """Every knob value side by side; test item ``p`` (global index ``indices[p]``) has the
    same seed for every value, in every chunk and shard. With ``samples_per_item = S > 1`` the
    items are samples: ``indices[p] = j · S + s`` is sample ``s`` of test image ``j``
    (``vsdr.diffusion.noise.sample_seeds``). The items are sampled in chunks of
    ``batch_size`` (``None``: all at once); with a ``store``, finished chunks are saved and
    reloaded on a rerun. Returns reconstructions ``(len(values), n, ...)``, the nfe of one
    chain (every chunk runs the same chain) and the seconds spent sampling."""
    n = len(y)
    indices = np.arange(n) if indices is None else np.asarray(indices)
    size = int(batch_size or 0) or n
    chunks, nfe, t0, reused = [], 0, time.perf_counter(), 0
    for p0 in range(0, n, size):
        p1 = min(n, p0 + size)
        start, stop = int(indices[p0]), int(indices[p1 - 1]) + 1
        saved = store.load(start, stop) if store is not None and size < n else None
        if saved is not None:
            chunks.append(saved[0])
            nfe = max(nfe, saved[1])
            reused += 1
            continue
        m = p1 - p0
        seeds = sample_seeds(seed, indices[p0:p1], samples_per_item)
        knob = torch.tensor(values, dtype=torch.float64).repeat_interleave(m)
        y_all = y[p0:p1].repeat(len(values), *([1] * (y.dim() - 1))).to(device)
        result = sampler(model, y_all, operator, sigma_y, knob, seeds * len(values), schedule)
        samples = result.samples.detach().cpu()
        recon = samples.reshape(len(values), m, *samples.shape[1:])
        if not torch.isfinite(recon).all():
            raise JobFault(f"the sampler returned non-finite values for test items {start}..{stop - 1}")
        if store is not None and size < n:
            store.save(start, stop, recon, result.nfe)
            log.info("vsdr: sampled chunk %d..%d of %d", start, stop - 1, n)
        chunks.append(recon)
        nfe = max(nfe, result.nfe)
    if reused:
        log.info("vsdr: reused %d finished chunks from %s", reused, store.dir)
    return torch.cat(chunks, dim=1), nfe, time.perf_counter() - t0


def trajectory_fn(parts: JobParts, model):
    """What the task's figures call to draw reverse chains (``None`` when the sampler keeps
    none or its knob is not λ)."""
    sampler = parts.sampler
    if not (sampler.has_trajectory and sampler.uses_lam):
        return None

    def trajectories(y, values, seeds):
        return sampler(model, y, parts.task.operator, parts.task.sigma_y, values, seeds,
                       parts.schedule, keep_trajectory=True).trajectory

    return trajectories


def run_job(cfg: DictConfig, job_dir: str | Path) -> list[dict]:
    """Run one job and write its files into ``job_dir``; return the metrics rows."""
    t_start = time.perf_counter()
    keep_freed_memory()  # fewer page faults, same results (vsdr.experiments.memory)
    job_dir = Path(job_dir)
    validate_config(cfg)
    parts = build_job(cfg)
    threads = apply_threads(cfg.get("threads"), parts.device)  # before any work, training too
    task = parts.task
    rhash = results_hash(cfg)
    done = finished_rows(job_dir, rhash)
    if done is not None:
        log.info("vsdr: skipping job %s: its metrics.json matches config hash %s", job_dir, rhash)
        if wants_images(cfg) and restore_finished_job(job_dir, task.item_names):
            log.info("vsdr: wrote %s/restored/ from its samples.npz (outputs.images=true)", job_dir)
        task.print_table(done)
        return done
    ensure_writable(job_dir)
    with job_lock(job_dir, take=ddp_worker_rank(cfg.trainer) == 0):  # DDP workers: rank 0's
        rows = compute_and_write(cfg, parts, job_dir, rhash, threads, t_start)
    task.print_table(rows)
    return rows


def wants_images(cfg: DictConfig) -> bool:
    """Whether the job writes restored/ (``outputs.images``; off where a config has no ``outputs``)."""
    return bool(OmegaConf.select(cfg, "outputs.images", default=False))


def compute_and_write(cfg: DictConfig, parts: JobParts, job_dir: Path, rhash: str,
                      threads: int, t_start: float) -> list[dict]:
    """The job's work once it holds its dir: build or train the network, sample, evaluate and
    write the result files as one set (``result_set``: whole, ``metrics.json`` last, or
    none). Returns the metrics rows."""
    task, seed = parts.task, int(cfg.seed)
    full = task.test_set(seed)
    indices = shard_indices(len(full), int(cfg.data.get("shard", 0) or 0),
                            int(cfg.data.get("num_shards", 1) or 1), task.size_name)
    test, items = full.select(indices), indices
    per_image = int(cfg.data.get("samples_per_image", 1) or 1)
    if per_image > 1:  # S samples of each observation: y once per image, a seed per sample
        test, items = test.repeat_each(per_image), expand_items(indices, per_image)
    logger = build_logger(cfg, job_dir)
    ok = False
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        tracking.log_config(logger, resolved)
        torch.manual_seed(seed)  # a network built now is initialised from the job seed
        model, model_info = build_sampling_model(cfg, parts, logger)
        store = ChunkStore(job_dir, rhash)
        recon, nfe, sample_seconds = sample_all(
            parts.sampler, model, test.y, task.operator, task.sigma_y, parts.values, parts.schedule,
            parts.device, seed, items, cfg.data.get("batch_size"), store, samples_per_item=per_image)
        metrics = task.evaluate(test, recon, parts.values, seed, workdir=job_dir)
        rows = make_rows(parts.base_row, parts.values, metrics, len(test), nfe, seed)
        try:
            with result_set(job_dir) as stage:
                write_tables(stage, task, rows, test, recon, parts.values, parts.sampler.knob, items,
                             per_image)
                staged = write_figures(stage, task, rows, test, recon, parts.values,
                                       parts.sampler.knob, parts.title, trajectory_fn(parts, model),
                                       seed)
                if wants_images(cfg):
                    write_restored(stage, test.x0, test.y, recon, parts.values, parts.sampler.knob,
                                   items, task.item_names(len(full)), per_image)
                write_metadata(stage, metadata(
                    task, rows, resolved, rhash, seed, model=model_info,
                    test_items=len(full), samples_per_image=per_image, threads=threads,
                    sample_seconds=sample_seconds, seconds_per_step=sample_seconds / max(nfe, 1),
                    wall_seconds=time.perf_counter() - t_start))
        except OSError as e:
            raise JobFault(f"could not write the results into {job_dir} ({e.strerror or e}): free "
                           "space there or choose another output dir") from e
        figures = {stem: job_dir / p.relative_to(stage) for stem, p in staged.items()}
        store.clear()
        log.info("vsdr: computed job %s (config hash %s)", job_dir, rhash)
        tracking.log_results(logger, rows, columns_of(task, rows), figures)
        for note in dict.fromkeys(task.notes):  # each note once
            log.warning(note)
        ok = True
    finally:
        tracking.finish(logger, ok)
    return rows
