"""The diffusion maths in vsdr.diffusion against closed forms and hand computations: the
schedule tables (computed once), Tweedie's x̂0 and its inverse, the three reverse variances,
the per-sample broadcast and the sinusoidal timestep embedding."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vsdr.diffusion import (
    VARIANCES,
    VPSchedule,
    check_variance,
    diffuse,
    eps_from_x0,
    per_sample,
    reverse_std,
    x0_from_eps,
)
from vsdr.diffusion.variance import interpolate_log_variance, learned_range_log_variance
from vsdr.models.embedding import timestep_embedding
from vsdr.samplers import DPSSampler, InterpolationSampler, VarianceScaledSampler

# ---------------------------------------------------------------- schedule


def hand_tables(betas: list[float]) -> dict[str, list[float]]:
    """The schedule by hand: ᾱ as a running product, β̃ by its formula."""
    alphas = [1.0 - b for b in betas]
    ab, prod = [], 1.0
    for a in alphas:
        prod *= a
        ab.append(prod)
    ab_prev = [1.0, *ab[:-1]]
    post = [b * (1.0 - p) / (1.0 - a) for b, p, a in zip(betas, ab_prev, ab)]
    return {"alphas": alphas, "alpha_bars": ab, "alpha_bars_prev": ab_prev, "posterior_variances": post}


@pytest.mark.parametrize("T,start,end", [(1000, 1e-4, 0.02), (4, 0.1, 0.4), (1, 0.3, 0.3)])
def test_schedule_tables_match_a_hand_loop(T, start, end):
    s = VPSchedule.linear(T, start, end)
    betas = s.betas.tolist()
    assert len(betas) == T == s.T
    assert betas[0] == pytest.approx(start) and betas[-1] == pytest.approx(end)
    for name, expected in hand_tables(betas).items():
        table = getattr(s, name)
        assert table.dtype == torch.float64 and table.shape == (T,)
        assert table.tolist() == pytest.approx(expected, rel=1e-12, abs=0.0), name
    assert float(s.posterior_variances[0]) == 0.0
    assert s.sqrt_betas.tolist() == pytest.approx([math.sqrt(b) for b in betas], rel=1e-15)
    post = hand_tables(betas)["posterior_variances"]
    assert s.log_betas.tolist() == pytest.approx([math.log(b) for b in betas], rel=1e-14)
    if T > 1:  # log β̃ with β̃_0 = 0 replaced by β̃_1 (guided-diffusion's clipped table)
        clipped = [post[1 if k == 0 else k] for k in range(T)]
        assert s.posterior_log_variance_clipped.tolist() == pytest.approx(
            [math.log(p) for p in clipped], rel=1e-12)
    for i in {0, T // 2, T - 1}:
        at = s.at(i)
        assert at == {"beta": float(s.betas[i]), "alpha": float(s.alphas[i]),
                      "alpha_bar": float(s.alpha_bars[i]),
                      "alpha_bar_prev": float(s.alpha_bars_prev[i])}


def test_schedule_tables_are_computed_once():
    s = VPSchedule.linear(T=50)
    for name in ("alphas", "alpha_bars", "alpha_bars_prev", "posterior_variances", "sqrt_betas",
                 "sqrt_posterior_variances", "log_betas", "posterior_log_variance_clipped"):
        assert getattr(s, name) is getattr(s, name), name
    # the same values as computing them on the spot, bit for bit
    assert torch.equal(s.alpha_bars, torch.cumprod(1.0 - s.betas, dim=0))
    assert torch.equal(s.sqrt_betas, s.betas.sqrt())
    # at(i) hands out a fresh dict: changing it changes nothing
    d = s.at(3)
    d["beta"] = -1.0
    assert s.at(3)["beta"] == float(s.betas[3])
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.alpha_bars = s.betas


def test_schedule_direct_construction_and_replace():
    betas = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    s = VPSchedule(betas)
    assert s.alpha_bars.tolist() == pytest.approx([0.9, 0.72, 0.504])
    r = dataclasses.replace(s, betas=torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert r.T == 2 and r.alpha_bars.tolist() == pytest.approx([0.5, 0.25])
    assert "alpha_bars" not in repr(s)
    with pytest.raises(ValueError, match="at least one step"):
        VPSchedule.linear(T=0)


# ---------------------------------------------------------------- Tweedie


def test_x0_from_eps_hand_computed():
    x_t = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    eps = torch.tensor([[0.5, 1.0]], dtype=torch.float64)
    # ᾱ = 0.64: √ᾱ = 0.8, √(1−ᾱ) = 0.6
    got = x0_from_eps(x_t, eps, 0.64)
    assert got.tolist()[0] == pytest.approx([(1.0 - 0.6 * 0.5) / 0.8, (-2.0 - 0.6 * 1.0) / 0.8])
    assert eps_from_x0(x_t, got, 0.64).tolist()[0] == pytest.approx([0.5, 1.0])
    assert diffuse(got, eps, 0.64).tolist()[0] == pytest.approx([1.0, -2.0])


def test_tweedie_keeps_the_samplers_arithmetic_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    ab = 0.3721
    assert torch.equal(x0_from_eps(x, eps, ab), (x - (1.0 - ab) ** 0.5 * eps) / ab**0.5)
    assert torch.equal(eps_from_x0(x, eps, ab), (x - ab**0.5 * eps) / (1.0 - ab) ** 0.5)
    assert torch.equal(diffuse(x, eps, ab), ab**0.5 * x + (1.0 - ab) ** 0.5 * eps)
    abt = torch.rand(5, 1, generator=g) * 0.9 + 0.05
    assert torch.equal(x0_from_eps(x, eps, abt), (x - (1.0 - abt).sqrt() * eps) / abt.sqrt())
    assert torch.equal(eps_from_x0(x, eps, abt), (x - abt.sqrt() * eps) / (1.0 - abt).sqrt())
    assert torch.equal(diffuse(x, eps, abt), abt.sqrt() * x + (1 - abt).sqrt() * eps)


@pytest.mark.parametrize("per_sample_ab", [False, True])
def test_tweedie_round_trips(per_sample_ab):
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(4, 3, 2, 2, generator=g, dtype=torch.float64), torch.randn(
        4, 3, 2, 2, generator=g, dtype=torch.float64)
    ab = per_sample(torch.tensor([0.9, 0.5, 0.1, 0.01], dtype=torch.float64), x0) if per_sample_ab else 0.3
    x_t = diffuse(x0, eps, ab)
    torch.testing.assert_close(x0_from_eps(x_t, eps, ab), x0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(eps_from_x0(x_t, x0, ab), eps, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x0_from_eps(x_t, eps_from_x0(x_t, x0, ab), ab), x0, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- reverse variance


def test_reverse_std_matches_the_formulas():
    s = VPSchedule.linear(T=4, beta_start=0.1, beta_end=0.4)  # betas 0.1, 0.2, 0.3, 0.4
    betas = [0.1, 0.2, 0.3, 0.4]
    post = hand_tables(s.betas.tolist())["posterior_variances"]
    assert post[1] == pytest.approx(0.2 * (1 - 0.9) / (1 - 0.72))
    for i in range(4):
        assert reverse_std(s, i, "beta") == pytest.approx(math.sqrt(betas[i]), rel=1e-14)
        assert reverse_std(s, i, "fixed_small") == pytest.approx(math.sqrt(post[i]), rel=1e-12)
        assert isinstance(reverse_std(s, i, "beta"), float)
    assert reverse_std(s, 0, "fixed_small") == 0.0
    v = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    for i in range(4):
        lo = post[max(i, 1)]  # β̃_0 = 0 replaced by β̃_1 (clipped)
        got = reverse_std(s, i, "learned_range", v)
        assert got.shape == v.shape and got.dtype == v.dtype
        assert got.tolist() == pytest.approx([math.sqrt(lo), (betas[i] * lo) ** 0.25, math.sqrt(betas[i])],
                                             rel=1e-12)
    # the ends of the learned range are the two fixed choices (i >= 1)
    for i in (1, 3):
        assert float(reverse_std(s, i, "learned_range", torch.tensor(1.0, dtype=torch.float64))) == \
            pytest.approx(reverse_std(s, i, "beta"), rel=1e-14)
        assert float(reverse_std(s, i, "learned_range", torch.tensor(-1.0, dtype=torch.float64))) == \
            pytest.approx(reverse_std(s, i, "fixed_small"), rel=1e-14)
    assert learned_range_log_variance(s, 2, v).tolist() == pytest.approx(
        [math.log(post[2]), 0.5 * (math.log(0.3) + math.log(post[2])), math.log(0.3)], rel=1e-12)
    assert interpolate_log_variance(torch.tensor([0.5]), 2.0, 6.0).tolist() == [0.75 * 2.0 + 0.25 * 6.0]


def test_reverse_std_errors():
    s = VPSchedule.linear(T=4)
    with pytest.raises(ValueError, match="needs the network's variance"):
        reverse_std(s, 2, "learned_range")
    with pytest.raises(ValueError, match="'posterior' is now 'fixed_small'"):
        reverse_std(s, 2, "posterior")
    with pytest.raises(ValueError, match="not one of"):
        reverse_std(s, 2, "fixed_large")


def test_one_variances_tuple_and_old_names_fail_helpfully():
    assert VARIANCES == ("beta", "fixed_small", "learned_range")
    for name in VARIANCES:
        assert check_variance(name) == name
        VarianceScaledSampler(variance=name, progress=False)
        DPSSampler(variance=name, progress=False)
    assert DPSSampler(progress=False).variance == "fixed_small"
    assert VarianceScaledSampler(progress=False).variance == "beta"
    for make in (lambda v: VarianceScaledSampler(variance=v), lambda v: DPSSampler(variance=v),
                 lambda v: InterpolationSampler(variance=v)):
        with pytest.raises(ValueError, match=r"variance='posterior' is now 'fixed_small' \(DDPM's β̃_t\)"):
            make("posterior")
        with pytest.raises(ValueError, match="sampler.variance='learned' is now 'learned_range'"):
            make("learned")
        with pytest.raises(ValueError, match="is not one of"):
            make("nope")


# ---------------------------------------------------------------- per-sample broadcast


def test_per_sample_shapes_and_dtypes():
    v = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    img = torch.zeros(3, 2, 4, 5)
    out = per_sample(v, img)
    assert out.shape == (3, 1, 1, 1) and out.dtype == torch.float32
    assert (out * torch.ones_like(img))[:, 1, 3, 4].tolist() == [1.0, 2.0, 3.0]
    assert per_sample(v, torch.zeros(3, 2)).shape == (3, 1)
    assert per_sample(v, torch.zeros(3, dtype=torch.float64)).shape == (3,)
    assert per_sample(0.5, img) == 0.5
    scalar = torch.tensor(0.25)
    assert per_sample(scalar, img) is scalar
    idx = torch.tensor([0, 4, 9])
    assert per_sample(idx, img).dtype == torch.long and per_sample(idx, img).shape == (3, 1, 1, 1)
    mask = torch.tensor([True, False, True])
    assert per_sample(mask, img).dtype == torch.bool
    assert torch.equal(per_sample(v, img), v.to(img).view(-1, 1, 1, 1))


# ---------------------------------------------------------------- timestep embedding


def test_timestep_embedding_hand_computed():
    t = torch.tensor([0, 1, 3])
    emb = timestep_embedding(t, 4)  # half = 2: frequencies 1 and 10000^(−1/2) = 0.01
    assert emb.shape == (3, 4) and emb.dtype == torch.float32
    for row, tt in zip(emb.tolist(), (0.0, 1.0, 3.0)):
        assert row == pytest.approx([math.cos(tt), math.cos(0.01 * tt), math.sin(tt), math.sin(0.01 * tt)],
                                    abs=1e-6)
    odd = timestep_embedding(t, 5, max_period=100.0)  # frequencies 1, 100^(−1/2) = 0.1; zero column
    assert odd.shape == (3, 5) and odd[:, 4].tolist() == [0.0, 0.0, 0.0]
    assert odd[2, :4].tolist() == pytest.approx([math.cos(3.0), math.cos(0.3), math.sin(3.0), math.sin(0.3)],
                                                abs=1e-6)
    real = timestep_embedding(torch.tensor([0.5]), 2)
    assert real.tolist()[0] == pytest.approx([math.cos(0.5), math.sin(0.5)], abs=1e-7)


@pytest.mark.parametrize("dim", [28, 33, 128])
def test_timestep_embedding_cpu_frequencies_agree_on_the_cpu(dim):
    t = torch.arange(0, 1000, 37)
    assert torch.equal(timestep_embedding(t, dim), timestep_embedding(t, dim, freqs_on_cpu=True))
