"""Linear operators acting on batches ``(B, ...)``."""
from __future__ import annotations

from torch import Tensor

from vsdr.diffusion.broadcast import per_sample


class LinearOperator:
    """``y = A x``; subclasses give ``forward`` (``A``) and ``adjoint`` (``Aᵀ``)."""

    name = "linear"

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def prox_data(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """The data step of HQS / DiffPIR (docs/METHOD.md §6) in closed form:
        ``argmin_x ‖y − A x‖² + ρ ‖x − x̂0‖² = (AᵀA + ρ I)⁻¹ (Aᵀ y + ρ x̂0)``;
        ``rho`` is a number or one value per sample ``(B,)``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form data step")

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def as_matrix(self, dim: int) -> Tensor:
        """``A`` as a dense float64 matrix ``(k, dim)`` (for small point data): its columns are
        ``A e_j``."""
        import torch

        return self.forward(torch.eye(dim, dtype=torch.float64)).T.contiguous()


class Identity(LinearOperator):
    """``A = I``: denoising."""

    name = "identity"

    def __init__(self):
        pass

    def forward(self, x: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        return y

    def prox_data(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``(y + ρ x̂0) / (1 + ρ)``."""
        rho = per_sample(rho, x0_hat)
        return (y + rho * x0_hat) / (1.0 + rho)
