"""The variance-scaled sampler's mechanics: eq. 12 by hand, determinism at λ = 0, batching
of several λ, per-sample seeds, the two guidance forms, memory flat in T."""
from __future__ import annotations

import gc
import weakref

import pytest
import torch

from vsdr.diffusion import VPSchedule, ZetaTable, per_sample_seeds, reverse_std, variance_scaled_step
from vsdr.diffusion.noise import PerSampleNoise
from vsdr.models import NetworkPrior, ScoreMLP
from vsdr.operators import Identity
from vsdr.samplers import VarianceScaledSampler


def sampler(**kw):
    return VarianceScaledSampler(progress=False, **kw)


def test_step_matches_hand_computation():
    x = torch.tensor([[1.0, -2.0]])
    score = torch.tensor([[0.5, 0.25]])
    z = torch.tensor([[1.0, 1.0]])
    beta, alpha, sigma, lam = 0.02, 0.98, 0.02**0.5, 0.25
    out = variance_scaled_step(x, score, beta, alpha, sigma, lam, z)
    expected = [(1.0 + 0.02 * 0.5) / 0.98**0.5 + 0.5 * 0.02**0.5,
                (-2.0 + 0.02 * 0.25) / 0.98**0.5 + 0.5 * 0.02**0.5]
    assert out[0].tolist() == pytest.approx(expected, rel=1e-6)
    assert variance_scaled_step(x, score, beta, alpha, sigma, 1.0, None)[0].tolist() == \
        pytest.approx([(1.0 + 0.01) / 0.98**0.5, (-2.0 + 0.005) / 0.98**0.5], rel=1e-6)


def test_per_sample_lambda_broadcasts():
    x = torch.zeros(2, 3)
    z = torch.ones(2, 3)
    out = variance_scaled_step(x, torch.zeros(2, 3), 0.0, 1.0, 1.0, torch.tensor([0.0, 0.25]), z)
    assert out[0].tolist() == [0.0, 0.0, 0.0]
    assert out[1].tolist() == pytest.approx([0.5, 0.5, 0.5])


def test_schedule_tables():
    s = VPSchedule.linear(T=1000)
    assert float(s.betas[0]) == pytest.approx(1e-4) and float(s.betas[-1]) == pytest.approx(0.02)
    assert float(s.alpha_bars[1]) == pytest.approx((1 - 1e-4) * (1 - float(s.betas[1])))
    assert float(s.posterior_variances[0]) == 0.0
    i = 500
    expected = float(s.betas[i] * (1 - s.alpha_bars[i - 1]) / (1 - s.alpha_bars[i]))
    assert reverse_std(s, i, "fixed_small") ** 2 == pytest.approx(expected)


def test_zeta_table_interpolates():
    table = ZetaTable([0.0, 0.5, 1.0], [40.0, 20.0, 10.0])
    assert table([0.0, 0.25, 0.75, 1.0, 2.0]).tolist() == [40.0, 30.0, 15.0, 10.0, 10.0]
    with pytest.raises(ValueError):
        ZetaTable([0.0, 0.0], [1.0, 1.0])


def test_lambda_zero_is_deterministic_given_x_T(setup):
    schedule, prior, y = setup
    x_T = torch.randn(6, 2, generator=torch.Generator().manual_seed(7))
    a = sampler()(prior, y, Identity(), 0.5, [0.0] * 6, per_sample_seeds(0, range(6)), schedule, x_T=x_T)
    b = sampler()(prior, y, Identity(), 0.5, [0.0] * 6, per_sample_seeds(99, range(6)), schedule, x_T=x_T)
    c = sampler()(prior, y, Identity(), 0.5, [1.0] * 6, per_sample_seeds(99, range(6)), schedule, x_T=x_T)
    assert torch.equal(a.samples, b.samples)        # other noise seeds, same x_T: same answer
    assert not torch.allclose(a.samples, c.samples)  # λ = 1 does use the noise
    assert a.nfe == schedule.T


def test_batch_of_lambdas_equals_separate_runs(setup):
    schedule, prior, y = setup
    lams = [0.0, 0.3, 1.0]
    seeds = per_sample_seeds(3, range(len(y)))
    batched = sampler()(prior, y.repeat(len(lams), 1), Identity(), 0.5,
                        torch.tensor(lams).repeat_interleave(len(y)), seeds * len(lams), schedule)
    for k, lam in enumerate(lams):
        alone = sampler()(prior, y, Identity(), 0.5, [lam] * len(y), seeds, schedule)
        torch.testing.assert_close(batched.samples[k * len(y):(k + 1) * len(y)], alone.samples,
                                   rtol=1e-5, atol=1e-6)


def test_sample_does_not_depend_on_batch(setup):
    schedule, prior, y = setup
    seeds = per_sample_seeds(5, range(len(y)))
    full = sampler()(prior, y, Identity(), 0.5, [0.5] * len(y), seeds, schedule).samples
    for b in range(len(y)):
        one = sampler()(prior, y[b:b + 1], Identity(), 0.5, [0.5], seeds[b:b + 1], schedule).samples
        torch.testing.assert_close(one[0], full[b], rtol=1e-5, atol=1e-6)


