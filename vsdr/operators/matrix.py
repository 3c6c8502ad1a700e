"""A dense matrix operator ``A (k × d)``, drawn from a seed (analytic experiments)."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vsdr.operators.linear import LinearOperator


class MatrixOperator(LinearOperator):
    """``y = A x`` with ``A`` given, or drawn with i.i.d. ``N(0, 1/dim)`` entries from
    ``draw_seed`` (``rows × dim``; non-square when ``rows != dim``)."""

    name = "matrix"
    acts_on = "points"

    def __init__(self, rows: int = 1, dim: int = 2, draw_seed: int = 0,
                 matrix: list[list[float]] | None = None):
        if matrix is not None:
            self.A = torch.tensor(matrix, dtype=torch.float64)
        else:
            rng = np.random.default_rng(draw_seed)
            self.A = torch.tensor(rng.standard_normal((rows, dim)) / np.sqrt(dim))

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        """Points whose dimension is the number of columns of ``A``."""
        cols = self.A.shape[1]
        if len(shape) != 1:
            return f"A ({self.A.shape[0]}×{cols}) multiplies points of dimension {cols}, not images"
        if shape[0] != cols:
            return f"A ({self.A.shape[0]}×{cols}) multiplies points of dimension {cols}, not {shape[0]}"
        return None

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.A.T.to(x)

    def adjoint(self, y: Tensor) -> Tensor:
        return y @ self.A.to(y)

    def prox_data(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``(AᵀA + ρ I)⁻¹ (Aᵀ y + ρ x̂0)`` by a dense solve per sample."""
        A = self.A.to(torch.float64)
        rho_b = torch.as_tensor(rho, dtype=torch.float64).reshape(-1, 1, 1)
        lhs = A.T @ A + rho_b * torch.eye(A.shape[1], dtype=torch.float64)
        rhs = self.adjoint(y.double()) + rho_b[:, :, 0] * x0_hat.double()
        return torch.linalg.solve(lhs.expand(len(x0_hat), -1, -1), rhs).to(x0_hat)

    def solve_gram(self, v: Tensor, r2: float | Tensor, sigma2: float | Tensor,
                   x_shape: tuple[int, ...]) -> Tensor:
        """``(r2 A Aᵀ + sigma2 I)⁻¹ v`` by a dense solve per sample (``k × k``)."""
        A = self.A.to(torch.float64)
        k = A.shape[0]
        r2_b = torch.as_tensor(r2, dtype=torch.float64).reshape(-1, 1, 1)
        s2_b = torch.as_tensor(sigma2, dtype=torch.float64).reshape(-1, 1, 1)
        lhs = r2_b * (A @ A.T) + s2_b * torch.eye(k, dtype=torch.float64)
        rhs = v.double().unsqueeze(-1)
        return torch.linalg.solve(lhs.expand(len(v), -1, -1), rhs).squeeze(-1).to(v)
