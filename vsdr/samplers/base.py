"""What every sampler returns."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SampleResult:
    """``samples``: ``(B, ...)``; ``nfe``: network evaluations (one per forward pass of the
    whole batch); ``trajectory``: optional ``(steps+1, B, ...)`` states from ``x_T`` to ``x_0``."""

    samples: Tensor
    nfe: int
    trajectory: Tensor | None = None


def per_sample_knob(knob: Tensor | Sequence[float], seeds: Sequence[int], batch: int,
                    name: str) -> Tensor:
    """The knob as one float64 value per sample, checked against the batch and the seeds."""
    values = torch.as_tensor(knob, dtype=torch.float64).reshape(-1)
    if values.numel() != batch or len(seeds) != batch:
        raise ValueError(f"need one {name} and one seed per sample: "
                         f"{values.numel()}, {len(seeds)}, {batch}")
    return values


def signal_shape(y: Tensor, operator) -> tuple[int, ...]:
    """The shape of one ``x0`` that explains ``y``: that of ``Aᵀ y`` (``A`` may be non-square)."""
    return tuple(operator.adjoint(y[:1]).shape[1:])