def test_per_sample_noise_stream_independent_of_chunking():
    seeds = per_sample_seeds(0, range(3))
    a = PerSampleNoise(seeds, (2,), 10)
    first = a.initial()
    steps = torch.stack([a.next() for _ in range(9)])
    b = PerSampleNoise(seeds[1:2], (2,), 10)
    assert torch.equal(b.initial()[0], first[1])
    assert torch.equal(torch.stack([b.next() for _ in range(9)])[:, 0], steps[:, 1])
    assert len(set(seeds)) == 3 and per_sample_seeds(0, [1]) == seeds[1:2]


def test_samples_sharing_a_seed_share_one_generator_and_its_numbers():
    """A job repeats each test point's seed once per knob value: those samples get the draws
    of that seed's own stream, computed once (one generator per distinct seed)."""
    seeds = per_sample_seeds(1, range(4))
    own = PerSampleNoise(seeds, (3,), 200)
    want = [own.initial()] + [own.next() for _ in range(199)]
    swept = PerSampleNoise(seeds * 3, (3,), 200)
    assert len(swept.generators) == 4
    got = [swept.initial()] + [swept.next() for _ in range(199)]
    for w, g in zip(want, got):
        assert g.shape == (12, 3) and torch.equal(g, torch.cat([w, w, w]))
    mixed = PerSampleNoise([seeds[2], seeds[0], seeds[2]], (3,), 5).initial()
    assert torch.equal(mixed, want[0][[2, 0, 2]])


def test_dps_form_equals_post_step_correction(setup):
    """`dps` form: x_{t−1} = x'_{t−1} − ζ ∇‖y − A x̂0‖₂ with x' the unconditional step."""
    schedule, prior, y = setup
    zeta, i = 0.3, 17
    s = sampler(form="dps", zeta={"lam": [0, 1], "value": [zeta, zeta]})
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(2))
    score = s.conditional_score(prior, x, i, y, Identity(), 0.5, s.zeta(torch.zeros(6)), schedule)
    b, a = float(schedule.betas[i]), float(schedule.alphas[i])
    got = variance_scaled_step(x, score, b, a, 0.0, 0.0, None)

    ab = float(schedule.alpha_bars[i])
    xr = x.clone().requires_grad_(True)
    eps = prior.net(xr, torch.full((6,), i))
    x0 = (xr - (1 - ab) ** 0.5 * eps) / ab**0.5
    (grad,) = torch.autograd.grad((y - x0).norm(dim=1).sum(), xr)
    uncond = (x - b * eps.detach() / (1 - ab) ** 0.5) / a**0.5
    torch.testing.assert_close(got, uncond - zeta * grad, rtol=1e-4, atol=1e-6)


def test_paper_form_is_score_plus_weighted_likelihood(setup):
    schedule, prior, y = setup
    zeta, i, sigma = 0.7, 5, 0.4
    s = sampler(form="paper", zeta={"lam": [0, 1], "value": [zeta, zeta]})
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(4))
    got = s.conditional_score(prior, x, i, y, Identity(), sigma, s.zeta(torch.zeros(6)), schedule)
    ab = float(schedule.alpha_bars[i])
    xr = x.clone().requires_grad_(True)
    eps = prior.net(xr, torch.full((6,), i))
    x0 = (xr - (1 - ab) ** 0.5 * eps) / ab**0.5
    (grad,) = torch.autograd.grad((y - x0).pow(2).sum(), xr)
    expected = -eps.detach() / (1 - ab) ** 0.5 - zeta * grad / sigma**2
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_paper_form_mean_residual(setup):
    """sampler.residual=mean: ĉ = −(1/σ_y²) ∇‖y − A x̂0‖²/m (m = 2 entries here), the sum form's
    likelihood term divided by m; the default (sum) is the hand formula above."""
    schedule, prior, y = setup
    zeta, i, sigma = 0.7, 5, 0.4
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(4))
    lam0 = torch.zeros(6)
    mean = sampler(form="paper", residual="mean", zeta={"lam": [0, 1], "value": [zeta, zeta]})
    total = sampler(form="paper", zeta={"lam": [0, 1], "value": [zeta, zeta]})
    prior_only = sampler(form="paper", zeta={"lam": [0, 1], "value": [0.0, 0.0]})
    s0 = prior_only.conditional_score(prior, x, i, y, Identity(), sigma, prior_only.zeta(lam0), schedule)
    got = mean.conditional_score(prior, x, i, y, Identity(), sigma, mean.zeta(lam0), schedule)
    full = total.conditional_score(prior, x, i, y, Identity(), sigma, total.zeta(lam0), schedule)
    torch.testing.assert_close(got - s0, (full - s0) / 2, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="belongs to sampler.form=paper"):
        sampler(form="dps", residual="mean")
    with pytest.raises(ValueError, match="belongs to sampler.form=paper"):
        sampler(form="pigdm", residual="sum_no_sigma")
    with pytest.raises(ValueError, match="not one of"):
        sampler(form="paper", residual="max")


