"""The output distribution of the K-step variance-scaled chain in closed form, for a Gaussian
posterior ``N(μ, Σ)`` and its exact score (docs/METHOD.md §2): every step is affine in ``x``
plus Gaussian noise, so the mean and covariance of ``x`` propagate exactly from ``x_T ~ N(0, I)``."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from vsdr.diffusion.schedule import VPSchedule
from vsdr.diffusion.step import trace_jump_variance


def chain_moments(mu: Tensor, Sig: Tensor, sub: VPSchedule, lam: float,
                  rule: str = "eq12") -> tuple[Tensor, Tensor]:
    """Mean and covariance of the chain's output on the (respaced) schedule ``sub``. With the
    exact score ``s = −P_k (x − √ᾱ_k μ)``, ``P_k = (ᾱ_k Σ + (1 − ᾱ_k) I)⁻¹``, step ``k`` is

        x ← M_k x + b_k + noise,   M_k = (I − β'_k P_k)/√α'_k,   b_k = β'_k √ᾱ_k P_k μ/√α'_k,

    with noise covariance ``λ β'_k I`` (``rule='eq12'``, none at ``k = 0``) or
    ``λ (β'_k/α'_k)(I − β'_k P_k)`` (``rule='marginal'``, every step) or its trace's isotropic
    ``λ trace_jump_variance(β'_k, ᾱ_k, ᾱ_{k−1}, −tr P_k/d) I`` (``rule='trace'``, every step):
    ``m ← M m + b``,
    ``C ← M C Mᵀ + noise``."""
    eye = torch.eye(len(mu), dtype=mu.dtype)
    m, C = torch.zeros_like(mu), eye.clone()
    for k in range(sub.T - 1, -1, -1):
        sc = sub.at(k)
        ab, beta = sc["alpha_bar"], sc["beta"]
        P = torch.linalg.inv(ab * Sig + (1 - ab) * eye)
        M = (eye - beta * P) / math.sqrt(1 - beta)
        m = M @ m + beta * math.sqrt(ab) * (P @ mu) / math.sqrt(1 - beta)
        if rule == "marginal":
            noise = lam * beta / (1 - beta) * (eye - beta * P)
        elif rule == "trace":
            hbar = -torch.trace(P) / len(mu)
            noise = lam * float(trace_jump_variance(beta, ab, sc["alpha_bar_prev"], hbar)) * eye
        elif rule == "eq12":
            noise = lam * beta * eye if k else torch.zeros_like(eye)
        else:
            raise ValueError(f"rule={rule!r} is not eq12, marginal or trace")
        C = M @ C @ M.T + noise
    return m, C
