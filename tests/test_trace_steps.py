"""``sampler.step_rule=trace`` (eq. 12's mean, the isotropic variance with the jump covariance's
trace; docs/METHOD.md §2): hand computations, the closed-form chain against Theorems 1–2 at
K = 20 and 50, sampled chains, Hutchinson's trace estimate against the Jacobian computed
column by column, and reproducibility of the probes."""
from __future__ import annotations

import math

import pytest
import torch
from test_marginal_steps import LinearEps, gaussian_problem, moments_ratios, sampled_outputs

from vsdr.diffusion import VPSchedule, per_sample_seeds
from vsdr.diffusion.gaussian_chain import chain_moments
from vsdr.diffusion.noise import probe_seeds
from vsdr.diffusion.step import jump_covariance, trace_jump_variance
from vsdr.operators import Identity, MatrixOperator
from vsdr.samplers import VarianceScaledSampler

DT = torch.float64


def test_trace_variance_is_the_jump_variance_when_the_hessian_is_scalar():
    """1-D (and ``H = h I``), data ``N(0, s²)``: ``v = ᾱ s² + 1 − ᾱ`` at both times, the trace
    rule's variance is ``jump_covariance``'s, which is the Gaussian ``Var[x_s | x_t] =
    v_s − α v_s²/v_t``; outside ``[β̃', β'/α']`` it is clipped."""
    for beta, s2, ab_t in ((0.3, 0.2, 0.5), (0.05, 2.0, 0.9), (0.9, 0.01, 0.05)):
        ab_s = ab_t / (1 - beta)
        v_s, v_t = ab_s * s2 + 1 - ab_s, ab_t * s2 + 1 - ab_t
        assert v_t == pytest.approx((1 - beta) * v_s + beta, rel=1e-12)
        got = trace_jump_variance(beta, ab_t, ab_s, torch.tensor([-1.0 / v_t], dtype=DT))
        want = float(jump_covariance(beta, torch.tensor([[[-1.0 / v_t]]], dtype=DT)))
        assert float(got) == pytest.approx(want, rel=1e-12)
        assert float(got) == pytest.approx(v_s - (1 - beta) * v_s**2 / v_t, rel=1e-12)
    beta, ab_t, ab_s = 0.2, 0.4, 0.5
    lo, hi = beta * (1 - ab_s) / (1 - ab_t), beta / (1 - beta)
    got = trace_jump_variance(beta, ab_t, ab_s, torch.tensor([-100.0, 3.0, 0.0], dtype=DT))
    torch.testing.assert_close(got, torch.tensor([lo, hi, hi], dtype=DT))


@pytest.mark.parametrize("K", [20, 50])
def test_trace_rule_in_closed_form(K):
    """On the 16-D Gaussian (posterior eigenvalues 0.07–0.61) the K-step chain's output: MSE/D*
    within 2.5 % of 1 + λ (it is 1.957 at K = 20, λ = 1), W2/√D* within 0.06 of 1 − √λ, and
    nearer Theorem 1 than ``eq12`` on the same steps; on an isotropic posterior it is the
    marginal rule exactly."""
    _, _, _, mu, Sig = gaussian_problem()
    sub = VPSchedule.linear(T=1000).respace(K)[0]
    for lam in (0.0, 0.25, 0.5, 0.75, 1.0):
        mse, w2 = moments_ratios(*chain_moments(mu, Sig, sub, lam, "trace"), mu, Sig)
        assert mse == pytest.approx(1 + lam, rel=0.025), (K, lam)
        assert w2 == pytest.approx(1 - math.sqrt(lam), abs=0.06), (K, lam)
        old = moments_ratios(*chain_moments(mu, Sig, sub, lam, "eq12"), mu, Sig)[0]
        assert abs(mse - 1 - lam) <= abs(old - 1 - lam) + 1e-12
    iso = 0.3 * torch.eye(len(mu), dtype=DT)
    for lam in (0.25, 1.0):
        m, C = chain_moments(mu, iso, sub, lam, "trace")
        m2, C2 = chain_moments(mu, iso, sub, lam, "marginal")
        torch.testing.assert_close(C, C2, rtol=1e-10, atol=1e-12)
        assert moments_ratios(m, C, mu, iso)[0] == pytest.approx(1 + lam, rel=1e-4)


@pytest.mark.parametrize("K", [20, 50])
def test_trace_rule_sampled_follows_the_closed_form(K):
    """4,000 samples per λ with the exact score: MSE/D* within 3 % of the closed form (within
    4 % of 1 + λ: the closed form is 2.2 % off at K = 20), W2/√D* within 0.04 of the closed
    form's (4,000 samples in 16-D leave a W2 floor of about 0.03)."""
    lams, samples, mu, Sig, sub = sampled_outputs(K, "trace")
    for lam, s in zip(lams, samples):
        mse, w2 = moments_ratios(s.mean(0), torch.cov(s.T), mu, Sig)
        exact, exact_w2 = moments_ratios(*chain_moments(mu, Sig, sub, lam, "trace"), mu, Sig)
        assert mse == pytest.approx(exact, rel=0.03) and mse == pytest.approx(1 + lam, rel=0.04)
        assert w2 == pytest.approx(exact_w2, abs=0.04), (K, lam)


