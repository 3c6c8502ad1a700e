"""A fast job end to end: train, sample a λ sweep, evaluate, write every file of
docs/METHOD.md §9; the cache; a multirun with its gathered DP curve."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
from conftest import FAST, compose_cfg, run_cli

from vsdr.experiments.job import run_job
from vsdr.tasks.points import PointCloudTask

COLUMNS = PointCloudTask.columns


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_job_writes_every_file_with_finite_numbers(tmp_path, cache_dir):
    cfg = compose_cfg([*FAST, "lam=[0,0.5,1]"])
    rows = run_job(cfg, tmp_path / "job")
    job = tmp_path / "job"
    for name in ["metrics.csv", "metrics.json", "samples.npz", "reconstructions.png",
                 "dp_curve.csv", "dp_curve.png"]:
        assert (job / name).is_file() and (job / name).stat().st_size > 0, name
    for png in job.glob("*.png"):  # every figure also as PDF
        assert png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-", png
    table = read_csv(job / "metrics.csv")
    assert list(table[0].keys())[:len(COLUMNS)] == COLUMNS
    assert [float(r["value"]) for r in table] == [0.0, 0.5, 1.0]
    for r in table:
        assert r["dataset"] == "pinwheel" and r["sampler"] == "ours" and r["knob"] == "lam"
        assert math.isfinite(float(r["mse"])) and math.isfinite(float(r["w2"]))
        assert float(r["mse_lo"]) < float(r["mse"]) < float(r["mse_hi"])  # bootstrap interval
        assert float(r["w2_lo"]) < float(r["w2"]) < float(r["w2_hi"])
        assert int(r["nfe"]) == 50
    meta = json.loads((job / "metrics.json").read_text())
    assert meta["rows"] == rows and meta["config"]["seed"] == 0 and len(meta["config_hash"]) == 12
    assert meta["model"]["source"] == "trained" and meta["wall_seconds"] > 0
    samples = np.load(job / "samples.npz")
    assert samples["samples"].shape == (3, 64, 2) and np.isfinite(samples["samples"]).all()
    # the second job reuses the cached network and reproduces the numbers exactly
    again = run_job(cfg, tmp_path / "job2")
    assert json.loads((tmp_path / "job2" / "metrics.json").read_text())["model"]["source"] == "cache"
    assert [r["mse"] for r in again] == [r["mse"] for r in rows]


def test_multirun_gathers_a_dp_curve(tmp_path, cache_dir):
    env = {"VSDR_CACHE_DIR": str(cache_dir)}
    res = run_cli(["-m", *[a for a in FAST if not a.startswith("lam=")], "lam=0,1",
                   "hydra.sweep.dir=sweep"], cwd=tmp_path, env_extra=env)
    assert res.returncode == 0, res.stderr[-2000:]
    sweep = tmp_path / "sweep"
    assert (sweep / "0" / "metrics.csv").is_file() and (sweep / "1" / "metrics.csv").is_file()
    gathered = read_csv(sweep / "dp_curve.csv")
    assert [float(r["value"]) for r in gathered] == [0.0, 1.0]
    assert {r["job"] for r in gathered} == {"0", "1"}
    assert (sweep / "dp_curve.png").stat().st_size > 0 and (sweep / "dp_curve.pdf").is_file()
    # one job per λ gives what one job with both λ gives (same seeds per test point)
    single = run_job(compose_cfg([*FAST, "lam=[0,1]"]), tmp_path / "single")
    assert [float(r["mse"]) for r in gathered] == [r["mse"] for r in single]
