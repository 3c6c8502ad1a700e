"""operator=deepinv (issue 22 item 4): deepinv's LinearPhysics behind vsdr's operator interface,
against hand computations and vsdr's own blur; the presets' masks and kernels; DiffPIR's data
step through prox_l2; ΠGDM's solve; validation; tiny inpainting jobs for ours, DPS and DiffPIR."""
from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import compose_cfg, run_cli

from vsdr.config import instantiate
from vsdr.diffusion import per_sample_seeds
from vsdr.diffusion.noise import STREAM_MEASUREMENT
from vsdr.errors import ConfigError
from vsdr.experiments.validate import validate_config
from vsdr.operators import DeepInvOperator, GaussianBlur
from vsdr.operators.deepinv_physics import inpaint_mask
from vsdr.tasks.images import measure

#: (preset, image side): every preset at a size it fits
PRESETS = [("deepinv", 16), ("inpaint_random", 16), ("inpaint_box_small", 16), ("inpaint_box", 256),
           ("motion_blur_small", 16), ("motion_blur", 64)]


def preset(name: str, **over) -> DeepInvOperator:
    node = compose_cfg([f"operator={name}", *[f"operator.{k}={v}" for k, v in over.items()]]).operator
    return instantiate(node, "operator")


def blur_physics(kernel_size: int, std: float, padding: str) -> DeepInvOperator:
    """deepinv's Blur carrying vsdr's Gaussian kernel (``kernel=gaussian``)."""
    return DeepInvOperator({"_target_": "deepinv.physics.Blur", "padding": padding}, kernel="gaussian",
                           kernel_size=kernel_size, std=std, tol=1e-12, max_iter=2000)


