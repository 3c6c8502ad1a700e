"""What every sampler returns."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class SampleResult:
    """``samples``: ``(B, ...)``; ``nfe``: network evaluations (one per forward pass of the
    whole batch); ``trajectory``: optional ``(steps+1, B, ...)`` states from ``x_T`` to ``x_0``."""

    samples: Tensor
    nfe: int
    trajectory: Tensor | None = None
