"""Analytic oracles (docs/METHOD.md §3–§4): exact posteriors and scores, and the variance-scaled
sampler against Theorems 1–2 with the exact conditional score."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import compose_cfg

from vsdr.data.analytic import GaussianData, GaussianMixture, MixtureData, posterior, select
from vsdr.diffusion import VPSchedule, per_sample_seeds
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.metrics import empirical_w2, gaussian_w2
from vsdr.metrics.kl import kl_to_density
from vsdr.models.exact import ExactPosterior, ExactPrior
from vsdr.operators import Identity, MatrixOperator
from vsdr.samplers import VarianceScaledSampler
from vsdr.tasks.analytic import optimal_mse

DT = torch.float64


def mixture_from_config() -> MixtureData:
    cfg = compose_cfg(["dataset=mixture"])
    return MixtureData(**{k: v for k, v in cfg.dataset.items() if k not in ("_target_", "name")})


def test_gaussian_posterior_by_hand():
    # x0 ~ N(1, 4), y = 2 x0 + N(0, 1), y = 3:  Σ = (1/4 + 4)^-1,  μ = Σ (1/4 + 2·3)
    prior = GaussianMixture(torch.ones(1, dtype=DT), torch.tensor([[1.0]], dtype=DT),
                            torch.tensor([[[4.0]]], dtype=DT))
    post = select(posterior(prior, torch.tensor([[2.0]], dtype=DT), 1.0, torch.tensor([[3.0]])), 0)
    assert float(post.cov()) == pytest.approx(1 / 4.25)
    assert float(post.mean()) == pytest.approx(6.25 / 4.25)


def test_mixture_posterior_matches_bayes_rule_on_a_grid():
    ds = mixture_from_config()
    sigma, y = 1.0, torch.tensor([[0.3, -0.2]], dtype=DT)
    post = select(posterior(ds.prior, torch.eye(2, dtype=DT), sigma, y), 0)
    g = torch.linspace(-6, 6, 601, dtype=DT)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([X.ravel(), Y.ravel()], 1)
    log_w = ds.prior.log_prob(pts) - ((pts - y) ** 2).sum(1) / (2 * sigma**2)
    w = torch.softmax(log_w, 0)
    mean = (w[:, None] * pts).sum(0)
    cov = ((pts - mean).T * w) @ (pts - mean)
    torch.testing.assert_close(post.mean(), mean, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(post.cov(), cov, atol=1e-5, rtol=1e-5)
    # and the posterior density itself is Bayes' rule, normalised
    dens = torch.exp(post.log_prob(pts))
    torch.testing.assert_close(dens / dens.sum(), w, atol=1e-9, rtol=1e-6)


def test_scores_are_gradients_of_the_diffused_densities():
    ds = mixture_from_config()
    post = posterior(ds.prior, torch.eye(2, dtype=DT), 1.0, torch.tensor([[0.5, 0.5]], dtype=DT))
    x = torch.randn(7, 2, dtype=DT, generator=torch.Generator().manual_seed(0), requires_grad=True)
    for mix in (ds.prior.diffused(0.3), select(post, 0).diffused(0.7)):
        (grad,) = torch.autograd.grad(mix.log_prob(x).sum(), x)
        torch.testing.assert_close(mix.score(x.detach()), grad)
    # ExactPrior's ε is −√(1−ᾱ) times the diffused prior score
    sch = VPSchedule.linear(T=100)
    eps = ExactPrior(ds.prior, sch).eps(x.detach(), 40)
    ab = float(sch.alpha_bars[40])
    torch.testing.assert_close(eps, -math.sqrt(1 - ab) * ds.prior.diffused(ab).score(x.detach()))


def test_batched_posterior_equals_one_at_a_time():
    ds = GaussianData(dim=3, draw_seed=4)
    op = MatrixOperator(rows=2, dim=3, draw_seed=5)
    ys = torch.randn(4, 2, dtype=DT)
    batched = posterior(ds.prior, op.A, 0.3, ys)
    for b in range(4):
        one = select(posterior(ds.prior, op.A, 0.3, ys[b:b + 1]), 0)
        torch.testing.assert_close(select(batched, b).mean(), one.mean())
    score = ExactPosterior(ds.prior, op.A, 0.3, VPSchedule.linear(T=10))
    x = torch.randn(4, 3, dtype=DT)
    s_all = score.score(x, 5, ys)
    s_one = torch.cat([ExactPosterior(ds.prior, op.A, 0.3, VPSchedule.linear(T=10))
                       .score(x[b:b + 1], 5, ys[b:b + 1]) for b in range(4)])
    torch.testing.assert_close(s_all, s_one)


def test_optimal_curve():
    assert optimal_mse(4.0, 0.0) == pytest.approx(8.0)      # λ = 1 end: 2 D*
    assert optimal_mse(4.0, 2.0) == pytest.approx(4.0)      # P = √D*: the MMSE
    assert optimal_mse(4.0, 3.0) == pytest.approx(4.0)      # flat beyond
    lam = 0.25                                              # P = (1 − √λ)√D*  ->  (1 + λ) D*
    assert optimal_mse(4.0, (1 - math.sqrt(lam)) * 2.0) == pytest.approx((1 + lam) * 4.0)


def sample_exact(prior, A, sigma, y, lams, n, T=1000):
    """``n`` samples per λ of the variance-scaled chain with the exact posterior score."""
    sch = VPSchedule.linear(T=T)
    model = ExactPosterior(prior, A, sigma, sch)
    op = MatrixOperator(matrix=A.tolist())
    out = VarianceScaledSampler(progress=False)(
        model, y.float().expand(n * len(lams), -1).contiguous(), op, sigma,
        torch.tensor(lams).repeat_interleave(n), per_sample_seeds(0, range(n)) * len(lams), sch)
    return out.samples.double().reshape(len(lams), n, -1)


@pytest.mark.parametrize("dim,rows", [(2, 1), (16, 8)])
def test_theorems_1_and_2_with_the_exact_posterior_score(dim, rows):
    """Theorem 1: x̂ ~ N(E[x0|y], λ Σ); Theorem 2: MSE = (1 + λ) D*, W2 = (1 − √λ) √tr Σ."""
    torch.set_num_threads(1)
    ds = GaussianData(dim=dim, draw_seed=1)
    op = MatrixOperator(rows=rows, dim=dim, draw_seed=2)
    sigma = 0.5
    g = torch.Generator().manual_seed(3)
    y = ds.prior.sample(1, g) @ op.A.T + sigma * torch.randn(1, rows, generator=g, dtype=DT)
    post = select(posterior(ds.prior, op.A, sigma, y), 0)
    mu, Sig = post.mean(), post.cov()
    assert not torch.allclose(ds.prior.covs[0], torch.diag(torch.diagonal(ds.prior.covs[0])))
    d_star = float(torch.trace(Sig))
    lams = [0.0, 0.25, 0.5, 1.0]
    samples = sample_exact(ds.prior, op.A, sigma, y, lams, n=20000)
    for lam, s in zip(lams, samples):
        mean, cov = s.mean(0), torch.cov(s.T)
        assert float((mean - mu).norm()) / math.sqrt(d_star) < 0.02, lam
        mse = float((s - mu).pow(2).sum(1).mean()) + d_star
        if lam == 0.0:
            assert math.sqrt(float(torch.trace(cov))) < 0.05 * math.sqrt(d_star)
            assert mse / d_star == pytest.approx(1.0, abs=0.03)
            continue
        assert mse / d_star == pytest.approx(1 + lam, rel=0.03), lam
        assert float((cov - lam * Sig).norm() / (lam * Sig).norm()) < 0.05, lam
        w2 = gaussian_w2(mean.numpy(), cov.numpy(), mu.numpy(), Sig.numpy())
        assert w2 == pytest.approx((1 - math.sqrt(lam)) * math.sqrt(d_star),
                                   rel=0.05, abs=0.05 * math.sqrt(d_star) if lam == 1 else 0), lam


def test_mixture_lambda_one_is_the_posterior_and_mse_doubles():
    torch.set_num_threads(1)
    ds = mixture_from_config()
    sigma, y = 1.0, torch.tensor([ds.observation], dtype=DT)
    post = select(posterior(ds.prior, torch.eye(2, dtype=DT), sigma, y), 0)
    d_star = float(torch.trace(post.cov()))
    samples = sample_exact(ds.prior, torch.eye(2, dtype=DT), sigma, y, [0.0, 1.0], n=20000)
    mse = [float((s - post.mean()).pow(2).sum(1).mean()) + d_star for s in samples]
    assert mse[1] / mse[0] == pytest.approx(2.0, rel=0.05)
    # λ = 1 against exact posterior draws; the sampling floor is W2/KL of exact draws
    g = torch.Generator().manual_seed(11)
    ref, ref2 = post.sample(5000, g), post.sample(5000, g)
    floor = empirical_w2(ref2.numpy(), ref.numpy())[0]
    w2 = empirical_w2(samples[1][:5000].numpy(), ref.numpy())[0]
    assert w2 < 1.5 * floor
    assert abs(kl_to_density(samples[1][:5000], post.log_prob)) < 0.05
    assert kl_to_density(samples[0][:5000], post.log_prob) > 1.0  # λ = 0 collapses


def test_analytic_jobs_write_oracle_columns_and_figures(tmp_path):
    cfg = compose_cfg(["dataset=mixture", "score=exact_posterior", "noise.sigma=1.0",
                       "data.n_test=400", "diffusion.T=200", "lam=[0,0.5,1]", "progress=false",
                       "logger=none", "plots.trajectories=3"])
    rows = run_job(cfg, tmp_path / "mix")
    for name in ["posterior.png", "trajectories.png", "dp_curve.png", "dp_curve_kl.png"]:
        assert (tmp_path / "mix" / name).stat().st_size > 0, name
    header = (tmp_path / "mix" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"mmse", "mse_opt", "kl"} <= set(header)
    assert len({r["mmse"] for r in rows}) == 1
    assert all(r["mse_opt"] == pytest.approx(optimal_mse(r["mmse"], r["w2"])) for r in rows)
    assert rows[-1]["kl"] < rows[0]["kl"]

    cfg = compose_cfg(["dataset=gaussian", "dataset.dim=4", "operator=matrix", "operator.rows=3",
                       "score=exact_prior", "data.n_test=200", "diffusion.T=100",
                       "lam=[0,1]", "progress=false", "logger=none"])
    rows = run_job(cfg, tmp_path / "gauss")
    assert (tmp_path / "gauss" / "theory.png").stat().st_size > 0
    assert rows[0]["w2_estimator"] == "gaussian-moments" and rows[0]["kl"] == ""
    assert all(np.isfinite(r["mse"]) for r in rows)


def test_exact_scores_need_analytic_data(tmp_path):
    cfg = compose_cfg(["score=exact_posterior", "data.n_test=8", "progress=false", "logger=none"])
    with pytest.raises(ConfigError, match="score=exact_posterior needs a data set with a closed-form"):
        run_job(cfg, tmp_path / "job")


def test_identity_as_matrix():
    assert torch.equal(Identity().as_matrix(3), torch.eye(3, dtype=DT))
