"""PSCGAN on images: the conv generator and critic (shapes, the noise maps' variance, ``y``
lifted to the image size), the GAN losses of one training step computed by hand on a tiny
batch (gradient penalty weight 10, first-moment penalty on the mean of 8 samples), the
sampler's closed-form MSE(N) on noise maps and its batch independence, the image recipe in the
configs, σ's units, the cache, the digits job through run.py, the FFHQ configs at CPU size
(trained at one σ, evaluated at another) and the checks that stop a job before any compute."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from conftest import compose_cfg, run_cli
from test_image_job import write_blobs

from vsdr.data.images import save_images
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.experiments.pscgan import gan_cache_path, train_sigma
from vsdr.experiments.validate import validate_config
from vsdr.models.cgan import ConditionalGenerator
from vsdr.models.cgan_conv import CriticConv, GeneratorConv, lift, noise_at
from vsdr.models.invariant import make_batch_invariant
from vsdr.operators import GaussianBlur, SuperResolution
from vsdr.samplers import PSCGANSampler
from vsdr.training.pscgan_module import PSCGANModule, first_moment_penalty, gradient_penalty

#: a digits PSCGAN job that takes seconds: 3 training steps on 6 blobs, 3 test images
TINY = ["experiment=images_small_pscgan", "dataset.generate=null", "sampler.gan.train.steps=3",
        "sampler.gan.train.batch_size=4", "data.n_train=6", "data.limit=3", "sampler.values=[1,2]",
        "logger=none", "progress=false", "outputs.images=false"]


# ---------------------------------------------------------------- networks

@pytest.mark.parametrize("operator,side", [(GaussianBlur(9, 1.5), 16), (SuperResolution(4), 4)])
def test_conv_networks_take_y_of_either_size(operator, side):
    torch.manual_seed(0)
    g, d = GeneratorConv(16, width=4, depth=2), CriticConv(16, width=4, depth=2)
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    y = operator.forward(x)
    assert y.shape == (5, 3, side, side) and g.z_shape == (1, 16, 16)
    out = g(y, torch.randn(5, *g.z_shape))
    assert out.shape == x.shape and d(x, y).shape == (5,)
    # z is used: another noise map gives another output; the residual: G = lift(y) + correction
    assert not torch.allclose(out, g(y, torch.randn(5, *g.z_shape)))
    g.out.weight.data.zero_()
    g.out.bias.data.zero_()
    assert torch.equal(g(y, torch.randn(5, *g.z_shape)), lift(y, 16))
    with pytest.raises(ValueError, match="divisible"):
        GeneratorConv(12, depth=4)


def test_lift_and_noise_maps_by_hand():
    y = torch.arange(4.0).view(1, 1, 2, 2)
    assert torch.equal(lift(y, 2), y)
    up = lift(y, 4)                                   # bilinear, half-pixel centres
    assert up.shape == (1, 1, 4, 4) and float(up[0, 0, 0, 0]) == 0.0 and float(up[0, 0, 3, 3]) == 3.0
    assert float(up[0, 0, 1, 1]) == pytest.approx(0.75 * 0.75 * 0 + 0.75 * 0.25 * (1 + 2) + 0.25 * 0.25 * 3)
    z = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]])
    assert float(noise_at(z, 2)) == pytest.approx(2 * 4.0)   # mean 4 times factor 2
    big = torch.randn(4000, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for f in (2, 4, 8):                               # unit variance kept at every side
        assert float(noise_at(big, f).var()) == pytest.approx(1.0, abs=0.05)


# ---------------------------------------------------------------- losses by hand

class ShiftGenerator(torch.nn.Module):
    """``G(y, z) = y + c z`` (one parameter ``c``; ``z`` a one-channel map broadcast over RGB)."""

    z_dim = 4

    def __init__(self):
        super().__init__()
        self.c = torch.nn.Parameter(torch.tensor(0.5))
        self.z_shape = (1, 2, 2)

    def forward(self, y, z):
        return y + self.c * z


class LinearCritic(torch.nn.Module):
    """``D(x, y) = Σ w ⊙ x``: its gradient in ``x`` is ``w`` everywhere."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full((1, 3, 2, 2), 0.1))

    def forward(self, x, y):
        return (self.w * x).flatten(1).sum(1)


