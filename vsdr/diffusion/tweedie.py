"""The VP forward marginal ``x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε`` and its two inversions (docs/METHOD.md §1):
Tweedie's ``x̂0`` from ``ε`` and ``ε`` from ``x̂0``.

``alpha_bar`` is a Python float (one step for the whole batch, the samplers) or a tensor
broadcastable against ``x`` (one step per sample, training and preconditioning; see
``vsdr.diffusion.broadcast.per_sample``). The float form uses ``** 0.5`` on Python floats, the
tensor form ``Tensor.sqrt``: each is the exact arithmetic its callers always used, so results
are the same bits as before these helpers existed.
"""
from __future__ import annotations

from torch import Tensor


def x0_from_eps(x_t: Tensor, eps: Tensor, alpha_bar: float | Tensor) -> Tensor:
    """Tweedie's estimate ``x̂0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t``."""
    if isinstance(alpha_bar, Tensor):
        return (x_t - (1.0 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
    return (x_t - (1.0 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def eps_from_x0(x_t: Tensor, x0: Tensor, alpha_bar: float | Tensor) -> Tensor:
    """The noise that ``x0`` implies, ``ε = (x_t − √ᾱ_t x0)/√(1−ᾱ_t)`` (inverse of ``x0_from_eps``)."""
    if isinstance(alpha_bar, Tensor):
        return (x_t - alpha_bar.sqrt() * x0) / (1.0 - alpha_bar).sqrt()
    return (x_t - alpha_bar**0.5 * x0) / (1.0 - alpha_bar) ** 0.5


def diffuse(x0: Tensor, eps: Tensor, alpha_bar: float | Tensor) -> Tensor:
    """A draw of the forward marginal ``x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε`` given the noise ``eps``."""
    if isinstance(alpha_bar, Tensor):
        return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * eps
    return alpha_bar**0.5 * x0 + (1.0 - alpha_bar) ** 0.5 * eps
