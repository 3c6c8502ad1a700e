"""The baselines' mechanics (issue 4): interpolation end points, DPS determinism and its
equality with ours' dps form at λ = 1, DiffPIR's closed-form data step and grid, PSCGAN's
first-moment penalty on a Gaussian with a known MMSE, PSCGAN-N's MSE falling with N."""
from __future__ import annotations

import math
import sys

import lightning as L
import pytest
import torch
from conftest import FAST, compose_cfg

from vsdr.diffusion import VPSchedule
from vsdr.diffusion.step import ddpm_posterior_mean
from vsdr.experiments.job import run_job
from vsdr.models.cgan import ConditionalGenerator, CriticMLP, GeneratorMLP
from vsdr.operators import Identity
from vsdr.samplers import (
    DiffPIRSampler,
    DPSSampler,
    InterpolationSampler,
    PSCGANSampler,
    VarianceScaledSampler,
)
from vsdr.samplers.diffpir import diffpir_rho, quadratic_timesteps
from vsdr.training.pscgan_module import PSCGANModule, first_moment_penalty, gradient_penalty
from vsdr.training.score_module import RandomBatches


@pytest.fixture(autouse=True)
def _few_threads():
    """One thread (overrides conftest's two): on a loaded 2-core machine two spinning OpenMP
    threads made a PSCGAN step 10x slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- interpolation

def test_interp_end_points_are_ours_and_the_middle_is_linear(setup):
    schedule, prior, y = setup
    seeds = list(range(100, 106))
    ours = VarianceScaledSampler(progress=False)
    x0 = ours(prior, y, Identity(), 0.5, [0.0] * 6, seeds, schedule).samples
    x1 = ours(prior, y, Identity(), 0.5, [1.0] * 6, seeds, schedule).samples
    interp = InterpolationSampler(progress=False)
    s = torch.tensor([0.0, 1.0, 0.25, 0.0, 1.0, 0.25], dtype=torch.float64)
    y3 = torch.cat([y[:2]] * 3)
    res = interp(prior, y3, Identity(), 0.5, s, seeds[:2] * 3, schedule)
    assert torch.allclose(res.samples[0], x0[0], atol=1e-6)
    assert torch.allclose(res.samples[1], x1[1], atol=1e-6)
    assert torch.allclose(res.samples[2], 0.75 * x0[0] + 0.25 * x1[0], atol=1e-6)
    # the 6 rows share 2 distinct (y, seed) points: 2 chains of T steps in one batch
    assert res.nfe == schedule.T


# ---------------------------------------------------------------- DPS

def test_ddpm_posterior_mean_equals_eq12_mean():
    s = VPSchedule.linear(T=100)
    i = 40
    sc = s.at(i)
    x, eps = torch.randn(5, 2), torch.randn(5, 2)
    x0 = (x - (1 - sc["alpha_bar"]) ** 0.5 * eps) / sc["alpha_bar"] ** 0.5
    score = -eps / (1 - sc["alpha_bar"]) ** 0.5
    mu = ddpm_posterior_mean(x, x0, sc["alpha_bar"], sc["alpha_bar_prev"], sc["beta"])
    assert torch.allclose(mu, (x + sc["beta"] * score) / sc["alpha"] ** 0.5, atol=1e-5)


def test_dps_is_ours_dps_form_at_lambda_one(setup):
    schedule, prior, y = setup
    seeds = list(range(6))
    zeta = [0.0, 0.01, 0.05, 0.0, 0.01, 0.05]
    dps = DPSSampler(progress=False)(prior, y, Identity(), 0.5, zeta, seeds, schedule)
    ours = VarianceScaledSampler(form="dps", variance="fixed_small", progress=False)
    ours.zeta = lambda lam: torch.tensor(zeta, dtype=torch.float64)   # ζ per sample
    ref = ours(prior, y, Identity(), 0.5, [1.0] * 6, seeds, schedule)
    assert torch.allclose(dps.samples, ref.samples, atol=1e-4)
    assert dps.nfe == schedule.T


@pytest.mark.parametrize("spacing", ["even", "quad"])
def test_dps_on_k_steps_is_ours_dps_form_on_the_same_steps(setup, spacing):
    """``sampler.steps=K`` for DPS: the respaced loop (network at ``t_k``, ``β̃'``, one pull a
    step), which is ours' ``dps`` form at λ = 1 on the same K steps (itself checked by hand in
    test_few_steps.py); ``nfe = K``, and K = T is the full loop."""
    schedule, prior, y = setup
    seeds, zeta = list(range(6)), [0.0, 0.01, 0.05, 0.0, 0.01, 0.05]
    dps = DPSSampler(progress=False, steps=7, spacing=spacing)(prior, y, Identity(), 0.5, zeta, seeds,
                                                               schedule)
    ours = VarianceScaledSampler(form="dps", variance="fixed_small", progress=False, steps=7,
                                 spacing=spacing)
    ours.zeta = lambda lam: torch.tensor(zeta, dtype=torch.float64)
    ref = ours(prior, y, Identity(), 0.5, [1.0] * 6, seeds, schedule)
    assert torch.allclose(dps.samples, ref.samples, atol=1e-4) and dps.nfe == 7
    full = DPSSampler(progress=False)(prior, y, Identity(), 0.5, zeta, seeds, schedule)
    same = DPSSampler(progress=False, steps=schedule.T)(prior, y, Identity(), 0.5, zeta, seeds, schedule)
    assert torch.equal(full.samples, same.samples)
    assert not torch.allclose(full.samples, dps.samples)
    for bad in (1, 2.5, True):
        with pytest.raises(ValueError, match="sampler.steps"):
            DPSSampler(steps=bad)
    with pytest.raises(ValueError, match="sampler.spacing"):
        DPSSampler(spacing="log")


def test_dps_fixed_seed_is_deterministic_and_batch_independent(setup):
    schedule, prior, y = setup
    sampler = DPSSampler(progress=False)
    zeta = [0.02] * 6
    a = sampler(prior, y, Identity(), 0.5, zeta, list(range(6)), schedule).samples
    b = sampler(prior, y, Identity(), 0.5, zeta, list(range(6)), schedule).samples
    assert torch.equal(a, b)
    alone = sampler(prior, y[3:4], Identity(), 0.5, zeta[:1], [3], schedule).samples
    assert torch.allclose(alone[0], a[3], atol=1e-6)
    c = sampler(prior, y, Identity(), 0.5, zeta, list(range(10, 16)), schedule).samples
    assert not torch.allclose(a, c)


def test_dps_learned_variance_ends_are_beta_and_fixed_small(setup):
    """``v = +1`` gives σ² = β_t, ``v = −1`` gives β̃_t (guided-diffusion's learned range)."""
    schedule, prior, y = setup

    class WithVariance:
        def __init__(self, v):
            self.v, self.nfe = v, 0

        def eps_and_v(self, x, i):
            eps = prior.eps(x, i)
            self.nfe += 1
            return eps, torch.full_like(eps, self.v)

    zeta, seeds = [0.01] * 6, list(range(6))
    for v, kind in ((1.0, "beta"), (-1.0, "fixed_small")):
        learned = DPSSampler(variance="learned_range", progress=False)(WithVariance(v), y, Identity(), 0.5,
                                                                 zeta, seeds, schedule)
        ref = DPSSampler(variance=kind, progress=False)(prior, y, Identity(), 0.5, zeta, seeds, schedule)
        assert torch.allclose(learned.samples, ref.samples, atol=1e-5), kind
        assert learned.nfe == schedule.T


def test_dps_clip_and_bad_options(setup):
    schedule, prior, y = setup
    out = DPSSampler(clip=[-0.1, 0.1], progress=False)(prior, y, Identity(), 0.5, [0.0] * 6,
                                                        list(range(6)), schedule).samples
    # ζ = 0, last step: x_0 = μ̃ with ᾱ_{-1} = 1, i.e. exactly the clamped x̂0
    assert out.abs().max() <= 0.1 + 1e-6
    with pytest.raises(ValueError, match="learned variance"):
        DPSSampler(variance="learned_range", progress=False)(prior, y, Identity(), 0.5, [0.0] * 6,
                                                       list(range(6)), schedule)
    with pytest.raises(ValueError, match="not one of"):
        DPSSampler(variance="nope")


# ---------------------------------------------------------------- DiffPIR

def test_diffpir_data_step_on_a_hand_computed_case():
    # ‖y − x‖² + ρ‖x − x̂0‖² with y = 3, x̂0 = 1, ρ = 1/3: x = (3 + 1/3)/(4/3) = 2.5
    ab, sigma_y, lam_d = 0.5, 0.5, 4.0 / 3.0          # ρ = λ_D σ² ᾱ/(1 − ᾱ) = 4/3 · 1/4 = 1/3
    rho = diffpir_rho(lam_d, sigma_y, ab)
    assert rho == pytest.approx(1.0 / 3.0)
    x = Identity().prox_data(torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 2.0]]), rho)
    assert x[0].tolist() == pytest.approx([2.5, 1.0])   # second: (2 − 2/3)/(4/3) = 1
    # per-sample ρ, and ρ → ∞ keeps x̂0, ρ = 0 returns y
    x = Identity().prox_data(torch.ones(2, 2), torch.zeros(2, 2), torch.tensor([0.0, 1e12]))
    assert x[0].tolist() == [0.0, 0.0] and x[1].tolist() == pytest.approx([1.0, 1.0])


