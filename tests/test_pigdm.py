"""ΠGDM guidance (docs/METHOD.md §2): the solve ``(r² A Aᵀ + σ² I)⁻¹ v`` of every operator
against a dense solve of the operator's matrix built column by column, and the guided score
against the exact posterior score of a Gaussian prior, for which ΠGDM is exact."""
from __future__ import annotations

import math

import pytest
import torch

from vsdr.data.analytic import GaussianMixture, posterior
from vsdr.diffusion.guidance import likelihood_gradient, pigdm_r2
from vsdr.diffusion.schedule import VPSchedule
from vsdr.models.exact import ExactPrior
from vsdr.operators import GaussianBlur, Identity, LinearOperator, MatrixOperator, SuperResolution
from vsdr.operators.linear import conjugate_gradient
from vsdr.samplers import InterpolationSampler, VarianceScaledSampler

DT = torch.float64


def dense(op: LinearOperator, x_shape: tuple[int, ...]) -> torch.Tensor:
    """``A`` as a ``(m, n)`` matrix: column ``j`` is ``A e_j``, one basis image at a time."""
    n = math.prod(x_shape)
    cols = [op.forward(torch.eye(n, dtype=DT)[j].reshape(1, *x_shape)).flatten() for j in range(n)]
    return torch.stack(cols, dim=1)


class PlainBlur(GaussianBlur):
    """The blur without its closed form: the generic conjugate-gradient solve."""

    def solve_gram(self, v, r2, sigma2, x_shape):
        return LinearOperator.solve_gram(self, v, r2, sigma2, x_shape)


CASES = [
    (Identity(), (3,)),
    (MatrixOperator(rows=3, dim=5, draw_seed=1), (5,)),
    (GaussianBlur(kernel_size=9, std=1.5), (2, 10, 13)),
    (SuperResolution(scale=2), (1, 8, 10)),
    (SuperResolution(scale=3), (2, 7, 9)),   # sides not divisible by the scale
    (PlainBlur(kernel_size=9, std=1.5), (1, 9, 8)),
]
IDS = ["identity", "matrix3x5", "blur9", "sr2", "sr3_uneven", "blur_cg"]


@pytest.mark.parametrize("op,x_shape", CASES, ids=IDS)
@pytest.mark.parametrize("r2,sigma2", [(0.7, 0.01), (torch.tensor([0.0, 2.5], dtype=DT), 0.3)],
                         ids=["scalar", "per_sample"])
def test_solve_gram_matches_dense_solve(op, x_shape, r2, sigma2):
    torch.manual_seed(0)
    A = dense(op, x_shape)
    y_shape = op.forward(torch.zeros(1, *x_shape, dtype=DT)).shape[1:]
    v = torch.randn(2, *y_shape, dtype=DT)
    got = op.solve_gram(v, r2, sigma2, x_shape)
    r2s = r2 if isinstance(r2, torch.Tensor) else torch.full((2,), r2, dtype=DT)
    for b in range(2):
        gram = r2s[b] * A @ A.T + sigma2 * torch.eye(A.shape[0], dtype=DT)
        ref = torch.linalg.solve(gram, v[b].flatten())
        torch.testing.assert_close(got[b].flatten(), ref, atol=1e-8, rtol=1e-8)


def test_blur_kernel_is_separable_and_sr_matrix_is_its_resize_matrices():
    """The closed forms rest on ``A = B_h ⊗ B_w``: DPS's Gaussian kernel is an outer product."""
    op = GaussianBlur()
    assert op.separable
    torch.testing.assert_close(torch.outer(op.kernel_1d, op.kernel_1d), op.kernel, atol=1e-16, rtol=0)


def test_conjugate_gradient_on_a_hand_solved_system():
    """``[[4, 1], [1, 3]] x = [1, 2]`` has ``x = [1/11, 7/11]``; a zero right-hand side gives 0."""
    M = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=DT)
    b = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=DT)
    x = conjugate_gradient(lambda p: p @ M.T, b)
    torch.testing.assert_close(x, torch.tensor([[1 / 11, 7 / 11], [0.0, 0.0]], dtype=DT))


