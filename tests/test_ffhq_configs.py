"""The FFHQ experiment configs (conf/experiment/ffhq_*.yaml): what they set, the sentence that
stops a job whose files are missing (before any compute), and each one run end to end at CPU
size: ``model=adm_small`` (the same architecture at 64², random weights saved as a checkpoint),
two generated 64² images, T = 3 (DiffPIR: 3 evaluations), labelled stand-in metrics."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from conftest import compose_cfg, run_cli
from ffhq_small import make_small_ffhq, small_overrides

from vsdr.data.images import save_images
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job

FFHQ = ["ffhq_deblur", "ffhq_deblur_hinoise", "ffhq_sr8", "ffhq_deblur_dps", "ffhq_deblur_diffpir",
        "ffhq_sr8_dps", "ffhq_sr8_diffpir", "ffhq_deblur_diffpir_circular", "ffhq_sr8_diffpir_circular"]
PAPER_ROWS = {"ffhq_deblur": [39, 24, 24, 26, 26, 40, 22, 18, 12, 12, 6],
              "ffhq_deblur_hinoise": [33, 33, 33, 37, 40, 40, 33, 23, 15, 10, 6.5],
              "ffhq_sr8": [26, 24, 24, 24, 30, 24, 20, 15, 12, 12, 10]}
LAMS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


@pytest.mark.parametrize("experiment", FFHQ)
def test_ffhq_configs_set_the_papers_settings(experiment):
    cfg = compose_cfg([f"experiment={experiment}"])
    assert cfg.dataset.name == "ffhq" and cfg.model.name == "adm_ffhq" and cfg.diffusion.T == 1000
    assert cfg.diffusion.beta_start == 1e-4 and cfg.diffusion.beta_end == 0.02
    assert str(cfg.noise.space) == "[-1,1]"
    assert cfg.noise.sigma == (0.5 if experiment.endswith("hinoise") else 0.2)  # docs/METHOD.md §7
    if "sr8" in experiment:
        assert cfg.operator.name == "super_resolution" and cfg.operator.scale == 8
    else:
        assert (cfg.operator.name, cfg.operator.kernel_size, cfg.operator.std) == ("gaussian_blur", 61, 3.0)
    # DiffPIR's own measurement only where the config says so by name; the rest share DPS's y
    assert cfg.operator.boundary == ("circular" if experiment.endswith("_circular") else "reflect")
    sampler = cfg.sampler._target_.rsplit(".", 1)[-1]
    if experiment in PAPER_ROWS:
        assert sampler == "VarianceScaledSampler" and list(cfg.lam) == LAMS
        assert (cfg.sampler.form, cfg.sampler.residual, cfg.sampler.variance) == \
            ("paper", "mean", "learned_range")
        assert cfg.sampler.clip_x0 is True
        assert list(cfg.sampler.zeta.lam) == LAMS and list(cfg.sampler.zeta.value) == PAPER_ROWS[experiment]
    elif experiment.endswith("_dps"):
        assert sampler == "DPSSampler" and cfg.sampler.variance == "learned_range"
        assert list(cfg.sampler.clip) == [-1.0, 1.0] and 0.3 in list(cfg.sampler["values"])
    else:
        assert sampler == "DiffPIRSampler" and cfg.sampler.knob == "lambda_d" and cfg.sampler.steps == 100
        assert cfg.sampler.last_step == "paper"
        assert cfg.sampler.sigma_scale is None                     # filled in as 0.5 (images)
        assert (cfg.sampler.zeta_d, list(cfg.sampler["values"])) == \
            ((0.3, [7.0]) if "deblur" in experiment else (0.25, [2.0, 6.0, 12.0]))


@pytest.mark.parametrize(("noise", "sigma", "space", "sigma_pm1"), [
    ("paper_low", 0.2, "[-1,1]", 0.2), ("paper_high", 0.5, "[-1,1]", 0.5),
    ("dps", 0.05, "[-1,1]", 0.05), ("diffpir", 0.05, "[0,1]", 0.1)])
@pytest.mark.parametrize("experiment", ["ffhq_deblur", "ffhq_deblur_hinoise", "ffhq_sr8_dps"])
def test_each_noise_reading_is_one_word(experiment, noise, sigma, space, sigma_pm1):
    """Every credible reading of the lost noise levels (docs/METHOD.md §7) runs with one override,
    whatever level the experiment defaults to; DiffPIR's 0.05 in [0, 1] is 0.1 in [−1, 1]."""
    from vsdr.tasks.images import sigma_in_pm1

    cfg = compose_cfg([f"experiment={experiment}", f"noise={noise}"])
    assert (cfg.noise.sigma, str(cfg.noise.space)) == (sigma, space)
    assert sigma_in_pm1(cfg.noise.sigma, str(cfg.noise.space)) == pytest.approx(sigma_pm1, abs=1e-12)