def test_quadratic_grid_is_diffpirs_quad_grid():
    """DiffPIR's skip_type='quad' (docs/METHOD.md §8): seq_k = ⌊1000 √(k/99)⌋, the last lowered
    by 1, t_k = 999 − seq_k. By hand: k = 1: 1000/√99 = 100.50 → t = 899; k = 2: 142.13 → 857;
    k = 3: 174.08 → 825; k = 4: 201.01 → 798; k = 50: 710.67 → 289; k = 89: 948.15 → 51;
    k = 90: 953.46 → 46; k = 97: 989.85 → 10; k = 98: 994.94 → 5; k = 99: 1000 − 1 → 0.
    (The earlier grid t_k = k + ⌊900 (k/99)²⌋ shared 13 of these 100 times.)"""
    g = quadratic_timesteps(1000, 100)
    assert len(g) == 100 and len(set(g)) == 100
    assert g[-5:] == [798, 825, 857, 899, 999]
    assert g[:3] == [0, 5, 10] and 289 in g and 51 in g and 46 in g
    assert sum(t < 50 for t in g) == 10                       # k = 90 … 99
    # T = 5, 5 steps: √[0, 6.25, 12.5, 18.75, 25] = 0, 2.5, 3.54, 4.33, 5 → seq 0, 2, 3, 4, 4
    # → t = 4, 2, 1, 0, 0: a repeated time where steps is large against T, as in DiffPIR's code
    assert quadratic_timesteps(5, 5) == [0, 0, 1, 2, 4]
    assert quadratic_timesteps(20, 2) == [0, 19]


