"""logger=wandb (offline) in a multirun: one run per job, grouped by the sweep, finished,
and marked failed (exit code 1) when its job fails."""
from __future__ import annotations

import torch
from conftest import FAST, compose_cfg, run_cli
from wandb_reader import run_summary

from vsdr.diffusion import VPSchedule
from vsdr.experiments.prior import build_network


def test_wandb_run_per_job_grouped_by_sweep_failed_when_job_fails(tmp_path, cache_dir):
    cfg = compose_cfg(FAST)
    net = build_network(cfg, VPSchedule.linear(50))
    torch.save({"state_dict": {k: torch.full_like(v, float("nan")) for k, v in net.state_dict().items()}},
               tmp_path / "nan.pt")
    args = ["-m", *[a for a in FAST if a != "logger=none"], "logger=wandb",
            f"model.ckpt=null,{tmp_path / 'nan.pt'}", "hydra.sweep.dir=sweep"]
    res = run_cli(args, cwd=tmp_path, env_extra={"VSDR_CACHE_DIR": str(cache_dir),
                                                  "WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert res.returncode == 3, res.stderr[-2000:]  # job 1 failed: NaN at the first step
    assert "vsdr: sampling produced NaN at reverse step i=49" in res.stderr
    sweep = (tmp_path / "sweep").resolve()
    runs = {}
    for j in (0, 1):
        files = list((sweep / str(j) / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(files) == 1, (j, files)  # its own run
        runs[j] = run_summary(files[0])
    assert runs[0]["group"] == runs[1]["group"] == str(sweep)
    assert runs[0]["name"].startswith("0: ") and runs[1]["name"].startswith("1: ")
    assert runs[0]["exit_code"] == 0 and runs[1]["exit_code"] == 1  # finished; failed
    assert (sweep / "0" / "metrics.csv").is_file() and not (sweep / "1" / "metrics.csv").exists()

