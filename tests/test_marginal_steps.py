"""``sampler.step_rule=marginal`` (eq. 12's mean with the jump's own covariance) and
``sampler.average=N`` (docs/METHOD.md §2): hand computations, the closed-form chain against
Theorems 1–2 at K = 20 and 50, sampled chains against both, and the averaged estimator on the
two-mode mixture against D*."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import FAST, compose_cfg

from vsdr.data.analytic import GaussianData, GaussianMixture, MixtureData, posterior, select
from vsdr.diffusion import PerSampleNoise, VPSchedule, per_sample_seeds
from vsdr.diffusion.gaussian_chain import chain_moments
from vsdr.diffusion.noise import chain_seeds
from vsdr.diffusion.step import jump_covariance, psd_sqrt
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.metrics import gaussian_w2
from vsdr.models.exact import ExactPosterior
from vsdr.operators import Identity, MatrixOperator
from vsdr.samplers import VarianceScaledSampler

DT = torch.float64


def gaussian_problem():
    """The 16-D Gaussian of ``experiment=gaussian_theory`` (8 × 16 ``A``, σ_y = 0.5), one ``y``."""
    ds = GaussianData(dim=16, draw_seed=1)
    op = MatrixOperator(rows=8, dim=16, draw_seed=2)
    g = torch.Generator().manual_seed(3)
    y = ds.prior.sample(1, g) @ op.A.T + 0.5 * torch.randn(1, 8, generator=g, dtype=DT)
    post = select(posterior(ds.prior, op.A, 0.5, y), 0)
    return ds, op, y, post.mean(), post.cov()


def test_mixture_hessian_is_the_jacobian_of_its_score():
    mix = GaussianMixture(torch.tensor([0.3, 0.7], dtype=DT),
                          torch.tensor([[-1.0, 0.5], [2.0, -1.0]], dtype=DT),
                          torch.tensor([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.1], [-0.1, 0.9]]], dtype=DT))
    x = torch.randn(5, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    for m in (mix, GaussianMixture(mix.weights[:1] / 0.3, mix.means[:1], mix.covs[:1])):
        want = torch.stack([torch.autograd.functional.jacobian(lambda v, m=m: m.score(v[None])[0], row)
                            for row in x])
        torch.testing.assert_close(m.score_jacobian(x), want, rtol=1e-10, atol=1e-12)
    assert mix.score_jacobian(x)[0, 0, 1] != 0      # not the single-Gaussian −P: x matters


def test_jump_covariance_is_the_gaussian_reverse_variance():
    """1-D: ``x_s ~ N(0, v_s)``, ``x_t = √α x_s + √β n``, so ``v_t = α v_s + β`` and
    ``Var[x_s | x_t] = v_s − α v_s²/v_t``; the score's Jacobian is ``H = −1/v_t``."""
    for beta, v_s in ((0.3, 0.2), (0.05, 2.0), (0.9, 0.01)):
        v_t = (1 - beta) * v_s + beta
        want = v_s - (1 - beta) * v_s**2 / v_t
        got = jump_covariance(beta, torch.tensor([[[-1.0 / v_t]]], dtype=DT))
        assert float(got) == pytest.approx(want, rel=1e-12)


def test_psd_sqrt_by_hand():
    a = torch.tensor([[[4.0, 0.0], [0.0, 9.0]], [[2.0, 1.0], [1.0, 2.0]], [[1.0, 0.0], [0.0, -3.0]]],
                     dtype=DT)
    r = psd_sqrt(a)
    torch.testing.assert_close(r[0], torch.diag(torch.tensor([2.0, 3.0], dtype=DT)))
    torch.testing.assert_close(r[1] @ r[1], a[1])
    torch.testing.assert_close(r[2], torch.diag(torch.tensor([1.0, 0.0], dtype=DT)))  # −3 clipped to 0
    one = psd_sqrt(a[1:2].expand(4, 2, 2))
    assert one.stride(0) == 0 and torch.allclose(one[3], r[1])