def test_diffpir_rho_in_unit_interval_units():
    """ρ_t = λ_D σ² ᾱ_t/(1 − ᾱ_t) with σ in [0, 1]-image units (DiffPIR's code): λ_D = 7 and
    σ_y = 0.05 in [−1, 1] units (0.025 in [0, 1]) at ᾱ = 0.8: 7 · 0.025² · 4 = 0.0175; without
    the halving it would be 4× that (0.07)."""
    assert diffpir_rho(7.0, 0.05, 0.8, sigma_scale=0.5) == pytest.approx(0.0175)
    assert diffpir_rho(7.0, 0.05, 0.8) == pytest.approx(0.07)
    assert diffpir_rho(7.0, 0.025, 0.8) == pytest.approx(0.0175)


def test_diffpir_sigma_scale_from_the_task():
    """sampler.sigma_scale=null: 0.5 on images (σ_y in [−1, 1] units), 1 on 2D data; a value
    given in config is kept."""
    from conftest import compose_cfg

    from vsdr.experiments.build import build_job

    assert build_job(compose_cfg(["experiment=images_small_diffpir"])).sampler.sigma_scale == 0.5
    assert build_job(compose_cfg(["experiment=diffpir_lambda"])).sampler.sigma_scale == 1.0
    kept = compose_cfg(["experiment=images_small_diffpir", "sampler.sigma_scale=1"])
    assert build_job(kept).sampler.sigma_scale == 1.0