def test_pigdm_r2_closed_forms():
    """``r² = 1 − ᾱ`` for unit prior variance (ΠGDM's σ²/(1+σ²), σ² = (1−ᾱ)/ᾱ); 0 at ᾱ = 1;
    the prior variance s² as ᾱ → 0."""
    ab = 0.3
    s2_ve = (1 - ab) / ab
    assert pigdm_r2(ab) == pytest.approx(s2_ve / (1 + s2_ve), rel=1e-14)
    assert pigdm_r2(ab) == pytest.approx(1 - ab, rel=1e-14)
    assert pigdm_r2(1.0, 0.4) == 0.0
    assert pigdm_r2(1e-12, 0.4) == pytest.approx(0.4, rel=1e-9)


@pytest.mark.parametrize("i", [5, 300, 900])
def test_pigdm_score_is_the_exact_posterior_score_for_a_gaussian_prior(i):
    """Prior ``N(μ, s² I)`` in d = 4, ``y = A x0 + n`` with a 3×4 ``A``: ``Cov[x0|x_t]`` is
    ``r_t² I`` with ``r_t² = s²(1−ᾱ)/(1−ᾱ+s²ᾱ)`` exactly, so ΠGDM's likelihood score is exact and
    ours at ζ = ½ with ``pigdm_prior_var = s²`` returns ``∇ log p_t(x_t|y)``, the score of the
    diffused Gaussian posterior ``N(√ᾱ m, ᾱ S + (1 − ᾱ) I)`` (independent closed form)."""
    s2, sigma = 0.6, 0.4
    mu = torch.tensor([[0.5, -1.0, 0.3, 2.0]], dtype=DT)
    prior = GaussianMixture(torch.ones(1, dtype=DT), mu, s2 * torch.eye(4, dtype=DT)[None])
    op = MatrixOperator(rows=3, dim=4, draw_seed=3)
    sched = VPSchedule.linear(1000)
    model = ExactPrior(prior, sched)
    gen = torch.Generator().manual_seed(4)
    y = torch.randn(3, 3, generator=gen, dtype=DT)
    x = torch.randn(3, 4, generator=gen, dtype=DT)
    sampler = VarianceScaledSampler(form="pigdm", pigdm_prior_var=s2, progress=False)
    zeta = torch.full((3,), 0.5, dtype=DT)
    got = sampler.conditional_score(model, x, i, y, op, sigma, zeta, sched)
    ab = sched.at(i)["alpha_bar"]
    want = posterior(prior, op.A, sigma, y).diffused(ab).score(x)
    torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-9)
    # the paper form (r_t² = 0 in the same expression) is not exact: the check can tell
    paper = VarianceScaledSampler(form="paper", progress=False)
    err = (paper.conditional_score(model, x, i, y, op, sigma, zeta, sched) - want).abs().max()
    assert err > 1e-3


def test_pigdm_gradient_at_r2_zero_is_the_paper_gradient_on_an_image_operator():
    """At ``r² = 0`` the ΠGDM term is ``σ²∇ rᵀ(σ² I)⁻¹ r = ∇‖r‖²``, the paper form's, on a
    nonlinear ``x̂0(x_t)``; with ``r² > 0`` on a blur it is ``∇ rᵀ(r²AAᵀ/σ² + I)⁻¹ r`` computed
    by a dense matrix (column by column) and autograd instead."""
    torch.manual_seed(1)
    op = GaussianBlur(kernel_size=9, std=1.5)
    x = torch.randn(2, 1, 8, 8, dtype=DT, requires_grad=True)
    y = torch.randn(2, 1, 8, 8, dtype=DT)

    def x0(z):
        return torch.tanh(z) * 0.8 + 0.1 * z

    sigma = 0.3
    g_pi = likelihood_gradient(x, x0(x), y, op, "pigdm", r2=0.0, sigma_y=sigma)
    g_paper = likelihood_gradient(x, x0(x), y, op, "paper")
    torch.testing.assert_close(g_pi, g_paper)
    r2 = 0.8
    A = dense(op, (1, 8, 8))
    N = torch.linalg.inv(r2 * A @ A.T / sigma**2 + torch.eye(64, dtype=DT))
    res = (y - op.forward(x0(x))).flatten(1)
    (want,) = torch.autograd.grad(torch.einsum("bi,ij,bj->", res, N, res), x)
    got = likelihood_gradient(x, x0(x), y, op, "pigdm", r2=r2, sigma_y=sigma)
    torch.testing.assert_close(got, want)


