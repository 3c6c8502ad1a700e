"""``sampler.form=pigdm_iso`` (docs/METHOD.md §2): the posterior-mean shift against Gaussian
conditioning done with dense matrices, the guided score against the exact posterior score of an
isotropic Gaussian prior (where it equals the ``pigdm`` form without its network gradient), its
Hutchinson trace against the full Jacobian, and Theorems 1–2 on K = 20 and 50 steps."""
from __future__ import annotations

import math

import pytest
import torch
from test_marginal_steps import moments_ratios
from test_pigdm import CASES, IDS, dense
from test_trace_steps import TanhEps

from vsdr.data.analytic import GaussianMixture, posterior, select
from vsdr.diffusion import VPSchedule, per_sample_seeds
from vsdr.diffusion.gaussian_chain import chain_moments
from vsdr.diffusion.guidance import posterior_mean_shift
from vsdr.models.exact import ExactPrior
from vsdr.operators import MatrixOperator
from vsdr.samplers import VarianceScaledSampler

DT = torch.float64
HALF = {"lam": [0.0, 1.0], "value": [0.5, 0.5]}


@pytest.mark.parametrize("op,x_shape", CASES, ids=IDS)
def test_posterior_mean_shift_is_gaussian_conditioning(op, x_shape):
    """``x0 ~ N(m, r² I)``, ``y = A x0 + σ n``: ``E[x0|y] − m = r² Aᵀ (r² AAᵀ + σ² I)⁻¹ (y − A m)``,
    here by the information form ``(I/r² + AᵀA/σ²)⁻¹ (m/r² + Aᵀy/σ²) − m`` on the dense ``A``."""
    torch.manual_seed(0)
    A = dense(op, x_shape)
    r2, sigma = 0.7, 0.3
    m = torch.randn(2, *x_shape, dtype=DT)
    y = op.forward(torch.randn(2, *x_shape, dtype=DT))
    got = posterior_mean_shift(m, y, op, r2, sigma)
    assert got.shape == m.shape
    prec = torch.eye(A.shape[1], dtype=DT) / r2 + A.T @ A / sigma**2
    for b in range(2):
        mean = torch.linalg.solve(prec, m[b].flatten() / r2 + A.T @ y[b].flatten() / sigma**2)
        torch.testing.assert_close(got[b].flatten(), mean - m[b].flatten(), atol=1e-9, rtol=1e-9)


def isotropic_problem(s2: float = 0.6, d: int = 4, rows: int = 3):
    mu = torch.linspace(-1.0, 2.0, d, dtype=DT)[None]
    prior = GaussianMixture(torch.ones(1, dtype=DT), mu, s2 * torch.eye(d, dtype=DT)[None])
    return prior, MatrixOperator(rows=rows, dim=d, draw_seed=3)


