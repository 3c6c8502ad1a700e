"""model=diffusers: tiny random UNet2DModels with a DDPMScheduler config saved by
``save_pretrained`` (no internet). The schedule against diffusers' ``alphas_cumprod`` (1e-12),
ε bit for bit for ε-models, the v and x0 conversions by hand, the learned-range split, both
folder layouts, the mismatch sentences, and a job end to end for every sampler (nothing
trained or cached)."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import compose_cfg
from test_image_job import write_blobs

from vsdr.errors import ConfigError
from vsdr.experiments.build import network_files
from vsdr.experiments.job import run_job
from vsdr.experiments.validate import validate_config
from vsdr.models.diffusers_unet import DiffusersEps, folder_schedule
from vsdr.models.score import NetworkPrior


def save_model(folder, *, channels=3, size=16, prediction="epsilon", schedule="linear",
               variance="fixed_small", T=10, layout="pipeline", out_channels=None):
    """A random ``UNet2DModel`` (8/16 channels, one layer per block) and its ``DDPMScheduler``
    written to ``folder``: ``unet/`` + ``scheduler/`` (pipeline) or side by side (unet)."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    out = out_channels or (2 * channels if variance == "learned_range" else channels)
    unet = UNet2DModel(sample_size=size, in_channels=channels, out_channels=out,
                       block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=4)
    sched = DDPMScheduler(num_train_timesteps=T, beta_schedule=schedule, prediction_type=prediction,
                          variance_type=variance, beta_start=min(0.1 / T, 0.01), beta_end=min(20 / T, 0.2))
    pipeline = layout == "pipeline"
    unet.save_pretrained(folder / "unet" if pipeline else folder)
    sched.save_pretrained(folder / "scheduler" if pipeline else folder)
    return folder


def reference(folder, pipeline=True):
    """diffusers' own UNet and scheduler, loaded from ``folder``."""
    from diffusers import DDPMScheduler, UNet2DModel

    sub = "unet" if pipeline else None
    return (UNet2DModel.from_pretrained(folder, subfolder=sub, low_cpu_mem_usage=False).eval(),
            DDPMScheduler.from_pretrained(folder, subfolder="scheduler" if pipeline else None))


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_schedule_equals_the_schedulers_alphas_cumprod(tmp_path, schedule):
    save_model(tmp_path, schedule=schedule, T=1000)
    ours = folder_schedule(str(tmp_path))
    _, sched = reference(tmp_path)
    want = sched.alphas_cumprod.to(torch.float64)
    assert ours.T == 1000 and ours.alpha_bars.dtype == torch.float64
    assert (ours.alpha_bars - want).abs().max().item() <= 1e-12
    # and not the float64 linear schedule by accident: the float32 table differs from it
    if schedule == "linear":
        linear = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
        assert (ours.alpha_bars - linear).abs().max().item() > 1e-9


