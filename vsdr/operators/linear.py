"""Linear operators acting on batches ``(B, ...)``."""
from __future__ import annotations

from torch import Tensor


class LinearOperator:
    """``y = A x``; subclasses give ``forward`` (``A``) and ``adjoint`` (``Aᵀ``)."""

    name = "linear"

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)


class Identity(LinearOperator):
    """``A = I``: denoising."""

    name = "identity"

    def __init__(self, **_: object):
        pass

    def forward(self, x: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        return y
