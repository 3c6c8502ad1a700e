"""Gathering a sweep: every job's metrics.csv into the sweep dir's dp_curve.{csv,png}."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from vsdr.experiments.shards import gather_sweep_shards, is_shard_job
from vsdr.experiments.writer import save_figure, write_csv

log = logging.getLogger(__name__)


def read_rows(paths: list[Path]) -> list[dict]:
    rows = []
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                r["job"] = p.parent.name
                rows.append(r)
    return rows


def gather_dp_curve(sweep_dir: str | Path) -> list[dict]:
    """Collect ``*/metrics.csv`` under ``sweep_dir`` (one level down: the job dirs), write
    ``dp_curve.csv`` (rows sorted by sampler, knob, value) and ``dp_curve.{png,pdf}``."""
    import matplotlib.pyplot as plt

    from vsdr.plotting.dp import plot_dp_curve, plural

    sweep_dir = Path(sweep_dir)
    merged = gather_sweep_shards(sweep_dir)  # shard jobs count through their merged table
    paths = sorted(p for p in sweep_dir.glob("*/metrics.csv")  # finished jobs: with metrics.json
                   if (p.parent / "metrics.json").is_file() and not is_shard_job(p.parent))
    paths += [m / "metrics.csv" for m in merged]
    rows = read_rows(paths)
    if not rows:
        log.warning("no metrics.csv under %s: nothing to gather", sweep_dir)
        return rows
    rows.sort(key=lambda r: (r["sampler"], r["knob"], float(r["value"])))
    write_csv(sweep_dir / "dp_curve.csv", rows)
    sigmas = sorted({r["sigma"] for r in rows})
    title = (f"{', '.join(sorted({r['dataset'] for r in rows}))}, "
             f"{', '.join(sorted({r['operator'] for r in rows}))}, σ={', '.join(sigmas)} "
             f"({rows[0].get('sigma_space', '')} units), {plural(len(paths), 'job')}")
    fig = plot_dp_curve(rows, title=title)
    save_figure(fig, sweep_dir / "dp_curve.png")
    plt.close(fig)
    log.info("gathered %d rows from %d jobs into %s", len(rows), len(paths), sweep_dir)
    return rows


class GatherDPCurve(Callback):
    """Hydra callback: at the end of a multirun, gather the sweep's DP curve."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        gather_dp_curve(config.hydra.sweep.dir)


class QuietSubmitit(Callback):
    """Hydra callback: before a multirun's launcher starts, show submitit's ``sacct``
    fallback warning once (``vsdr.console.quiet_submitit``)."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from vsdr.console import quiet_submitit

        quiet_submitit()
