"""Denoising score matching with Lightning: the loss goes down, EMA tracks the weights, and
a trained network beats the untrained one at predicting ε."""
from __future__ import annotations

import lightning as L
import torch

from vsdr.data import Pinwheel
from vsdr.diffusion import VPSchedule
from vsdr.models import ScoreMLP
from vsdr.models.precondition import PreconditionedEps
from vsdr.training import RandomBatches, ScoreMatchingModule


def _eval_loss(module, net, points, seed=0):
    m = ScoreMatchingModule(net, VPSchedule.linear(T=100), seed=seed)
    with torch.no_grad():
        return float(torch.stack([m.loss(points) for _ in range(20)]).mean())


def test_training_reduces_the_loss_and_updates_ema():
    torch.manual_seed(0)
    schedule = VPSchedule.linear(T=100)
    net = PreconditionedEps(ScoreMLP(), schedule.alpha_bars)
    points = Pinwheel().sample(4000, seed=0)
    module = ScoreMatchingModule(net, schedule, lr=2e-3, ema_decay=0.9)
    before = _eval_loss(module, module.ema, points)
    ema_before = [p.clone() for p in module.ema.parameters()]
    loader = torch.utils.data.DataLoader(RandomBatches(points, 256, 300), batch_size=None)
    trainer = L.Trainer(max_steps=300, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    after = _eval_loss(module, module.ema, points)
    assert after < 0.9 * before
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, module.ema.parameters()))


def test_preconditioned_eps_gives_denoiser_as_tweedie_estimate():
    """x̂0 = (x − √(1−ᾱ) ε_θ)/√ᾱ must equal D = c_skip x̃ + c_out F(c_in x̃)."""
    schedule = VPSchedule.linear(T=50)
    inner = ScoreMLP()
    net = PreconditionedEps(inner, schedule.alpha_bars, sigma_data=0.7)
    x = torch.randn(5, 2)
    t = torch.full((5,), 40)
    ab = schedule.alpha_bars[40].float()
    x0_hat = (x - (1 - ab).sqrt() * net(x, t)) / ab.sqrt()
    s2 = (1 - ab) / ab
    xt = x / ab.sqrt()
    d = 0.49 / (s2 + 0.49) * xt + s2.sqrt() * 0.7 / (s2 + 0.49).sqrt() * inner(xt / (s2 + 0.49).sqrt(), t)
    torch.testing.assert_close(x0_hat, d, rtol=1e-5, atol=1e-5)


def test_mlp_has_the_papers_size():
    n = sum(p.numel() for p in ScoreMLP().parameters())
    assert abs(n - 26498) / 26498 < 0.02


def test_preconditioned_eps_with_learned_variance_keeps_the_variance_channels():
    """A 2C-channel network (ADM learn_sigma): the first C channels are preconditioned as a
    C-channel network's would be, the last C (the variance interpolation v) pass through."""
    schedule = VPSchedule.linear(T=50)

    class TwoHeads(torch.nn.Module):
        def forward(self, x, t):
            return torch.cat([torch.tanh(x) + 0.1 * t.view(-1, 1, 1, 1), -x], dim=1)

    class FirstHead(torch.nn.Module):
        def forward(self, x, t):
            return TwoHeads()(x, t)[:, :3]

    x = torch.randn(2, 3, 4, 4)
    t = torch.tensor([3, 45])
    both = PreconditionedEps(TwoHeads(), schedule.alpha_bars, sigma_data=0.7)(x, t)
    eps_only = PreconditionedEps(FirstHead(), schedule.alpha_bars, sigma_data=0.7)(x, t)
    assert both.shape == (2, 6, 4, 4)
    torch.testing.assert_close(both[:, :3], eps_only)
    ab = schedule.alpha_bars[t].float().view(-1, 1, 1, 1)
    c_in = 1 / ((1 - ab) / ab + 0.49).sqrt()
    torch.testing.assert_close(both[:, 3:], -(x / ab.sqrt()) * c_in)
