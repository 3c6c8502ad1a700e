"""PSCGAN training (Ohayon et al. 2021; docs/METHOD.md §8, PSCGAN) as a LightningModule."""
from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

from vsdr.diffusion.broadcast import per_sample
from vsdr.training.ema import ema_of
from vsdr.training.logging_steps import logs_this_step


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, y: Tensor, u: Tensor) -> Tensor:
    """WGAN-GP's ``E (‖∇_x̃ D(x̃, y)‖₂ − 1)²`` at ``x̃ = u x + (1 − u) x_fake`` (Gulrajani et al.
    2017); ``u`` is ``(B, 1, …)`` uniform."""
    x_tilde = (u * real + (1.0 - u) * fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_tilde, y).sum(), x_tilde, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


def first_moment_penalty(samples: Tensor, x0: Tensor, reduction: str = "sum") -> Tensor:
    """``E ‖x0 − mean_M G(y, z_m)‖²`` for ``samples`` of shape ``(B, M, …)`` (summed over
    coordinates, averaged over the batch): drives the sample mean to ``E[x0 | y]``.
    ``reduction='mean'``: averaged over coordinates too (the MSE of PSCGAN's image code)."""
    sq = (samples.mean(dim=1) - x0).flatten(1).pow(2)
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction={reduction!r} is not one of 'sum', 'mean'")
    return (sq.sum(dim=1) if reduction == "sum" else sq.mean(dim=1)).mean()


class PSCGANModule(L.LightningModule):
    """One critic step then one generator step per batch of clean points ``x0``; the
    measurement ``y = A x0 + σ n`` is drawn fresh each time.

        critic:    E D(G(y, z), y) − E D(x0, y) + gp_weight · GP
        generator: ‖x0 − mean_{m≤M} G(y, z_m)‖² − adv_weight · E D(G(y, z), y)

    ``z ~ N(0, I)`` of the generator's ``z_shape`` (a vector, or a noise map for images);
    ``penalty_reduction='mean'`` averages the penalty over coordinates (the image recipe's
    MSE, with which ``adv_weight = 1e-3``) instead of summing it. Adam (``lr``, ``betas``) for
    both networks. With ``ema_decay`` set,
    ``generator_averaged`` (``AveragedModel``, ``vsdr.training.ema.ema_of``) holds an exponential
    moving average of the generator's weights and buffers, updated after every generator step
    (``ema ← decay · ema + (1 − decay) · θ``), and ``generator_ema`` is that network: the GAN's samples
    wander from step to step with ``betas = (0, 0.99)``, the average is the network to sample
    from (``vsdr.experiments.pscgan`` copies it into the generator after training).
    """

    def __init__(self, generator: nn.Module, critic: nn.Module, operator, sigma: float, M: int = 8,
                 gp_weight: float = 10.0, adv_weight: float = 1e-3, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.0, 0.99), seed: int = 0,
                 ema_decay: float | None = None,
                 penalty_reduction: str = "sum"):
        super().__init__()
        self.penalty_reduction = penalty_reduction
        self.automatic_optimization = False
        self.generator, self.critic, self.operator = generator, critic, operator
        self.sigma, self.M, self.gp_weight, self.adv_weight = float(sigma), int(M), gp_weight, adv_weight
        self.lr, self.betas = lr, tuple(betas)
        self.noise_gen = torch.Generator().manual_seed(seed)
        if ema_decay is not None and not 0.0 <= float(ema_decay) < 1.0:
            raise ValueError(f"ema_decay={ema_decay} must be in [0, 1) (or None: no average)")
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.generator_averaged = ema_of(generator, self.ema_decay) if self.ema_decay is not None else None

    @property
    def generator_ema(self) -> nn.Module | None:
        """The averaged generator (``None`` without ``ema_decay``)."""
        return None if self.generator_averaged is None else self.generator_averaged.module

    def _randn(self, shape, like: Tensor) -> Tensor:
        return torch.randn(shape, generator=self.noise_gen).to(like)

    def training_step(self, x0: Tensor, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        B = x0.shape[0]
        zs = tuple(getattr(self.generator, "z_shape", (self.generator.z_dim,)))  # vector or noise map
        ax0 = self.operator.forward(x0)
        y = ax0 + self.sigma * self._randn(ax0.shape, x0)
        # critic step
        with torch.no_grad():
            fake = self.generator(y, self._randn((B, *zs), x0))
        u = per_sample(torch.rand(B, generator=self.noise_gen), x0)
        gp = gradient_penalty(self.critic, x0, fake, y, u)
        loss_d = self.critic(fake, y).mean() - self.critic(x0, y).mean() + self.gp_weight * gp
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        # generator step: M samples per measurement
        y_rep = y.repeat_interleave(self.M, dim=0)
        fakes = self.generator(y_rep, self._randn((B * self.M, *zs), x0))
        penalty = first_moment_penalty(fakes.view(B, self.M, *x0.shape[1:]), x0, self.penalty_reduction)
        adv = -self.critic(fakes, y_rep).mean()
        loss_g = penalty + self.adv_weight * adv
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        if self.generator_ema is not None:
            self.update_ema()
        if logs_this_step(self, batch_idx):
            self.log_dict({"gan/critic": loss_d.detach(), "gan/penalty": penalty.detach(),
                           "gan/adv": adv.detach()}, prog_bar=True, on_step=True, on_epoch=False)

    def update_ema(self) -> None:
        self.generator_averaged.update_parameters(self.generator)

    def configure_optimizers(self):
        return (torch.optim.Adam(self.generator.parameters(), lr=self.lr, betas=self.betas),
                torch.optim.Adam(self.critic.parameters(), lr=self.lr, betas=self.betas))