@pytest.mark.parametrize("last_step", ["paper", "official", "x0hat"])
def test_diffpir_first_step_by_hand_and_nfe(last_step):
    """Oracle prior ε ≡ 0 (x̂0 = x_t/√ᾱ) and ζ_D = 0: the 2-step chain written out, and what
    each ``last_step`` returns at t_0 = 0 (docs/METHOD.md §8, DiffPIR): paper (Algorithm 1) the
    data step's output at t_0, official (DiffPIR's code) the chain state x_{t_0} without the
    last network call, x0hat the network's x̂0 at t_0."""
    schedule = VPSchedule.linear(T=20)

    class ZeroEps:
        nfe = 0

        def eps(self, x, i):
            self.nfe += 1
            return torch.zeros_like(x)

    y = torch.tensor([[1.0, -1.0]])
    from vsdr.diffusion.noise import PerSampleNoise
    xT = PerSampleNoise([7], (2,), 2).initial()
    ab, ab0 = float(schedule.alpha_bars[19]), float(schedule.alpha_bars[0])

    def by_hand(sigma):
        rho = 2.0 * sigma**2 * ab / (1 - ab)
        x0 = (y + rho * xT / ab**0.5) / (1 + rho)                 # data step at t = 19
        eps_hat = (xT - ab**0.5 * x0) / (1 - ab) ** 0.5
        x_next = ab0**0.5 * x0 + (1 - ab0) ** 0.5 * eps_hat      # x at t_0 = 0
        rho0 = 2.0 * sigma**2 * ab0 / (1 - ab0)
        return {"x0hat": x_next / ab0**0.5, "official": x_next,
                "paper": (y + rho0 * x_next / ab0**0.5) / (1 + rho0)}[last_step]

    sampler = DiffPIRSampler(lambda_d=2.0, zeta_d=0.0, steps=2, knob="zeta_d", last_step=last_step,
                             progress=False)
    model = ZeroEps()
    out = sampler(model, y, Identity(), 0.3, [0.0], [7], schedule, keep_trajectory=True)
    torch.testing.assert_close(out.samples, by_hand(0.3), atol=1e-5, rtol=0)
    nfe = 1 if last_step == "official" else 2
    assert out.nfe == nfe and model.nfe == nfe
    assert out.trajectory.shape == (3, 1, 2) and torch.equal(out.trajectory[-1], out.samples)
    # sigma_scale = 0.5 (images): ρ_t = 2 · (0.5 · 0.3)² ᾱ/(1 − ᾱ), a quarter of the above
    half = DiffPIRSampler(lambda_d=2.0, zeta_d=0.0, steps=2, knob="zeta_d", sigma_scale=0.5,
                          last_step=last_step, progress=False)(ZeroEps(), y, Identity(), 0.3, [0.0],
                                                               [7], schedule)
    torch.testing.assert_close(half.samples, by_hand(0.15), atol=1e-5, rtol=0)


def test_diffpir_last_step_numbers_by_hand():
    """One-dimensional case with every number written out: A = [2], y = 1, a constant network
    ε ≡ 1/2, λ_D σ² = 1 (λ_D = 1, σ_y = 1), ζ_D = 0, a 2-step grid t = 1, 0 on a schedule with
    ᾱ_1 = 1/2, ᾱ_0 = 4/5, and x_1 = 1 (set through a stub of the initial noise).

        t = 1: x̂0 = (1 − √(1/2)·½)/√(1/2) = √2 − ½ = 0.914214;  ρ_1 = (1/2)/(1/2) = 1
               data step (AᵀA + ρ) x = Aᵀy + ρ x̂0: x = (2 + 0.914214)/5 = 0.582843
               ε̂ = (1 − √(1/2)·0.582843)/√(1/2) = √2 − 0.582843 = 0.831371
               x_0 = √(4/5)·0.582843 + √(1/5)·0.831371 = 0.521311 + 0.371800 = 0.893111
        t = 0: x̂0 = (0.893111 − √(1/5)·½)/√(4/5) = 0.748528;  ρ_0 = (4/5)/(1/5) = 4
               paper: (2 + 4·0.748528)/8 = 0.624264;  official: 0.893111;  x0hat: 0.748528
    """
    from vsdr.operators import MatrixOperator

    class Schedule:
        T = 2

        def at(self, t):
            return {"alpha_bar": torch.tensor([0.8, 0.5], dtype=torch.float64)[t]}

    class HalfEps:
        nfe = 0

        def eps(self, x, t):
            self.nfe += 1
            return torch.full_like(x, 0.5)

    expected = {"paper": 0.624264, "official": 0.893111, "x0hat": 0.748528}
    for last_step, value in expected.items():
        sampler = DiffPIRSampler(lambda_d=1.0, zeta_d=0.0, steps=2, knob="zeta_d",
                                 last_step=last_step, progress=False)
        y = torch.tensor([[1.0]], dtype=torch.float64)
        import vsdr.samplers.diffpir as dp
        initial = dp.PerSampleNoise.initial
        dp.PerSampleNoise.initial = lambda self: torch.ones(1, 1, dtype=torch.float64)
        try:
            out = sampler(HalfEps(), y, MatrixOperator(matrix=[[2.0]]), 1.0, [0.0], [0], Schedule())
        finally:
            dp.PerSampleNoise.initial = initial
        assert float(out.samples) == pytest.approx(value, abs=2e-6), last_step


