"""scripts/gpu_check.py (vsdr.experiments.gpu_check): the step it times is one sampler step's
network work (checked on a network with a closed-form gradient), its device-hours follow the
written formula (hand-computed), and (slow) its ``--cpu-scale`` run finishes with the small job
exiting 0."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from vsdr.experiments import gpu_check


class Linear(torch.nn.Module):
    """ε(x, t) = c · x on 3 channels (and a constant v channel block)."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x, t):
        return torch.cat([self.c * x, torch.zeros_like(x)], dim=1)


def test_guided_step_is_the_gradient_of_the_x0_norm():
    # x̂0 = (x − √(1−ᾱ) c x)/√ᾱ = k x  ⇒  ∇‖x̂0‖² = 2 k² x
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    ab, c = 0.36, 0.5
    k = (1 - math.sqrt(1 - ab) * c) / math.sqrt(ab)
    g = gpu_check.guided_step(Linear(c), x, torch.zeros(2), alpha_bar=ab)
    torch.testing.assert_close(g, 2 * k ** 2 * x)


def test_device_hours_follow_the_formula():
    steps = [{"precision": "fp32", "batch": 1, "step_s": 2.0, "forward_s": 1.0},
             {"precision": "fp32", "batch": 4, "step_s": 5.0, "forward_s": 3.0}]
    hours = {r["job"]: r for r in gpu_check.device_hours(steps, "fp32", images=1000)}
    # ours: 11 λ, 1000 steps; ⌈11/4⌉ = 3 calls of 5 s per step
    assert hours["ffhq_deblur"]["hours_b1"] == pytest.approx(1000 * 11 * 1000 * 2.0 / 3600)
    assert hours["ffhq_deblur"]["hours_b4"] == pytest.approx(1000 * 3 * 1000 * 5.0 / 3600)
    # DiffPIR on ×8 SR: 3 values of λ_D, 100 forwards
    assert hours["ffhq_sr8_diffpir"]["hours_b4"] == pytest.approx(1000 * 1 * 100 * 3.0 / 3600)
    assert hours["ffhq_deblur_dps"]["rows"] == 1 and hours["ffhq_deblur_dps"]["steps"] == 1000
    assert gpu_check.device_hours(steps, "bf16") == []


@pytest.mark.slow
def test_cpu_scale_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--cpu-scale",
                          "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rep["job"]["returncode"] == 0 and len(rep["job"]["rows"]) == 2
    assert {(r["precision"], r["batch"]) for r in rep["steps"]} == {(p, b) for p in ("fp32", "bf16")
                                                                     for b in (1, 2)}
    assert all(r["step_s"] > 0 and r["peak_mib"] > 0 for r in rep["steps"])
    assert 0 < rep["error"][0]["rel_eps"] < 0.05


def test_check_images(tmp_path):
    from vsdr.data.images import folder_problems as problems
    from vsdr.data.images import save_images

    save_images(torch.zeros(2, 3, 8, 8), tmp_path / "ok")
    assert problems(tmp_path / "ok", 2, 8) == []
    assert problems(tmp_path / "ok", 3, 8) == ["2 images, expected 3"]
    assert "not 16×16" in problems(tmp_path / "ok", 2, 16)[0]
    save_images(torch.zeros(1, 3, 8, 8), tmp_path / "gap", names=["00001.png"])
    assert "not named 00000" in problems(tmp_path / "gap", 1, 8)[0]
    script = [sys.executable, str(ROOT / "scripts" / "check_images.py")]
    ok = subprocess.run([*script, "ok", "--count", "2", "--size", "8"], cwd=tmp_path, capture_output=True,
                        text=True)
    assert ok.returncode == 0 and "2 images, 8×8 RGB, named in order" in ok.stdout