@pytest.mark.parametrize("i", [5, 300, 900])
def test_score_is_the_exact_posterior_score_for_an_isotropic_gaussian_prior(i):
    """Prior ``N(μ, s² I)``: ``Cov[x0|x_t] = r_t² I`` exactly, so at ζ = ½ with ``pigdm_prior_var
    = s²`` the score is ``∇ log p_t(x_t|y)`` of the diffused posterior (independent closed form)
    and equals the ``pigdm`` form's, which takes its Jacobian from autograd; on a prior that is not
    isotropic both are approximations and differ."""
    s2, sigma = 0.6, 0.4
    prior, op = isotropic_problem(s2)
    sched = VPSchedule.linear(1000)
    gen = torch.Generator().manual_seed(4)
    y = torch.randn(3, 3, generator=gen, dtype=DT)
    x = torch.randn(3, 4, generator=gen, dtype=DT)
    zeta = torch.full((3,), 0.5, dtype=DT)

    def score(form, p):
        s = VarianceScaledSampler(form=form, pigdm_prior_var=s2, progress=False)
        return s.conditional_score(ExactPrior(p, sched), x, i, y, op, sigma, zeta, sched)

    want = posterior(prior, op.A, sigma, y).diffused(sched.at(i)["alpha_bar"]).score(x)
    torch.testing.assert_close(score("pigdm_iso", prior), want, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(score("pigdm", prior), want, atol=1e-9, rtol=1e-9)
    tilted = GaussianMixture(prior.weights, prior.means, torch.diag(torch.tensor([0.1, 0.6, 1.5, 3.0],
                                                                                 dtype=DT))[None])
    assert (score("pigdm_iso", tilted) - score("pigdm", tilted)).abs().max() > 1e-3


def test_one_forward_pass_a_step_and_no_graph():
    """Without the trace rule the network is called once a step with gradients off (it may be
    a network that cannot be differentiated), and ``nfe = K``."""

    class NoGrad(TanhEps):
        def eps(self, x, t):
            assert not torch.is_grad_enabled() and not x.requires_grad
            return super().eps(x, t)

    net, sch = NoGrad(), VPSchedule.linear(T=50)
    s = VarianceScaledSampler(form="pigdm_iso", steps=10, progress=False, zeta=HALF)
    op = MatrixOperator(matrix=[[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]])
    y = torch.tensor([[0.9, -0.3]], dtype=DT).expand(2, -1)
    out = s(net, y, op, 0.4, [0.0, 1.0], per_sample_seeds(0, range(2)), sch)
    assert out.nfe == 10 and torch.isfinite(out.samples).all()


def test_hutchinson_trace_is_unbiased():
    """``tr(H)/d`` with ``H = (√ᾱ P J − I)/(1 − ᾱ)``, ``P = I − 2ζ r² Aᵀ(r² AAᵀ + σ² I)⁻¹ A`` and
    ``J = ∂x̂0/∂x_t`` from ``torch.autograd.functional.jacobian``, against the mean of 40,000
    one-probe estimates."""
    net, sch, i, zeta, sigma, s2 = TanhEps(), VPSchedule.linear(T=50), 20, 0.7, 0.4, 0.8
    A = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]], dtype=DT)
    op = MatrixOperator(matrix=A.tolist())
    x0 = torch.tensor([0.4, -1.2, 0.7], dtype=DT)
    y = torch.tensor([0.9, -0.3], dtype=DT)
    ab = sch.at(i)["alpha_bar"]

    def x0_hat(v):
        return (v - math.sqrt(1 - ab) * net.eps(v[None], i)[0]) / math.sqrt(ab)

    J = torch.autograd.functional.jacobian(x0_hat, x0)
    r2 = s2 * (1 - ab) / (1 - ab + s2 * ab)
    P = torch.eye(3, dtype=DT) - 2 * zeta * r2 * A.T @ torch.linalg.solve(
        r2 * A @ A.T + sigma**2 * torch.eye(2, dtype=DT), A)
    want = float((math.sqrt(ab) * torch.trace(P @ J) - 3) / (1 - ab) / 3)

    n = 40000
    s = VarianceScaledSampler(progress=False, form="pigdm_iso", step_rule="trace", pigdm_prior_var=s2,
                              zeta={"lam": [0, 1], "value": [zeta, zeta]})
    g = torch.Generator().manual_seed(1)
    probes = (torch.randn(n, 3, generator=g, dtype=DT), torch.randn(n, 2, generator=g, dtype=DT))
    _, _, hbar = s.score_and_v(net, x0.expand(n, -1), i, y.expand(n, -1), op, sigma,
                               s.zeta(torch.zeros(n)), sch, probes=probes)
    se = float(hbar.std()) / math.sqrt(n)
    assert float(hbar.mean()) == pytest.approx(want, abs=4 * se), (float(hbar.mean()), want, se)
    assert se < 0.05 * abs(want)
    # P matters: the estimate without it (ζ = 0) is another number
    assert abs(float((math.sqrt(ab) * torch.trace(J) - 3) / (1 - ab) / 3) - want) > 20 * se