def test_diffpir_official_is_diffpirs_loop():
    """last_step='official' against DiffPIR's loop (main_ddpir_deblur.py, η = 0) transcribed:
    for each grid time, x̂0 from the network, then — unless it is the last time — the data step
    and x ← √ᾱ_s x̂0 + √(1−ζ)√(1−ᾱ_s) ε̂ + √ζ √(1−ᾱ_s) z; the result is x. Same network (a fixed
    nonlinear ε), y and noise draws; 'paper' is that loop's data step applied at the last time."""
    from vsdr.diffusion.noise import PerSampleNoise

    schedule = VPSchedule.linear(T=20)
    w = torch.tensor([[0.3, -0.2], [0.1, 0.4]])

    class TanhEps:
        nfe = 0

        def eps(self, x, t):
            self.nfe += 1
            return torch.tanh(x @ w.T + 0.05 * t)

    y, lam, zeta, sigma = torch.tensor([[0.5, -1.0]]), 3.0, 0.3, 0.2
    grid = quadratic_timesteps(20, 5)
    noise = PerSampleNoise([11], (2,), len(grid))
    x = noise.initial()
    for i, t in enumerate(reversed(grid)):
        ab = float(schedule.alpha_bars[t])
        x0 = (x - (1 - ab) ** 0.5 * TanhEps().eps(x, t)) / ab**0.5
        rho = lam * sigma**2 * ab / (1 - ab)
        if i == len(grid) - 1:
            paper = (y + rho * x0) / (1 + rho)
            break
        x0 = (y + rho * x0) / (1 + rho)
        eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        ab_s = float(schedule.alpha_bars[list(reversed(grid))[i + 1]])
        x = (ab_s**0.5 * x0 + (1 - zeta) ** 0.5 * (1 - ab_s) ** 0.5 * eps
             + zeta**0.5 * (1 - ab_s) ** 0.5 * noise.next())
    for last_step, want in (("official", x), ("paper", paper)):
        got = DiffPIRSampler(lambda_d=lam, zeta_d=zeta, steps=5, knob="zeta_d", last_step=last_step,
                             progress=False)(TanhEps(), y, Identity(), sigma, [zeta], [11], schedule)
        torch.testing.assert_close(got.samples, want, atol=1e-6, rtol=1e-6)


def test_diffpir_bad_last_step():
    with pytest.raises(ValueError, match="last_step"):
        DiffPIRSampler(last_step="final")


# ---------------------------------------------------------------- PSCGAN

def test_gan_sizes_near_the_paper():
    g, d = GeneratorMLP(), CriticMLP()
    ng, nd = sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters())
    assert abs(ng - 25682) / 25682 < 0.02 and abs(nd - 25025) / 25025 < 0.02, (ng, nd)


def test_penalties_by_hand():
    x0 = torch.tensor([[1.0, 2.0]])
    samples = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])         # mean (1, 1): ‖(0, 1)‖² = 1
    assert float(first_moment_penalty(samples, x0)) == pytest.approx(1.0)

    class Linear(torch.nn.Module):                              # D(x, y) = 3 x₀ + 4 x₁: ‖∇‖ = 5
        def forward(self, x, y):
            return 3 * x[:, 0] + 4 * x[:, 1]

    gp = gradient_penalty(Linear(), torch.zeros(4, 2), torch.ones(4, 2), torch.zeros(4, 2),
                          torch.rand(4, 1))
    assert float(gp) == pytest.approx(16.0)