def test_one_training_step_losses_by_hand():
    """One step of the image recipe on a batch of 2 images of 3×2×2: the critic loss is
    E D(fake) − E D(x0) + 10 (‖w‖ − 1)², the generator loss the per-pixel MSE of the mean of
    8 samples plus 1e-3 · (−E D(G)); the module's noise replayed from its seed."""
    g, d = ShiftGenerator(), LinearCritic()
    module = PSCGANModule(g, d, GaussianBlur(3, 1.0), sigma=0.1, seed=7, penalty_reduction="mean")
    assert (module.M, module.gp_weight, module.adv_weight, module.lr, module.betas) == \
        (8, 10.0, 1e-3, 1e-3, (0.0, 0.99))
    opt_g, opt_d = module.configure_optimizers()
    logged = {}
    module.optimizers = lambda: (opt_g, opt_d)
    module.manual_backward = lambda loss: loss.backward()
    module.log_dict = lambda values, **kw: logged.update({k: float(v) for k, v in values.items()})
    x0 = torch.rand(2, 3, 2, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    module.training_step(x0, 0)

    gen = torch.Generator().manual_seed(7)            # the module's draws, in its order
    y = GaussianBlur(3, 1.0).forward(x0) + 0.1 * torch.randn(2, 3, 2, 2, generator=gen)
    fake = y + 0.5 * torch.randn(2, 1, 2, 2, generator=gen)
    torch.rand(2, generator=gen)                      # the interpolation weights: D is linear
    w = torch.full((3, 2, 2), 0.1)
    critic = (fake * w).sum((1, 2, 3)).mean() - (x0 * w).sum((1, 2, 3)).mean()
    gp = (w.norm() - 1.0) ** 2                        # ‖∇_x D‖ = ‖w‖ = 0.1·√12
    assert logged["gan/critic"] == pytest.approx(float(critic + 10.0 * gp), rel=1e-5)
    # the critic moved first (Adam's first step: each weight by lr·sign of its gradient)
    w1 = d.w.detach()
    z = torch.randn(16, 1, 2, 2, generator=gen)
    fakes = y.repeat_interleave(8, 0) + 0.5 * z
    mean8 = fakes.view(2, 8, 3, 2, 2).mean(1)
    penalty = ((mean8 - x0) ** 2).mean()
    adv = -(w1 * fakes).flatten(1).sum(1).mean()
    assert logged["gan/penalty"] == pytest.approx(float(penalty), rel=1e-5)
    assert logged["gan/adv"] == pytest.approx(float(adv), rel=1e-5)
    # the summed penalty is the mean one times the number of pixels (3·2·2)
    assert float(first_moment_penalty(fakes.view(2, 8, 3, 2, 2), x0)) == pytest.approx(12 * float(penalty))
    with pytest.raises(ValueError, match="reduction"):
        first_moment_penalty(fakes.view(2, 8, 3, 2, 2), x0, "max")
    u = torch.rand(2, 1, 1, 1)
    assert float(gradient_penalty(d, x0, fake, y, u)) == pytest.approx(float((w1.norm() - 1) ** 2), rel=1e-5)


@pytest.mark.parametrize("name", ["conv_digits", "conv_ffhq"])
def test_image_gans_carry_the_published_recipe(name):
    cfg = compose_cfg(["experiment=images_small_pscgan", f"gan@sampler.gan={name}"])
    tr = cfg.sampler.gan.train
    assert (tr.gp_weight, tr.M, tr.adv_weight, tr.penalty, tr.lr, list(tr.betas), tr.batch_size) == \
        (10.0, 8, 1e-3, "mean", 1e-3, [0.0, 0.99], 32)
    assert tr.ema_decay is None
    assert cfg.sampler.gan.generator.image_size == cfg.sampler.gan.critic.image_size == 16


# ---------------------------------------------------------------- sampler on noise maps

class HalfPlusNoise(torch.nn.Module):
    """``G(y, z) = y/2 + z`` on one-channel 4×4 maps: sample mean y/2, per-pixel variance 1."""

    z_dim, z_shape = 16, (1, 4, 4)

    def forward(self, y, z):
        return y / 2 + z


def test_pscgan_n_on_noise_maps_closed_form_and_batch_independent():
    n, Ns = 500, [1, 4, 16]
    y = torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    knob = torch.tensor(Ns, dtype=torch.float64).repeat_interleave(n)
    model = make_batch_invariant(ConditionalGenerator(HalfPlusNoise()), 64)
    res = PSCGANSampler(knob="N")(model, y.repeat(len(Ns), 1, 1, 1), None, 0.1, knob, list(range(n)) * 3)
    for k, N in enumerate(Ns):                        # E ‖x̂ − y/2‖² per pixel = 1/N
        err = (res.samples[k * n:(k + 1) * n] - y / 2).pow(2).mean().item()
        assert err == pytest.approx(1.0 / N, rel=0.08), (N, err)
    alone = PSCGANSampler(knob="N")(model, y[7:8], None, 0.1, [4], [7]).samples
    assert torch.equal(alone[0], res.samples[n + 7])
    zero = PSCGANSampler(knob="sigma_z")(model, y[:3], None, 0.1, [0.0] * 3, [0, 1, 2]).samples
    assert torch.equal(zero, y[:3] / 2)


def test_conv_generator_batch_independent_through_the_job_wrapper():
    torch.manual_seed(0)
    model = make_batch_invariant(ConditionalGenerator(GeneratorConv(16, width=4).eval()), 8)
    y = torch.randn(11, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    both = PSCGANSampler(knob="N")(model, y, None, 0.05, [2] * 11, list(range(11))).samples
    alone = PSCGANSampler(knob="N")(model, y[9:10], None, 0.05, [2], [9]).samples
    assert torch.equal(alone[0], both[9])


# ---------------------------------------------------------------- σ units, validation

def test_train_sigma_is_in_the_measurements_units():
    cfg = compose_cfg(["experiment=images_small_pscgan", "noise.sigma=0.025", "noise.space=[0,1]"])
    assert train_sigma(cfg) == pytest.approx(0.05)    # [0, 1] units doubled: [−1, 1] units
    own = "gan@sampler.gan=conv_ffhq"
    cfg = compose_cfg(["experiment=ffhq_deblur_pscgan_hinoise", own])
    assert (cfg.noise.sigma, train_sigma(cfg)) == (0.5, 0.2)
    assert gan_cache_path(cfg) == gan_cache_path(compose_cfg(["experiment=ffhq_deblur_pscgan", own]))
    assert train_sigma(compose_cfg(["sampler=pscgan", "noise.sigma=0.5"])) == 0.5   # points: as given


@pytest.mark.parametrize("overrides,match", [
    (["experiment=images_small_pscgan", "gan@sampler.gan=mlp2d"],
     "dataset=digits holds images but sampler.gan.generator .GeneratorMLP. is a network for points"),
    (["sampler=pscgan", "gan@sampler.gan=conv_digits"],
     "dataset=pinwheel holds points but sampler.gan.generator .GeneratorConv. is a network for images"),
    (["experiment=ffhq_deblur_pscgan", "gan@sampler.gan=conv_ffhq", "dataset.root=IMGS"],
     r"sampler.gan.ckpt is not set and dataset=ffhq has no dataset.train_root: PSCGAN needs training "
     r"images \(dataset.train_root=FOLDER\) or its trained weights"),
    (["experiment=ffhq_deblur_pscgan", "dataset.root=IMGS", "sampler.gan.ckpt=nowhere.pt"],
     "sampler.gan.ckpt=.*nowhere.pt does not exist"),
])
def test_pscgan_config_faults_are_one_sentence(overrides, match, tmp_path):
    save_images(torch.zeros(1, 3, 8, 8), tmp_path / "imgs")
    overrides = [o.replace("IMGS", str(tmp_path / "imgs")) for o in overrides]
    with pytest.raises(ConfigError, match=match):
        validate_config(compose_cfg(overrides))


# ---------------------------------------------------------------- jobs

def test_digits_pscgan_job_trains_then_reuses_its_cache(tmp_path, cache_dir):
    write_blobs(tmp_path / "train", 6, 0)
    write_blobs(tmp_path / "test", 3, 1)
    data = [f"dataset.root={tmp_path / 'test'}", f"dataset.train_root={tmp_path / 'train'}"]
    rows = run_job(compose_cfg([*TINY, *data]), tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert meta["model"]["source"] == "trained" and meta["model"]["train_seconds"] > 0
    assert meta["model"]["generator_params"] == sum(
        p.numel() for p in GeneratorConv(16, width=8, depth=2).parameters())
    assert [r["value"] for r in rows] == [1.0, 2.0] and {r["sampler"] for r in rows} == {"pscgan"}
    assert all(math.isfinite(r["mse"]) and math.isfinite(r["fd_patch"]) for r in rows)
    assert len(list(cache_dir.glob("digits-pscgan-*.pt"))) == 1
    again = run_job(compose_cfg([*TINY, *data, "sampler.knob=sigma_z", "sampler.values=[0,1]"]),
                    tmp_path / "b")
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["model"]["source"] == "cache"
    assert all(math.isfinite(r["mse"]) for r in again)
    # another operator is another GAN
    run_job(compose_cfg([*TINY, *data, "operator=super_resolution_x4"]), tmp_path / "c")
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["model"]["source"] == "trained"
    assert len(list(cache_dir.glob("digits-pscgan-*.pt"))) == 2


def test_digits_pscgan_through_run_py(tmp_path):
    write_blobs(tmp_path / "train", 6, 0)
    write_blobs(tmp_path / "test", 3, 1)
    res = run_cli([*TINY, f"dataset.root={tmp_path / 'test'}",
                   f"dataset.train_root={tmp_path / 'train'}", f"hydra.run.dir={tmp_path / 'job'}"],
                  cwd=tmp_path, env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / "job" / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["sampler"], r["knob"], float(r["value"])) for r in table] == [("pscgan", "N", 1.0),
                                                                             ("pscgan", "N", 2.0)]
    assert (tmp_path / "job" / "image_grid.png").is_file()


@pytest.fixture
def small_ffhq(tmp_path):
    g = torch.Generator().manual_seed(0)
    save_images(torch.rand(2, 3, 64, 64, generator=g) * 2 - 1, tmp_path / "test")
    save_images(torch.rand(3, 3, 64, 64, generator=g) * 2 - 1, tmp_path / "train")
    return tmp_path


def test_ffhq_pscgan_configs_at_cpu_size(small_ffhq, tmp_path, cache_dir):
    """ffhq_deblur_pscgan with vsdr's own GAN (conv_ffhq) at 64², tiny (2 steps), then
    ffhq_deblur_pscgan_hinoise: the same GAN (trained at σ_y = 0.2, from the cache) on
    measurements at σ_y = 0.5. (The published denoiser: tests/test_pscgan_official.py.)"""
    small = ["gan@sampler.gan=conv_ffhq", "dataset.image_size=64", f"dataset.root={small_ffhq / 'test'}",
             f"dataset.train_root={small_ffhq / 'train'}", "sampler.gan.generator.width=2",
             "sampler.gan.critic.width=2", "sampler.gan.train.steps=2", "sampler.gan.train.batch_size=2",
             "data.n_train=3", "sampler.values=[1,2]", "image_metrics.standin=true", "logger=none",
             "progress=false"]
    cfg = compose_cfg(["experiment=ffhq_deblur_pscgan", *small])
    assert (cfg.operator.kernel_size, cfg.operator.std, cfg.noise.sigma) == (61, 3.0, 0.2)
    assert list(cfg.sampler["values"]) == [1, 2]
    assert list(compose_cfg(["experiment=ffhq_deblur_pscgan"]).sampler["values"]) == [1, 2, 4, 8, 16, 32, 64]
    rows = run_job(cfg, tmp_path / "lo")
    assert {r["sigma"] for r in rows} == {0.2} and all(r["psnr"] > 0 for r in rows)
    meta = json.loads((tmp_path / "lo" / "metrics.json").read_text())["model"]
    assert meta["source"] == "trained" and meta["train_sigma"] == 0.2
    rows = run_job(compose_cfg(["experiment=ffhq_deblur_pscgan_hinoise", *small]), tmp_path / "hi")
    assert {r["sigma"] for r in rows} == {0.5}
    meta = json.loads((tmp_path / "hi" / "metrics.json").read_text())["model"]
    assert meta["source"] == "cache" and meta["train_sigma"] == 0.2
