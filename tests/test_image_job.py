"""The image job end to end on a tiny ADM (images written by the test), its pieces against
closed forms: σ_y's units, per-image measurement noise, the PCA Fréchet distance, the VLB
term of the learned variance, batch independence of ours on images."""
from __future__ import annotations

import csv
import json
import math

import hydra
import numpy as np
import pytest
import torch
from conftest import compose_cfg

from vsdr.data.digits import digits_images, write_digits_folders
from vsdr.data.images import ImageDataset, ImageTrainSet, list_images, save_images
from vsdr.diffusion import VPSchedule, per_sample_seeds
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.experiments.validate import sampler_class
from vsdr.metrics.frechet import PatchFrechet, PCAFrechet, chroma, frechet_distance
from vsdr.models import ADMUNet, NetworkPrior
from vsdr.operators import GaussianBlur, SuperResolution
from vsdr.samplers import DiffPIRSampler, DPSSampler, VarianceScaledSampler
from vsdr.tasks.images import measure, sigma_in_pm1
from vsdr.training.vlb import vlb_variance_term

TINY = ["experiment=images_small", "dataset.generate=null", "model.channel_mult=[1,2]",
        "diffusion.T=10", "trainer.max_steps=3", "train.batch_size=4", "data.n_train=6",
        "data.limit=4", "lam=[0,1]", "image_metrics.fid=true", "logger=none", "progress=false",
        "data.net_batch=8", "outputs.images=false"]