def _train_gaussian_gan(steps: int, adv_weight: float = 1e-3, seed: int = 0, batch_size: int = 128):
    """x0 ~ N(0, I₂), y = x0 + σ n: MMSE E[x0|y] = y/(1 + σ²). Returns (G, σ)."""
    sigma = 1.0
    torch.manual_seed(seed)
    g = GeneratorMLP(hidden=(32, 32))
    d = CriticMLP(hidden=(32, 32))
    points = torch.randn(4000, 2, generator=torch.Generator().manual_seed(seed))
    module = PSCGANModule(g, d, Identity(), sigma, M=8, adv_weight=adv_weight, seed=seed)
    loader = torch.utils.data.DataLoader(RandomBatches(points, batch_size, steps, seed=seed),
                                         batch_size=None)
    L.seed_everything(seed, verbose=False)
    L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(module, loader)
    return g.eval().requires_grad_(False), sigma


def test_pscgan_penalty_drives_the_sample_mean_to_the_mmse():
    g, sigma = _train_gaussian_gan(steps=300)
    y = torch.randn(500, 2, generator=torch.Generator().manual_seed(5)) * (1 + sigma**2) ** 0.5
    mmse = y / (1 + sigma**2)
    model = ConditionalGenerator(g)
    sampler = PSCGANSampler(knob="N")
    x64 = sampler(model, y, Identity(), sigma, [64] * 500, list(range(500))).samples
    err = (x64 - mmse).pow(2).sum(1).mean().item()
    # posterior variance tr Σ = 2 · σ²/(1 + σ²) = 1: the mean is within a small fraction of it
    assert err < 0.05, err
    # an untrained generator is far from it (the test can fail)
    raw = ConditionalGenerator(GeneratorMLP(hidden=(32, 32)).eval())
    x_raw = sampler(raw, y, Identity(), sigma, [64] * 500, list(range(500))).samples
    assert (x_raw - mmse).pow(2).sum(1).mean().item() > 0.3


def test_pscgan_generator_ema_by_hand_and_in_training():
    torch.manual_seed(0)
    g, d = GeneratorMLP(hidden=(8,)), CriticMLP(hidden=(8,))
    module = PSCGANModule(g, d, Identity(), 1.0, M=2, ema_decay=0.9)
    before = [p.clone() for p in module.generator_ema.parameters()]
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
    module.update_ema()                                         # ema ← 0.9 ema + 0.1 θ = ema + 0.1
    for b, e in zip(before, module.generator_ema.parameters()):
        assert torch.allclose(e, b + 0.1)
    assert not any(p.requires_grad for p in module.generator_ema.parameters())
    # the optimisers see the trained generator only, and training moves the average
    assert sum(p.numel() for p in module.configure_optimizers()[0].param_groups[0]["params"]) == \
        sum(p.numel() for p in g.parameters())
    ema0 = [p.clone() for p in module.generator_ema.parameters()]
    points = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False).fit(
        module, torch.utils.data.DataLoader(RandomBatches(points, 16, 3), batch_size=None))
    moved = [e for e, b in zip(module.generator_ema.parameters(), ema0) if not torch.equal(e, b)]
    assert moved and not all(torch.equal(e, p) for e, p in zip(module.generator_ema.parameters(),
                                                                 g.parameters()))
    with pytest.raises(ValueError, match="ema_decay"):
        PSCGANModule(g, d, Identity(), 1.0, ema_decay=1.0)


