"""Each bad input stops before any compute with one clear sentence."""
from __future__ import annotations

import os
import re

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


@pytest.mark.parametrize("overrides,message", [
    (["sampler=interp", "sampler.values=[0,1.5]"],
     "sampler.values has s=1.5, but s must lie in [0, 1]"),
    (["sampler=pscgan", "sampler.values=[0,3]"],
     "sampler.values has N=0, but N must be a whole number >= 1"),
    (["sampler=pscgan", "sampler.values=[1,2.5]"],
     "sampler.values has N=2.5, but N must be a whole number >= 1"),
    (["sampler=pscgan", "sampler.knob=sigma_z", "sampler.values=[-0.5,1]"],
     "sampler.values has sigma_z=-0.5, but sigma_z must be finite and >= 0"),
    (["sampler=pscgan", "sampler.knob=sigma_z", "sampler.N=0"],
     "sampler.N=0, but N must be a whole number >= 1"),
    (["sampler=pscgan", "sampler.sigma_z=-1"],
     "sampler.sigma_z=-1, but sigma_z must be finite and >= 0"),
    (["sampler=dps", "sampler.values=[0,-0.01]"],
     "sampler.values has zeta=-0.01, but zeta must be finite and >= 0"),
    (["sampler=diffpir", "sampler.knob=lambda_d", "sampler.values=[-1,1]"],
     "sampler.values has lambda_d=-1, but lambda_d must be finite and >= 0"),
    (["sampler=diffpir", "sampler.zeta_d=1.5", "sampler.knob=lambda_d"],
     "sampler.zeta_d=1.5, but zeta_d must lie in [0, 1]"),
    (["sampler=diffpir", "sampler.last_step=final"],
     "sampler.last_step='final' is not one of ['paper', 'official', 'x0hat']"),
    (["sampler=diffpir", "sampler.values=[abc]"],
     "sampler.values has 'abc', which is not a number: zeta_d must lie in [0, 1]"),
    (["sampler=dps", "sampler.values=[]"], "sampler.values=[] must be a non-empty list of zeta values"),
    (["sampler=pscgan", "sampler.knob=foo"], "sampler.knob=foo is not one of sampler=pscgan's knobs"),
    (["sampler.zeta.value=[-0.1,0.2]"], "sampler.zeta.value has ζ=-0.1, but ζ(λ) must be finite and >= 0"),
    (["sampler=interp", "sampler.zeta.value=[0.2,-1]"], "sampler.zeta.value has ζ=-1"),
    (["sampler.zeta={lam:[0,0],value:[1,1]}"], "sampler.zeta.lam=[0.0, 0.0] must increase"),
    (["sampler.zeta={lam:[0,1],value:[1]}"], "needs lists lam and value of the same length"),
])
def test_bad_sampler_values_stop_before_training(overrides, message, tmp_path, cache_dir):
    """Sampler knob values and settings are checked with the config, before any training
    (the score network's or PSCGAN's) or sampling."""
    cfg = compose_cfg([*FAST, *overrides])
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_job(cfg, tmp_path / "job")
    assert not cache_dir.exists()  # nothing trained
    assert not (tmp_path / "job").exists()


@pytest.mark.parametrize("overrides,start", [
    (["sampler=interp", "sampler.values=[0,1.5]"], "vsdr: sampler.values has s=1.5, but s must lie in"),
    (["sampler=pscgan", "sampler.values=[0,3]"], "vsdr: sampler.values has N=0, but N must be a whole"),
])
def test_cli_bad_sampler_values_exit_2(overrides, start, tmp_path):
    res = run_cli([*FAST, *overrides], cwd=tmp_path, env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(start)
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "cache").exists()  # nothing trained


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


