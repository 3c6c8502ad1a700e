"""Linear operators acting on batches ``(B, ...)``."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample


class LinearOperator:
    """``y = A x``; subclasses give ``forward`` (``A``) and ``adjoint`` (``Aᵀ``)."""

    name = "linear"
    #: what ``A`` acts on: ``images`` (``(C, H, W)``), ``points`` (``(dim,)``) or ``any``
    acts_on = "any"

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why ``A`` cannot act on one signal of ``shape`` (no batch axis: ``(dim,)`` for
        points, ``(C, H, W)`` for images), as a clause for a message; ``None`` when it can."""
        return None

    def prox_data(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """The data step of HQS / DiffPIR (docs/METHOD.md §6) in closed form:
        ``argmin_x ‖y − A x‖² + ρ ‖x − x̂0‖² = (AᵀA + ρ I)⁻¹ (Aᵀ y + ρ x̂0)``;
        ``rho`` is a number or one value per sample ``(B,)``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form data step")

    def solve_gram(self, v: Tensor, r2: float | Tensor, sigma2: float | Tensor,
                   x_shape: tuple[int, ...]) -> Tensor:
        """``(r2 A Aᵀ + sigma2 I)⁻¹ v`` per sample (ΠGDM's likelihood covariance, docs/METHOD.md
        §2); ``v`` is shaped like ``A x`` and ``x_shape`` is the shape of one signal ``x``.
        ``r2``, ``sigma2``: numbers or one value per sample ``(B,)``, ``sigma2 > 0``.

        This generic version runs conjugate gradients with ``Aᵀ`` taken as the vector–Jacobian
        product of ``forward``; operators with structure override it with a closed form."""
        r2_b, s2_b = per_sample(r2, v), per_sample(sigma2, v)

        def gram(p: Tensor) -> Tensor:
            return r2_b * self.forward(adjoint_by_vjp(self, p, x_shape)) + s2_b * p

        return conjugate_gradient(gram, v)

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def as_matrix(self, dim: int) -> Tensor:
        """``A`` as a dense float64 matrix ``(k, dim)`` (for small point data): its columns are
        ``A e_j``."""
        import torch

        return self.forward(torch.eye(dim, dtype=torch.float64)).T.contiguous()


def adjoint_by_vjp(operator: LinearOperator, v: Tensor, x_shape: tuple[int, ...]) -> Tensor:
    """``Aᵀ v`` as the vector–Jacobian product of ``operator.forward`` (``A`` is linear, so its
    Jacobian is ``A`` at any point); ``v`` is ``(B, ...)``, the result ``(B, *x_shape)``."""
    with torch.enable_grad():
        x = torch.zeros(v.shape[0], *x_shape, dtype=v.dtype, device=v.device, requires_grad=True)
        (out,) = torch.autograd.grad(operator.forward(x), x, grad_outputs=v)
    return out


def conjugate_gradient(apply: Callable[[Tensor], Tensor], b: Tensor, rtol: float | None = None,
                       max_iter: int = 1000) -> Tensor:
    """Solve ``M x = b`` for a symmetric positive definite ``M`` given as ``apply``, one system
    per sample of ``b`` ``(B, ...)`` (inner products over each sample's entries). Stops when
    every residual is below ``rtol·‖b‖`` (default 1e-10 in float64, 1e-5 in float32) or after
    ``max_iter`` iterations."""
    if rtol is None:
        rtol = 1e-10 if b.dtype == torch.float64 else 1e-5

    def dot(a: Tensor, c: Tensor) -> Tensor:
        return per_sample((a * c).flatten(1).sum(1), b)

    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = dot(r, r)
    stop = (rtol**2) * rs
    for _ in range(max_iter):
        if bool((rs <= stop).all()):
            break
        Ap = apply(p)
        pap = dot(p, Ap)
        alpha = torch.where(pap > 0, rs / torch.where(pap > 0, pap, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * Ap
        rs_new = dot(r, r)
        p = r + torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, 1.0), 0.0) * p
        rs = rs_new
    return x


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

    def solve_gram(self, v: Tensor, r2: float | Tensor, sigma2: float | Tensor,
                   x_shape: tuple[int, ...]) -> Tensor:
        """``v / (r2 + sigma2)``."""
        return v / (per_sample(r2, v) + per_sample(sigma2, v))
