"""Distortion measures."""
from __future__ import annotations

from torch import Tensor


def mse(x0: Tensor, x_hat: Tensor) -> float:
    """``E‖x0 − x̂‖²``: the squared error summed over coordinates, averaged over samples
    (docs/METHOD.md §3; for Gaussian data ``(1 + λ) tr Σ``)."""
    return float((x0 - x_hat).flatten(1).pow(2).sum(1).mean())
