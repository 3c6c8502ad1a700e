"""The λ = 0 pull diagnostic (``vsdr.diffusion.pulls``, ``scripts/pull_refresh.py``,
docs/RESULTS.md §21.6): its plain chain is ours at λ = 0, its pull direction and damping match
hand-computed values, and its changes (``pulls``, ``refresh``) do what they say."""
from __future__ import annotations

import math

import pytest
import torch

from vsdr.diffusion.noise import PerSampleNoise, per_sample_seeds
from vsdr.diffusion.pulls import lam0_chain, median_cosine, pull_direction
from vsdr.diffusion.schedule import VPSchedule
from vsdr.operators import MatrixOperator
from vsdr.samplers import VarianceScaledSampler

DT = torch.float64
A = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0]], dtype=DT)


class TanhEps(torch.nn.Module):
    """A nonlinear, time-dependent ε on 3-D points, ``ε = W₂ tanh(W₁ x + b) (1 + t/100)``
    (``scale = 0``: ``ε = 0``), counting its calls."""

    is_conditional = False

    def __init__(self, scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = torch.randn(5, 3, generator=g, dtype=DT)
        self.b = torch.randn(5, generator=g, dtype=DT)
        self.w2 = scale * 0.5 * torch.randn(3, 5, generator=g, dtype=DT)
        self.nfe = 0

    def eps(self, x, t):
        self.nfe += 1
        return torch.tanh(x @ self.w1.T + self.b) @ self.w2.T * (1 + t / 100)

    def eps_and_v(self, x, t):
        return self.eps(x, t), None


def problem(n: int = 4):
    g = torch.Generator().manual_seed(3)
    y = torch.randn(n, 2, generator=g, dtype=DT)
    return y, MatrixOperator(matrix=A.tolist()), per_sample_seeds(7, range(n))


@pytest.mark.parametrize("steps,dps_scale,clip", [(None, "time", False), (10, "time", True),
                                                  (10, "step", False)])
def test_plain_chain_is_ours_at_lambda_zero(steps, dps_scale, clip):
    """``pulls = refresh = 1`` is ``VarianceScaledSampler(form='dps')`` at λ = 0 on the same
    steps, seeds, ζ, ``dps_scale`` and clipping, bit for bit (one network call a step in both)."""
    y, op, seeds = problem()
    sch, zeta = VPSchedule.linear(T=40), 0.3
    s = VarianceScaledSampler(form="dps", clip_x0=clip, steps=steps, dps_scale=dps_scale,
                              zeta={"lam": [0, 1], "value": [zeta, zeta]}, progress=False)
    net = TanhEps()
    want = s(net, y, op, 0.1, [0.0] * len(y), seeds, sch).samples
    net.nfe = 0
    got, dirs = lam0_chain(s, net, y, op, (3,), seeds, sch, steps)
    K = steps or sch.T
    assert net.nfe == K and len(dirs) == K
    assert torch.equal(got, want), (got - want).abs().max()
    x_T = PerSampleNoise(seeds, (3,), K, dtype=DT).initial()
    assert (got - x_T).abs().max() > 0.1                  # a chain that moved


def test_pull_direction_by_hand():
    """With ``ε = 0``: prior score 0, ``x̂0 = x/√ᾱ``, ``J = I/√ᾱ``, so ``g = −v``, ``v = Aᵀr/(√ᾱ‖r‖)``,
    ``r = y − A x/√ᾱ``, and damped ``φ(Lc) g`` with ``L = ‖A v̂‖²/(ᾱ‖r‖)``, ``φ(z) = (1 − e^{−z})/z``."""
    y, op, _ = problem(3)
    x = torch.tensor([[0.5, -1.0, 2.0], [0.1, 0.2, 0.3], [-1.5, 0.4, 0.0]], dtype=DT)
    ab, c = 0.6, 2.5
    r = y - x @ A.T / math.sqrt(ab)
    v = r @ A / (math.sqrt(ab) * r.norm(dim=1, keepdim=True))
    s = VarianceScaledSampler(form="dps", progress=False)
    prior, got = pull_direction(s, TanhEps(scale=0.0), x, 5, ab, y, op)
    assert torch.equal(prior, torch.zeros_like(x)) and torch.allclose(got, -v, atol=1e-12)
    vhat = v / v.norm(dim=1, keepdim=True)
    z = (vhat @ A.T).pow(2).sum(1) / (ab * r.norm(dim=1)) * c
    _, damped = pull_direction(s, TanhEps(scale=0.0), x, 5, ab, y, op, damp_c=c)
    assert torch.allclose(damped, -v * ((1 - torch.exp(-z)) / z)[:, None], atol=1e-12)
    assert (z > 0.3).all()                                          # the damping has teeth


def test_pulls_split_each_pull_at_its_own_points():
    """K = 2 steps with the pull in 2 parts, composed by hand from ``pull_direction``'s
    ``g = −v``: the top step moves by its mean plus ``c/2 v(x_T)``, then ``c/2 v`` at the point
    reached (network at the last step's time); the last step pulls whole. Three network calls."""
    y, op, seeds = problem()
    sch, zeta = VPSchedule.linear(T=40), 0.3
    net = TanhEps()
    s = VarianceScaledSampler(form="dps", dps_scale="time", progress=False,
                              zeta={"lam": [0, 1], "value": [zeta, zeta]})
    got, _ = lam0_chain(s, net, y, op, (3,), seeds, sch, 2, pulls=2)
    assert net.nfe == 3
    sub, times = sch.on_steps(2, "even")
    plain, _ = lam0_chain(s, net, y, op, (3,), seeds, sch, 2)
    assert not torch.allclose(got, plain)                 # splitting changes the chain
    x = PerSampleNoise(seeds, (3,), 2, dtype=DT).initial()
    for i in (1, 0):
        sc, t = sub.at(i), times[i]
        ab, beta, alpha = sc["alpha_bar"], sc["beta"], sc["alpha"]
        c = zeta * math.sqrt(sch.at(t)["alpha"]) / sch.at(t)["beta"] * beta / math.sqrt(alpha)
        prior, g = pull_direction(s, net, x, t, ab, y, op)
        eps = net.eps(x, t)
        assert torch.allclose(prior, -eps / math.sqrt(1 - ab))
        mean = (x + beta * prior) / math.sqrt(alpha)
        if i == 1:
            x = mean - c / 2 * g
            x = x - c / 2 * pull_direction(s, net, x, times[0], sub.at(0)["alpha_bar"], y, op)[1]
        else:
            x = mean - c * g
    assert torch.allclose(got, x, rtol=0, atol=1e-12)


def test_refresh_keeps_the_gradient_between_refreshes():
    """``refresh = 3`` on 10 steps keeps directions from steps 0, 3, 6 and 9 from the top (4 of
    them) and still calls the network every step (the prior needs it); its first direction is
    the plain chain's and its end is not."""
    y, op, seeds = problem()
    sch = VPSchedule.linear(T=40)
    net = TanhEps()
    s = VarianceScaledSampler(form="dps", dps_scale="time", progress=False,
                              zeta={"lam": [0, 1], "value": [0.3, 0.3]})
    x3, dirs3 = lam0_chain(s, net, y, op, (3,), seeds, sch, 10, refresh=3)
    assert len(dirs3) == 4 and net.nfe == 10
    x1, dirs1 = lam0_chain(s, net, y, op, (3,), seeds, sch, 10)
    assert len(dirs1) == 10 and torch.equal(dirs3[0], dirs1[0])
    assert not torch.allclose(x3, x1)
    with pytest.raises(ValueError, match="refresh"):
        lam0_chain(s, net, y, op, (3,), seeds, sch, 10, refresh=0)
    with pytest.raises(ValueError, match="dps form"):
        lam0_chain(VarianceScaledSampler(form="paper", progress=False), net, y, op, (3,), seeds, sch, 10)


def test_median_cosine_by_hand():
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    dirs = [e, -e, e, -e]
    assert median_cosine(dirs, 1) == pytest.approx(-1.0)
    assert median_cosine(dirs, 2) == pytest.approx(1.0)
    assert math.isnan(median_cosine(dirs, 4))
