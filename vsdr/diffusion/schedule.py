"""The VP / DDPM noise schedule (METHOD.md §1).

Index convention: the paper's steps are t = 1..T; the code uses ``i = t - 1 = 0..T-1``,
which is also the integer time fed to the network (DPS/guided-diffusion convention).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class VPSchedule:
    """Linear-β VP schedule: ``β_i`` from ``beta_start`` to ``beta_end``, ``α = 1 − β``,
    ``ᾱ_i = ∏_{s≤i} α_s``. All tables are float64 tensors of length ``T``."""

    betas: Tensor

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> VPSchedule:
        if T < 1:
            raise ValueError(f"diffusion.T={T}: the schedule needs at least one step")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                f"diffusion betas ({beta_start}, {beta_end}) must satisfy 0 < start <= end < 1"
            )
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @property
    def T(self) -> int:
        return int(self.betas.shape[0])

    @property
    def alphas(self) -> Tensor:
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> Tensor:
        return torch.cumprod(self.alphas, dim=0)

    @property
    def alpha_bars_prev(self) -> Tensor:
        """``ᾱ_{i−1}``, with ``ᾱ_{−1} = 1``."""
        ab = self.alpha_bars
        return torch.cat([ab.new_ones(1), ab[:-1]])

    @property
    def posterior_variances(self) -> Tensor:
        """``β̃_i = β_i (1 − ᾱ_{i−1}) / (1 − ᾱ_i)`` (DDPM's posterior variance; 0 at i = 0)."""
        return self.betas * (1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars)

    def reverse_std(self, kind: str = "beta") -> Tensor:
        """``σ_i`` of the reverse transition: ``√β_i`` (``kind='beta'``, the paper's choice)
        or ``√β̃_i`` (``kind='posterior'``, DPS's)."""
        if kind == "beta":
            return self.betas.sqrt()
        if kind == "posterior":
            return self.posterior_variances.sqrt()
        raise ValueError(f"reverse variance kind {kind!r} is not one of 'beta', 'posterior'")

    def learned_log_variance(self, i: int, v: Tensor) -> Tensor:
        """guided-diffusion's ``learned_range`` (REFERENCES.md, DPS): with ``frac = (v + 1)/2``,

            log σ_i² = frac · log β_i + (1 − frac) · log β̃_i,

        ``β̃``'s first entry (0) replaced by its second (``posterior_log_variance_clipped``)."""
        post = self.posterior_variances
        log_min = float(post[1 if i == 0 and self.T > 1 else i].log())
        log_max = float(self.betas[i].log())
        frac = (v + 1.0) / 2.0
        return frac * log_max + (1.0 - frac) * log_min

    def at(self, i: int) -> dict[str, float]:
        """Scalars of step ``i`` as Python floats: beta, alpha, alpha_bar, alpha_bar_prev."""
        return {
            "beta": float(self.betas[i]),
            "alpha": float(self.alphas[i]),
            "alpha_bar": float(self.alpha_bars[i]),
            "alpha_bar_prev": float(self.alpha_bars_prev[i]),
        }