class TanhEps(torch.nn.Module):
    """A small nonlinear ε network on 3-D points: ``ε = W₂ tanh(W₁ x + b)``."""

    is_conditional = False

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = torch.randn(5, 3, generator=g, dtype=DT)
        self.b = torch.randn(5, generator=g, dtype=DT)
        self.w2 = 0.5 * torch.randn(3, 5, generator=g, dtype=DT)
        self.nfe = 0

    def eps(self, x, t):
        self.nfe += 1
        return torch.tanh(x @ self.w1.T + self.b) @ self.w2.T


@pytest.mark.parametrize("form", ["paper", "dps"])
def test_hutchinson_trace_is_unbiased(form):
    """``network_trace`` averaged over 40,000 probes equals ``tr(H)/d`` computed from the full
    Jacobian ``J = ∂x̂0/∂x_t`` (``torch.autograd.functional.jacobian``): the prior score's
    ``(√ᾱ tr J − d)/(1 − ᾱ)`` and the Gauss–Newton term, ``−2ζ tr(JᵀAᵀAJ)/σ_y²`` (paper) or
    ``−ζ (√α/β) tr(JᵀAᵀ(I − r̂r̂ᵀ)AJ)/‖r‖`` (dps)."""
    net, sch, i, zeta, sigma = TanhEps(), VPSchedule.linear(T=50), 20, 0.7, 0.4
    A = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]], dtype=DT)
    op = MatrixOperator(matrix=A.tolist())
    x0 = torch.tensor([0.4, -1.2, 0.7], dtype=DT)
    y = torch.tensor([0.9, -0.3], dtype=DT)
    sc = sch.at(i)
    ab = sc["alpha_bar"]

    def x0_hat(v):
        return (v - math.sqrt(1 - ab) * net.eps(v[None], i)[0]) / math.sqrt(ab)

    J = torch.autograd.functional.jacobian(x0_hat, x0)
    r = y - A @ x0_hat(x0)
    if form == "paper":
        tr_g = -2 * zeta / sigma**2 * torch.trace(J.T @ A.T @ A @ J)
    else:
        rh = r / r.norm()
        proj = torch.eye(2, dtype=DT) - torch.outer(rh, rh)
        tr_g = -zeta * math.sqrt(sc["alpha"]) / sc["beta"] * torch.trace(J.T @ A.T @ proj @ A @ J) / r.norm()
    want = float(((math.sqrt(ab) * torch.trace(J) - 3) / (1 - ab) + tr_g) / 3)

    n = 40000
    s = VarianceScaledSampler(progress=False, form=form, step_rule="trace",
                              zeta={"lam": [0, 1], "value": [zeta, zeta]})
    g = torch.Generator().manual_seed(1)
    probes = (torch.randn(n, 3, generator=g, dtype=DT), torch.randn(n, 2, generator=g, dtype=DT))
    _, _, hbar = s.score_and_v(net, x0.expand(n, -1), i, y.expand(n, -1), op, sigma,
                               s.zeta(torch.zeros(n)), sch, probes=probes)
    assert hbar.shape == (n,)
    se = float(hbar.std()) / math.sqrt(n)
    assert float(hbar.mean()) == pytest.approx(want, abs=4 * se), (float(hbar.mean()), want, se)
    assert se < 0.05 * abs(want)                                   # the check has teeth


def test_trace_rule_with_a_network_is_reproducible_and_batch_free():
    """Images ``(B, C, H, W)`` with a network: a sample alone equals the same sample in a batch
    (probes from the sample's own seeds), the last step adds noise (λ = 1 differs from λ = 0
    through the noise only), and ``nfe = K``; the probe streams differ from the chain's."""
    sch, K = VPSchedule.linear(T=20), 5
    y = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    seeds, lam = per_sample_seeds(3, range(3)), [0.5, 1.0, 0.0]
    s = VarianceScaledSampler(progress=False, steps=K, step_rule="trace", form="dps", clip_x0=True,
                              variance="learned_range", zeta={"lam": [0, 1], "value": [0.4, 0.4]})
    net = LinearEps(0.3)
    net.eps_and_v = lambda x, t: (net.eps(x, t), torch.zeros_like(x))
    batch = s(net, y, Identity(), 0.5, lam, seeds, sch)
    alone = s(net, y[1:2], Identity(), 0.5, lam[1:2], seeds[1:2], sch)
    torch.testing.assert_close(alone.samples, batch.samples[1:2], rtol=1e-6, atol=1e-6)
    assert batch.nfe == K            # one network call per step (the probes add backward passes)
    assert len(set(probe_seeds(seeds, 0)) | set(probe_seeds(seeds, 1)) | set(seeds)) == 9
    zero = s(net, y, Identity(), 0.5, [0.0] * 3, seeds, sch).samples
    assert not torch.allclose(zero[1], batch.samples[1])
    torch.testing.assert_close(zero[2], batch.samples[2])


def test_trace_rule_refuses_pigdm():
    with pytest.raises(ValueError, match="sampler.form=pigdm has no such estimate"):
        VarianceScaledSampler(step_rule="trace", form="pigdm")