@pytest.mark.parametrize("K", [20, 50])
def test_theorems_1_and_2_on_few_steps(K):
    """16-D prior ``N(μ, 0.5 I)``, the 8 × 16 ``A`` of ``experiment=gaussian_theory``, σ_y = 0.5:
    with ``pigdm_prior_var = 0.5`` the form's score is exact (see above), so the K-step trace
    chain (its trace a one-probe estimate) ends at the closed form of ``chain_moments`` and at
    Theorems 1–2: 4,000 samples per λ, MSE/D* within 3 % of the closed form and of 1 + λ, W2/√D*
    within 0.04 of the closed form's (4,000 samples in 16-D leave a W2 floor of about 0.03), which
    is within 0.05 of 1 − √λ."""
    s2, sigma, n, d = 0.5, 0.5, 4000, 16
    prior, op = isotropic_problem(s2, d, 8)
    g = torch.Generator().manual_seed(3)
    y = prior.sample(1, g) @ op.A.T + sigma * torch.randn(1, 8, generator=g, dtype=DT)
    post = select(posterior(prior, op.A, sigma, y), 0)
    mu, Sig = post.mean(), post.cov()
    lams = [0.0, 0.25, 0.5, 0.75, 1.0]
    sch = VPSchedule.linear(T=1000)
    s = VarianceScaledSampler(form="pigdm_iso", pigdm_prior_var=s2, steps=K, step_rule="trace",
                              progress=False, zeta=HALF)
    out = s(ExactPrior(prior, sch), y.expand(n * len(lams), -1).contiguous(), op, sigma,
            torch.tensor(lams, dtype=DT).repeat_interleave(n), per_sample_seeds(0, range(n)) * len(lams), sch)
    samples = out.samples.reshape(len(lams), n, d)
    sub = sch.respace(K)[0]
    for lam, x in zip(lams, samples):
        mse, w2 = moments_ratios(x.mean(0), torch.cov(x.T), mu, Sig)
        exact, exact_w2 = moments_ratios(*chain_moments(mu, Sig, sub, lam, "trace"), mu, Sig)
        assert mse == pytest.approx(exact, rel=0.03), (K, lam, mse)
        assert mse == pytest.approx(1 + lam, rel=0.03), (K, lam, mse)
        assert w2 == pytest.approx(exact_w2, abs=0.04), (K, lam, w2)
        assert exact_w2 == pytest.approx(1 - math.sqrt(lam), abs=0.05), (K, lam, exact_w2)


@pytest.mark.parametrize("guidance", ["pigdm_iso", "pigdm"])
@pytest.mark.parametrize("experiment", ["images_proxy", "ffhq_deblur", "ffhq_sr8"])
def test_guidance_config_swaps_the_form_after_any_experiment(experiment, guidance):
    """``guidance=pigdm_iso`` (or ``pigdm``) comes after ``experiment=`` in the defaults: it
    replaces the form, the ζ table (here FFHQ's 11-entry paper rows) and the residual (FFHQ's
    ``mean`` belongs to the paper form), and the sampler builds."""
    from conftest import compose_cfg

    from vsdr.config import instantiate

    cfg = compose_cfg([f"experiment={experiment}", f"guidance={guidance}"])
    s = instantiate(cfg.sampler, "sampler", progress=False)
    assert (s.form, s.residual, s.pigdm_prior_var) == (guidance, "sum", 1.0)
    assert s.zeta.lam.tolist() == [0.0, 1.0] and s.zeta.value.tolist() == [0.5, 0.5]
    assert compose_cfg([f"experiment={experiment}"]).sampler.form != guidance


@pytest.mark.parametrize("guidance", ["pigdm_iso", "pigdm"])
def test_guidance_with_a_sampler_that_has_no_form_is_one_sentence(guidance):
    from conftest import compose_cfg

    from vsdr.errors import ConfigError
    from vsdr.experiments.validate import validate_config

    with pytest.raises(ConfigError) as e:
        validate_config(compose_cfg(["experiment=images_proxy_dps", f"guidance={guidance}"]))
    assert str(e.value) == (f"guidance={guidance} sets ours' conditional score (sampler.form and its "
                            "ζ); sampler=dps has none: use sampler=ours, or drop guidance=")


def test_every_guidance_config_is_named_after_the_form_it_sets():
    """validate_config names the guidance by the form it set: that holds for every file of
    conf/guidance/ (GUIDANCE_FORMS lists them)."""
    from conftest import CONF
    from omegaconf import OmegaConf

    from vsdr.experiments.validate import GUIDANCE_FORMS

    files = sorted((CONF / "guidance").glob("*.yaml"))
    assert sorted(p.stem for p in files) == sorted(GUIDANCE_FORMS)
    assert all(OmegaConf.load(p).sampler.form == p.stem for p in files)
