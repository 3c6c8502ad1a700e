"""Table IV and the FFHQ DP planes (Figs. 6 and 8) from the results of an FFHQ sweep
(``make figures-ffhq RESULTS=DIR``, scripts/figures_ffhq.py).

RESULTS is any folder holding finished FFHQ jobs (``ffhq_*`` experiments: ours, DPS, DiffPIR,
PSCGAN when present), at any depth: single jobs, multirun sweeps, SLURM arrays of shards.
Shard jobs (``data.num_shards > 1``) are merged first, per complete group, into
``RESULTS/merged/<hash>/`` (``vsdr.experiments.shards.gather_shards``; a group merged already
is reused). Every finished, unsharded or merged job then contributes its metrics.csv rows.

Writes into OUT: ``table_iv.csv`` and ``table_iv.md`` (per setting, method and knob value:
PSNR and LPIPS, the LPIPS column named as the jobs wrote it), ``dp_points.csv`` (every row),
and one DP plane per setting, MSE against LPIPS (PNG and PDF): ``fig6_deblur_sigma<σ>`` for
Gaussian deblurring, ``fig8_sr_sigma<σ>`` for super-resolution.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from vsdr.errors import ConfigError

log = logging.getLogger(__name__)

#: operator name → (setting name, figure)
SETTINGS = {"gaussian_blur": ("deblur", "fig6"), "super_resolution": ("sr", "fig8")}


def _meta(job: Path) -> dict | None:
    try:
        return json.loads((job / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def finished_jobs(results: Path) -> list[Path]:
    """The finished unsharded jobs under ``results`` (any depth), complete shard groups merged
    into ``results/merged/<hash>/`` first; one dir per results hash."""
    from vsdr.experiments.shards import gather_shards

    jobs: dict[str, Path] = {}
    groups: dict[str, list[Path]] = {}
    for path in sorted(results.rglob("metrics.json")):
        job, meta = path.parent, _meta(path.parent)
        if meta is None or "config" not in meta or not (job / "metrics.csv").is_file():
            continue
        shards = int(meta["config"].get("data", {}).get("num_shards", 1) or 1)
        if shards > 1:
            from omegaconf import OmegaConf

            from vsdr.experiments.shards import _unsharded_key

            groups.setdefault(_unsharded_key(OmegaConf.create(meta["config"])), []).append(job)
        else:
            jobs.setdefault(str(meta.get("config_hash", job)), job)
    for key, dirs in groups.items():
        if key in jobs:
            continue
        want = int(_meta(dirs[0])["config"]["data"]["num_shards"])
        if len(dirs) != want:
            log.warning("figures_ffhq: %d of %d shards of %s are finished: left out", len(dirs), want, key)
            continue
        gather_shards(dirs, results / "merged" / key)
        jobs[key] = results / "merged" / key
    return sorted(jobs.values())


def lpips_column(rows: list[dict], meta: dict | None) -> str | None:
    """The LPIPS column of a job: its perception measure when that is an LPIPS column, else
    the first column whose name starts with ``lpips`` (``lpips``, ``lpips_vgg``, the stand-in)."""
    cols = list(rows[0]) if rows else []
    wanted = (meta or {}).get("perception")
    if wanted in cols and str(wanted).startswith("lpips"):
        return wanted
    return next((c for c in cols if c.startswith("lpips")), None)


def collect_rows(jobs: list[Path]) -> list[dict]:
    """Every metrics.csv row of ``jobs`` on FFHQ, with ``setting``, ``figure``, ``method``,
    ``lpips_column`` and ``lpips`` (its value) added, and ``job`` (the dir)."""
    from vsdr.samplers import sampler_label

    out = []
    for job in jobs:
        with open(job / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or rows[0].get("dataset") != "ffhq":
            continue
        col = lpips_column(rows, _meta(job))
        for r in rows:
            setting, figure = SETTINGS.get(r["operator"], (r["operator"], "fig_" + r["operator"]))
            out.append({**r, "setting": f"{setting}_sigma{float(r['sigma']):g}", "figure": figure,
                        "method": sampler_label(r["sampler"]), "lpips_column": col or "",
                        "lpips": r[col] if col else "nan", "job": str(job)})
    out.sort(key=lambda r: (r["setting"], r["method"], r["knob"], float(r["value"])))
    return out


def table_iv(rows: list[dict]) -> list[dict]:
    """One row per (setting, method, knob value): PSNR and LPIPS (Table IV)."""
    return [{"setting": r["setting"], "method": r["method"], "knob": r["knob"], "value": float(r["value"]),
             "psnr": float(r["psnr"]), "lpips": float(r["lpips"]), "lpips_column": r["lpips_column"],
             "n": int(r.get("n") or 0)} for r in rows]


def table_markdown(table: list[dict]) -> str:
    from vsdr.samplers import knob_symbol

    lines = []
    for setting in dict.fromkeys(r["setting"] for r in table):
        part = [r for r in table if r["setting"] == setting]
        lines += [f"### {setting}", "",
                  "| method | knob | PSNR (dB) ↑ | LPIPS ↓ | LPIPS column | images×samples |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {knob_symbol(r['knob'])}={r['value']:g} | {r['psnr']:.2f} | "
                  f"{r['lpips']:.4f} | {r['lpips_column']} | {r['n']} |" for r in part]
        lines.append("")
    return "\n".join(lines)


def plot_settings(rows: list[dict], out: Path) -> list[Path]:
    """One DP plane per setting: MSE ([0, 1] images) against LPIPS, a curve per method."""
    import matplotlib.pyplot as plt

    from vsdr.experiments.writer import save_figure
    from vsdr.plotting.figures import plot_dp_overlay
    from vsdr.plotting.words import axis_label

    written = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        part = [{**r, "sampler": r["method"]} for r in rows if r["setting"] == setting]
        col = part[0]["lpips_column"]
        fig = plot_dp_overlay(part, f"FFHQ {setting}: DP plane ({len({r['job'] for r in part})} jobs)",
                              perception="lpips", xlabel=axis_label(col, "perception", part))
        written.append(save_figure(fig, out / f"{part[0]['figure']}_{setting}.png")[0])  # and its PDF
        plt.close(fig)
    return written


def make(results: Path, out: Path) -> list[dict]:
    """Everything above for ``results`` into ``out``; returns Table IV's rows. A ``ConfigError``
    when ``results`` holds no finished FFHQ job."""
    from vsdr.experiments.writer import write_csv

    rows = collect_rows(finished_jobs(results))
    if not rows:
        raise ConfigError(f"no finished FFHQ job (metrics.json and metrics.csv, dataset "
                         f"ffhq) under {results}")
    out.mkdir(parents=True, exist_ok=True)
    table = table_iv(rows)
    write_csv(out / "table_iv.csv", table)
    (out / "table_iv.md").write_text(table_markdown(table))
    write_csv(out / "dp_points.csv", rows)
    plot_settings(rows, out)
    return table
