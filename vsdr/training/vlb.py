"""The variational-bound term that trains a learned variance (Nichol & Dhariwal 2021, the
``hybrid`` loss of guided-diffusion): ``L = ‖ε_θ − ε‖² + (T/1000) · L_vlb`` with the mean's
gradient stopped inside ``L_vlb``, so ``v`` learns from the bound and ``ε`` from the MSE."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.variance import interpolate_log_variance


def vlb_variance_term(eps: Tensor, eps_hat: Tensor, v: Tensor, i: Tensor, betas: Tensor,
                      alpha_bars: Tensor) -> Tensor:
    """Per-sample ``KL(q(x_{t−1}|x_t, x0) ‖ p_θ(x_{t−1}|x_t))`` in bits per dimension, with
    ``p_θ``'s mean from ``eps_hat`` (detached) and ``log σ² = frac·log β + (1−frac)·log β̃``,
    ``frac = (v+1)/2``. Both means share the form ``(x_t − β/√(1−ᾱ) ε)/√α``, so
    ``μ_q − μ_θ = −β/(√α √(1−ᾱ)) (ε − ε̂)``. Step ``i = 0`` (a decoder term in the paper,
    never used by the samplers here, which add no noise there) contributes 0.

    The tables are per-sample float32 buffers here (the samplers' ``reverse_std`` works on the
    float64 ``VPSchedule``), so ``β̃`` is recomputed in the batch's precision; the
    ``learned_range`` interpolation is the samplers' (``interpolate_log_variance``)."""
    b = per_sample(betas[i], eps)
    ab = per_sample(alpha_bars[i], eps)
    ab_prev = torch.where(i > 0, alpha_bars[(i - 1).clamp(min=0)], torch.ones_like(alpha_bars[i]))
    ab_prev = per_sample(ab_prev, eps)
    post = b * (1 - ab_prev) / (1 - ab)
    post1 = (betas[1] * (1 - alpha_bars[0]) / (1 - alpha_bars[1])) if len(betas) > 1 else betas[0]
    log_q = torch.where(per_sample(i, eps) > 0, post.clamp(min=1e-20).log(), post1.log().expand_as(post))
    log_p = interpolate_log_variance(v, b.log(), log_q)
    diff2 = (b**2 / ((1 - b) * (1 - ab))) * (eps - eps_hat.detach()) ** 2
    kl = 0.5 * (-1.0 + log_p - log_q + torch.exp(log_q - log_p) + diff2 * torch.exp(-log_p))
    kl = kl.flatten(1).mean(1) / math.log(2.0)
    return torch.where(i > 0, kl, torch.zeros_like(kl))