@pytest.mark.slow
def test_shipped_pscgan_traverses_the_dp_plane_on_pinwheel(tmp_path, cache_dir):
    """The shipped `sampler=pscgan` on pinwheel at σ = 0.75 (one full training, ~2 min on one
    thread): N = 1 is spread like posterior samples (≈ 2× the MMSE ≈ 0.8), N = 64 is near the
    MMSE, and σ_z moves the MSE too: fails if G ignores z."""
    common = ["data.n_test=500", "progress=false", "logger=none"]
    rows = run_job(compose_cfg(["experiment=pscgan_n", *common, "sampler.values=[1,64]"]), tmp_path / "n")
    mse = {r["value"]: r["mse"] for r in rows}
    assert mse[1.0] > 1.5 * mse[64.0] and mse[64.0] < 0.9, mse
    rows = run_job(compose_cfg(["experiment=pscgan_sigmaz", *common, "sampler.values=[0,1]"]),
                   tmp_path / "sz")
    mse_z = {r["value"]: r["mse"] for r in rows}
    assert mse_z[1.0] > mse_z[0.0] + 0.2, mse_z


def test_pscgan_n_mse_falls_as_n_grows():
    """A generator whose samples are y/2 + z (so the sample mean is the MMSE y/2 and each
    sample's MSE is MMSE + σ_z² d): MSE(N) = D* + d/N exactly in expectation."""
    class Exact(torch.nn.Module):
        z_dim = 2

        def forward(self, y, z):
            return y / 2 + z

    n = 4000
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(n, 2, generator=gen)
    y = x0 + torch.randn(n, 2, generator=gen)
    model = ConditionalGenerator(Exact())
    Ns = [1, 2, 4, 16, 64]
    knob = torch.tensor(Ns, dtype=torch.float64).repeat_interleave(n)
    res = PSCGANSampler(knob="N")(model, y.repeat(len(Ns), 1), Identity(), 1.0, knob,
                                   list(range(n)) * len(Ns))
    mses = [(res.samples[k * n:(k + 1) * n] - x0).pow(2).sum(1).mean().item() for k in range(len(Ns))]
    assert all(a > b for a, b in zip(mses, mses[1:])), mses
    for N, m in zip(Ns, mses):
        assert m == pytest.approx(1.0 + 2.0 / N, rel=0.08), (N, m)
    assert res.nfe == 1
    # σ_z sweep: σ_z = 0 is G(y, 0) = the MMSE exactly
    r0 = PSCGANSampler(knob="sigma_z")(model, y[:5], Identity(), 1.0, [0.0] * 5, list(range(5)))
    assert torch.allclose(r0.samples, y[:5] / 2)
    # batch independence: sample 3 alone = sample 3 in the batch
    alone = PSCGANSampler(knob="N")(model, y[3:4], Identity(), 1.0, [4], [3]).samples
    assert torch.allclose(alone[0], res.samples[2 * n + 3])
    with pytest.raises(ValueError, match="whole numbers"):
        PSCGANSampler(knob="N")(model, y[:1], Identity(), 1.0, [0.5], [0])


# ---------------------------------------------------------------- jobs end to end

@pytest.mark.parametrize("overrides", [
    ["sampler=interp", "sampler.values=[0,0.5,1]"],
    ["sampler=dps", "sampler.values=[0,0.01]"],
    ["sampler=diffpir", "sampler.steps=10", "sampler.values=[0,1]"],
    ["sampler=diffpir", "sampler.steps=10", "sampler.knob=lambda_d", "sampler.values=[1,7]"],
])
def test_score_baseline_jobs_run(tmp_path, cache_dir, overrides):
    rows = run_job(compose_cfg([*FAST, *overrides]), tmp_path / "job")
    assert len(rows) in (2, 3) and all(math.isfinite(r["mse"]) and math.isfinite(r["w2"]) for r in rows)
    assert rows[0]["knob"] == compose_cfg([*FAST, *overrides]).sampler.knob


def test_pscgan_job_trains_caches_and_retrains_for_a_new_sigma(tmp_path, cache_dir):
    base = [*FAST, "sampler=pscgan", "sampler.gan.train.steps=20", "sampler.values=[1,4]"]
    rows = run_job(compose_cfg(base), tmp_path / "a")
    assert [r["knob"] for r in rows] == ["N", "N"] and all(math.isfinite(r["mse"]) for r in rows)
    import json
    meta = lambda d: json.loads((tmp_path / d / "metrics.json").read_text())["model"]  # noqa: E731
    assert meta("a")["source"] == "trained" and meta("a")["train_seconds"] > 0
    run_job(compose_cfg([*base, "sampler.knob=sigma_z", "sampler.values=[0,1]"]), tmp_path / "b")
    assert meta("b")["source"] == "cache"
    run_job(compose_cfg([*base, "noise.sigma=0.5"]), tmp_path / "c")
    assert meta("c")["source"] == "trained" and meta("c")["train_sigma"] == 0.5
    # the GAN trained at 0.75 applied at σ = 0.5: no retraining
    run_job(compose_cfg([*base, "noise.sigma=0.5", "sampler.gan.train_sigma=0.75"]), tmp_path / "d")
    assert meta("d")["source"] == "cache" and meta("d")["train_sigma"] == 0.75


