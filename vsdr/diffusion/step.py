"""The variance-scaled reverse step (docs/METHOD.md §2, eq. 12)."""
from __future__ import annotations

from torch import Tensor

from vsdr.diffusion.broadcast import per_sample


def variance_scaled_step(
    x_t: Tensor,
    score: Tensor,
    beta: float,
    alpha: float,
    sigma: float | Tensor,
    lam: Tensor | float,
    z: Tensor | None,
) -> Tensor:
    """One reverse step of eq. 12:

        x_{t−1} = (x_t + β_t · score) / √α_t + √λ · σ_t · z

    ``score`` estimates ``∇ log p_t(x_t | y)``; ``lam`` is a number or one ``λ`` per sample
    ``(B,)``; ``sigma`` a number or a tensor shaped like ``x_t`` (a learned, per-pixel σ);
    ``z = None`` means no noise (the last step). λ = 1 is the conditional DDPM step,
    λ = 0 propagates the reverse mean only.
    """
    mean = (x_t + beta * score) / alpha**0.5
    if z is None:
        return mean
    lam_b = per_sample(lam, x_t)
    return mean + (lam_b**0.5) * sigma * z


def ddpm_posterior_mean(x_t: Tensor, x0_hat: Tensor, alpha_bar: float, alpha_bar_prev: float,
                        beta: float) -> Tensor:
    """DDPM's posterior mean ``μ̃(x_t, x̂0)`` (Ho et al. 2020, eq. 7), the mean of DPS's step:

        μ̃ = β_t √ᾱ_{t−1}/(1−ᾱ_t) · x̂0 + (1−ᾱ_{t−1}) √α_t/(1−ᾱ_t) · x_t

    With Tweedie's (unclipped) ``x̂0`` this equals ``(x_t + β_t s)/√α_t``, the mean of eq. 12.
    """
    alpha = 1.0 - beta
    c0 = beta * alpha_bar_prev**0.5 / (1.0 - alpha_bar)
    ct = (1.0 - alpha_bar_prev) * alpha**0.5 / (1.0 - alpha_bar)
    return c0 * x0_hat + ct * x_t

