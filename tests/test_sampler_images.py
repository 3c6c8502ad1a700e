"""The variance-scaled sampler on images: the learned (ADM learned_range) variance against a
hand computation, the ε/v split of a 6-channel network, x̂0 clipping."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vsdr.diffusion import VPSchedule, per_sample_seeds
from vsdr.diffusion.noise import PerSampleNoise
from vsdr.diffusion.variance import learned_range_log_variance
from vsdr.models import NetworkPrior
from vsdr.operators import Identity
from vsdr.samplers import VarianceScaledSampler


class ConstantOutput(nn.Module):
    """A stand-in learned-variance network: ε = eps_value, v = v_value everywhere (2C channels)."""

    def __init__(self, eps_value: float, v_value: float):
        super().__init__()
        self.eps_value, self.v_value = eps_value, v_value

    def forward(self, x, t):
        c = x.shape[1]
        return torch.cat([torch.full_like(x, self.eps_value),
                          torch.full_like(x[:, :c], self.v_value)], dim=1)


def test_learned_range_log_variance_matches_hand_numbers():
    s = VPSchedule.linear(T=4, beta_start=0.1, beta_end=0.4)  # betas 0.1, 0.2, 0.3, 0.4
    ab = [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.7, 0.9 * 0.8 * 0.7 * 0.6]
    post1 = 0.2 * (1 - ab[0]) / (1 - ab[1])
    post3 = 0.4 * (1 - ab[2]) / (1 - ab[3])
    v = torch.tensor([-1.0, 0.0, 1.0, 0.5])
    got3 = learned_range_log_variance(s, 3, v)
    expected3 = [math.log(post3), 0.5 * math.log(0.4) + 0.5 * math.log(post3), math.log(0.4),
                 0.75 * math.log(0.4) + 0.25 * math.log(post3)]
    assert got3.tolist() == pytest.approx(expected3, rel=1e-6)
    # step 0: β̃_0 = 0 is replaced by β̃_1 (guided-diffusion's clipped log variance)
    got0 = learned_range_log_variance(s, 0, torch.tensor([-1.0, 1.0]))
    assert got0.tolist() == pytest.approx([math.log(post1), math.log(0.1)], rel=1e-6)


def test_network_prior_splits_eps_and_v():
    net = ConstantOutput(0.25, -0.5)
    prior = NetworkPrior(net, VPSchedule.linear(T=5))
    x = torch.zeros(2, 3, 4, 4)
    eps, v = prior.eps_and_v(x, 2)
    assert eps.shape == x.shape and v.shape == x.shape
    assert torch.all(eps == 0.25) and torch.all(v == -0.5)
    assert torch.equal(prior.eps(x, 2), eps) and prior.nfe == 2


def test_learned_variance_sampler_matches_hand_chain():
    """ε ≡ 0.1, v ≡ 0.3, ζ = 0: x_{t−1} = (x_t − β_t ε/√(1−ᾱ_t))/√α_t + √λ σ_t z with the learned σ_t."""
    T, eps_value, v_value = 4, 0.1, 0.3
    schedule = VPSchedule.linear(T=T, beta_start=0.05, beta_end=0.2)
    prior = NetworkPrior(ConstantOutput(eps_value, v_value), schedule)
    y = torch.zeros(2, 3, 4, 4)
    lam = torch.tensor([0.25, 1.0])
    seeds = per_sample_seeds(7, range(2))
    s = VarianceScaledSampler(variance="learned_range", zeta={"lam": [0, 1], "value": [0.0, 0.0]},
                              progress=False)
    out = s(prior, y, Identity(), 0.5, lam, seeds, schedule)
    noise = PerSampleNoise(seeds, (3, 4, 4), T)
    x = noise.initial().double()
    betas, ab = schedule.betas.tolist(), schedule.alpha_bars.tolist()
    for i in range(T - 1, -1, -1):
        b = betas[i]
        post = [betas[k] * (1 - (ab[k - 1] if k else 1.0)) / (1 - ab[k]) for k in range(T)]
        log_var = (v_value + 1) / 2 * math.log(b) + (1 - v_value) / 2 * math.log(post[max(i, 1)])
        x = (x - b * eps_value / math.sqrt(1 - ab[i])) / math.sqrt(1 - b)
        if i > 0:
            x = x + lam.double().sqrt().view(-1, 1, 1, 1) * math.exp(0.5 * log_var) * noise.next().double()
    torch.testing.assert_close(out.samples.double(), x, rtol=1e-5, atol=1e-5)
    assert out.nfe == T


def test_learned_variance_needs_six_channels():
    schedule = VPSchedule.linear(T=3)
    prior = NetworkPrior(lambda x, t: torch.zeros_like(x), schedule)  # ε only, 3 channels
    s = VarianceScaledSampler(variance="learned_range", progress=False)
    with pytest.raises(ValueError, match="2C output"):
        s(prior, torch.zeros(1, 3, 4, 4), Identity(), 0.5, [1.0], [0], schedule)
    with pytest.raises(ValueError, match="variance"):
        VarianceScaledSampler(variance="lerned")


def test_clip_x0_uses_the_clipped_estimate():
    """A network with ε ≡ −5 puts x̂0 far outside [−1, 1]; clipped, the prior score is
    (√ᾱ·clip(x̂0) − x_t)/(1 − ᾱ)."""
    schedule = VPSchedule.linear(T=10)
    prior = NetworkPrior(ConstantOutput(-5.0, 0.0), schedule)
    x = torch.full((1, 3, 2, 2), 0.5)
    i = 6
    ab = float(schedule.alpha_bars[i])
    zero = torch.zeros(1)
    s = VarianceScaledSampler(clip_x0=True, zeta={"lam": [0, 1], "value": [0.0, 0.0]}, progress=False)
    got = s.conditional_score(prior, x, i, x, Identity(), 0.5, zero, schedule)
    torch.testing.assert_close(got, (ab**0.5 * 1.0 - x) / (1 - ab))
    plain = VarianceScaledSampler(zeta={"lam": [0, 1], "value": [0.0, 0.0]}, progress=False)
    got = plain.conditional_score(prior, x, i, x, Identity(), 0.5, zero, schedule)
    torch.testing.assert_close(got, torch.full_like(x, 5.0 / (1 - ab) ** 0.5))