def test_every_figure_job_composes():
    """Each job of ``make figures`` is a valid config whose knob fits its sampler."""
    from conftest import CONF
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from vsdr.experiments import figures as mf
    from vsdr.experiments.build import knob_values
    from vsdr.experiments.validate import sampler_class, validate_config
    jobs = {k: v for fig in mf.FIGURES.values() if not isinstance(fig, str) for k, v in fig.jobs.items()}
    assert len(jobs) >= 6 * 3 + 4
    one_each = {}                                   # one job per distinct experiment and options
    for key, overrides in jobs.items():
        one_each.setdefault(tuple(o for o in overrides if not o.startswith("dataset=")), (key, overrides))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for key, overrides in one_each.values():
            cfg = compose(config_name="config", overrides=overrides)
            validate_config(cfg)
            assert len(knob_values(cfg)) >= 2, key
            assert cfg.sampler.get("knob") in [k.name for k in sampler_class(cfg.sampler).knobs]


def test_figure_jobs_carry_the_tuned_zeta():
    """Ours and the interpolation run the ζ(λ) tuned for their data set and σ (conf/tuned/), in
    the figure jobs and in a plain `run.py dataset=...`; a setting without an entry (pinwheel)
    runs the default table."""
    from vsdr.experiments import figures as mf

    tuned = compose_cfg([]).tuned.zeta
    settings = [(d, float(s)) for d in tuned if d != "default" for s in tuned[d]
                if s.replace(".", "", 1).isdigit()]  # 2D entries (image ones are keyed by operator first)
    assert ("scurve", 0.75) in settings and ("moons", 0.75) in settings
    for dataset, sigma in settings:
        table = tuned[dataset][f"{sigma:g}"]
        jobs = mf.jobs_for(dataset, sigma)
        for cfg in [compose_cfg(jobs[f"{dataset}-{sigma}-{e}"]) for e in ("ours_lam", "interp_s")] + \
                [compose_cfg([f"dataset={dataset}", f"noise.sigma={sigma}"])]:
            assert list(cfg.sampler.zeta.lam) == list(table.lam)
            assert list(cfg.sampler.zeta.value) == list(table.value)
    assert "pinwheel" not in tuned
    cfg = compose_cfg(mf.jobs_for("pinwheel")["pinwheel-0.75-ours_lam"])
    assert list(cfg.sampler.zeta.value) == [0.2, 0.2]
    assert list(compose_cfg(["dataset=scurve", "noise.sigma=0.5"]).sampler.zeta.value) == [0.2, 0.2]
    own = compose_cfg(["dataset=scurve", "sampler.zeta={lam:[0,1],value:[1,1]}"])
    assert list(own.sampler.zeta.value) == [1, 1]


def test_scan_zeta_rows_equal_the_jobs(tmp_path, cache_dir):
    """scripts/scan_zeta.py: each (λ, ζ) row equals the row of the job with that λ and constant ζ
    (same test points, per-point seeds, batch-invariant network calls)."""
    import csv
    import subprocess

    from conftest import ROOT

    out = tmp_path / "scan.csv"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "scan_zeta.py"), *FAST,
                          "--lam", "0,1", "--zeta", "0.2,0.5", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    scan = {(float(r["lam"]), float(r["zeta"])): (float(r["mse"]), float(r["w2"]))
            for r in csv.DictReader(out.open())}
    assert len(scan) == 4
    for zeta in (0.2, 0.5):
        rows = run_job(compose_cfg([*FAST, f"sampler.zeta={{lam:[0,1],value:[{zeta},{zeta}]}}"]),
                       tmp_path / f"job{zeta}")
        for r in rows:
            assert scan[float(r["value"]), zeta] == (r["mse"], r["w2"])