def _no_compute(monkeypatch):
    """Fail the test if the job gets past its checks (builds anything)."""
    import vsdr.experiments.job as job

    def refuse(*a, **k):
        raise AssertionError("the job started building before its files were checked")

    monkeypatch.setattr(job, "build_job", refuse)


def test_missing_test_images_stop_the_job_first(tmp_path, monkeypatch):
    _no_compute(monkeypatch)
    ckpt = tmp_path / "ffhq_10m.pt"
    ckpt.write_bytes(b"not read")
    with pytest.raises(ConfigError, match=r"dataset.root is not set: the test images of dataset=ffhq .*"
                                          r"expected at dataset.root=FOLDER; it is published as FFHQ "
                                          r"\(github.com/NVlabs/ffhq-dataset\)"):
        run_job(compose_cfg(["experiment=ffhq_deblur", f"model.ckpt={ckpt}"]), tmp_path / "job")
    with pytest.raises(ConfigError, match=r"dataset.root=.*nowhere does not exist: .* are expected "
                                          r"there; it is published as FFHQ"):
        run_job(compose_cfg(["experiment=ffhq_sr8", f"model.ckpt={ckpt}",
                             f"dataset.root={tmp_path / 'nowhere'}"]), tmp_path / "job")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no PNG or JPEG image"):
        run_job(compose_cfg(["experiment=ffhq_deblur_dps", f"model.ckpt={ckpt}",
                             f"dataset.root={tmp_path / 'empty'}"]), tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_missing_checkpoint_stops_the_job_first(tmp_path, monkeypatch):
    _no_compute(monkeypatch)
    save_images(torch.zeros(1, 3, 256, 256), tmp_path / "imgs")
    with pytest.raises(ConfigError, match=r"model.ckpt=.*ffhq_10m.pt does not exist: ffhq_10m.pt \(the "
                                          r"weights of model=adm_ffhq\) is expected there; it is "
                                          r"published with DPS's code \(github.com/DPS2022"):
        run_job(compose_cfg(["experiment=ffhq_deblur_diffpir", f"dataset.root={tmp_path / 'imgs'}",
                             f"model.ckpt={tmp_path / 'ffhq_10m.pt'}"]), tmp_path / "job")
    with pytest.raises(ConfigError, match=r"model.ckpt is not set and dataset=ffhq has no "
                                          r"dataset.train_root to train on: ffhq_10m.pt .* is expected "
                                          r"at model.ckpt=PATH; it is published with DPS's code"):
        run_job(compose_cfg(["experiment=ffhq_sr8_dps", f"dataset.root={tmp_path / 'imgs'}"]),
                tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_missing_metric_weights_stop_the_job_first(tmp_path, monkeypatch):
    """With the checkpoint and images there, LPIPS's VGG trunk (the FFHQ configs' trunk) and
    then clean-fid's Inception file are each one sentence naming the file, where it is expected
    and where it is published, before anything is built; stand-ins need neither."""
    _no_compute(monkeypatch)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr("vsdr.metrics.image.CLEANFID_FOLDER", tmp_path / "cleanfid_tmp")
    save_images(torch.zeros(1, 3, 256, 256), tmp_path / "imgs")
    ckpt = tmp_path / "ffhq_10m.pt"
    ckpt.write_bytes(b"not read")
    base = ["experiment=ffhq_deblur", f"dataset.root={tmp_path / 'imgs'}", f"model.ckpt={ckpt}"]
    with pytest.raises(ConfigError, match=r"^LPIPS \(vgg\) needs torchvision's trunk weights "
                                          r"vgg16-397923af\.pth, not found in .*hub/checkpoints/ .* it is "
                                          r"published at "
                                          r"https://download\.pytorch\.org/models/vgg16-397923af\.pth$"):
        run_job(compose_cfg(base), tmp_path / "job")
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "vgg16-397923af.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"^FID needs clean-fid's Inception weights "
                                          r"inception-2015-12-05\.pt, not found in .*cleanfid_tmp/ .* it is "
                                          r"published at https://"):
        run_job(compose_cfg(base), tmp_path / "job")
    for ok in (["image_metrics.fid=false"], ["image_metrics.standin=true"]):
        with pytest.raises(AssertionError, match="started building"):  # past every check
            run_job(compose_cfg([*base, *ok]), tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_missing_checkpoint_on_the_command_line_is_one_sentence(tmp_path):
    save_images(torch.zeros(1, 3, 256, 256), tmp_path / "imgs")
    res = run_cli(["experiment=ffhq_deblur", f"dataset.root={tmp_path / 'imgs'}",
                   f"model.ckpt={tmp_path / 'ffhq_10m.pt'}"], cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("vsdr: model.ckpt=") and "ffhq_10m.pt" in last and "DPS2022" in last
    assert "Traceback" not in res.stderr and not (tmp_path / "outputs" / "runs").exists() or \
        not any((tmp_path / "outputs" / "runs").rglob("metrics.csv"))


def test_ffhq_with_a_point_network_is_refused():
    from vsdr.experiments.validate import validate_config

    with pytest.raises(ConfigError, match="dataset=ffhq holds images but model=mlp2d"):
        validate_config(compose_cfg(["experiment=ffhq_deblur", "model=mlp2d"]))


@pytest.fixture(scope="module")
def small_ffhq(tmp_path_factory):
    """Two 64² test images and a random-weight adm_small checkpoint (strictly loadable)."""
    return make_small_ffhq(tmp_path_factory.mktemp("ffhq_small"))


@pytest.mark.parametrize("experiment", FFHQ)
def test_every_ffhq_config_runs_end_to_end_at_cpu_size(experiment, small_ffhq, tmp_path, cache_dir):
    overrides = small_overrides(small_ffhq, experiment)
    if experiment in PAPER_ROWS:
        overrides.append("lam=[0,0.5,1]")
    cfg = compose_cfg(overrides)
    rows = run_job(cfg, tmp_path / "job")
    with open(tmp_path / "job" / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    header = list(table[0])
    assert header[:9] == ["dataset", "operator", "sigma", "sigma_space", "sampler", "knob", "value",
                          "mse", "psnr"]
    assert {"ssim", "lpips_vgg_standin", "fid_standin"} <= set(header)  # the baselines' VGG trunk
    assert not {"lpips", "lpips_vgg", "fid"} & set(header)
    values = [0.0, 0.5, 1.0] if experiment in PAPER_ROWS else [float(v) for v in cfg.sampler["values"]]
    assert [float(r["value"]) for r in table] == values == [r["value"] for r in rows]
    assert {r["dataset"] for r in table} == {"ffhq"}
    assert {r["sigma_space"] for r in table} == {"[-1,1]"}
    assert {float(r["sigma"]) for r in table} == {0.5 if experiment.endswith("hinoise") else 0.2}
    assert {r["operator"] for r in table} == {"super_resolution" if "sr8" in experiment else "gaussian_blur"}
    assert all(float(r["mse"]) >= 0 and float(r["psnr"]) > 0 for r in table)
    meta = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert meta["model"]["source"] == "model.ckpt"


@pytest.mark.parametrize("experiment, extra", [
    ("ffhq_deblur", ["sampler.steps=4"]),
    ("ffhq_sr8", ["sampler.steps=4", "sampler.step_rule=trace"]),
    ("ffhq_deblur_dps", ["sampler.steps=4"]),
])
def test_ffhq_configs_take_the_few_step_option(experiment, extra, small_ffhq, tmp_path, cache_dir):
    """One override (``sampler.steps=K``; ours also ``sampler.step_rule=trace``) runs an FFHQ
    config on K of its T steps (docs/FFHQ.md): here K = 4 of T = 12, so each row costs 4 network
    evaluations per image, not 12."""
    overrides = [*small_overrides(small_ffhq, experiment, T=12), *extra]
    if experiment in PAPER_ROWS:
        overrides.append("lam=[0,1]")
    else:
        overrides.append("sampler.values=[1.0]")
    rows = run_job(compose_cfg(overrides), tmp_path / "job")
    assert rows and all(r["nfe"] == 4 for r in rows)
    assert all(math.isfinite(r["mse"]) for r in rows)


@pytest.mark.slow
def test_ffhq_deblur_through_run_py(small_ffhq, tmp_path):
    """The same small job through ``python run.py`` (a subprocess: slow on a loaded machine)."""
    res = run_cli(["experiment=ffhq_deblur", "model=adm_small", f"model.ckpt={small_ffhq / 'adm_small.pt'}",
                   "dataset.image_size=64", f"dataset.root={small_ffhq / 'test'}", "diffusion.T=3",
                   "image_metrics.standin=true", "logger=none", "progress=false", "lam=[0,1]",
                   f"hydra.run.dir={tmp_path / 'job'}"], cwd=tmp_path,
                  env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / "job" / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert [float(r["value"]) for r in table] == [0.0, 1.0]
    assert {"mse", "psnr", "lpips_vgg_standin", "fid_standin", "sigma", "sigma_space"} <= set(table[0])
