"""Each bad input stops before any compute with one clear sentence."""
from __future__ import annotations

import pytest
import torch
from conftest import FAST, compose_cfg, run_cli

from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.models import ScoreMLP


@pytest.mark.parametrize("override,message", [
    ("lam=1.5", "lam=1.5 is outside [0, 1]"),
    ("lam=[0,-0.25]", "lam=-0.25 is outside [0, 1]"),
    ("noise.sigma=-0.1", "noise.sigma=-0.1 is negative"),
    ("noise.sigma=0", "noise.sigma=0 does not fit sampler=ours"),
    ("lam=abc", "lam='abc' is not a number"),
    ("device=tpu", "device='tpu' is not one of"),
])
def test_bad_values(override, message, tmp_path, cache_dir):
    cfg = compose_cfg([*FAST, override])
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        run_job(cfg, tmp_path / "job")
    assert not cache_dir.exists()  # nothing trained
    assert not (tmp_path / "job" / "metrics.csv").exists()


def test_checkpoint_that_does_not_fit(tmp_path, cache_dir):
    bad = tmp_path / "other.pt"
    torch.save({"state_dict": ScoreMLP(enc=16).state_dict()}, bad)
    cfg = compose_cfg([*FAST, f"model.ckpt={bad}"])
    with pytest.raises(ConfigError, match=r"does not fit the model .*missing keys \['net\."):
        run_job(cfg, tmp_path / "job")


def test_missing_checkpoint(tmp_path, cache_dir):
    cfg = compose_cfg([*FAST, f"model.ckpt={tmp_path / 'nope.pt'}"])
    with pytest.raises(ConfigError, match="nope.pt does not exist"):
        run_job(cfg, tmp_path / "job")


def test_cli_prints_one_sentence_and_exits_2(tmp_path):
    res = run_cli([*FAST, "lam=2"], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("vsdr: lam=2 is outside [0, 1]")
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("group", ["dataset", "sampler"])
def test_cli_unknown_choice_lists_the_options(group, tmp_path):
    res = run_cli([f"{group}=nosuch"], cwd=tmp_path)
    assert res.returncode != 0
    assert f"Could not find '{group}/nosuch'" in res.stderr
    assert f"Available options in '{group}'" in res.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.csv"))
