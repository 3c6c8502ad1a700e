"""``make figures-ffhq RESULTS=DIR`` (scripts/figures_ffhq.py over vsdr.experiments.figures_ffhq):
Table IV and the FFHQ DP planes from finished jobs. Fast: hand-written job dirs, whose numbers
Table IV must repeat exactly, with the LPIPS column taken by its name (any ``lpips*``), non-FFHQ
jobs left out. Slow: the CPU-size FFHQ jobs (tests/ffhq_small.py), ours run as two shards that
the script merges itself, DPS and DiffPIR unsharded."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, compose_cfg
from ffhq_small import make_small_ffhq, small_overrides

from vsdr.experiments import figures_ffhq


def _job(d: Path, rows: list[dict], perception: str, chash: str) -> None:
    d.mkdir(parents=True)
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (d / "metrics.json").write_text(json.dumps({"config": {"data": {"num_shards": 1}},
                                                "config_hash": chash, "perception": perception}))


def _row(sampler, knob, value, psnr, lpips, operator="gaussian_blur", sigma=0.05, dataset="ffhq",
         lpips_name="lpips_vgg"):
    return {"dataset": dataset, "operator": operator, "sigma": sigma, "sigma_space": "[-1,1]",
            "sampler": sampler, "knob": knob, "value": value, "mse": 10 ** (-psnr / 10), "psnr": psnr,
            lpips_name: lpips, "fd_pca": 1.0, "n": 1000}


def test_table_iv_repeats_the_jobs_numbers(tmp_path):
    res = tmp_path / "results"
    _job(res / "sweep" / "0",
         [_row("ours", "lam", 0.0, 25.27, 0.368), _row("ours", "lam", 1.0, 24.40, 0.263)], "lpips_vgg", "a")
    _job(res / "dps", [_row("dps", "zeta", 0.3, 24.0, 0.30)], "lpips_vgg", "b")
    _job(res / "diffpir", [_row("diffpir", "lambda_d", 7.0, 22.73, 0.262)], "lpips_vgg", "c")
    _job(res / "sr", [_row("ours", "lam", 0.0, 23.0, 0.5, operator="super_resolution")], "lpips_vgg", "d")
    _job(res / "digits", [_row("ours", "lam", 0.0, 30.0, 0.1, dataset="digits")], "lpips_vgg", "e")
    out = tmp_path / "out"
    table = figures_ffhq.make(res, out)
    got = {(r["setting"], r["method"], r["value"]): (r["psnr"], r["lpips"], r["lpips_column"]) for r in table}
    ours = figures_ffhq.collect_rows([res / "sweep" / "0"])[0]["method"]
    assert got == {("deblur_sigma0.05", ours, 0.0): (25.27, 0.368, "lpips_vgg"),
                   ("deblur_sigma0.05", ours, 1.0): (24.40, 0.263, "lpips_vgg"),
                   ("deblur_sigma0.05", figures_ffhq.collect_rows([res / "dps"])[0]["method"], 0.3):
                       (24.0, 0.30, "lpips_vgg"),
                   ("deblur_sigma0.05", figures_ffhq.collect_rows([res / "diffpir"])[0]["method"], 7.0):
                       (22.73, 0.262, "lpips_vgg"),
                   ("sr_sigma0.05", ours, 0.0): (23.0, 0.5, "lpips_vgg")}
    md = (out / "table_iv.md").read_text()
    assert "### deblur_sigma0.05" in md and "| 25.27 | 0.3680 |" in md and "### sr_sigma0.05" in md
    with open(out / "table_iv.csv") as f:
        assert [float(r["psnr"]) for r in csv.DictReader(f)] == [r["psnr"] for r in table]
    # no FID column in these jobs: the LPIPS planes only
    assert (out / "fig6_deblur_sigma0.05_lpips.png").is_file()
    assert (out / "fig8_sr_sigma0.05_lpips.pdf").is_file()
    assert not (out / "fig6_deblur_sigma0.05.png").exists()


def test_dp_planes_against_fid_and_table_iv_in_the_papers_layout(tmp_path):
    """Figs. 6 and 8 as the paper draws them: MSE against FID (the stand-in named so), LPIPS
    beside; table_iv_paper.md puts each job's number in its Table IV column (ours at λ = 0 and
    1, PSCGAN N = 64, DiffPIR λ_D = 7; the λ = 0.2 column has no job: –) above the paper's row."""
    res = tmp_path / "results"
    fid = {"fid_standin": 40.0}
    _job(res / "ours", [{**_row("ours", "lam", 0.0, 25.0, 0.37, sigma=0.2), **fid},
                        {**_row("ours", "lam", 1.0, 24.0, 0.26, sigma=0.2), "fid_standin": 30.0}],
         "lpips_vgg", "a")
    _job(res / "pscgan", [{**_row("pscgan", "N", 64, 24.5, 0.35, sigma=0.2), **fid}], "lpips_vgg", "b")
    _job(res / "diffpir", [{**_row("diffpir", "lambda_d", 7.0, 22.5, 0.27, sigma=0.2), **fid}],
         "lpips_vgg", "c")
    out = tmp_path / "out"
    figures_ffhq.make(res, out)
    for name in ("fig6_deblur_sigma0.2", "fig6_deblur_sigma0.2_lpips"):
        assert (out / f"{name}.png").is_file() and (out / f"{name}.pdf").is_file()
    md = (out / "table_iv_paper.md").read_text().splitlines()
    head = next(line for line in md if line.startswith("| metric"))
    assert head.split(" | ")[1:] == ["ours λ=0", "ours λ=0.2", "ours λ=0.5", "ours λ=0.8", "ours λ=1",
                                     "pscgan N=1", "pscgan N=64", "diffpir lambda_d=7 |"]
    ours_psnr = next(line for line in md if line.startswith("| PSNR (dB), vsdr"))
    assert ours_psnr == "| PSNR (dB), vsdr | 25.00 | – | – | – | 24.00 | – | 24.50 | 22.50 |"
    paper = next(line for line in md if line.startswith("| PSNR (dB), paper"))
    assert paper == "| PSNR (dB), paper | 25.27 | 24.93 | 24.80 | 24.47 | 24.40 | 22.10 | 24.39 | 22.73 |"
    assert "| lpips_vgg, vsdr | 0.370 | – | – | – | 0.260 | – | 0.350 | 0.270 |" in md
    rows = figures_ffhq.collect_rows([res / "ours"])
    assert {(r["fid_column"], float(r["fid"])) for r in rows} == {("fid_standin", 40.0),
                                                                  ("fid_standin", 30.0)}


