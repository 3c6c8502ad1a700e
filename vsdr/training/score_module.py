"""Denoising score matching (ε-prediction) as a LightningModule, with EMA weights."""
from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.schedule import VPSchedule
from vsdr.diffusion.tweedie import diffuse
from vsdr.models.score import split_learned_variance
from vsdr.training.batches import RandomBatches  # noqa: F401 - its old home
from vsdr.training.ema import ema_of
from vsdr.training.logging_steps import logs_this_step
from vsdr.training.vlb import vlb_variance_term


class ScoreMatchingModule(L.LightningModule):
    """Loss ``E_{x0, i, ε} ‖ε_θ(√ᾱ_i x0 + √(1−ᾱ_i) ε, i) − ε‖²`` with ``i ~ U{0..T−1}``; a
    network with ``2C`` output channels (learned variance) adds ``(T/1000)·L_vlb`` for them
    (``vlb_variance_term``).

    ``averaged`` (``torch.optim.swa_utils.AveragedModel``, ``vsdr.training.ema.ema_of``) holds
    an exponential moving average of the weights and buffers (decay ``ema_decay``, from the
    initial weights, updated after every step); ``ema`` is that network, used for sampling.
    """

    def __init__(self, net: nn.Module, schedule: VPSchedule, lr: float = 1e-3,
                 ema_decay: float = 0.999, seed: int = 0):
        super().__init__()
        self.net = net
        self.averaged = ema_of(net, ema_decay)
        self.register_buffer("alpha_bars", schedule.alpha_bars.float())
        self.register_buffer("betas", schedule.betas.float())
        self.lr, self.ema_decay = lr, ema_decay
        self.noise_gen = torch.Generator().manual_seed(seed)

    def loss(self, x0: Tensor) -> Tensor:
        T = self.alpha_bars.shape[0]
        i = torch.randint(0, T, (x0.shape[0],), generator=self.noise_gen)
        eps = torch.randn(x0.shape, generator=self.noise_gen)
        i, eps = i.to(x0.device), eps.to(x0)
        x_t = diffuse(x0, eps, per_sample(self.alpha_bars[i], x0))
        eps_hat, v = split_learned_variance(self.net(x_t, i), x0)
        if v is not None:  # learned variance (ADM learn_sigma): guided-diffusion's L_vlb term
            vb = vlb_variance_term(eps, eps_hat, v, i, self.betas, self.alpha_bars)
            return (eps_hat - eps).pow(2).mean() + vb.mean() * T / 1000.0
        return (eps_hat - eps).pow(2).mean()

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        if logs_this_step(self, batch_idx):
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    @property
    def ema(self) -> nn.Module:
        """The averaged network."""
        return self.averaged.module

    def on_train_batch_end(self, *args, **kwargs) -> None:
        self.averaged.update_parameters(self.net)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)