@pytest.mark.parametrize("overrides,message", [
    (["sampler.form=nosuch"],
     "sampler.form='nosuch' is not one of ['paper', 'dps', 'pigdm', 'pigdm_iso'] (paper puts"),
    (["sampler=dps", "sampler.variance=nosuch"],
     "sampler.variance='nosuch' is not one of ['beta', 'fixed_small', 'learned_range'] (the reverse-step"),
    (["sampler.variance=learned"], "sampler.variance='learned' is now 'learned_range'"),
    (["noise.space=pixels"], "noise.space='pixels' does not fit dataset=pinwheel: point and closed-form"),
    (["dataset=digits", "model=adm_digits", "noise.space=pixels"],
     "noise.space='pixels' is not one of ['[-1,1]', 'data', '[0,1]'] (the units σ is given in)"),
    (["image_metrics.lpips_net=resnet"],
     "image_metrics.lpips_net='resnet' is not one of ['alex', 'vgg', 'squeeze'] (the LPIPS trunk)"),
    (["image_eval.perception=nosuch"], "image_eval.perception='nosuch' is not one of ['lpips', 'fid',"),
    (["dataset=digits", "model=mlp2d"],
     "dataset=digits holds images but model=mlp2d (ScoreMLP) is a network for points: choose an image"),
    (["dataset=pinwheel", "model=adm_small"],
     "dataset=pinwheel holds points but model=adm_small (ADMUNet) is a network for images: choose a point "
     "network (model=mlp2d)"),
])
def test_choices_and_model_checked_with_the_config(overrides, message, tmp_path, cache_dir, monkeypatch):
    """Every enum-like key, and the network against the kind of data, is checked before anything
    is built, generated, trained or written."""
    monkeypatch.chdir(tmp_path)  # digits would be generated under ./outputs/data
    cfg = compose_cfg([*FAST, *overrides])
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        run_job(cfg, tmp_path / "job")
    assert not cache_dir.exists() and not (tmp_path / "job").exists()
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("overrides,line", [
    (["sampler.form=nosuch"], "vsdr: sampler.form='nosuch' is not one of "
     "['paper', 'dps', 'pigdm', 'pigdm_iso'] "
     "(paper puts ζ(λ)·ĉ inside the reverse-step mean, dps adds ζ·∇‖y − A x̂0‖ after the step, "
     "pigdm is paper with ΠGDM's covariance r_t² A Aᵀ + σ_y² I, "
     "pigdm_iso is pigdm with an isotropic Gaussian prior's Jacobian (no network gradient))"),
    (["sampler=dps", "guidance=pigdm_iso"], "vsdr: guidance=pigdm_iso sets ours' conditional score "
     "(sampler.form and its ζ); sampler=dps has none: use sampler=ours, or drop guidance="),
    (["dataset=digits", "model=mlp2d"], "vsdr: dataset=digits holds images but model=mlp2d (ScoreMLP) is a "
     "network for points: choose an image network (model=adm_digits for 16×16 images, adm_small, "
     "adm_ffhq, diffusers)"),
])
def test_cli_choice_and_mismatch_are_one_sentence(overrides, line, tmp_path):
    res = run_cli([*FAST, *overrides, "hydra.run.dir=job"], cwd=tmp_path,
                  env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == line
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "cache").exists() and not (tmp_path / "outputs").exists()
    assert not (tmp_path / "job" / "metrics.csv").exists()


@pytest.mark.parametrize("overrides,start", [
    (["seed=-1"], "seed=-1 must be a whole number >= 0: the job seed draws the test points"),
    (["operator=gaussian_blur"], "operator=gaussian_blur does not fit dataset=pinwheel (2-D points): it "
     "blurs images; choose operator=identity or operator=matrix for points"),
    (["sampler=diffpir"], "sampler.steps=100 is more than diffusion.T=50: sampler=diffpir takes"),
    (["+foo=1"], "foo is not a key of vsdr's config (conf/config.yaml): its top-level keys are"),
])
def test_cli_bad_input_is_one_sentence_on_stderr_and_in_run_log(overrides, start, tmp_path):
    """Each stops before any compute with exit 2: one `vsdr:` sentence on stderr, once on the
    console (not on stdout too), and the same sentence in the job's run.log."""
    res = run_cli(["experiment=debug", *overrides, "hydra.run.dir=job"], cwd=tmp_path,
                  env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 2, res.stderr[-2000:]
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("vsdr: " + start), line
    assert "Traceback" not in res.stderr and res.stderr.count(line) == 1 and line not in res.stdout
    assert (tmp_path / "job" / "run.log").read_text().count(line) == 1
    assert not (tmp_path / "cache").exists() and not (tmp_path / "outputs").exists()  # nothing trained
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == [".hydra", "run.log"]


@pytest.fixture
def fake_slurm(tmp_path) -> dict:
    """sbatch and srun on PATH that only leave a mark (so that hydra/launcher=slurm_cpu gets
    past run.py's SLURM check here): a sweep that submits anything leaves ``submitted``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("sbatch", "srun"):
        (bin_dir / name).write_text(f"#!/bin/sh\necho {name} >> {tmp_path / 'submitted'}\nexit 1\n")
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize("launcher", [None, "local", "slurm_cpu"])
def test_cli_multirun_checks_every_job_before_the_first_starts(launcher, tmp_path, fake_slurm):
    """`-m lam=0,1.5`: the bad job stops the sweep before any job starts, whatever the launcher:
    no sweep dir, nothing trained, nothing submitted."""
    args = ["-m", *([f"hydra/launcher={launcher}"] if launcher else []), "experiment=debug", "lam=0,1.5",
            "hydra.sweep.dir=sweep"]
    res = run_cli(args, cwd=tmp_path, env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache"), **fake_slurm})
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == (
        "vsdr: lam=1.5 is outside [0, 1]: λ scales the reverse-step variance, 0 gives the MMSE estimate "
        "and 1 a posterior sample (in job #1 of the sweep's 2: experiment=debug lam=1.5; no job was started)")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "cache").exists()
    assert not (tmp_path / "submitted").exists()


def test_cli_multirun_job_that_stops_writes_its_sentence_to_its_run_log(tmp_path):
    """A job stopped while it runs (a checkpoint that is not one: found only when loaded) writes
    the sentence that stopped it to its own run.log."""
    bad = tmp_path / "garbage.ckpt"
    bad.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    res = run_cli(["-m", "experiment=debug", f"model.ckpt={bad}", "lam=0,1", "hydra.sweep.dir=sweep"],
                  cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"vsdr: model.ckpt={bad} is not a readable torch checkpoint")
    assert (tmp_path / "sweep" / "0" / "run.log").read_text().count(line) == 1
    assert line not in res.stdout


def test_bad_operator_boundary():
    from vsdr.experiments.validate import validate_config

    message = "operator.boundary='wrap' is not one of ['reflect', 'circular']"
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(compose_cfg(["experiment=images_small_diffpir", "operator.boundary=wrap"]))