def test_paper_form_residual_without_sigma(setup):
    """sampler.residual=sum_no_sigma: ζ multiplies −∇‖y − A x̂0‖² itself (it absorbs the
    likelihood's 1/σ_y², docs/METHOD.md §7): the sum form's likelihood term times σ_y², so
    ζ = 1/(2σ_y²) here is the sum form's Bayes weight ζ = ½."""
    schedule, prior, y = setup
    i, sigma = 5, 0.4
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(4))
    lam0 = torch.zeros(6)

    def term(residual, zeta):
        s = sampler(form="paper", residual=residual, zeta={"lam": [0, 1], "value": [zeta, zeta]})
        s0 = sampler(form="paper", residual=residual, zeta={"lam": [0, 1], "value": [0.0, 0.0]})
        return (s.conditional_score(prior, x, i, y, Identity(), sigma, s.zeta(lam0), schedule)
                - s0.conditional_score(prior, x, i, y, Identity(), sigma, s0.zeta(lam0), schedule))

    torch.testing.assert_close(term("sum_no_sigma", 1 / (2 * sigma**2)), term("sum", 0.5),
                               rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(term("sum_no_sigma", 0.7), term("sum", 0.7) * sigma**2, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("i", "residual", "sigma", "ratio"), [
    (0, "sum", 0.05, 231.0), (999, "sum", 0.05, 46_600.0), (999, "mean", 0.05, 0.237),
    (0, "sum", 0.2, 57.6), (999, "sum", 0.2, 11_600.0), (999, "mean", 0.2, 0.0592),
    (0, "sum_no_sigma", 0.2, 2.31), (999, "sum_no_sigma", 0.2, 466.0), (999, "sum_no_sigma", 0.5, 1160.0)])
def test_paper_table_step_against_dps_step_at_256(i, residual, sigma, ratio):
    """docs/METHOD.md §2 and §7: the paper's ζ = 39 step against DPS's ζ = 0.3 step at 256² RGB,
    T = 1000, on a residual of the size of the noise (‖y − A x̂0‖ = σ_y √m, m = 196,608). The
    step in x of each form is β_t/√α_t times its likelihood term; in closed form the ratio is
    2 β_t ζ ‖r‖/(√α_t σ_y² ζ_DPS) (sum), that over m (mean) and that times σ_y² (sum_no_sigma):
    at σ_y = 0.05, 230.6 at t = 1, 46,580 at t = T, 0.237 at t = T (mean)."""
    schedule = VPSchedule.linear(T=1000)
    m = 3 * 256 * 256

    class ZeroEps:                       # x̂0 = x_t/√ᾱ_t: the ratio does not depend on the network
        nfe = 0

        def eps(self, x, i):
            return torch.zeros_like(x)

    ab = float(schedule.alpha_bars[i])
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    n = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    n = n / n.norm() * m**0.5             # ‖r‖ = σ_y √m exactly
    y = x / ab**0.5 + sigma * n
    lam0 = torch.zeros(1)

    def likelihood_term(s):
        zeta = s.zeta(lam0)
        full = s.conditional_score(ZeroEps(), x, i, y, Identity(), sigma, zeta, schedule)
        return full - s.conditional_score(ZeroEps(), x, i, y, Identity(), sigma, zeta * 0, schedule)

    paper = sampler(form="paper", residual=residual, zeta={"lam": [0, 1], "value": [39.0, 39.0]})
    dps = sampler(form="dps", zeta={"lam": [0, 1], "value": [0.3, 0.3]})
    got = float(likelihood_term(paper).norm() / likelihood_term(dps).norm())
    b, a = float(schedule.betas[i]), float(schedule.alphas[i])
    closed = 2 * b * 39.0 * sigma * m**0.5 / (a**0.5 * sigma**2 * 0.3)
    closed *= {"sum": 1.0, "mean": 1.0 / m, "sum_no_sigma": sigma**2}[residual]
    assert got == pytest.approx(closed, rel=1e-6)
    assert got == pytest.approx(ratio, rel=0.01)


def test_graph_is_freed_every_step():
    """No state of the chain keeps an autograd graph alive: memory is flat in T."""
    schedule = VPSchedule.linear(T=200)
    prior = NetworkPrior(ScoreMLP().eval().requires_grad_(False), schedule)
    y = torch.zeros(4, 2)
    refs = []

    def keep_ref(i, x):
        assert x.grad_fn is None and not x.requires_grad
        refs.append(weakref.ref(x))

    out = sampler()(prior, y, Identity(), 0.5, [1.0] * 4, per_sample_seeds(0, range(4)), schedule,
                    callback=keep_ref)
    gc.collect()
    alive = [r for r in refs[:-1] if r() is not None]
    assert len(refs) == 200 and not alive
    assert out.samples.grad_fn is None


def test_identity_data_step_minimises_the_hqs_objective():
    from vsdr.operators import Identity

    x0_hat, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -2.0]])
    out = Identity().prox_data(x0_hat, y, 0.5)
    # hand: (y + 0.5 x̂0) / 1.5
    assert out[0].tolist() == pytest.approx([(3 + 0.5) / 1.5, (-2 + 1) / 1.5])