def test_pigdm_prior_var_must_be_positive():
    with pytest.raises(ValueError, match="pigdm_prior_var"):
        VarianceScaledSampler(form="pigdm", pigdm_prior_var=0.0)
    with pytest.raises(ValueError, match="residual=mean"):
        VarianceScaledSampler(form="pigdm", residual="mean")
    # the interpolation baseline hands it to its two chains
    assert InterpolationSampler(form="pigdm", pigdm_prior_var=0.3).inner.pigdm_prior_var == 0.3


def test_dp_gap_summary_on_hand_computed_rows():
    """``gap_summary`` (scripts/dp_gap.py): D* = 1; λ = 0 at MSE 1.1 beyond √D* (optimum D*: gap
    0.1); λ = 1 at W2 = 0 (optimum 2D*: gap 0.5); λ = 0.5 at W2 = 0.5 (optimum 1.25, MSE 1.45:
    gap 0.2)."""
    from vsdr.tasks.analytic import gap_summary

    rows = [{"value": "1.0", "mse": "2.5", "w2": "0", "mmse": "1"},
            {"value": "0.0", "mse": "1.1", "w2": "1.2", "mmse": "1"},
            {"value": "0.5", "mse": "1.45", "w2": "0.5", "mmse": "1"}]
    s = gap_summary(rows)
    assert s["mse0_over_dstar"] == pytest.approx(1.1)
    assert s["gap_mean"] == pytest.approx((0.1 + 0.2 + 0.5) / 3)
    assert s["gap_max"] == pytest.approx(0.5)
    assert (s["mse1_over_dstar"], s["w2_end"]) == (pytest.approx(2.5), 0.0)


def test_pigdm_chain_on_an_isotropic_gaussian_prior_follows_theorem_1():
    """With the exact prior score of ``N(μ, s² I)`` (d = 3, a 2×3 ``A``) and ``pigdm_prior_var
    = s²`` the ΠGDM score is the exact posterior score, so ours ends at ``N(E[x0|y], λ Σ)``
    (Theorem 1): at λ = 0 every chain lands next to the posterior mean, at λ = 1 the draws have the
    posterior covariance ``Σ = (I/s² + AᵀA/σ²)⁻¹`` (closed form)."""
    s2, sigma, n = 0.5, 0.3, 600
    mu = torch.tensor([[1.0, -0.5, 0.2]], dtype=DT)
    prior = GaussianMixture(torch.ones(1, dtype=DT), mu, s2 * torch.eye(3, dtype=DT)[None])
    op = MatrixOperator(rows=2, dim=3, draw_seed=5)
    sched = VPSchedule.linear(1000)
    y = torch.tensor([[0.4, -0.8]], dtype=DT)
    post = posterior(prior, op.A, sigma, y)
    m, S = post.means[0, 0], post.covs[0]
    sampler = VarianceScaledSampler(form="pigdm", pigdm_prior_var=s2, progress=False,
                                    zeta={"lam": [0.0, 1.0], "value": [0.5, 0.5]})
    lam = [0.0] * n + [1.0] * n
    out = sampler(ExactPrior(prior, sched), y.expand(2 * n, -1), op, sigma, lam,
                  list(range(2 * n)), sched).samples
    x0, x1 = out[:n], out[n:]
    # x_T is N(0, I), not N(0, 0): its trace fades along the chain but not to zero (METHOD §2)
    assert (x0 - m).norm(dim=1).max() < 0.02 * S.trace().sqrt()
    assert (x0.mean(0) - m).norm() < 2e-3 * S.trace().sqrt()
    torch.testing.assert_close(x1.mean(0), m, atol=4 * (S.trace() / n).sqrt().item(), rtol=0)
    rel = (torch.cov(x1.T) - S).norm() / S.norm()
    assert rel < 0.15


@pytest.mark.parametrize("op,x_shape", [CASES[2], CASES[3], CASES[5]], ids=["blur9", "sr2", "blur_cg"])
def test_solve_gram_float32_agrees_with_float64(op, x_shape):
    """The closed forms keep their eigenbases in float64 and the CG stops at 1e-5 in float32."""
    torch.manual_seed(3)
    y_shape = op.forward(torch.zeros(1, *x_shape, dtype=DT)).shape[1:]
    v = torch.randn(2, *y_shape, dtype=DT)
    ref = op.solve_gram(v, 0.9, 0.05, x_shape)
    got = op.solve_gram(v.float(), 0.9, 0.05, x_shape)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, atol=1e-4 * ref.abs().max().item(), rtol=1e-4)