@pytest.mark.parametrize("name,side", PRESETS)
def test_adjoint_identity(name, side):
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩ in float64 for random x, y."""
    op = preset(name)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, side, side, generator=g, dtype=torch.float64)
    ax = op.forward(x)
    y = torch.randn(ax.shape, generator=g, dtype=torch.float64)
    lhs, rhs = (ax * y).sum(), (x * op.adjoint(y)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-10)
    assert float(ax.abs().sum()) > 0 and not torch.equal(ax, x)  # not the identity


def test_random_mask_drops_seventy_percent_of_the_pixels_in_every_channel():
    op = preset("inpaint_random")
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64) + 1.0  # no zeros of its own
    ax = op.forward(x)
    kept = ax[0] != 0
    assert torch.equal(kept[0], kept[1]) and torch.equal(kept[0], kept[2])  # the same pixels
    assert int((~kept[0]).sum()) == round(0.7 * 256) == 179
    torch.testing.assert_close(ax[0][kept], x[0][kept], rtol=0, atol=0)  # A x = m ⊙ x
    same, other = inpaint_mask("random", 16, 16, 0.7, seed=0), inpaint_mask("random", 16, 16, 0.7, seed=1)
    assert torch.equal(kept[0], same[0] == 1) and not torch.equal(same, other)


def test_box_masks_are_the_centred_squares():
    small = torch.ones(16, 16, dtype=torch.float64)
    small[4:12, 4:12] = 0
    x = torch.ones(1, 3, 16, 16, dtype=torch.float64)
    assert torch.equal(preset("inpaint_box_small").forward(x)[0, 1], small)
    big = inpaint_mask("box", 256, 256, box=128)[0]
    assert float(big.sum()) == 256**2 - 128**2 and float(big[64:192, 64:192].sum()) == 0


def test_motion_kernel_is_fixed_by_the_seed_and_sums_to_one():
    a, b = preset("motion_blur_small"), preset("motion_blur_small", seed=1)
    ka, kb = a.physics((3, 16, 16)).filter, b.physics((3, 16, 16)).filter
    assert ka.shape == (1, 1, 9, 9) and float(ka.sum()) == pytest.approx(1.0, abs=1e-12)
    assert torch.equal(ka, preset("motion_blur_small").physics((3, 16, 16)).filter)
    assert not torch.equal(ka, kb) and float((ka > 0).sum()) > 1  # a trajectory, not a delta
    # the 61×61 preset convolves by FFT: the same A x as deepinv's direct convolution
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    fft, direct = preset("motion_blur"), preset("motion_blur", **{"physics.use_fft": "false"})
    assert fft.kwargs["use_fft"] is True and direct.kwargs["use_fft"] is False
    torch.testing.assert_close(fft.forward(x), direct.forward(x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("size,std,side", [(9, 1.5, 16), (61, 3.0, 64)])
def test_deepinv_blur_with_vsdr_kernel_equals_vsdr_blur(size, std, side):
    """deepinv's Blur with vsdr's Gaussian kernel: padding='reflect' (torch's reflection, the
    edge pixel not repeated) is vsdr's reflect boundary and padding='circular' its circular one,
    both exactly (to rounding), A and Aᵀ."""
    x = torch.randn(2, 3, side, side, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for boundary in ("reflect", "circular"):
        ours, theirs = GaussianBlur(size, std, boundary=boundary), blur_physics(size, std, boundary)
        torch.testing.assert_close(theirs.forward(x), ours.forward(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(theirs.adjoint(x), ours.adjoint(x), rtol=0, atol=1e-12)
    # and it is not the zero-padded blur: the boundary matters
    zeros = blur_physics(size, std, "constant")
    assert float((zeros.forward(x) - GaussianBlur(size, std).forward(x)).abs().max()) > 1e-3


def normal_residual(op, x, x0_hat, y, rho) -> float:
    """‖(AᵀA + ρI) x − (Aᵀy + ρ x̂0)‖ / ‖Aᵀy + ρ x̂0‖, per-sample ρ."""
    r = rho.view(-1, 1, 1, 1)
    lhs = op.adjoint(op.forward(x)) + r * x
    rhs = op.adjoint(y) + r * x0_hat
    return float((lhs - rhs).norm() / rhs.norm())


@pytest.mark.parametrize("name", ["inpaint_random", "inpaint_box_small", "motion_blur_small"])
def test_prox_data_solves_diffpirs_normal_equations(name):
    """prox_l2(x̂0, y, γ = 1/ρ) is DiffPIR's ``argmin ‖y − A x‖² + ρ‖x − x̂0‖²``: its normal
    equations hold, for one ρ per sample, and a wrong γ (ρ itself) does not solve them."""
    op = preset(name, tol=1e-12, max_iter=2000)
    g = torch.Generator().manual_seed(2)
    x0_hat = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    y = op.forward(torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64))
    y = y + 0.1 * torch.randn(y.shape, generator=g, dtype=torch.float64)
    rho = torch.tensor([0.05, 3.0], dtype=torch.float64)
    x = op.prox_data(x0_hat, y, rho)
    exact = name.startswith("inpaint")  # a division; the blur's is deepinv's conjugate gradients
    assert normal_residual(op, x, x0_hat, y, rho) < (1e-13 if exact else 1e-6)
    wrong = op.physics((3, 16, 16), x0_hat).prox_l2(x0_hat, y, rho.view(-1, 1, 1, 1), tol=1e-12,
                                                    max_iter=2000)
    assert normal_residual(op, wrong, x0_hat, y, rho) > 1e-2
    # a number ρ is every sample's ρ
    torch.testing.assert_close(op.prox_data(x0_hat, y, 0.5),
                               op.prox_data(x0_hat, y, torch.tensor([0.5, 0.5], dtype=torch.float64)))


def test_inpainting_prox_by_hand():
    """Inpainting: x = (m y + ρ x̂0)/(m² + ρ) per pixel: x̂0 where m = 0, (y + ρ x̂0)/(1 + ρ) where m = 1."""
    op = preset("inpaint_random")
    g = torch.Generator().manual_seed(3)
    x0_hat = torch.randn(1, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randn(1, 3, 16, 16, generator=g, dtype=torch.float64)  # noise on the missing pixels too
    m = inpaint_mask("random", 16, 16)
    x = op.prox_data(x0_hat, y, 0.25)
    torch.testing.assert_close(x, (m * y + 0.25 * x0_hat) / (m + 0.25), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["inpaint_random", "motion_blur_small"])
def test_solve_gram(name):
    """(r2 A Aᵀ + σ² I) u = v: by hand for inpainting (v/(r2 m² + σ²)), conjugate gradients
    (residual) for the blur."""
    op = preset(name)
    v = torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    r2, s2 = torch.tensor([0.5, 2.0], dtype=torch.float64), 0.01
    u = op.solve_gram(v, r2, s2, (3, 16, 16))
    back = r2.view(-1, 1, 1, 1) * op.forward(op.adjoint(u)) + s2 * u
    torch.testing.assert_close(back, v, rtol=1e-8, atol=1e-8)
    if name == "inpaint_random":
        m = inpaint_mask("random", 16, 16)
        torch.testing.assert_close(u, v / (r2.view(-1, 1, 1, 1) * m + s2), rtol=1e-12, atol=0)


def test_noise_is_vsdrs_own():
    """deepinv's noise model is off (its own ``physics(x)`` is ``A x``) and ``measure`` adds
    σ n from vsdr's per-image seeds; a noise model in the config is refused."""
    op = preset("inpaint_random")
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    phys = op.physics((3, 16, 16), x0)
    assert torch.equal(phys(x0), op.forward(x0))
    y = measure(x0, op, 0.1, seed=7)
    seeds = per_sample_seeds(7, range(2), stream=STREAM_MEASUREMENT)
    n = torch.stack([torch.randn(3, 16, 16, generator=torch.Generator().manual_seed(s)) for s in seeds])
    torch.testing.assert_close(y - op.forward(x0), 0.1 * n)
    with pytest.raises(ValueError, match="noise_model must be null: vsdr adds the measurement noise"):
        DeepInvOperator({"_target_": "deepinv.physics.Inpainting",
                         "noise_model": {"_target_": "deepinv.physics.GaussianNoise"}}, mask="random")