@pytest.mark.parametrize("channels", [1, 3])
def test_eps_model_is_passed_bit_for_bit(tmp_path, channels):
    save_model(tmp_path, channels=channels)
    unet, _ = reference(tmp_path)
    prior = NetworkPrior(DiffusersEps(str(tmp_path)).eval(), folder_schedule(str(tmp_path)))
    x = torch.randn(3, channels, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = unet(x, torch.full((3,), 7)).sample
        assert torch.equal(prior.eps(x, 7), want)
        assert prior.eps_and_v(x, 7)[1] is None


@pytest.mark.parametrize("prediction", ["v_prediction", "sample"])
def test_v_and_x0_predictions_become_eps(tmp_path, prediction):
    """By hand in float64: v → ε = √ᾱ v + √(1−ᾱ) x_t; x0 → ε = (x_t − √ᾱ x0)/√(1−ᾱ)."""
    save_model(tmp_path, prediction=prediction, schedule="squaredcos_cap_v2")
    unet, sched = reference(tmp_path)
    net = DiffusersEps(str(tmp_path)).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([2, 8])
    with torch.no_grad():
        out, eps = unet(x, t).sample.double(), net(x, t).double()
    ab = sched.alphas_cumprod.double()[t].view(-1, 1, 1, 1)
    x64 = x.double()
    want = (ab.sqrt() * out + (1 - ab).sqrt() * x64 if prediction == "v_prediction"
            else (x64 - ab.sqrt() * out) / (1 - ab).sqrt())
    torch.testing.assert_close(eps, want, rtol=1e-5, atol=1e-5)
    assert (eps - out).abs().max() > 1e-2  # the conversion did something


def test_learned_range_gives_eps_and_v_like_adm(tmp_path):
    save_model(tmp_path, variance="learned_range", prediction="v_prediction")
    unet, sched = reference(tmp_path)
    prior = NetworkPrior(DiffusersEps(str(tmp_path)).eval(), folder_schedule(str(tmp_path)))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        raw = unet(x, torch.full((2,), 4)).sample
        eps, v = prior.eps_and_v(x, 4)
    ab = float(sched.alphas_cumprod[4])
    assert raw.shape[1] == 6 and eps.shape[1] == 3
    assert torch.equal(v, raw[:, 3:])
    torch.testing.assert_close(eps, math.sqrt(ab) * raw[:, :3] + math.sqrt(1 - ab) * x, rtol=1e-5, atol=1e-6)


def test_both_folder_layouts_read_the_same_model(tmp_path):
    save_model(tmp_path / "pipe", prediction="sample")
    save_model(tmp_path / "flat", prediction="sample", layout="unet")
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([5])
    with torch.no_grad():
        outs = [DiffusersEps(str(p)).eval()(x, t) for p in
                (tmp_path / "pipe", tmp_path / "flat", tmp_path / "pipe" / "unet")]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def job_overrides(tmp_path, folder, sampler="ours"):
    """A digits-like 16² job (blob images) on the model in ``folder``, two test images, λ ∈ {0, 1}."""
    if not (tmp_path / "test").is_dir():
        write_blobs(tmp_path / "train", 6, 0)
        write_blobs(tmp_path / "test", 2, 1)
    extra = {"ours": [], "pigdm": ["sampler.form=pigdm"], "ours_images": ["sampler=ours_images"],
             "dps": ["sampler=dps", "sampler.values=[0.5,1]"],
             "diffpir": ["sampler=diffpir", "sampler.steps=10", "sampler.values=[0.3,1]"],
             "interp": ["sampler=interp", "sampler.values=[0,1]"]}[sampler]
    return ["dataset=digits", "operator=gaussian_blur_small", "model=diffusers", f"model.path={folder}",
            "dataset.generate=null", f"dataset.root={tmp_path / 'test'}",
            f"dataset.train_root={tmp_path / 'train'}", "data.n_train=6", "data.limit=2", "lam=[0,1]",
            "noise.sigma=0.05", "image_metrics.standin=true", "image_metrics.fid=false",
            "image_eval.fd_pca_k=2", "logger=none", "progress=false", "data.net_batch=8", *extra]


#: (sampler, model) pairs: every sampler, every prediction, both schedules, a learned-range model
JOBS = [("ours", dict(prediction="epsilon")), ("pigdm", dict(prediction="v_prediction")),
        ("ours_images", dict(variance="learned_range", prediction="sample")),
        ("dps", dict(prediction="v_prediction", schedule="squaredcos_cap_v2")),
        ("diffpir", dict(prediction="sample", schedule="squaredcos_cap_v2")),
        ("interp", dict(prediction="epsilon", variance="learned_range"))]


@pytest.mark.parametrize("sampler,model", JOBS, ids=[j[0] for j in JOBS])
def test_every_sampler_runs_a_job_on_a_diffusers_model(tmp_path, cache_dir, sampler, model):
    folder = save_model(tmp_path / "model", **model)
    cfg = compose_cfg(job_overrides(tmp_path, folder, sampler))
    assert network_files(cfg) == []  # a pretrained family: nothing to train
    rows = run_job(cfg, tmp_path / "job")
    assert len(rows) == 2 and all(math.isfinite(r["mse"]) for r in rows)
    assert rows[0]["nfe"] > 0
    assert not any(cache_dir.iterdir()) if cache_dir.is_dir() else True  # nothing cached


MISMATCHES = [
    (dict(size=8), [], r"8×8 UNet but the images are 16×16"),
    (dict(channels=1), [], r"takes 1-channel images but the data set's have 3 channels"),
    (dict(out_channels=6), [], r"6 output channels but its scheduler's variance_type=fixed_small needs 3"),
    (dict(), ["sampler=ours_images"], r"sampler.variance=learned_range needs a variance output"),
    (dict(schedule="sigmoid"), [], r"beta_schedule='sigmoid', and vsdr reads"),
]


@pytest.mark.parametrize("model,extra,message", MISMATCHES, ids=[m[2][:24] for m in MISMATCHES])
def test_a_model_that_does_not_fit_is_one_sentence(tmp_path, model, extra, message):
    folder = save_model(tmp_path / "model", **model)
    cfg = compose_cfg([*job_overrides(tmp_path, folder), *extra])
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


def test_a_missing_folder_is_one_sentence(tmp_path):
    base = job_overrides(tmp_path, tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"nowhere is not a folder, and no hub .*local_files_only=true"):
        validate_config(compose_cfg(base))
    with pytest.raises(ConfigError, match=r"model.path is not set"):
        validate_config(compose_cfg([*base, "model.path=null"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"holds no unet/config.json nor config.json"):
        validate_config(compose_cfg(job_overrides(tmp_path, tmp_path / "empty")))


def test_the_schedule_comes_from_the_folder_not_diffusion_keys(tmp_path):
    """``diffusion`` is the folder's schedule: its T is the scheduler's, and diffusion.T is no key."""
    from hydra.errors import ConfigCompositionException

    folder = save_model(tmp_path / "model", T=7)
    cfg = compose_cfg(job_overrides(tmp_path, folder))
    assert cfg.diffusion._target_ == "vsdr.models.diffusers_unet.folder_schedule"
    assert cfg.diffusion.path == str(folder)
    with pytest.raises(ConfigError, match=r"sampler.steps=10 is more than diffusion.T=7"):
        validate_config(compose_cfg([*job_overrides(tmp_path, folder, "diffpir")]))
    with pytest.raises(ConfigCompositionException, match="diffusion.T"):
        compose_cfg([*job_overrides(tmp_path, folder), "diffusion.T=5"])
