"""EDM-style preconditioning of an ε-prediction network (Karras et al. 2022, Table 1, mapped
to the VP schedule). Keeps Tweedie's ``x̂0`` well conditioned at large ``t``."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.tweedie import eps_from_x0
from vsdr.models.score import split_learned_variance


class PreconditionedEps(nn.Module):
    """``ε_θ(x_t, i) = (x_t − √ᾱ_i D(x_t, i)) / √(1 − ᾱ_i)`` with the denoiser

        D = c_skip · x̃ + c_out · F(c_in · x̃, i),     x̃ = x_t / √ᾱ_i,  s² = (1 − ᾱ_i)/ᾱ_i,
        c_skip = σ_d² / (s² + σ_d²),  c_out = s σ_d / √(s² + σ_d²),  c_in = 1 / √(s² + σ_d²).

    So ``x̂0 = D`` exactly, and ``∂x̂0/∂x_t → σ_d ∂F`` as ``ᾱ → 0`` instead of growing like
    ``1/√ᾱ`` (the plain ε-network's amplification, which makes the DPS likelihood term stiff
    at large ``t``). The training loss is unchanged: ``‖ε_θ − ε‖²``. A learned-variance network
    (``2C`` output channels, ADM's ``learn_sigma``) has only its first ``C`` channels
    preconditioned; its variance channels ``v`` pass through unchanged.
    """

    def __init__(self, net: nn.Module, alpha_bars: Tensor, sigma_data: float = 1.0):
        super().__init__()
        self.net = net
        self.sigma_data = float(sigma_data)
        self.register_buffer("alpha_bars", alpha_bars.detach().float().clone(), persistent=False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        ab = per_sample(self.alpha_bars.to(x.device)[t], x)
        s2 = (1.0 - ab) / ab
        sd2 = self.sigma_data**2
        x_tilde = x / ab.sqrt()
        c_skip = sd2 / (s2 + sd2)
        c_out = s2.sqrt() * self.sigma_data / (s2 + sd2).sqrt()
        c_in = 1.0 / (s2 + sd2).sqrt()
        f, v = split_learned_variance(self.net(c_in * x_tilde, t), x)
        eps = eps_from_x0(x, c_skip * x_tilde + c_out * f, ab)
        return eps if v is None else torch.cat([eps, v], dim=1)

