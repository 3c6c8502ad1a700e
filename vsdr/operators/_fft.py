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


BOUNDARIES = ("reflect", "circular")


def check_boundary(boundary: str) -> str:
    """``boundary`` if it is one of ``BOUNDARIES``, else a ``ValueError``."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"operator.boundary must be one of {list(BOUNDARIES)}, got {boundary!r}")
    return boundary


def axis_svd(b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``B = W diag(s) Vᵀ`` for one axis's ``(m, n)`` matrix (``m ≤ n``), float64: ``W``
    ``(m, m)``, ``s`` padded with zeros to length ``n`` (the null space of ``B``), ``V`` ``(n, n)``."""
    w, s, vh = torch.linalg.svd(b.double(), full_matrices=True)
    s_full = torch.zeros(b.shape[1], dtype=torch.float64)
    s_full[: s.numel()] = s
    return w, s_full, vh.T.contiguous()


class AxisSVD:
    """``axis_svd`` of one axis's matrix, per axis length ``n``, computed once."""

    def __init__(self, axis_matrix: Callable[[int], Tensor]):
        self.axis_matrix = axis_matrix
        self._cache: dict[int, tuple[Tensor, Tensor, Tensor]] = {}

    def __call__(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        if n not in self._cache:
            self._cache[n] = axis_svd(self.axis_matrix(n))
        return self._cache[n]


def separable_prox_solve(y: Tensor, x0_hat: Tensor, svd_h: tuple[Tensor, Tensor, Tensor],
                         svd_w: tuple[Tensor, Tensor, Tensor], rho: float | Tensor) -> Tensor:
    """``argmin_x ‖y − A x‖² + ρ ‖x − x̂0‖²`` exactly for ``A x = B_h x B_wᵀ`` per channel.
    With ``B = W diag(s) Vᵀ`` per axis, ``A``'s singular values are ``s_h[a]·s_w[b]``, and the
    normal equations ``(AᵀA + ρI) x = Aᵀy + ρ x̂0`` read, in the basis ``V_h ⊗ V_w``,
    ``z = (s ⊙ Wᵀy + ρ Vᵀx̂0)/(s² + ρ)``, ``x = V z``: bounded factors (no ``1/ρ``), so it is
    accurate in float32 too. ``y`` ``(B, C, m_h, m_w)``, ``x̂0`` ``(B, C, n_h, n_w)``."""
    (wh, sh, vh), (ww, sw, vw) = svd_h, svd_w
    s = (sh[:, None] * sw[None, :]).to(x0_hat)
    rho_b = per_sample(rho, x0_hat)
    wy = torch.einsum("...ij,ia,jb->...ab", y, wh.to(y), ww.to(y))
    wy = torch.nn.functional.pad(wy, (0, s.shape[1] - wy.shape[-1], 0, s.shape[0] - wy.shape[-2]))
    vx = torch.einsum("...ij,ia,jb->...ab", x0_hat, vh.to(x0_hat), vw.to(x0_hat))
    den = s * s + rho_b
    # s = ρ = 0 (ρ = 0 on A's null space): the limit ρ → 0⁺ keeps x̂0 there
    z = torch.where(den > 0, (s * wy + rho_b * vx) / torch.where(den > 0, den, 1.0), vx)
    return torch.einsum("...ab,ia,jb->...ij", z, vh.to(x0_hat), vw.to(x0_hat))
