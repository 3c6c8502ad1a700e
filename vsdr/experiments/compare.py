"""Two sets of finished jobs side by side, seed for seed (``scripts/compare_runs.py``): is a
cheaper setting (few steps, another guidance) within the reference's seed-to-seed noise?

Jobs are matched by their ``seed`` column: two jobs with the same seed have the same test items
and measurements, so their ``items.csv`` rows pair image for image. Per knob value:

- the paired change of the per-item squared error, ``Δ = mean(e_new − e_ref)`` over every
  (seed, item) pair, with its standard error ``sd(e_new − e_ref)/√n`` and ``z = Δ/SE``. Pairing
  removes the spread between images and measurements, which the jobs share, and leaves the
  samplers' own noise;
- per job columns of ``metrics.csv`` (MSE, a perception measure): the mean over seeds and the
  range, for each set, and whether the new mean lies inside the reference's range.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class FinishedJob:
    """A job folder's per-item squared errors and metrics rows, keyed by knob value."""

    path: Path
    seed: int
    items: dict[float, dict[int, float]]
    rows: dict[float, dict[str, str]]


def read_finished_job(path: str | Path) -> FinishedJob:
    """``metrics.csv`` and ``items.csv`` of a job folder (a ``ValueError`` naming the missing
    file otherwise)."""
    path = Path(path)
    for name in ("metrics.csv", "items.csv"):
        if not (path / name).is_file():
            raise ValueError(f"{path} has no {name}: not a finished job of a per-item task "
                             f"(points or images)")
    with open(path / "metrics.csv", newline="") as f:
        metric_rows = list(csv.DictReader(f))
    seeds = {int(r["seed"]) for r in metric_rows}
    if len(seeds) != 1:
        raise ValueError(f"{path}/metrics.csv has rows of seeds {sorted(seeds)}: one job, one seed")
    items: dict[float, dict[int, float]] = {}
    with open(path / "items.csv", newline="") as f:
        for r in csv.DictReader(f):
            items.setdefault(float(r["value"]), {})[int(r["index"])] = float(r["sq_err"])
    return FinishedJob(path, seeds.pop(), items, {float(r["value"]): r for r in metric_rows})


def match_by_seed(ref: Sequence[FinishedJob],
                  new: Sequence[FinishedJob]) -> list[tuple[FinishedJob, FinishedJob]]:
    """The (reference, new) pairs with the same seed, in seed order; a ``ValueError`` when a
    set repeats a seed or the sets share none."""
    for name, jobs in (("reference", ref), ("new", new)):
        seeds = [j.seed for j in jobs]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"the {name} jobs repeat a seed ({sorted(seeds)}): pass one job per seed")
    by_seed = {j.seed: j for j in new}
    pairs = [(r, by_seed[r.seed]) for r in sorted(ref, key=lambda j: j.seed) if r.seed in by_seed]
    if not pairs:
        raise ValueError(f"no seed in common: reference {sorted(j.seed for j in ref)}, "
                         f"new {sorted(j.seed for j in new)}")
    return pairs


def paired_change(ref_err: Sequence[float], new_err: Sequence[float]) -> dict:
    """Mean of each, the paired mean difference ``Δ``, its standard error, ``z = Δ/SE`` and the
    relative change ``Δ/mean(ref)`` (``n ≥ 2`` pairs)."""
    n = len(ref_err)
    if n != len(new_err) or n < 2:
        raise ValueError(f"paired_change needs two equal lists of at least 2 values ({n}, {len(new_err)})")
    d = [b - a for a, b in zip(ref_err, new_err)]
    mean_d = sum(d) / n
    se = math.sqrt(sum((x - mean_d) ** 2 for x in d) / (n - 1) / n)
    mean_ref = sum(ref_err) / n
    return {"n": n, "ref": mean_ref, "new": sum(new_err) / n, "diff": mean_d, "se": se,
            "z": mean_d / se if se > 0 else (0.0 if mean_d == 0 else math.copysign(math.inf, mean_d)),
            "rel": mean_d / mean_ref if mean_ref else math.nan}


def spread(values: Sequence[float]) -> dict:
    """Mean, smallest and largest of per-job values."""
    return {"mean": sum(values) / len(values), "lo": min(values), "hi": max(values)}


def compare_jobs(ref: Sequence[FinishedJob], new: Sequence[FinishedJob],
                 columns: Sequence[str] = ("mse",)) -> list[dict]:
    """One row per knob value that every matched job has: ``value``, ``seeds`` (how many
    matched), ``items`` (``paired_change`` over all (seed, item) pairs) and, per ``column`` of
    metrics.csv, ``{column: {"ref": spread, "new": spread, "inside": bool}}`` (``inside``: the
    new jobs' mean lies within the reference jobs' range)."""
    pairs = match_by_seed(ref, new)
    values = sorted(set.intersection(*(set(a.items) & set(b.items) for a, b in pairs)))
    out = []
    for v in values:
        ref_err, new_err = [], []
        for a, b in pairs:
            common = sorted(set(a.items[v]) & set(b.items[v]))
            ref_err += [a.items[v][i] for i in common]
            new_err += [b.items[v][i] for i in common]
        row = {"value": v, "seeds": len(pairs), "items": paired_change(ref_err, new_err)}
        for c in columns:
            missing = [j.path for a, b in pairs for j in (a, b) if c not in j.rows[v]]
            if missing:
                raise ValueError(f"{missing[0]}/metrics.csv has no column {c!r}")
            r = spread([float(a.rows[v][c]) for a, _ in pairs])
            n = spread([float(b.rows[v][c]) for _, b in pairs])
            row[c] = {"ref": r, "new": n, "inside": r["lo"] <= n["mean"] <= r["hi"]}
        out.append(row)
    return out