def test_marginal_chain_by_hand():
    """K = 3 of T = 30, 2-D Gaussian posterior, exact score, λ = 0.4: the loop written out with
    ``P = (ᾱ Σ + (1 − ᾱ) I)⁻¹``, ``x ← (x − β' P (x − √ᾱ μ))/√α' + √λ ((β'/α')(I − β' P))^{1/2} z``,
    noise at all three steps (K draws after ``x_T``)."""
    T, K, lam, sigma = 30, 3, 0.4, 0.6
    sch = VPSchedule.linear(T=T, beta_start=0.01, beta_end=0.3)
    prior = GaussianMixture(torch.ones(1, dtype=DT), torch.tensor([[0.5, -1.0]], dtype=DT),
                            torch.tensor([[[1.0, 0.4], [0.4, 0.7]]], dtype=DT))
    A = torch.tensor([[1.0, 2.0]], dtype=DT)
    y = torch.tensor([[0.3]], dtype=DT).expand(2, -1).contiguous()
    post = select(posterior(prior, A, sigma, y[:1]), 0)
    mu, Sig = post.mean(), post.cov()
    seeds = per_sample_seeds(5, range(2))
    model = ExactPosterior(prior, A, sigma, sch)
    out = VarianceScaledSampler(progress=False, steps=K, step_rule="marginal")(
        model, y, MatrixOperator(matrix=A.tolist()), sigma, [lam, lam], seeds, sch)

    times = [0, 15, 29]
    ab = [float(sch.alpha_bars[t]) for t in times]
    noise = PerSampleNoise(seeds, (2,), K, dtype=DT)
    x = noise.initial()
    for k in (2, 1, 0):
        beta = 1 - ab[k] / (ab[k - 1] if k else 1.0)
        P = torch.linalg.inv(ab[k] * Sig + (1 - ab[k]) * torch.eye(2, dtype=DT))
        w, V = torch.linalg.eigh(beta / (1 - beta) * (torch.eye(2, dtype=DT) - beta * P))
        root = V @ torch.diag(w.sqrt()) @ V.T
        x = (x - beta * (x - math.sqrt(ab[k]) * mu) @ P.T) / math.sqrt(1 - beta)
        x = x + math.sqrt(lam) * noise.next() @ root.T
    torch.testing.assert_close(out.samples, x, rtol=1e-10, atol=1e-12)
    assert out.nfe == K