@pytest.mark.parametrize("overrides,message", [
    (["experiment=debug", "operator=inpaint_random"],
     "operator=inpaint_random does not fit dataset=pinwheel (2-D points): it applies deepinv's Inpainting "
     "to images (C, H, W); choose operator=identity or operator=matrix for points"),
    (["experiment=images_small", "operator=inpaint_box"],
     "operator=inpaint_box does not fit dataset=digits (16×16 images): its 128×128 box mask (operator.box) "
     "does not fit inside 16×16 images"),
    (["experiment=images_small", "operator=motion_blur"],
     "operator=motion_blur does not fit dataset=digits (16×16 images): its 61×61 kernel "
     "(operator.kernel_size) pads the image by 30 pixels"),
    (["experiment=images_small", "operator=deepinv", "operator.mask=null",
      "+operator.physics.mask=[[1,0],[0,1]]"],
     "operator=deepinv does not fit dataset=digits (16×16 images): its mask (operator.physics.mask) is 2×2, "
     "not 16×16 like the images"),
    (["experiment=images_small", "operator=deepinv", "+operator.physics.img_size=[3,32,32]"],
     "operator.physics.img_size=[3, 32, 32] is not the images' size [3, 16, 16]"),
    (["experiment=images_small", "operator=deepinv", "operator.physics._target_=torch.nn.Linear"],
     "operator.physics._target_=torch.nn.Linear is not a deepinv LinearPhysics"),
    (["experiment=images_small", "operator=motion_blur_small", "operator.mask=box"],
     "operator.mask=box draws a `mask` argument and deepinv.physics.Blur takes none"),
    (["experiment=images_small", "operator=inpaint_random", "operator.missing=1"],
     "operator.missing=1 must be a number in [0, 1)"),
])
def test_bad_deepinv_operator_is_one_sentence(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(compose_cfg(overrides))


def test_cli_deepinv_operator_on_points_exits_2(tmp_path):
    res = run_cli(["experiment=debug", "operator=inpaint_random", "hydra.run.dir=job"], cwd=tmp_path,
                  env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 2, res.stderr[-2000:]
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("vsdr: operator=inpaint_random does not fit dataset=pinwheel"), line
    assert "Traceback" not in res.stderr and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("experiment", ["images_small", "images_small_dps", "images_small_diffpir"])
def test_tiny_inpainting_jobs_run(tmp_path, cache_dir, experiment):
    """operator=inpaint_random through the whole job for ours, DPS and DiffPIR (a tiny ADM
    trained 3 steps on blobs; the digits network's jobs are in the report)."""
    from test_image_job import TINY, write_blobs

    from vsdr.experiments.job import run_job

    write_blobs(tmp_path / "train", 6, 0)
    write_blobs(tmp_path / "test", 2, 1)
    overrides = [o.replace("experiment=images_small", f"experiment={experiment}") for o in TINY]
    extra = [] if experiment == "images_small" else ["sampler.values=[0.5,1]"]
    extra += ["sampler.steps=10"] if experiment.endswith("diffpir") else []
    cfg = compose_cfg([*overrides, "operator=inpaint_random", "data.limit=2", "image_metrics.fid=false",
                       f"dataset.root={tmp_path / 'test'}", f"dataset.train_root={tmp_path / 'train'}",
                       *extra])
    rows = run_job(cfg, tmp_path / "job")
    assert len(rows) == 2 and {r["operator"] for r in rows} == {"inpaint_random"}
    assert all(math.isfinite(r["mse"]) and r["mse"] > 0 for r in rows)
