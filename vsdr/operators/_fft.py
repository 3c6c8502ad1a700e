"""Shared pieces of the image operators: reflect-padding and its exact adjoint, the optical
transfer function of a small kernel on an ``H × W`` torus, and the exact solve of
``(r² A Aᵀ + σ² I) z = v`` for a separable ``A x = B_h x B_wᵀ``."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample


def reflect_index(n: int, pad: int) -> Tensor:
    """Source index of each of the ``n + 2·pad`` positions of a reflect-padded axis
    (``torch``/numpy ``reflect``: the edge sample is not repeated)."""
    if pad >= n:
        raise ValueError(f"reflection padding {pad} needs an image side larger than {pad}, got {n}")
    j = torch.arange(-pad, n + pad)
    j = torch.where(j < 0, -j, j)
    return torch.where(j > n - 1, 2 * (n - 1) - j, j)


def reflect_pad(x: Tensor, pad: int) -> Tensor:
    """Reflect-pad the last two axes by ``pad`` (a gather, so its adjoint is a scatter)."""
    ih = reflect_index(x.shape[-2], pad).to(x.device)
    iw = reflect_index(x.shape[-1], pad).to(x.device)
    return x.index_select(-2, ih).index_select(-1, iw)


def reflect_pad_adjoint(z: Tensor, pad: int) -> Tensor:
    """The exact adjoint of ``reflect_pad``: every padded value added back onto its source."""
    h, w = z.shape[-2] - 2 * pad, z.shape[-1] - 2 * pad
    ih = reflect_index(h, pad).to(z.device)
    iw = reflect_index(w, pad).to(z.device)
    out = z.new_zeros(*z.shape[:-2], h, z.shape[-1]).index_add(-2, ih, z)
    return out.new_zeros(*z.shape[:-2], h, w).index_add(-1, iw, out)


def kernel_otf(weights: Tensor, offsets_h: Tensor, offsets_w: Tensor, h: int, w: int) -> Tensor:
    """``fft2`` of the convolution kernel ``c`` on the ``h × w`` torus for the correlation
    ``(Kx)[n] = Σ_d w_d x[n + d]``: ``c[(−d) mod N] = w_d``, so ``K x = ifft2(fft2(c)·fft2(x))``.
    ``weights`` is ``(len(offsets_h), len(offsets_w))``; offsets may be negative."""
    c = torch.zeros(h, w, dtype=weights.dtype)
    rows = (-offsets_h) % h
    cols = (-offsets_w) % w
    c.index_put_((rows[:, None].expand_as(weights), cols[None, :].expand_as(weights)), weights,
                 accumulate=True)
    return torch.fft.fft2(c)


def gram_eigen(b: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues ``d`` and orthonormal eigenvectors ``U`` of ``B Bᵀ`` (``B`` one axis's
    ``(m, n)`` matrix), in float64: ``B Bᵀ = U diag(d) Uᵀ``."""
    d, u = torch.linalg.eigh(b.double() @ b.double().T)
    return d.clamp_min(0.0), u


class AxisGramEigen:
    """``gram_eigen`` of one axis's matrix, per axis length ``n``, computed once:
    ``axis_matrix(n)`` gives the ``(m, n)`` matrix of an axis of length ``n``."""

    def __init__(self, axis_matrix: Callable[[int], Tensor]):
        self.axis_matrix = axis_matrix
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}

    def __call__(self, n: int) -> tuple[Tensor, Tensor]:
        if n not in self._cache:
            self._cache[n] = gram_eigen(self.axis_matrix(n))
        return self._cache[n]


def separable_gram_solve(v: Tensor, eig_h: tuple[Tensor, Tensor], eig_w: tuple[Tensor, Tensor],
                         r2: float | Tensor, sigma2: float | Tensor) -> Tensor:
    """``(r2 A Aᵀ + sigma2 I)⁻¹ v`` for ``A x = B_h x B_wᵀ`` per channel, exactly: ``A Aᵀ`` is
    the Kronecker product ``(B_h B_hᵀ) ⊗ (B_w B_wᵀ)``, so in the eigenbases ``U_h``, ``U_w`` of
    the two factors it is diagonal with entries ``d_h[a]·d_w[b]``. ``v`` is ``(B, C, m_h, m_w)``;
    ``r2``, ``sigma2`` numbers or one value per sample ``(B,)``."""
    (dh, uh), (dw, uw) = eig_h, eig_w
    uh, uw = uh.to(v), uw.to(v)
    z = torch.einsum("...ij,ia,jb->...ab", v, uh, uw)
    z = z / (per_sample(r2, v) * (dh[:, None] * dw[None, :]).to(v) + per_sample(sigma2, v))
    return torch.einsum("...ab,ia,jb->...ij", z, uh, uw)