def test_one_marginal_step_maps_the_scaled_marginals_exactly():
    """From ``x_t ~ N(√ᾱ_t μ, λ V_t)`` one step (the closed form's ``M``, ``b`` and noise) gives
    ``N(√ᾱ_s μ, λ V_s)``, ``V = ᾱ Σ + (1 − ᾱ) I``, for a coarse jump ᾱ_t/ᾱ_s = 0.3."""
    _, _, _, mu, Sig = gaussian_problem()
    eye = torch.eye(len(mu), dtype=DT)
    ab_s, ab_t, lam = 0.6, 0.18, 0.3
    beta = 1 - ab_t / ab_s
    V_t, V_s = ab_t * Sig + (1 - ab_t) * eye, ab_s * Sig + (1 - ab_s) * eye
    M = (eye - beta * torch.linalg.inv(V_t)) / math.sqrt(1 - beta)
    b = beta * math.sqrt(ab_t) * torch.linalg.solve(V_t, mu) / math.sqrt(1 - beta)
    cov = M @ (lam * V_t) @ M.T + lam * jump_covariance(beta, -torch.linalg.inv(V_t)[None])[0]
    torch.testing.assert_close(M @ (math.sqrt(ab_t) * mu) + b, math.sqrt(ab_s) * mu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(cov, lam * V_s, rtol=1e-10, atol=1e-12)


def moments_ratios(m, C, mu, Sig) -> tuple[float, float]:
    """``MSE/D*`` and ``W2/√D*`` of an output ``N(m, C)`` drawn independently of ``x0 ~ N(μ, Σ)``."""
    d_star = float(torch.trace(Sig))
    mse = float((m - mu).pow(2).sum() + torch.trace(C)) + d_star
    w2 = gaussian_w2(m.numpy(), C.numpy(), mu.numpy(), Sig.numpy())
    return mse / d_star, w2 / math.sqrt(d_star)


@pytest.mark.parametrize("K", [20, 50])
def test_marginal_rule_keeps_theorems_1_and_2_in_closed_form(K):
    """The K-step chain's output in closed form: MSE/D* within 3 % of 1 + λ and W2/√D* within
    0.05 of 1 − √λ (in fact within 1e-4 and 0.004: only the start ``x_T ~ N(0, I)`` differs
    from the scaled marginal ``N(√ᾱ_T μ, λ V_T)``, and its trace is shrunk by ``ᾱ_T``). Today's
    ``eq12`` rule on the same K steps misses 1 + λ at λ = 1 by more than 3 %."""
    _, _, _, mu, Sig = gaussian_problem()
    sub = VPSchedule.linear(T=1000).respace(K)[0]
    for lam in (0.0, 0.25, 0.5, 0.75, 1.0):
        mse, w2 = moments_ratios(*chain_moments(mu, Sig, sub, lam, "marginal"), mu, Sig)
        assert mse == pytest.approx(1 + lam, rel=1e-4), (K, lam)
        assert w2 == pytest.approx(1 - math.sqrt(lam), abs=0.004), (K, lam)
    assert moments_ratios(*chain_moments(mu, Sig, sub, 1.0, "eq12"), mu, Sig)[0] > 2.06


def sampled_outputs(K: int, rule: str, n: int = 4000):
    """``n`` samples per λ ∈ {0, 0.25, 0.5, 0.75, 1} of the K-step chain with ``step_rule=rule``
    and the exact score on ``gaussian_problem``: λs, samples ``(5, n, 16)`` (float64), the
    posterior's ``μ``, ``Σ`` and the respaced schedule."""
    ds, op, y, mu, Sig = gaussian_problem()
    lams = [0.0, 0.25, 0.5, 0.75, 1.0]
    sch = VPSchedule.linear(T=1000)
    out = VarianceScaledSampler(progress=False, steps=K, step_rule=rule)(
        ExactPosterior(ds.prior, op.A, 0.5, sch), y.float().expand(n * len(lams), -1).contiguous(),
        MatrixOperator(matrix=op.A.tolist()), 0.5, torch.tensor(lams).repeat_interleave(n),
        per_sample_seeds(0, range(n)) * len(lams), sch)
    return lams, out.samples.double().reshape(len(lams), n, -1), mu, Sig, sch.respace(K)[0]


@pytest.mark.parametrize("K", [20, 50])
def test_marginal_rule_sampled_follows_the_closed_form(K):
    """4,000 samples per λ through the sampler with the exact score: MSE/D* within 3 % of
    1 + λ and of the closed form, W2/√D* within 0.05 of 1 − √λ."""
    lams, samples, mu, Sig, sub = sampled_outputs(K, "marginal")
    for lam, s in zip(lams, samples):
        mse, w2 = moments_ratios(s.mean(0), torch.cov(s.T), mu, Sig)
        exact = moments_ratios(*chain_moments(mu, Sig, sub, lam, "marginal"), mu, Sig)[0]
        assert mse == pytest.approx(1 + lam, rel=0.03) and mse == pytest.approx(exact, rel=0.03)
        assert w2 == pytest.approx(1 - math.sqrt(lam), abs=0.05), (K, lam)


class LinearEps:
    """``ε(x, t) = c x``: ``x̂0 = a x`` with ``a = (1 − √(1−ᾱ) c)/√ᾱ``."""

    is_conditional = False

    def __init__(self, c: float):
        self.c, self.nfe = c, 0

    def eps(self, x, t):
        self.nfe += 1
        return self.c * x


@pytest.mark.parametrize("residual, weight", [("sum", 1.0), ("mean", 0.5), ("sum_no_sigma", 0.49)])
def test_network_hessian_by_hand(residual, weight):
    """``x̂0 = a x`` and ``A = I`` (2-D, m = 2): ``H = ((√ᾱ a − 1)/(1 − ᾱ) − 2ζ w a²/σ_y²) I``
    with ``w/σ_y²`` = ``1/σ_y²`` (sum), ``1/(2σ_y²)`` (mean), 1 (sum_no_sigma; σ_y² = 0.49)."""
    sch, c, zeta, sigma = VPSchedule.linear(T=30), 0.4, 0.3, 0.7
    s = VarianceScaledSampler(progress=False, residual=residual, step_rule="marginal",
                              zeta={"lam": [0, 1], "value": [zeta, zeta]})
    x = torch.tensor([[0.5, -1.0], [2.0, 0.1]], dtype=DT)
    ab = float(sch.alpha_bars[12])
    a = (1 - math.sqrt(1 - ab) * c) / math.sqrt(ab)
    _, _, H = s.score_and_v(LinearEps(c), x, 12, x, Identity(), sigma, s.zeta(torch.zeros(2)), sch,
                            hessian=True)
    want = (math.sqrt(ab) * a - 1) / (1 - ab) - 2 * zeta * weight / sigma**2 * a * a
    torch.testing.assert_close(H, want * torch.eye(2, dtype=DT).expand(2, 2, 2), rtol=1e-10, atol=1e-12)


def test_chain_seeds():
    seeds = per_sample_seeds(0, range(3))
    got = chain_seeds(seeds, 4)
    assert got[0::4] == seeds and len(set(got)) == 12
    assert chain_seeds(seeds[1:2], 4) == got[4:8] and chain_seeds(seeds, 1) == seeds
    with pytest.raises(ValueError):
        chain_seeds(seeds, 0)


def test_average_is_the_mean_of_its_chains(setup):
    """``average=3``: the mean of the three chains run one by one with ``chain_seeds``, the same
    for a sample alone as in a batch, and ``nfe = 3 K``."""
    schedule, prior, y = setup
    seeds, lam = per_sample_seeds(0, range(6)), [0.0, 0.3, 1.0, 0.5, 0.2, 0.9]
    avg = VarianceScaledSampler(progress=False, steps=10, average=3)(prior, y, Identity(), 0.5, lam, seeds,
                                                                     schedule)
    one = VarianceScaledSampler(progress=False, steps=10)
    chains = one(prior, y.repeat_interleave(3, 0), Identity(), 0.5, torch.tensor(lam).repeat_interleave(3),
                 chain_seeds(seeds, 3), schedule).samples
    torch.testing.assert_close(avg.samples, chains.reshape(6, 3, -1).mean(1), rtol=1e-6,
                               atol=1e-6)
    alone = VarianceScaledSampler(progress=False, steps=10, average=3)(
        prior, y[2:3], Identity(), 0.5, lam[2:3], seeds[2:3], schedule)
    torch.testing.assert_close(alone.samples, avg.samples[2:3], rtol=1e-6, atol=1e-6)
    assert avg.nfe == 30
    assert not torch.allclose(avg.samples[2], chains[6])  # λ = 1: the chains differ


def test_average_approaches_the_mmse_on_the_two_mode_mixture():
    """Two modes at ±(1.5, 0.75), σ_y = 1, exact posterior score, λ = 1, marginal rule with
    K = 50: each chain samples the posterior, so the mean of N independent chains has
    ``MSE = D* (1 + 1/N)``: ≤ 1 + 1/N + 0.05 for N = 1, 4, 16 (2,000 items each), below
    λ = 0's 1.3 (docs/RESULTS.md §4) for N ≥ 4."""
    cfg = compose_cfg(["dataset=mixture"])
    kw = {k: v for k, v in cfg.dataset.items() if k not in ("_target_", "name")}
    kw["means"] = [[-1.5, -0.75], [1.5, 0.75]]
    ds = MixtureData(**kw)
    sch = VPSchedule.linear(T=1000)
    g = torch.Generator().manual_seed(0)
    y = ds.prior.sample(1, g) + torch.randn(1, 2, generator=g, dtype=DT)
    post = select(posterior(ds.prior, torch.eye(2, dtype=DT), 1.0, y), 0)
    mu, d_star, n = post.mean(), float(torch.trace(post.cov())), 2000
    assert post.weights.min() > 0.05  # both modes matter
    for N in (1, 4, 16):
        out = VarianceScaledSampler(progress=False, steps=50, step_rule="marginal", average=N)(
            ExactPosterior(ds.prior, torch.eye(2, dtype=DT), 1.0, sch), y.expand(n, -1).contiguous(),
            Identity(), 1.0, [1.0] * n, per_sample_seeds(1, range(n)), sch)
        ratio = (float((out.samples.double() - mu).pow(2).sum(1).mean()) + d_star) / d_star
        assert 1 + 1 / N - 0.05 <= ratio <= 1 + 1 / N + 0.05, (N, ratio)


def test_step_rule_and_average_are_checked(tmp_path, cache_dir):
    for kwargs, message in (({"step_rule": "ddim"}, "sampler.step_rule='ddim' is not one of"),
                            ({"step_rule": "marginal", "form": "dps"}, "needs sampler.form=paper"),
                            ({"step_rule": "marginal", "variance": "fixed_small"}, "sampler.variance=beta"),
                            ({"average": 0}, "whole number >= 1"), ({"average": 2.5}, "whole number >= 1"),
                            ({"average": True}, "whole number >= 1")):
        with pytest.raises(ValueError, match=message):
            VarianceScaledSampler(**kwargs)
    x = torch.zeros(1, 65, dtype=DT)
    with pytest.raises(ValueError, match="d = 65 is more than 64"):
        VarianceScaledSampler(progress=False, step_rule="marginal")(
            LinearEps(0.1), x, Identity(), 0.5, [0.5], [1], VPSchedule.linear(T=10))
    with pytest.raises(ConfigError, match="sampler.average"):
        run_job(compose_cfg([*FAST, "sampler.average=0"]), tmp_path / "bad")


def test_average_and_marginal_in_a_job(tmp_path, cache_dir):
    rows = run_job(compose_cfg([*FAST, "sampler.steps=10", "sampler.average=3", "sampler.step_rule=marginal",
                                "data.n_test=16"]), tmp_path / "job")
    assert [r["nfe"] for r in rows] == [30, 30]


def test_average_on_images():
    """``average=2`` on ``(B, C, H, W)`` images: the mean of the two chains, one per seed of
    ``chain_seeds``, with ``nfe = 2 K``."""
    sch, K = VPSchedule.linear(T=20), 5
    y = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    seeds, lam = per_sample_seeds(3, range(2)), [0.5, 1.0]
    avg = VarianceScaledSampler(progress=False, steps=K, average=2)(LinearEps(0.3), y, Identity(), 0.5, lam,
                                                                    seeds, sch)
    chains = VarianceScaledSampler(progress=False, steps=K)(
        LinearEps(0.3), y.repeat_interleave(2, 0), Identity(), 0.5, torch.tensor(lam).repeat_interleave(2),
        chain_seeds(seeds, 2), sch)
    assert avg.samples.shape == y.shape and avg.nfe == 2 * K
    torch.testing.assert_close(avg.samples, chains.samples.reshape(2, 2, 1, 4, 4).mean(1))
