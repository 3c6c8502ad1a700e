"""Calibrating ζ(λ) of ours on images (``scripts/tune_zeta.py``): scan a (λ, ζ) grid on
validation images held out from the job's test images, pick one ζ per λ by a stated rule, and
write the table where ``${vsdr.tuned_zeta:...}`` reads it (``conf/tuned/``).

**Validation images.** The test folder's images ``start .. start + count − 1``; a job scores the
first ``data.limit`` of the same folder, so ``start = data.limit`` keeps them apart. (The
training folder is no place for them: the score network is trained on all of it.) Image ``j``
gets the measurement noise and sampler seed it would get as test image ``j`` of a job with
``data.limit ≥ start + count``.

**The picking rule** (``pick_zeta``). At each λ, among that λ's scanned ζ, take the ζ that
minimises ``(1 − λ) · log(mse / min mse) + λ · log(perception / min perception)`` (minima over
that λ's rows): λ = 0 picks the MSE minimum, λ = 1 the perception minimum, and in between the
log-ratios make the two measures commensurate whatever their scale. Then the picked ζ are made
monotone in λ by pool-adjacent-violators (least squares, equal weights), in the direction that
fits them better: non-increasing, as the paper's tables (a small λ wants the larger ζ, with the
guidance inside the mean), or non-decreasing, as the digits scans in the `dps` form came out
(the pull after the step has to undo the noise √λ σ_t z that λ adds; docs/RESULTS.md §18).
Ties go to non-increasing."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

#: the file under conf/ the calibration writes (merged into ``tuned`` by conf/tuned/default.yaml)
CALIBRATED = "tuned/calibrated/images.yaml"


def pav_nonincreasing(values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """The non-increasing sequence closest to ``values`` in weighted least squares
    (pool-adjacent-violators: adjacent blocks that increase are merged into their mean)."""
    w = [1.0] * len(values) if weights is None else [float(v) for v in weights]
    blocks: list[list[float]] = []  # [mean, weight, length]
    for v, wi in zip(values, w):
        blocks.append([float(v), wi, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return [m for m, _, n in blocks for _ in range(n)]


def monotone_fit(values: Sequence[float]) -> list[float]:
    """The least-squares monotone fit of ``values``: the non-increasing one
    (``pav_nonincreasing``) or the non-decreasing one, whichever is closer (ties:
    non-increasing)."""
    down = pav_nonincreasing(values)
    up = pav_nonincreasing(list(values)[::-1])[::-1]

    def sse(fit: list[float]) -> float:
        return sum((a - b) ** 2 for a, b in zip(values, fit))

    return up if sse(up) < sse(down) else down


def raw_pick(rows: list[dict], lam: float, perception: str = "perception") -> dict:
    """The row at ``lam`` minimising ``(1 − λ) log(mse/min mse) + λ log(p/min p)``."""
    at = [r for r in rows if math.isclose(float(r["lam"]), lam)]
    m0 = min(float(r["mse"]) for r in at)
    p0 = min(float(r[perception]) for r in at)
    tiny = 1e-300  # a perception of exactly 0 (identical statistics) must not give log(0/0)

    def cost(r: dict) -> float:
        return ((1 - lam) * math.log(max(float(r["mse"]), tiny) / max(m0, tiny))
                + lam * math.log(max(float(r[perception]), tiny) / max(p0, tiny)))

    return min(at, key=lambda r: (cost(r), float(r["zeta"])))


def pick_zeta(rows: list[dict], perception: str = "perception") -> dict:
    """The table ``{lam, value, raw}`` picked from scan rows (dicts with ``lam``, ``zeta``,
    ``mse`` and ``perception``): ``raw`` is each λ's ``raw_pick``, ``value`` its monotone fit
    (``monotone_fit``; module docstring)."""
    lams = sorted({float(r["lam"]) for r in rows})
    raw = [float(raw_pick(rows, lam, perception)["zeta"]) for lam in lams]
    value = [round(v, 6) for v in monotone_fit(raw)]
    return {"lam": lams, "value": value, "raw": raw}


def tuned_key(cfg: DictConfig) -> list[str]:
    """Where a setting's table lives under ``tuned.zeta``: data set, operator, guidance form,
    σ (what ``vsdr.config.tuned_zeta`` looks up)."""
    return [str(cfg.dataset.name), str(cfg.operator.name), str(cfg.sampler.form),
            f"{float(cfg.noise.sigma):g}"]


def write_table(path: Path, key: Sequence[str], table: dict, note: str) -> None:
    """Put ``table`` (``lam``, ``value`` and any notes) at ``zeta.<key…>`` of the YAML file
    ``path`` (created when missing; other entries kept)."""
    path = Path(path)
    doc = OmegaConf.load(path) if path.exists() else OmegaConf.create({"zeta": {}})
    node = doc.zeta
    for k in key[:-1]:
        if k not in node:
            node[k] = {}
        node = node[k]
    node[key[-1]] = {**table, "note": note}
    header = ("# ζ(λ) tables written by scripts/tune_zeta.py (vsdr/experiments/tuning.py), merged into\n"
              "# `tuned` by conf/tuned/default.yaml; keyed zeta.<dataset>.<operator>.<form>.<σ>.\n")
    path.write_text(header + OmegaConf.to_yaml(doc))


class PairSampler:
    """Knob value ``k`` runs row ``k`` of ``pairs``: ours at λ_k with the constant ζ_k, every
    row side by side in one batch."""

    def __init__(self, sampler, pairs: Sequence[tuple[float, float]]):
        self.sampler, self.pairs = sampler, list(pairs)

    def __call__(self, model, y, operator, sigma_y, knob, seeds, schedule, keep_trajectory=False):
        k = torch.as_tensor(knob).long().tolist()
        lam = torch.tensor([self.pairs[i][0] for i in k], dtype=torch.float64)
        zeta = torch.tensor([self.pairs[i][1] for i in k], dtype=torch.float64)
        table = self.sampler.zeta
        self.sampler.zeta = lambda _lam: zeta
        try:
            return self.sampler(model, y, operator, sigma_y, lam, seeds, schedule)
        finally:
            self.sampler.zeta = table


def held_out_set(task, start: int, count: int, seed: int):
    """Test images ``start .. start + count − 1`` with the measurements a job with
    ``data.limit = start + count`` gives them, and their global indices."""
    from vsdr.tasks.base import TestSet
    from vsdr.tasks.images import measure

    x0 = task.dataset.test_images(start + count)
    if len(x0) < start + count:
        raise ValueError(f"the test folder has {len(x0)} images: no room for {count} from {start}")
    y = measure(x0, task.operator, task.sigma_y, seed)
    return TestSet(x0[start:], y[start:]), np.arange(start, start + count)


def scan(cfg: DictConfig, pairs: Sequence[tuple[float, float]], start: int, count: int,
         batch_size: int | None = None) -> tuple[list[dict], float]:
    """Metrics rows (one per (λ, ζ) pair, with ``lam``, ``zeta`` and the task's columns) of
    ours on the held-out images, and the sampling seconds."""
    from vsdr.experiments.build import apply_threads, build_job, build_sampling_model
    from vsdr.experiments.job import sample_all

    parts = build_job(cfg)
    apply_threads(cfg.get("threads"), parts.device)
    seed = int(cfg.seed)
    torch.manual_seed(seed)
    model, _ = build_sampling_model(cfg, parts, None)  # the job's precision and net_batch
    test, items = held_out_set(parts.task, start, count, seed)
    values = list(range(len(pairs)))
    recon, _, seconds = sample_all(PairSampler(parts.sampler, pairs), model, test.y, parts.task.operator,
                                   parts.task.sigma_y, values, parts.schedule, parts.device, seed,
                                   items, batch_size)
    rows = parts.task.evaluate(test, recon, values, seed)
    return [{"lam": lam, "zeta": z, **r} for (lam, z), r in zip(pairs, rows)], seconds
