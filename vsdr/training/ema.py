"""Exponential moving average of a network's weights and buffers, by
``torch.optim.swa_utils.AveragedModel``."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def _ema_update(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """torch's EMA update (``ema ← decay · ema + (1 − decay) · θ``, one ``lerp`` per group of
    floating tensors); integer buffers (counters such as BatchNorm's ``num_batches_tracked``)
    take the network's current value instead of a truncated average."""
    lerp = get_ema_multi_avg_fn(decay)

    def update(ema: list[Tensor], current: list[Tensor], n_averaged: Tensor) -> None:
        if torch.is_floating_point(ema[0]) or torch.is_complex(ema[0]):
            lerp(ema, current, n_averaged)
        else:
            for e, c in zip(ema, current):
                e.copy_(c)

    return update


def ema_of(net: nn.Module, decay: float) -> AveragedModel:
    """An ``AveragedModel`` of ``net`` (parameters and buffers, ``use_buffers=True``) that
    starts from ``net``'s current weights: after updates with weights ``θ_1 … θ_k`` it holds
    ``ema_k = decay · ema_{k−1} + (1 − decay) · θ_k`` with ``ema_0 = θ_0``. Call
    ``update_parameters(net)`` after each optimiser step; the averaged network is ``.module``
    (no gradients)."""
    if not 0.0 <= float(decay) <= 1.0:
        raise ValueError(f"ema_decay={decay} must be in [0, 1]")
    avg = AveragedModel(net, multi_avg_fn=_ema_update(float(decay)), use_buffers=True)
    avg.update_parameters(net)  # n_averaged 0 → 1: a copy of θ_0, the recursion's start
    return avg.requires_grad_(False)
