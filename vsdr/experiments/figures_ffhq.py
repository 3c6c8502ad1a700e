"""Table IV and the FFHQ DP planes (Figs. 6 and 8) from the results of an FFHQ sweep
(``make figures-ffhq RESULTS=DIR``, scripts/figures_ffhq.py).

RESULTS is any folder holding finished FFHQ jobs (``ffhq_*`` experiments: ours, DPS, DiffPIR,
PSCGAN when present), at any depth: single jobs, multirun sweeps, SLURM arrays of shards.
Shard jobs (``data.num_shards > 1``) are merged first, per complete group, into
``RESULTS/merged/<hash>/`` (``vsdr.experiments.shards.gather_shards``; a group merged already
is reused). Every finished, unsharded or merged job then contributes its metrics.csv rows.

Writes into OUT: ``table_iv.csv`` and ``table_iv.md`` (per setting, method and knob value:
PSNR and LPIPS, the LPIPS column named as the jobs wrote it), ``table_iv_paper.md`` (each deblur
setting in the paper's Table IV layout, ours at five λ, PSCGAN at N = 1 and 64, DiffPIR, with the
paper's own numbers in the rows below), ``dp_points.csv`` (every row), and per setting the DP
planes as the paper draws them, MSE against FID (``fig6_deblur_sigma<σ>`` for Gaussian
deblurring, ``fig8_sr_sigma<σ>`` for super-resolution; docs/METHOD.md §7, clue 8), and MSE against
LPIPS beside them (``…_lpips``), PNG and PDF. A stand-in FID or LPIPS (``fid_standin``) is named as
such on the axis; a job without a FID column gives the LPIPS plane only.
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

#: the paper's Table IV (App. E-B2, Gaussian deblurring at its lost lower σ_y): its columns as
#: (sampler, knob, value) and its PSNR and LPIPS. The five λ of "Ours" are lost: vsdr prints
#: its own at TABLE_IV_LAMS; PSCGAN's two columns are read as N = 1 (a sample: lower PSNR,
#: better LPIPS) and N = 64 (the average), DiffPIR's as its deblur λ_D = 7.
TABLE_IV_LAMS = (0.0, 0.2, 0.5, 0.8, 1.0)
TABLE_IV_COLUMNS = (*(("ours", "lam", lam) for lam in TABLE_IV_LAMS),
                    ("pscgan", "N", 1.0), ("pscgan", "N", 64.0), ("diffpir", "lambda_d", 7.0))
PAPER_TABLE_IV = {"psnr": (25.27, 24.93, 24.80, 24.47, 24.40, 22.10, 24.39, 22.73),
                  "lpips": (0.368, 0.337, 0.329, 0.312, 0.263, 0.304, 0.350, 0.262)}


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


def fid_column(rows: list[dict]) -> str | None:
    """The FID column of a job: ``fid``, else its labelled stand-in ``fid_standin``."""
    cols = list(rows[0]) if rows else []
    return next((c for c in ("fid", "fid_standin") if c in cols), None)


def collect_rows(jobs: list[Path]) -> list[dict]:
    """Every metrics.csv row of ``jobs`` on FFHQ, with ``setting``, ``figure``, ``method``,
    ``lpips_column`` and ``lpips`` (its value), ``fid_column`` and ``fid`` added, and ``job``
    (the dir)."""
    from vsdr.samplers import sampler_label

    out = []
    for job in jobs:
        with open(job / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or rows[0].get("dataset") != "ffhq":
            continue
        col, fcol = lpips_column(rows, _meta(job)), fid_column(rows)
        for r in rows:
            setting, figure = SETTINGS.get(r["operator"], (r["operator"], "fig_" + r["operator"]))
            out.append({**r, "setting": f"{setting}_sigma{float(r['sigma']):g}", "figure": figure,
                        "method": sampler_label(r["sampler"]), "lpips_column": col or "",
                        "lpips": r[col] if col else "nan", "fid_column": fcol or "",
                        "fid": r[fcol] if fcol else "nan", "job": str(job)})
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


def table_iv_paper(rows: list[dict]) -> str:
    """Each deblurring setting in the paper's Table IV layout (``TABLE_IV_COLUMNS``): vsdr's
    PSNR and LPIPS where its jobs have that column (``–`` where not), then the paper's own."""
    lines = []
    for setting in dict.fromkeys(r["setting"] for r in rows if r["setting"].startswith("deblur")):
        part = [r for r in rows if r["setting"] == setting]
        found = [next((r for r in part if (r["sampler"], r["knob"]) == (s, k)
                       and abs(float(r["value"]) - v) < 1e-9), None) for s, k, v in TABLE_IV_COLUMNS]
        heads = [f"{s} {'λ' if k == 'lam' else k}={v:g}" for s, k, v in TABLE_IV_COLUMNS]
        col = next((r["lpips_column"] for r in part if r["lpips_column"]), "lpips")

        def cells(key: str, fmt: str, found=found) -> str:
            return " | ".join("–" if r is None else format(float(r[key]), fmt) for r in found)

        lines += [f"### {setting}", "", "| metric | " + " | ".join(heads) + " |",
                  "|---|" + "---|" * len(heads),
                  f"| PSNR (dB), vsdr | {cells('psnr', '.2f')} |",
                  f"| {col}, vsdr | {cells('lpips', '.3f')} |",
                  "| PSNR (dB), paper | " + " | ".join(f"{v:.2f}" for v in PAPER_TABLE_IV["psnr"]) + " |",
                  "| LPIPS, paper | " + " | ".join(f"{v:.3f}" for v in PAPER_TABLE_IV["lpips"]) + " |", "",
                  "The paper's five λ are lost (vsdr's at " + ", ".join(f"{v:g}" for v in TABLE_IV_LAMS)
                  + "); its σ_y is lost too (docs/METHOD.md §7 reads it as 0.2 in [−1, 1]).", ""]
    return "\n".join(lines)