def write_blobs(folder, n, seed):
    """``n`` 16×16 images: a bright disc of random centre on a dark background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    imgs = []
    for _ in range(n):
        cy, cx = (torch.rand(2, generator=g) * 8 + 4).tolist()
        disc = (((yy - cy) ** 2 + (xx - cx) ** 2) < 12).float() * 2 - 1
        imgs.append(disc.expand(3, 16, 16))
    save_images(torch.stack(imgs), folder)


def test_tiny_image_job_writes_every_file(tmp_path, cache_dir):
    write_blobs(tmp_path / "train", 6, 0)
    write_blobs(tmp_path / "test", 5, 1)
    cfg = compose_cfg([*TINY, f"dataset.root={tmp_path / 'test'}",
                       f"dataset.train_root={tmp_path / 'train'}"])
    rows = run_job(cfg, tmp_path / "job")
    job = tmp_path / "job"
    for name in ["metrics.csv", "metrics.json", "samples.npz", "image_grid.png", "dp_curve.csv",
                 "dp_curve.png"]:
        assert (job / name).is_file() and (job / name).stat().st_size > 0, name
    with open(job / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [float(r["value"]) for r in table] == [0.0, 1.0]
    for r in table:
        assert r["dataset"] == "digits" and r["operator"] == "gaussian_blur_small" and r["knob"] == "lam"
        assert r["sigma_space"] == "[-1,1]" and float(r["sigma"]) == 0.05
        for col in ("mse", "psnr", "ssim", "lpips_alex_standin", "fid_standin", "fd_pca", "fd_patch",
                    "chroma"):
            assert math.isfinite(float(r[col])), col
        assert not {"lpips", "lpips_alex", "fid"} & set(r)  # stand-ins never carry the real names
        assert 0 < float(r["ssim"]) <= 1
        assert int(r["nfe"]) == 10 and int(r["n"]) == 4
        # mean per-image PSNR >= PSNR of the mean MSE (Jensen; torchmetrics' 10/ln 10 is float32)
        assert float(r["psnr"]) >= 10 * math.log10(1 / float(r["mse"])) - 1e-5
    meta = json.loads((job / "metrics.json").read_text())
    assert meta["perception"] == "fd_patch" and meta["model"]["source"] == "trained"
    assert meta["rows"] == rows and meta["seconds_per_step"] > 0
    samples = np.load(job / "samples.npz")
    assert samples["samples"].shape == (2, 4, 3, 16, 16) and np.isfinite(samples["samples"]).all()
    for r, rec in zip(table, samples["samples"]):  # MSE of [0, 1] images, by hand
        by_hand = np.mean(((samples["x0"] - np.clip(rec, -1, 1)) / 2) ** 2)
        assert float(r["mse"]) == pytest.approx(by_hand, rel=1e-6)
    # λ = 0 is deterministic given y: the same job again (cached network) gives the same numbers
    again = run_job(cfg, tmp_path / "job2")
    assert json.loads((tmp_path / "job2" / "metrics.json").read_text())["model"]["source"] == "cache"
    assert [r["mse"] for r in again] == [r["mse"] for r in rows]
    # the same job in the same directory is finished: skipped by its results hash, files untouched
    stamp = (job / "metrics.json").stat().st_mtime_ns
    assert run_job(cfg, job) == json.loads((job / "metrics.json").read_text())["rows"]
    assert (job / "metrics.json").stat().st_mtime_ns == stamp


def test_image_job_needs_a_folder(tmp_path, cache_dir):
    cfg = compose_cfg(["dataset=ffhq", "model=adm_small", "progress=false", "logger=none"])
    with pytest.raises(ConfigError, match="dataset.root"):
        run_job(cfg, tmp_path / "job")


def test_sigma_units():
    assert sigma_in_pm1(0.05, "[-1,1]") == 0.05
    assert sigma_in_pm1(0.05, "[0, 1]") == 0.1
    with pytest.raises(ConfigError, match="noise.space"):
        sigma_in_pm1(0.05, "pixels")


def test_measurement_noise_is_per_image():
    x0 = torch.rand(3, 3, 16, 16) * 2 - 1
    op = GaussianBlur(kernel_size=9, std=1.5)
    y3, y1 = measure(x0, op, 0.1, seed=4), measure(x0[1:2], op, 0.1, seed=4)
    assert torch.equal(y3[:1], measure(x0[:1], op, 0.1, seed=4))  # image 0 keeps its noise
    noise = y3 - op.forward(x0)
    assert 0.07 < float(noise.std()) < 0.13
    assert not torch.equal(y1, y3[1:2])  # image 0's seed is not image 1's


def test_frechet_distance_closed_form():
    mu1, mu2 = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    c1, c2 = np.diag([4.0, 1.0]), np.diag([1.0, 9.0])
    expected = 1 + 4 + (2 - 1) ** 2 + (1 - 3) ** 2
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-9)
    x = digits_images(8)[:200]
    fd = PCAFrechet(x, k=4)
    assert fd(x, x) == pytest.approx(0.0, abs=1e-6)
    shrunk = x.mean(0, keepdim=True) + 0.3 * (x - x.mean(0, keepdim=True))  # an "MMSE-like" set
    assert fd(x, shrunk) > 1.0


def test_patch_frechet_by_hand_and_against_blur():
    """fd_patch's features are every p×p×C patch (built here by loops); identical sets give 0,
    and a blurred set (an MMSE-like loss of edge variance) is far from the clean one."""
    x = digits_images(8)[:40]
    fd = PatchFrechet(3)
    small = x[:2, :, :5, :4]
    rows = [small[n, :, i:i + 3, j:j + 3].reshape(-1).double().numpy()
            for n in range(2) for i in range(3) for j in range(2)]
    np.testing.assert_allclose(fd.features(small), np.stack(rows))
    a, b = fd.features(x[:20]), fd.features(x[20:])
    by_hand = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fd(x[:20], x[20:]) == pytest.approx(by_hand, rel=1e-12)
    assert fd(x, x) == pytest.approx(0.0, abs=1e-6)
    blurred = GaussianBlur(kernel_size=9, std=1.5).forward(x)
    assert fd(x, blurred) > 10 * fd(x[:20], x[20:])
    # grey: the channel mean's patches; colour noise with zero channel mean is invisible to it
    base = 0.8 * x  # inside [−1, 1] after the tint: no clipping
    tinted = base + 0.2 * torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1) * torch.rand(1, 1, *x.shape[-2:])
    grey = PatchFrechet(3, grey=True)
    np.testing.assert_allclose(grey.features(x), PatchFrechet(3).features(x[:, :1]))
    assert grey(base, tinted) < 1e-6 < 1e-2 < fd(base, tinted)
    assert chroma(x) == 0.0 and chroma(tinted) > 0.01


def test_vlb_term_is_zero_at_the_true_posterior():
    s = VPSchedule.linear(T=20)
    eps = torch.randn(3, 3, 4, 4)
    i = torch.tensor([0, 5, 19])
    kl = vlb_variance_term(eps, eps, torch.full_like(eps, -1.0), i, s.betas.float(),
                           s.alpha_bars.float())
    assert kl.tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    v = torch.zeros_like(eps, requires_grad=True)
    eps_hat = (eps + 0.1).requires_grad_(True)
    kl = vlb_variance_term(eps, eps_hat, v, i, s.betas.float(), s.alpha_bars.float())
    assert kl[0] == 0 and (kl[1:] > 0).all()
    kl.sum().backward()
    assert eps_hat.grad is None or torch.all(eps_hat.grad == 0)  # the mean's gradient is stopped
    assert v.grad.abs().sum() > 0


def test_digits_folders(tmp_path):
    write_digits_folders(tmp_path, image_size=8, n_test=97)
    assert len(list_images(tmp_path / "train")) == 1700 and len(list_images(tmp_path / "test")) == 97
    x = ImageTrainSet(tmp_path / "train", 8).sample(10)
    assert x.shape == (10, 3, 8, 8)
    assert torch.allclose(x, digits_images(8)[:10], atol=1 / 127.5)  # 8-bit PNG round trip


def test_ours_on_images_batch_two_equals_two_batches_of_one():
    torch.manual_seed(0)
    net = ADMUNet(image_size=16, num_channels=32, channel_mult=(1, 2), attention_resolutions=())
    for p in net.out.parameters():  # give the zero-initialised head non-zero ε and v
        torch.nn.init.normal_(p, std=0.02)
    net = net.eval().requires_grad_(False)
    schedule = VPSchedule.linear(T=8, beta_start=0.01, beta_end=0.3)
    prior = NetworkPrior(net, schedule)
    op = GaussianBlur(kernel_size=9, std=1.5)
    y = op.forward(torch.rand(2, 3, 16, 16) * 2 - 1)
    seeds = per_sample_seeds(3, range(2))
    s = VarianceScaledSampler(form="dps", variance="learned_range", clip_x0=True, progress=False,
                              zeta={"lam": [0, 1], "value": [1.0, 1.0]})
    both = s(prior, y, op, 0.05, [0.5, 1.0], seeds, schedule).samples
    one = s(prior, y[:1], op, 0.05, [0.5], seeds[:1], schedule).samples
    two = s(prior, y[1:], op, 0.05, [1.0], seeds[1:], schedule).samples
    torch.testing.assert_close(both, torch.cat([one, two]), rtol=1e-4, atol=1e-5)


def _tiny_image_prior(schedule):
    torch.manual_seed(0)
    net = ADMUNet(image_size=16, num_channels=32, channel_mult=(1, 2), attention_resolutions=())
    for p in net.out.parameters():  # give the zero-initialised head non-zero ε and v
        torch.nn.init.normal_(p, std=0.02)
    return NetworkPrior(net.eval().requires_grad_(False), schedule)


@pytest.mark.parametrize("operator", [GaussianBlur(kernel_size=9, std=1.5), SuperResolution(scale=4)])
@pytest.mark.parametrize("which", ["dps", "diffpir"])
def test_baselines_on_images_batch_two_equals_two_batches_of_one(which, operator):
    """Issue 5: DPS (learned variance, clipped x̂0, one norm per image) and DiffPIR (FFT data
    step) with fixed seeds: a batch of 2 gives what two runs of batch 1 give."""
    schedule = VPSchedule.linear(T=8, beta_start=0.01, beta_end=0.3)
    prior = _tiny_image_prior(schedule)
    y = operator.forward(torch.rand(2, 3, 16, 16) * 2 - 1)
    seeds = per_sample_seeds(3, range(2))
    if which == "dps":
        s = DPSSampler(variance="learned_range", clip=[-1, 1], progress=False)
        knob = [0.3, 1.0]
    else:
        s = DiffPIRSampler(knob="lambda_d", steps=6, clip=[-1, 1], progress=False)
        knob = [1.0, 7.0]
    both = s(prior, y, operator, 0.05, knob, seeds, schedule)
    one = s(prior, y[:1], operator, 0.05, knob[:1], seeds[:1], schedule).samples
    two = s(prior, y[1:], operator, 0.05, knob[1:], seeds[1:], schedule).samples
    assert both.samples.shape == (2, 3, 16, 16) and bool(torch.isfinite(both.samples).all())
    # (DiffPIR's default last step returns the data step's output, which sampler.clip does not bound)
    torch.testing.assert_close(both.samples, torch.cat([one, two]), rtol=1e-4, atol=1e-5)
    again = s(prior, y, operator, 0.05, knob, seeds, schedule).samples
    assert torch.equal(again, both.samples)


@pytest.mark.parametrize("experiment", ["images_small_dps", "images_small_diffpir"])
def test_tiny_baseline_image_jobs_run(tmp_path, cache_dir, experiment):
    write_blobs(tmp_path / "train", 6, 0)
    write_blobs(tmp_path / "test", 3, 1)
    overrides = [o.replace("experiment=images_small", f"experiment={experiment}") for o in TINY]
    cfg = compose_cfg([*overrides, f"dataset.root={tmp_path / 'test'}", "sampler.values=[0.5,1]",
                       f"dataset.train_root={tmp_path / 'train'}"]
                      + (["sampler.steps=10"] if experiment.endswith("diffpir") else []))
    rows = run_job(cfg, tmp_path / "job")
    assert [r["value"] for r in rows] == [0.5, 1.0]
    assert {r["sampler"] for r in rows} == {experiment.split("_")[-1]}
    assert all(math.isfinite(r["mse"]) and math.isfinite(r["fd_pca"]) for r in rows)
    assert (tmp_path / "job" / "image_grid.png").is_file()


def test_images_small_composes_for_both_operators():
    blur = compose_cfg(["experiment=images_small"])
    assert blur.operator.name == "gaussian_blur_small" and blur.operator.kernel_size == 9
    assert blur.sampler.variance == "learned_range" and blur.sampler.clip_x0 is True
    assert issubclass(hydra.utils.get_class(blur.dataset._target_), ImageDataset)
    assert blur.noise.space == "[-1,1]"
    sr = compose_cfg(["experiment=images_small", "operator=super_resolution_x4"])
    assert sr.operator.name == "super_resolution_x4" and sr.operator.scale == 4
    from vsdr.experiments.figures import FIGURES

    for name, operator in (("images_small", "gaussian_blur_small"),
                           ("images_small_sr", "super_resolution_x4")):
        jobs = FIGURES[name].jobs
        assert len(jobs) == 4
        samplers = set()
        for overrides in jobs.values():
            cfg = compose_cfg(overrides)
            assert cfg.operator.name == operator and cfg.dataset.name == "digits"
            name = sampler_class(cfg.sampler).name
            samplers.add(name)
            if name in ("dps", "diffpir"):  # the score baselines keep DPS's image conventions
                assert list(cfg.sampler.clip) == [-1.0, 1.0] and "zeta" not in cfg.sampler
            if name == "pscgan":  # PSCGAN's conv networks, at the digits' size
                assert cfg.sampler.gan.generator.image_size == 16
        assert samplers == {"ours", "dps", "diffpir", "pscgan"}
