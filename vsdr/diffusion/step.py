"""The variance-scaled reverse step (docs/METHOD.md §2, eq. 12)."""
from __future__ import annotations

import torch
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



def jump_covariance(beta: float, hessian: Tensor) -> Tensor:
    """The covariance of the reverse jump over one (respaced) step, ``(B, d, d)`` (a stride-0 batch stays
    one matrix):

        Cov[x_s | x_t] = (β'/α') (I + β' H_t),      H_t = ∇² log p_t(x_t)

    (docs/METHOD.md §2, "Few steps that keep the theory"): DDPM's ``β̃' I`` plus
    ``c0² Cov[x0 | x_t]`` with ``c0 = √ᾱ_s β'/(1 − ᾱ_t)`` and the second-order Tweedie
    ``Cov[x0 | x_t] = (1 − ᾱ_t)/ᾱ_t (I + (1 − ᾱ_t) H_t)``. ``hessian`` is symmetrised first."""
    if len(hessian) > 1 and hessian.stride(0) == 0:  # one matrix for the whole batch (a Gaussian's)
        return jump_covariance(beta, hessian[:1]).expand_as(hessian)
    alpha = 1.0 - beta
    h = 0.5 * (hessian + hessian.transpose(-1, -2))
    eye = torch.eye(h.shape[-1], dtype=h.dtype, device=h.device)
    return (beta / alpha) * (eye + beta * h)


def trace_jump_variance(beta: float, alpha_bar: float, alpha_bar_prev: float, hbar: Tensor) -> Tensor:
    """The isotropic variance of ``step_rule='trace'``: the jump covariance's trace over ``d``,

        σ'² = (β'/α') (1 + β' h̄),      h̄ = tr(H_t)/d,

    clipped to ``[β̃', β'/α']`` (``β̃' = β'(1 − ᾱ_s)/(1 − ᾱ_t)``): the bounds of
    ``Cov[x_s | x_t]`` for ``0 ⪯ Cov[x0 | x_t] ⪯ (1 − ᾱ_t)/ᾱ_t I``, so a noisy estimate of ``h̄``
    never yields a variance no jump has. ``hbar`` is one number per sample ``(B,)``; exact
    (``= step_rule='marginal'``) when ``H_t`` is a multiple of ``I`` (docs/METHOD.md §2)."""
    alpha = 1.0 - beta
    lo = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    hi = beta / alpha
    return ((beta / alpha) * (1.0 + beta * hbar)).clamp(lo, hi)


def psd_sqrt(cov: Tensor) -> Tensor:
    """The symmetric square root of each ``(d, d)`` matrix of ``cov``, negative eigenvalues
    (an approximate Hessian's) set to 0. One matrix expanded over the batch (stride 0, a
    Gaussian's Hessian) is decomposed once."""
    if len(cov) > 1 and cov.stride(0) == 0:
        return psd_sqrt(cov[:1]).expand_as(cov)
    w, v = torch.linalg.eigh(cov)
    return (v * w.clamp_min(0.0).sqrt().unsqueeze(-2)) @ v.transpose(-1, -2)


def marginal_step(x_t: Tensor, score: Tensor, beta: float, alpha: float, cov_sqrt: Tensor,
                  lam: Tensor | float, z: Tensor) -> Tensor:
    """One step of ``step_rule='marginal'``: eq. 12's mean, ``λ`` times the jump's own covariance

        x_s = (x_t + β' score)/√α' + √λ Cov[x_s | x_t]^{1/2} z

    (``cov_sqrt`` from ``psd_sqrt(jump_covariance(β', H_t))``, one ``(d, d)`` per sample; ``x_t``
    of shape ``(B, *shape)`` with ``d`` entries per sample). Noise at every step, the last
    included."""
    mean = (x_t + beta * score) / alpha**0.5
    flat = z.reshape(len(z), -1).to(cov_sqrt.dtype)
    if len(z) > 1 and cov_sqrt.stride(0) == 0:
        noise = flat @ cov_sqrt[0].T
    else:
        noise = (cov_sqrt @ flat.unsqueeze(-1)).squeeze(-1)
    noise = noise.reshape(z.shape).to(z.dtype)
    return mean + per_sample(lam, x_t) ** 0.5 * noise
