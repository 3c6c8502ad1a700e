"""Image operators: DPS's blur kernel, MATLAB bicubic down-sampling, exact adjoints and the
normal equations of the closed-form data steps."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from vsdr.operators import GaussianBlur, Identity, SuperResolution
from vsdr.operators._fft import reflect_pad, reflect_pad_adjoint
from vsdr.operators.superres import resize_matrix


def _dot(a, b):
    return float((a * b).sum())


# ---------------------------------------------------------------- blur
def test_blur_kernel_matches_scipy_delta():
    op = GaussianBlur()
    k = op.full_kernel.numpy()
    delta = np.zeros((61, 61))
    delta[30, 30] = 1.0
    ref = gaussian_filter(delta, 3.0)
    assert k.shape == (61, 61)
    np.testing.assert_array_equal(k, ref)
    assert abs(k.sum() - 1.0) < 1e-12
    rows, cols = np.nonzero(k)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (18, 42, 18, 42)  # 25×25 support
    assert op.radius == 12 and op.kernel.shape == (25, 25)
    # centre value: the 1-D scipy kernel (normalised Gaussian, truncate 4) at 0, squared
    g = np.exp(-0.5 * (np.arange(-12, 13) / 3.0) ** 2)
    assert k[30, 30] == pytest.approx((1.0 / g.sum()) ** 2, rel=1e-12)


def test_blur_equals_pad30_full_kernel_and_preserves_constants():
    torch.manual_seed(0)
    op = GaussianBlur()
    x = torch.randn(2, 3, 40, 36, dtype=torch.float64)
    w = op.full_kernel[None, None].expand(3, 1, 61, 61)
    ref = F.conv2d(F.pad(x, (30, 30, 30, 30), mode="reflect"), w, groups=3)
    torch.testing.assert_close(op(x), ref)
    c = torch.full((1, 3, 32, 32), 0.7, dtype=torch.float64)
    torch.testing.assert_close(op(c), c)


def test_reflect_pad_matches_torch_and_its_adjoint():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(reflect_pad(x, 4), F.pad(x, (4, 4, 4, 4), mode="reflect"))
    z = torch.randn(1, 2, 15, 17, dtype=torch.float64)
    assert _dot(reflect_pad(x, 4), z) == pytest.approx(_dot(x, reflect_pad_adjoint(z, 4)), rel=1e-12)


@pytest.mark.parametrize("op,shape", [(GaussianBlur(), (2, 3, 33, 40)),
                                      (SuperResolution(scale=8), (2, 3, 64, 48)),
                                      (SuperResolution(scale=3), (1, 3, 20, 17)),
                                      (Identity(), (2, 3, 8, 8))],
                         ids=["blur", "sr8", "sr3_uneven", "identity"])
def test_adjoint_dot_product(op, shape):
    torch.manual_seed(2)
    x = torch.randn(*shape, dtype=torch.float64)
    ax = op.forward(x)
    y = torch.randn_like(ax)
    aty = op.adjoint(y, shape[-2:]) if isinstance(op, SuperResolution) else op.adjoint(y)
    assert aty.shape == x.shape
    lhs, rhs = _dot(ax, y), _dot(x, aty)
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


# ---------------------------------------------------------------- bicubic
def _imresize_reference(img: np.ndarray, scale: int) -> np.ndarray:
    """An independent loop implementation of MATLAB ``imresize(img, 1/scale, 'bicubic')``
    (antialiasing on): per output pixel, the stretched Keys kernel around
    ``u = i·scale + (1 − scale)/2`` (1-based), normalised weights, half-sample mirror."""

    def keys(t):
        t = abs(t)
        if t <= 1:
            return 1.5 * t**3 - 2.5 * t**2 + 1
        if t <= 2:
            return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
        return 0.0

    def mirror(j, n):  # 1-based, symmetric about the edge pixels' outer faces
        while j < 1 or j > n:
            j = 1 - j if j < 1 else 2 * n + 1 - j
        return j

    def axis(a: np.ndarray) -> np.ndarray:
        n = a.shape[0]
        m = math.ceil(n / scale)
        out = np.zeros((m, *a.shape[1:]))
        for i in range(1, m + 1):
            u = i * scale + 0.5 * (1 - scale)
            js = range(math.floor(u - 2 * scale), math.floor(u - 2 * scale) + 4 * scale + 2)
            ws = [keys((u - j) / scale) / scale for j in js]
            tot = sum(ws)
            for j, w in zip(js, ws):
                out[i - 1] += (w / tot) * a[mirror(j, n) - 1]
        return out

    return axis(axis(img).T).T


def test_bicubic_matches_independent_reference():
    rng = np.random.default_rng(3)
    for scale, (h, w) in [(8, (32, 24)), (2, (9, 7)), (3, (12, 12))]:
        img = rng.standard_normal((h, w))
        ours = SuperResolution(scale=scale)(torch.from_numpy(img)[None, None])[0, 0].numpy()
        np.testing.assert_allclose(ours, _imresize_reference(img, scale), atol=1e-12)


def test_bicubic_hand_checked_cases():
    op = SuperResolution(scale=8)
    c = torch.full((1, 3, 64, 64), -0.3, dtype=torch.float64)
    torch.testing.assert_close(op(c), torch.full((1, 3, 8, 8), -0.3, dtype=torch.float64))
    # a ramp x[j] = j (0-based): away from the mirror borders each output is the ramp at the
    # output's centre, 8·i + 3.5 (symmetric weights around a half-integer centre)
    ramp = torch.arange(64, dtype=torch.float64).view(1, 1, 1, 64).expand(1, 1, 64, 64)
    out = op(ramp)[0, 0, 0]
    centres = 8 * torch.arange(8, dtype=torch.float64) + 3.5
    torch.testing.assert_close(out[2:-2], centres[2:-2])
    assert abs(float(out[0]) - 3.5) > 1e-3  # the mirror boundary bends the ramp at the edge
    # scale 1: the Keys kernel at integer offsets is a delta → identity
    np.testing.assert_allclose(resize_matrix(5, 1), np.eye(5), atol=1e-15)
    # a hand-computed 2× row: output 5 (1-based) has centre u = 9.5; inputs j = 6…13 sit at
    # |u − j|/2 = 1.75, 1.25, 0.75, 0.25, …, where Keys gives −3/128, −9/128, 29/128, 111/128
    # (half sums to 1, so the normalised weights are these over 2)
    row = resize_matrix(16, 2)[4]
    half = np.array([-3, -9, 29, 111]) / 256
    np.testing.assert_allclose(row[5:13], np.concatenate([half, half[::-1]]), atol=1e-15)
    assert np.count_nonzero(row) == 8


def test_sr_circular_model_equals_operator_in_the_interior():
    torch.manual_seed(4)
    op = SuperResolution(scale=4)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    a, ac = op(x), op.circular(x)
    torch.testing.assert_close(a[..., 2:-3, 2:-3], ac[..., 2:-3, 2:-3])
    blur = GaussianBlur()
    b, bc = blur(x), blur.circular(x)
    torch.testing.assert_close(b[..., 12:-12, 12:-12], bc[..., 12:-12, 12:-12])


# ---------------------------------------------------------------- boundary='circular'
def test_circular_blur_equals_a_hand_computed_wraparound_sum():
    """boundary='circular' (DiffPIR's measurement, scipy ``mode='wrap'``): on a 7×6 image,
    (A x)[i, j] = Σ_{a,b} k[a, b] x[(i + a − r) mod 7, (j + b − r) mod 6], written as a loop
    (the kernel is symmetric, so correlation and convolution agree)."""
    op = GaussianBlur(kernel_size=5, std=0.8, boundary="circular")
    torch.manual_seed(8)
    x = torch.randn(1, 1, 7, 6, dtype=torch.float64)
    k, r = op.kernel.numpy(), op.radius
    xn, ref = x[0, 0].numpy(), np.zeros((7, 6))
    for i in range(7):
        for j in range(6):
            ref[i, j] = sum(k[a, b] * xn[(i + a - r) % 7, (j + b - r) % 6]
                            for a in range(2 * r + 1) for b in range(2 * r + 1))
    np.testing.assert_allclose(op(x)[0, 0].numpy(), ref, atol=1e-14)
    from scipy.ndimage import convolve
    np.testing.assert_allclose(op(x)[0, 0].numpy(), convolve(xn, k, mode="wrap"), atol=1e-14)
    # the default (reflect) differs only within r pixels of the border
    refl = GaussianBlur(kernel_size=5, std=0.8)(x)
    torch.testing.assert_close(refl[..., r:-r, r:-r], op(x)[..., r:-r, r:-r])
    assert float((refl - op(x)).abs().max()) > 1e-3


def test_circular_sr_is_the_periodic_filter_then_decimation():
    """boundary='circular' SR: (A x)[i] = Σ_d w_d x[(s·i + d) mod n] per axis (the interior
    bicubic taps ``filter_taps``), written out on a 16×8 image at ×4."""
    op = SuperResolution(scale=4, boundary="circular")
    torch.manual_seed(9)
    x = torch.randn(1, 1, 16, 8, dtype=torch.float64)
    d, w = op.filter_taps()
    xn, ref = x[0, 0].numpy(), np.zeros((4, 2))
    for i in range(4):
        for j in range(2):
            ref[i, j] = sum(w[a] * w[b] * xn[(4 * i + d[a]) % 16, (4 * j + d[b]) % 8]
                            for a in range(len(d)) for b in range(len(d)))
    np.testing.assert_allclose(op(x)[0, 0].numpy(), ref, atol=1e-13)


OPS = [GaussianBlur(), GaussianBlur(boundary="circular"), GaussianBlur(kernel_size=9, std=1.5),
       SuperResolution(scale=4), SuperResolution(scale=4, boundary="circular"),
       SuperResolution(scale=8), SuperResolution(scale=8, boundary="circular")]
OP_IDS = ["blur", "blur_circ", "blur9", "sr4", "sr4_circ", "sr8", "sr8_circ"]


@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
def test_adjoint_identity_each_boundary(op):
    """⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for both boundaries."""
    torch.manual_seed(10)
    x = torch.randn(2, 3, 32, 40, dtype=torch.float64)
    y = torch.randn_like(op(x))
    assert _dot(op(x), y) == pytest.approx(_dot(x, op.adjoint(y)), rel=1e-12, abs=1e-10)


def test_bad_boundary():
    with pytest.raises(ValueError, match="operator.boundary"):
        GaussianBlur(boundary="wrap")
    with pytest.raises(ValueError, match="operator.boundary"):
        SuperResolution(boundary="zero")


# ---------------------------------------------------------------- closed-form data steps
@pytest.mark.parametrize("op", OPS, ids=OP_IDS)
@pytest.mark.parametrize("rho", [0.05, 1e-6, torch.tensor([0.3, 2.0], dtype=torch.float64)],
                         ids=["scalar", "small", "per_sample"])
def test_prox_data_solves_its_normal_equations(op, rho):
    """The data step x = argmin ‖y − A x‖² + ρ‖x − x̂0‖² of each boundary solves
    (AᵀA + ρI) x = Aᵀy + ρ x̂0 for that boundary's own A (reflect: SVD solve; circular: FFT)."""
    torch.manual_seed(5)
    shape = (2, 3, 32, 40)
    x0 = torch.randn(*shape, dtype=torch.float64)
    y = torch.randn_like(op(x0))
    x = op.prox_data(x0, y, rho)
    r = rho.view(-1, 1, 1, 1) if isinstance(rho, torch.Tensor) else rho
    residual = op.adjoint(op(x)) + r * x - op.adjoint(y) - r * x0
    assert float(residual.abs().max()) < 1e-6 * max(1.0, float(op.adjoint(y).abs().max()))


@pytest.mark.parametrize("op", [OPS[1], OPS[4]], ids=["blur", "sr4"])
def test_circular_data_step_is_the_fft_closed_form(op):
    """boundary='circular': prox_data is DiffPIR's Fourier formula ``prox_circular``."""
    torch.manual_seed(11)
    x0 = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    y = op(torch.randn_like(x0))
    torch.testing.assert_close(op.prox_data(x0, y, 0.1), op.prox_circular(x0, y, 0.1))


def test_prox_data_limits():
    torch.manual_seed(6)
    for op in (GaussianBlur(), GaussianBlur(boundary="circular"), SuperResolution(scale=4)):
        x0 = torch.randn(1, 3, 32, 32, dtype=torch.float64)
        y = op(torch.randn_like(x0))
        torch.testing.assert_close(op.prox_data(x0, y, 1e8), x0, atol=1e-6, rtol=0)  # ρ → ∞: x̂0
    # ρ = 0, SR: the least-squares fit; x̂0 is kept on A's null space (A x = y exactly)
    op = SuperResolution(scale=4)
    x0 = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    y = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    x = op.prox_data(x0, y, 0.0)
    torch.testing.assert_close(op(x), y)
    torch.testing.assert_close(op.prox_data(x0, op(x0), 0.0), x0)
    with pytest.raises(ValueError, match="divisible by 8"):
        SuperResolution(scale=8, boundary="circular").prox_data(torch.zeros(1, 3, 30, 32),
                                                                torch.zeros(1, 3, 4, 4), 1.0)


@pytest.mark.parametrize("op", OPS[:2] + OPS[3:5], ids=["blur", "blur_circ", "sr4", "sr4_circ"])
def test_prox_data_float32_agrees_with_float64(op):
    torch.manual_seed(7)
    x0 = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    y = op(torch.randn_like(x0))
    ref = op.prox_data(x0, y, 0.2)
    got = op.prox_data(x0.float(), y.float(), torch.tensor([0.2, 0.2]))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("op", [OPS[1], OPS[4]], ids=["blur", "sr4"])
def test_circular_solve_gram(op):
    """ΠGDM's (r² A Aᵀ + σ² I)⁻¹ v for the circular operators (diagonal in Fourier)."""
    torch.manual_seed(12)
    x_shape = (3, 32, 32)
    v = torch.randn_like(op(torch.zeros(2, *x_shape, dtype=torch.float64)))
    z = op.solve_gram(v, 0.7, torch.tensor([0.1, 0.02], dtype=torch.float64), x_shape)
    back = 0.7 * op(op.adjoint(z)) + torch.tensor([0.1, 0.02], dtype=torch.float64).view(-1, 1, 1, 1) * z
    torch.testing.assert_close(back, v)