def plot_settings(rows: list[dict], out: Path) -> list[Path]:
    """Per setting, the DP planes: MSE ([0, 1] images) against FID (the paper's Figs. 6 and 8)
    and against LPIPS (``…_lpips``), a curve per method."""
    import matplotlib.pyplot as plt

    from vsdr.experiments.writer import save_figure
    from vsdr.plotting.figures import plot_dp_overlay
    from vsdr.plotting.words import axis_label

    written = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        part = [{**r, "sampler": r["method"]} for r in rows if r["setting"] == setting]
        jobs = len({r["job"] for r in part})
        planes = [("lpips", part[0]["lpips_column"], "_lpips")]
        with_fid = [r for r in part if r["fid_column"]]
        if with_fid:
            planes.insert(0, ("fid", with_fid[0]["fid_column"], ""))
        for key, col, suffix in planes:
            shown = [r for r in part if r[f"{key}_column"]]
            fig = plot_dp_overlay(shown, f"FFHQ {setting}: DP plane, MSE against {col} ({jobs} jobs)",
                                  perception=key, xlabel=axis_label(col, "perception", shown))
            written.append(save_figure(fig, out / f"{part[0]['figure']}_{setting}{suffix}.png")[0])
            plt.close(fig)
    return written


def make(results: Path, out: Path) -> list[dict]:
    """Everything above for ``results`` into ``out``; returns Table IV's rows. A ``ConfigError``
    when ``results`` holds no finished FFHQ job."""
    from vsdr.experiments.writer import write_csv, write_text

    rows = collect_rows(finished_jobs(results))
    if not rows:
        raise ConfigError(f"no finished FFHQ job (metrics.json and metrics.csv, dataset "
                         f"ffhq) under {results}")
    out.mkdir(parents=True, exist_ok=True)
    table = table_iv(rows)
    write_csv(out / "table_iv.csv", table)
    write_text(out / "table_iv.md", table_markdown(table))
    write_text(out / "table_iv_paper.md", table_iv_paper(rows))
    write_csv(out / "dp_points.csv", rows)
    plot_settings(rows, out)
    return table
