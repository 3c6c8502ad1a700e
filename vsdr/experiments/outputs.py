"""The result files of a job (docs/METHOD.md §9), written the same way by a job and by the
merge of its shards: samples.npz, items.csv, metrics.csv, dp_curve.{csv,png}, the task's
figures, and metrics.json last (its presence marks the job finished)."""
from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import vsdr
from vsdr.experiments.writer import save_figure, write_csv, write_json, write_npz
from vsdr.tasks.base import Task, TestSet, TrajectoryFn

#: coordinates per item written into items.csv (larger items: index, value and error only)
MAX_ITEM_COORDS = 16


def make_rows(base: dict, values: Sequence[float], metrics: list[dict], n: int, nfe: int,
              seed: int) -> list[dict]:
    """One metrics row per knob value: the job's shared columns, the value, the task's metric
    columns, then ``n``, ``nfe`` and ``seed``."""
    return [{**base, "value": float(v), **m, "n": int(n), "nfe": int(nfe), "seed": int(seed)}
            for v, m in zip(values, metrics)]


def columns_of(task: Task, rows: list[dict]) -> list[str]:
    """metrics.csv's columns: the task's first columns, then the rows' others in row order."""
    return list(task.columns) + [c for c in rows[0] if c not in task.columns]


def item_rows(index: np.ndarray, values, knob: str, x0: np.ndarray, y: np.ndarray,
              samples: np.ndarray, samples_per_item: int = 1) -> list[dict]:
    """One row per (knob value, test item): ``index``, knob, value, squared error and, for
    small items, the coordinates of ``x0``, ``y`` and the reconstruction. With
    ``samples_per_item = S > 1`` an item is a sample: ``image = index // S`` and
    ``sample = index % S`` follow ``index``."""
    S = int(samples_per_item)
    rows = []
    flat = x0.reshape(len(x0), -1)
    small = flat.shape[1] <= MAX_ITEM_COORDS
    for v, rec in zip(values, samples):
        r_flat = rec.reshape(len(rec), -1)
        err = ((r_flat.astype(np.float64) - flat.astype(np.float64)) ** 2).sum(axis=1)
        for p, j in enumerate(index):
            row = {"index": int(j), **({"image": int(j) // S, "sample": int(j) % S} if S > 1 else {}),
                   "knob": knob, "value": float(v), "sq_err": float(err[p])}
            if small:
                yf = y.reshape(len(y), -1)[p]
                row.update({f"x0_{c}": float(flat[p, c]) for c in range(flat.shape[1])})
                row.update({f"y_{c}": float(yf[c]) for c in range(len(yf))})
                row.update({f"recon_{c}": float(r_flat[p, c]) for c in range(r_flat.shape[1])})
            rows.append(row)
    return rows


def write_tables(out_dir: Path, task: Task, rows: list[dict], test: TestSet, recon: torch.Tensor,
                 values: Sequence[float], knob: str, index: np.ndarray, samples_per_item: int = 1) -> None:
    """samples.npz (``x0``, ``y``, ``samples (V, n, ...)``, ``values``, ``knob``, global
    ``index``; with ``samples_per_item = S > 1`` also ``samples_per_image``, and ``index`` is
    ``image · S + sample``), items.csv (per-item tasks), metrics.csv and dp_curve.csv."""
    x0, y, samples = test.x0.numpy(), test.y.numpy(), recon.numpy()
    extra = {"samples_per_image": np.asarray(int(samples_per_item))} if samples_per_item > 1 else {}
    write_npz(out_dir / "samples.npz", x0=x0, y=y, samples=samples, values=np.asarray(values),
              knob=np.asarray(knob), index=np.asarray(index), **extra)
    if task.per_item:
        write_csv(out_dir / "items.csv", item_rows(np.asarray(index), values, knob, x0, y, samples,
                                                   samples_per_item))
    columns = columns_of(task, rows)
    write_csv(out_dir / "metrics.csv", rows, columns)
    write_csv(out_dir / "dp_curve.csv", rows, columns)


def write_figures(out_dir: Path, task: Task, rows: list[dict], test: TestSet, recon: torch.Tensor,
                  values: Sequence[float], knob: str, title: str,
                  trajectories: TrajectoryFn | None = None, seed: int = 0) -> dict[str, Path]:
    """dp_curve.png (MSE against the task's perception measure, bootstrap intervals as bars)
    and the task's own figures, each with its PDF beside it; returns ``{stem: PNG path}``."""
    import matplotlib.pyplot as plt

    from vsdr.plotting.dp import plot_dp_curve

    figs = task.figures(rows, test, recon, values, knob, title, trajectories, seed=seed)
    figs["dp_curve.png"] = plot_dp_curve(rows, perception=task.perception(rows), title=title)
    written = {}
    for name, fig in figs.items():
        save_figure(fig, out_dir / name)
        plt.close(fig)
        written[Path(name).stem] = out_dir / name
    return written


def metadata(task: Task, rows: list[dict], config: dict, config_hash: str, seed: int,
             **extra) -> dict:
    """The body of metrics.json: rows, the resolved config and its results hash, units, the
    perception measure, notes (e.g. missing weights), versions, and ``extra``."""
    return {
        "rows": rows, "config": config, "config_hash": config_hash, "seed": int(seed),
        "nfe": rows[0]["nfe"], "kind": task.kind, "units": task.units,
        "perception": task.perception(rows), "notes": list(task.notes), **extra,
        "versions": {"vsdr": vsdr.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    }


def write_metadata(out_dir: Path, meta: dict) -> None:
    write_json(out_dir / "metrics.json", meta)
