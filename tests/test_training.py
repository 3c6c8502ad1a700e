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
from vsdr.training.ema import ema_of


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


class _TinyNet(torch.nn.Module):
    """A linear layer and a BatchNorm: float buffers (running mean and variance) that training
    changes, and an integer one (``num_batches_tracked``)."""

    def __init__(self):
        super().__init__()
        self.lin, self.bn = torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)

    def forward(self, x, t):
        return self.bn(self.lin(x)) + 0.0 * t[:, None]


def _ema_by_hand(states: list[dict], decay: float) -> dict:
    """``ema_0 = θ_0``, ``ema_k = decay · ema_{k−1} + (1 − decay) · θ_k`` in float64; integer
    entries are the last ``θ_k``'s."""
    ema = {k: v.double() for k, v in states[0].items()}
    for st in states[1:]:
        ema = {k: decay * ema[k] + (1 - decay) * st[k].double() for k in ema}
    return {k: (v if states[-1][k].is_floating_point() else states[-1][k]) for k, v in ema.items()}


def test_ema_of_weights_and_buffers_is_the_recursion_by_hand():
    """``ema_of`` (torch's ``AveragedModel`` with ``use_buffers=True``) after k updates equals
    the hand-computed recursion for the parameters and the float buffers; the integer buffer is
    the network's."""
    torch.manual_seed(0)
    net = _TinyNet()
    avg = ema_of(net, 0.7)
    states = [{k: v.clone() for k, v in net.state_dict().items()}]
    for k in range(4):
        net(torch.randn(8, 2) * (k + 1) + k, torch.zeros(8))  # train mode: moves the BN buffers
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        avg.update_parameters(net)
        states.append({k: v.clone() for k, v in net.state_dict().items()})
    want = _ema_by_hand(states, 0.7)
    got = avg.module.state_dict()
    assert set(got) == set(want) and "bn.running_var" in got and "bn.num_batches_tracked" in got
    for key in want:
        torch.testing.assert_close(got[key].double(), want[key].double(), rtol=1e-6, atol=1e-6, msg=key)
    assert int(got["bn.num_batches_tracked"]) == 4
    assert not torch.equal(got["bn.running_mean"], states[-1]["bn.running_mean"])  # averaged, not copied
    assert not any(p.requires_grad for p in avg.parameters())


def test_score_module_ema_in_training_is_the_recursion_by_hand():
    """Through Lightning: the module's EMA after 4 steps equals the recursion over the weights
    and buffers the network had after each step."""
    torch.manual_seed(1)
    net = _TinyNet()
    module = ScoreMatchingModule(net, VPSchedule.linear(T=10), lr=1e-2, ema_decay=0.8)
    states = [{k: v.clone() for k, v in net.state_dict().items()}]

    class Snapshot(L.Callback):  # runs before the module's own on_train_batch_end (the EMA update)
        def on_train_batch_end(self, *args, **kwargs):
            states.append({k: v.detach().clone() for k, v in net.state_dict().items()})

    loader = torch.utils.data.DataLoader(RandomBatches(torch.randn(64, 2), 16, 4), batch_size=None)
    trainer = L.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Snapshot()])
    trainer.fit(module, loader)
    assert len(states) == 5
    want = _ema_by_hand(states, 0.8)
    for key, value in module.ema.state_dict().items():
        torch.testing.assert_close(value.double(), want[key].double(), rtol=1e-6, atol=1e-6, msg=key)
    assert not torch.equal(module.ema.state_dict()["lin.weight"], net.state_dict()["lin.weight"])


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


class _LogsEveryStep(ScoreMatchingModule):
    """Lightning's plain pattern: ``self.log`` on every step."""

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train/loss", loss, on_step=True, on_epoch=False)
        return loss


def _logged(module_cls, tmp_path, name):
    from lightning.pytorch.loggers import CSVLogger

    torch.manual_seed(0)
    schedule = VPSchedule.linear(T=50)
    module = module_cls(ScoreMLP(), schedule, seed=0)
    loader = torch.utils.data.DataLoader(RandomBatches(Pinwheel().sample(500, seed=0), 64, 23),
                                         batch_size=None)
    trainer = L.Trainer(max_steps=23, accelerator="cpu", log_every_n_steps=5,
                        logger=CSVLogger(tmp_path, name=name), enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    return (tmp_path / name / "version_0" / "metrics.csv").read_text(), module.ema.state_dict()


def test_sparse_logging_writes_what_logging_every_step_writes(tmp_path):
    """``logs_this_step`` skips ``self.log`` on the steps whose values Lightning would discard
    (it writes every ``log_every_n_steps``-th): the CSV and the trained weights are the same
    as with a call on every step."""
    from vsdr.training.logging_steps import logs_this_step

    every, every_w = _logged(_LogsEveryStep, tmp_path, "every")
    sparse, sparse_w = _logged(ScoreMatchingModule, tmp_path, "sparse")
    assert every == sparse and every.count("\n") == 1 + 4  # header and steps 4, 9, 14, 19
    assert all(torch.equal(every_w[k], sparse_w[k]) for k in every_w)
    assert logs_this_step(ScoreMatchingModule(ScoreMLP(), VPSchedule.linear(T=5)), 3)  # no Trainer