def test_fid_planes_from_cpu_size_jobs_of_two_readings(tmp_path):
    """CPU-size FFHQ jobs (random-weight adm_small, two 64² images, T = 3, stand-in metrics) of
    the decided reading (σ_y = 0.2, residual=mean) and of another one in one word each
    (noise=dps, sampler.residual=sum_no_sigma), plus DPS: the figures draw MSE against the FID
    stand-in per setting (named so), LPIPS beside it, and Table IV's layout takes ours' rows."""
    from vsdr.experiments.job import run_job

    small = make_small_ffhq(tmp_path / "small")
    res = tmp_path / "results"
    run_job(compose_cfg([*small_overrides(small), "lam=[0,1]"]), res / "ours")
    other = ["lam=[0,1]", "noise=dps", "sampler.residual=sum_no_sigma"]
    run_job(compose_cfg([*small_overrides(small), *other]), res / "ours_dps_level")
    run_job(compose_cfg(small_overrides(small, "ffhq_deblur_dps")), res / "dps")
    out = tmp_path / "fig"
    figures_ffhq.make(res, out)
    for setting in ("deblur_sigma0.2", "deblur_sigma0.05"):
        for suffix in ("", "_lpips"):
            assert (out / f"fig6_{setting}{suffix}.png").is_file(), (setting, suffix)
    with open(out / "dp_points.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["fid_column"] for r in rows} == {"fid_standin"}
    assert {(r["setting"], r["knob"]) for r in rows} == {
        ("deblur_sigma0.2", "lam"), ("deblur_sigma0.05", "lam"), ("deblur_sigma0.2", "zeta")}
    md = (out / "table_iv_paper.md").read_text()
    assert "### deblur_sigma0.2" in md and "### deblur_sigma0.05" in md
    ours = [r for r in rows if r["setting"] == "deblur_sigma0.2" and r["knob"] == "lam"]
    part = md.split("### deblur_sigma0.2")[1].splitlines()
    line = next(x for x in part if x.startswith("| PSNR (dB), vsdr"))
    cells = line.split(" | ")[1:]
    assert cells[0] == f"{float(ours[0]['psnr']):.2f}" and cells[4] == f"{float(ours[1]['psnr']):.2f}"


def test_lpips_column_is_the_jobs_perception_measure_when_it_is_lpips():
    rows = [{"mse": 1, "lpips_standin": 0.2, "lpips_alex": 0.3}]
    assert figures_ffhq.lpips_column(rows, {"perception": "lpips_alex"}) == "lpips_alex"
    assert figures_ffhq.lpips_column(rows, {"perception": "fd_pca"}) == "lpips_standin"
    assert figures_ffhq.lpips_column([{"mse": 1}], None) is None


def test_make_figures_ffhq_passes_results(tmp_path):
    res = subprocess.run(["make", "-n", "figures-ffhq", "RESULTS=/some/dir"], cwd=ROOT, capture_output=True,
                         text=True)
    assert "scripts/figures_ffhq.py /some/dir" in res.stdout


def test_no_ffhq_job_is_one_sentence(tmp_path):
    """A folder without FFHQ jobs: a ``ConfigError`` (the script prints it, exit 1), nothing written."""
    from vsdr.errors import ConfigError

    with pytest.raises(ConfigError, match="^no finished FFHQ job .* under "):
        figures_ffhq.make(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_figures_ffhq_from_cpu_size_jobs_with_two_shards(tmp_path):
    from vsdr.experiments.job import run_job

    small = make_small_ffhq(tmp_path / "small")
    res = tmp_path / "results"
    nofid = ["image_metrics.fid=false"]  # a one-image shard has no covariance for FID
    ours = [*small_overrides(small), *nofid, "lam=[0,1]", "data.num_shards=2"]
    for i in range(2):
        run_job(compose_cfg([*ours, f"data.shard={i}"]), res / "ours" / str(i))
    run_job(compose_cfg([*small_overrides(small, "ffhq_deblur_dps"), *nofid]), res / "dps")
    run_job(compose_cfg([*small_overrides(small, "ffhq_deblur_diffpir"), *nofid]), res / "diffpir")
    unsharded = run_job(compose_cfg([*small_overrides(small), *nofid, "lam=[0,1]"]), tmp_path / "unsharded")
    out = tmp_path / "fig"
    script = str(ROOT / "scripts" / "figures_ffhq.py")
    proc = subprocess.run([sys.executable, script, str(res), "--out", str(out)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((res / "merged").glob("*/metrics.csv"))) == 1           # the two shards, merged
    with open(out / "table_iv.csv") as f:
        table = list(csv.DictReader(f))
    mine = [r for r in table if r["knob"] == "lam"]
    # the merged shards give the unsharded job's numbers
    assert [(float(r["value"]), float(r["psnr"])) for r in mine] == \
        [(float(r["value"]), pytest.approx(float(r["psnr"]), abs=0)) for r in unsharded]
    assert {r["knob"] for r in table} == {"lam", "zeta", "lambda_d"}
    assert all(r["lpips_column"].startswith("lpips") for r in table)
    assert (out / "fig6_deblur_sigma0.2_lpips.png").is_file() and (out / "dp_points.csv").is_file()
