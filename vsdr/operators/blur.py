"""DPS's Gaussian blur (docs/METHOD.md §8, DPS): a ``kernel_size²`` delta filtered by scipy's
``gaussian_filter`` (std ``std``, default truncation 4 std: a ``(2r+1)²`` support with
``r = int(4·std + 0.5)``, 25×25 for std 3), reflection padding ``kernel_size // 2`` and a
depthwise convolution (``boundary='reflect'``); or the same kernel as a circular convolution,
DiffPIR's measurement (``boundary='circular'``: its code blurs with ``mode='wrap'``)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample
from vsdr.operators._fft import (
    AxisGramEigen,
    AxisSVD,
    check_boundary,
    kernel_otf,
    reflect_index,
    reflect_pad,
    reflect_pad_adjoint,
    separable_gram_solve,
    separable_prox_solve,
)
from vsdr.operators.linear import LinearOperator, conjugate_gradient


def dps_gaussian_kernel(kernel_size: int = 61, std: float = 3.0) -> np.ndarray:
    """The ``kernel_size × kernel_size`` kernel: a centred delta through ``gaussian_filter``."""
    delta = np.zeros((kernel_size, kernel_size))
    delta[kernel_size // 2, kernel_size // 2] = 1.0
    return gaussian_filter(delta, sigma=std)


class GaussianBlur(LinearOperator):
    """``A x = k ⋆ reflect_pad(x, kernel_size // 2)`` per channel (output the input's size) with
    ``boundary='reflect'`` (DPS's operator, the default); ``A x = k ⊛ x``, the circular
    convolution ``A_c`` (``circular``), with ``boundary='circular'`` (DiffPIR's).

    The kernel is zero outside its ``(2r+1)²`` support, so the convolution runs with the
    support only and reflection padding ``r``: the same numbers as padding 30 and the full
    61×61 kernel, ~6× fewer operations. ``Aᵀ`` is the transposed convolution followed by the
    exact adjoint of the reflection padding (padded values added back onto their sources).
    """

    name = "gaussian_blur"
    acts_on = "images"

    def __init__(self, kernel_size: int = 61, std: float = 3.0, boundary: str = "reflect"):
        self.kernel_size, self.std = int(kernel_size), float(std)
        self.boundary = check_boundary(boundary)
        full = dps_gaussian_kernel(self.kernel_size, self.std)
        nz = np.nonzero(full)
        c = self.kernel_size // 2
        self.radius = int(max(abs(nz[0] - c).max(), abs(nz[1] - c).max()))
        r = self.radius
        self.full_kernel = torch.from_numpy(full)
        self.kernel = torch.from_numpy(full[c - r: c + r + 1, c - r: c + r + 1].copy())
        self._otfs: dict[tuple, Tensor] = {}
        self._eig = AxisGramEigen(self.axis_matrix)
        self._svd = AxisSVD(self.axis_matrix)
        # gaussian_filter of a delta is the outer product of its 1-D filter: g gᵀ, g = K[:, c]/√K[c, c]
        g = self.kernel[:, r] / self.kernel[r, r].sqrt()
        self.separable = bool(torch.allclose(torch.outer(g, g), self.kernel, rtol=1e-12, atol=1e-15))
        self.kernel_1d = g

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        """Images only, with sides larger than the kernel's reach (reflection padding)."""
        if len(shape) != 3:
            return "it blurs images"
        if min(shape[-2:]) <= self.radius:
            return (f"its kernel reaches {self.radius} pixels from its centre (operator.kernel_size="
                    f"{self.kernel_size}, operator.std={self.std:g}) and reflection padding needs an "
                    f"image side larger than {self.radius}, not {min(shape[-2:])}")
        return None

    def _weight(self, x: Tensor) -> Tensor:
        k = self.kernel.to(device=x.device, dtype=x.dtype)
        return k[None, None].expand(x.shape[1], 1, *k.shape)

    def forward(self, x: Tensor) -> Tensor:
        if self.boundary == "circular":
            return self.circular(x)
        return F.conv2d(reflect_pad(x, self.radius), self._weight(x), groups=x.shape[1])

    def adjoint(self, y: Tensor) -> Tensor:
        if self.boundary == "circular":
            return self.circular_adjoint(y)
        z = F.conv_transpose2d(y, self._weight(y), groups=y.shape[1])
        return reflect_pad_adjoint(z, self.radius)

    # -- ΠGDM's solve, exact: A = B ⊗ B with B one axis's reflect-pad-and-filter matrix --------
    def axis_matrix(self, n: int) -> Tensor:
        """``B`` ``(n, n)`` float64: reflection padding by ``r`` then the 1-D filter, so that
        ``A x = B x Bᵀ`` per channel on an ``n × n`` image (``A = B_h ⊗ B_w`` in general)."""
        idx = reflect_index(n, self.radius)
        b = torch.zeros(n, n, dtype=torch.float64)
        for k, w in enumerate(self.kernel_1d.tolist()):
            b.index_put_((torch.arange(n), idx[k: k + n]), torch.full((n,), w, dtype=torch.float64),
                         accumulate=True)
        return b

    def solve_gram(self, v: Tensor, r2: float | Tensor, sigma2: float | Tensor,
                   x_shape: tuple[int, ...]) -> Tensor:
        """``(r2 A Aᵀ + sigma2 I)⁻¹ v`` exactly: reflect padding included, through the
        Kronecker structure of the separable kernel (conjugate gradients if it were not);
        circular: ``F⁻¹[v̂/(r2 |K̂|² + sigma2)]``."""
        if self.boundary == "circular":
            fb = self._otf(*v.shape[-2:], v)
            den = per_sample(r2, v) * fb.abs() ** 2 + per_sample(sigma2, v)
            return torch.fft.ifft2(torch.fft.fft2(v) / den).real.to(v.dtype)
        if not self.separable:
            return super().solve_gram(v, r2, sigma2, x_shape)
        return separable_gram_solve(v, self._eig(v.shape[-2]), self._eig(v.shape[-1]), r2, sigma2)

    # -- the closed-form data step (DiffPIR, docs/METHOD.md §8) --------------------------------
    def prox_data(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``argmin_x ‖y − A x‖² + ρ‖x − x̂0‖² = (AᵀA + ρI)⁻¹(Aᵀy + ρ x̂0)`` exactly for this
        operator's boundary. Circular: one division in Fourier (``prox_circular``, DiffPIR's
        FFT step). Reflect: ``A = B ⊗ B`` with ``B`` one axis's reflect-pad-and-filter matrix,
        solved in the singular bases of ``B`` (``separable_prox_solve``: two small rotations
        per axis); conjugate gradients if the kernel were not separable."""
        if self.boundary == "circular":
            return self.prox_circular(x0_hat, y, rho)
        if self.separable:
            h, w = x0_hat.shape[-2:]
            return separable_prox_solve(y, x0_hat, self._svd(h), self._svd(w), rho)
        rho_b = per_sample(rho, x0_hat)
        return conjugate_gradient(lambda p: self.adjoint(self.forward(p)) + rho_b * p,
                                  self.adjoint(y) + rho_b * x0_hat)

    # -- the circular model ---------------------------------------------------------------
    def _otf(self, h: int, w: int, like: Tensor) -> Tensor:
        key = (h, w, like.dtype, like.device)
        if key not in self._otfs:  # computed in float64, kept in the input's complex precision
            off = torch.arange(-self.radius, self.radius + 1)
            cdtype = torch.complex128 if like.dtype == torch.float64 else torch.complex64
            self._otfs[key] = kernel_otf(self.kernel, off, off, h, w).to(like.device, cdtype)
        return self._otfs[key]

    def circular(self, x: Tensor) -> Tensor:
        """``A_c x``: the same kernel as a circular convolution (periodic boundary)."""
        fb = self._otf(*x.shape[-2:], x)
        return torch.fft.ifft2(fb * torch.fft.fft2(x)).real.to(x.dtype)

    def circular_adjoint(self, y: Tensor) -> Tensor:
        """``A_cᵀ y = F⁻¹[conj(K̂)·ŷ]``: the circular correlation with the kernel."""
        fb = self._otf(*y.shape[-2:], y)
        return torch.fft.ifft2(fb.conj() * torch.fft.fft2(y)).real.to(y.dtype)

    def prox_circular(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``argmin ‖y − A_c x‖² + ρ‖x − x̂0‖²`` for the **circular** model ``A_c``:
        ``x = F⁻¹[(conj(K̂)·ŷ + ρ x̂0^) / (|K̂|² + ρ)]`` (DiffPIR's FFT data step)."""
        fb = self._otf(*x0_hat.shape[-2:], x0_hat)
        rho_t = per_sample(rho, x0_hat)
        num = fb.conj() * torch.fft.fft2(y) + rho_t * torch.fft.fft2(x0_hat)
        return torch.fft.ifft2(num / (fb.abs() ** 2 + rho_t)).real.to(x0_hat.dtype)
