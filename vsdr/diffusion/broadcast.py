"""Per-sample values against a batch: one value per sample ``(B,)`` times a batch ``(B, ...)``."""
from __future__ import annotations

from typing import TypeVar

from torch import Tensor

S = TypeVar("S", float, int, Tensor)


def per_sample(v: S, like: Tensor) -> S:
    """``v`` broadcastable against ``like`` (shape ``(B, ...)``): a 1-D tensor ``(B,)`` is moved
    to ``like``'s device (and, when floating point, its dtype) and viewed as ``(B, 1, …, 1)``
    with ``like.dim()`` dimensions; a number or a tensor of any other rank is returned as is.
    Integer and boolean vectors keep their dtype (indices, masks)."""
    if isinstance(v, Tensor) and v.dim() == 1:
        v = v.to(like) if v.is_floating_point() else v.to(like.device)
        return v.view(-1, *([1] * (like.dim() - 1)))
    return v
