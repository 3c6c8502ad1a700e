"""DPS's super-resolution operator (docs/METHOD.md §8, DPS): MATLAB ``imresize`` by
``1/scale`` with the bicubic kernel (``a = −0.5``), anti-aliasing and mirror boundaries
(``boundary='reflect'``); or its interior filter applied circularly then decimated, the model
of DiffPIR's / USRNet's closed-form SR step (``boundary='circular'``)."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample
from vsdr.operators._fft import (
    AxisGramEigen,
    AxisSVD,
    check_boundary,
    kernel_otf,
    separable_gram_solve,
    separable_prox_solve,
)
from vsdr.operators.linear import LinearOperator


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (MATLAB's ``cubic``, ``a = −0.5``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1)
            + (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2)))


def _contributions(n: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MATLAB's ``contributions`` for down-sampling an axis of ``n`` by ``scale``: per output
    ``i`` (1-based) the centre ``u = i·scale + (1 − scale)/2``, the input indices
    ``⌊u − 2·scale⌋ + 0…⌈4·scale⌉+1`` (1-based, before mirroring) and their normalised weights
    ``cubic((u − j)/scale)/scale``."""
    m = math.ceil(n / scale)
    width = 4.0 * scale  # the anti-aliasing kernel is stretched by the scale
    u = np.arange(1, m + 1) * scale + 0.5 * (1.0 - scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None]
    w = cubic((u[:, None] - idx) / scale) / scale
    w = w / w.sum(axis=1, keepdims=True)
    return u, idx.astype(np.int64), w


def resize_matrix(n: int, scale: float) -> np.ndarray:
    """The ``(⌈n/scale⌉, n)`` matrix of MATLAB's bicubic ``imresize`` along one axis (mirror
    boundary: index ``j`` outside ``1…n`` reads ``[1…n, n…1]`` periodically)."""
    _, idx, w = _contributions(n, scale)
    mirror = np.concatenate([np.arange(n), np.arange(n)[::-1]])
    src = mirror[(idx - 1) % (2 * n)]
    mat = np.zeros((idx.shape[0], n))
    np.add.at(mat, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), src.ravel()), w.ravel())
    return mat


def resize_matrix_tensor(n: int, scale: int) -> torch.Tensor:
    """``resize_matrix`` as a float64 tensor."""
    return torch.from_numpy(resize_matrix(n, scale))


class SuperResolution(LinearOperator):
    """``boundary='reflect'`` (default, DPS's operator): ``A x = R_h x R_wᵀ`` per channel with
    the bicubic resize matrices ``R`` (``1/scale``, mirror borders), ``Aᵀ y = R_hᵀ y R_w``.
    ``boundary='circular'``: ``A = A_c`` (``circular``), the interior filter applied
    periodically then strided decimation; sides must be divisible by ``scale``."""

    name = "super_resolution"
    acts_on = "images"

    def __init__(self, scale: int = 8, boundary: str = "reflect"):
        if int(scale) != scale or scale < 1:
            raise ValueError(f"super_resolution.scale must be a positive integer, got {scale}")
        self.scale = int(scale)
        self.boundary = check_boundary(boundary)
        self._cache: dict[tuple, Tensor] = {}
        self._otfs: dict[tuple, Tensor] = {}
        self._eig = AxisGramEigen(partial(resize_matrix_tensor, scale=self.scale))
        self._svd = AxisSVD(partial(resize_matrix_tensor, scale=self.scale))

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        """Images only, whose sides ``scale`` divides."""
        if len(shape) != 3:
            return "it down-samples images"
        bad = [n for n in shape[-2:] if n % self.scale]
        if bad:
            return f"operator.scale={self.scale} does not divide the image side {bad[0]}"
        return None

    def _mat(self, n: int, like: Tensor) -> Tensor:
        key = (n, like.dtype, like.device)
        if key not in self._cache:
            self._cache[key] = torch.from_numpy(resize_matrix(n, self.scale)).to(like.device, like.dtype)
        return self._cache[key]

    def forward(self, x: Tensor) -> Tensor:
        if self.boundary == "circular":
            return self.circular(x)
        rh, rw = self._mat(x.shape[-2], x), self._mat(x.shape[-1], x)
        return torch.einsum("...hw,ih,jw->...ij", x, rh, rw)

    def adjoint(self, y: Tensor, shape: tuple[int, int] | None = None) -> Tensor:
        """``Aᵀ y``; the high-resolution size is ``scale ×`` the input's unless ``shape`` says."""
        h, w = shape or (y.shape[-2] * self.scale, y.shape[-1] * self.scale)
        if self.boundary == "circular":
            return self.circular_adjoint(y)
        rh, rw = self._mat(h, y), self._mat(w, y)
        return torch.einsum("...ij,ih,jw->...hw", y, rh, rw)

    def solve_gram(self, v: Tensor, r2: float | Tensor, sigma2: float | Tensor,
                   x_shape: tuple[int, ...]) -> Tensor:
        """``(r2 A Aᵀ + sigma2 I)⁻¹ v`` exactly: ``A Aᵀ = (R_h R_hᵀ) ⊗ (R_w R_wᵀ)`` is
        diagonal in the eigenbases of the two small ``(m, m)`` factors; ``x_shape`` gives the
        high-resolution size (its last two entries). Circular: ``A_c A_cᵀ`` is diagonal in the
        low-resolution Fourier basis with entries ``S|K̂|²`` (the mean of the ``s²`` aliased
        blocks), so ``F⁻¹[v̂/(r2 S|K̂|² + sigma2)]``."""
        if self.boundary == "circular":
            h, w = x_shape[-2:]
            self._check_divisible(h, w)
            aliased = self._block_mean(self._otf(h, w, v).abs() ** 2)
            den = per_sample(r2, v) * aliased + per_sample(sigma2, v)
            return torch.fft.ifft2(torch.fft.fft2(v) / den).real.to(v.dtype)
        return separable_gram_solve(v, self._eig(x_shape[-2]), self._eig(x_shape[-1]), r2, sigma2)

    # -- the closed-form data step (DiffPIR, docs/METHOD.md §8) --------------------------------
    def prox_data(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``argmin_x ‖y − A x‖² + ρ‖x − x̂0‖² = (AᵀA + ρI)⁻¹(Aᵀy + ρ x̂0)`` exactly for this
        operator's boundary. Circular: the Fourier closed form (``prox_circular``, DiffPIR's).
        Reflect (bicubic, mirror borders): ``A = R_h ⊗ R_w``, solved in the singular bases of
        the two ``(m, n)`` resize matrices (``separable_prox_solve``; ``x̂0`` is kept on their
        null space)."""
        if self.boundary == "circular":
            return self.prox_circular(x0_hat, y, rho)
        h, w = x0_hat.shape[-2:]
        return separable_prox_solve(y, x0_hat, self._svd(h), self._svd(w), rho)

    # -- the circular model ---------------------------------------------------------------
    def filter_taps(self) -> tuple[np.ndarray, np.ndarray]:
        """The interior 1-D filter: offsets ``d`` and weights ``w_d`` with
        ``(Ax)[i] = Σ_d w_d x[s·i + d]`` (0-based) away from the borders."""
        _, idx, w = _contributions(64 * self.scale, self.scale)
        i = 32  # an interior output: every tap inside the axis
        return idx[i] - 1 - self.scale * i, w[i]

    def _otf(self, h: int, w: int, like: Tensor) -> Tensor:
        key = (h, w, like.dtype, like.device)
        if key not in self._otfs:  # computed in float64, kept in the input's complex precision
            d, wd = self.filter_taps()
            off = torch.from_numpy(d)
            k = torch.from_numpy(np.outer(wd, wd))
            cdtype = torch.complex128 if like.dtype == torch.float64 else torch.complex64
            self._otfs[key] = kernel_otf(k, off, off, h, w).to(like.device, cdtype)
        return self._otfs[key]

    def _check_divisible(self, h: int, w: int) -> None:
        if h % self.scale or w % self.scale:
            raise ValueError(
                f"the closed-form SR data step needs sides divisible by {self.scale}, got {h}×{w}")

    def circular(self, x: Tensor) -> Tensor:
        """``A_c x = (c ⊛ x)[::s, ::s]``: the interior filter as a circular convolution, then
        strided decimation starting at pixel 0."""
        self._check_divisible(*x.shape[-2:])
        fb = self._otf(*x.shape[-2:], x)
        z = torch.fft.ifft2(fb * torch.fft.fft2(x)).real.to(x.dtype)
        return z[..., :: self.scale, :: self.scale]

    def circular_adjoint(self, y: Tensor) -> Tensor:
        """``A_cᵀ y``: ``y`` zero-filled onto every ``scale``-th pixel, then ``F⁻¹[conj(K̂)·]``."""
        s = self.scale
        up = y.new_zeros(*y.shape[:-2], y.shape[-2] * s, y.shape[-1] * s)
        up[..., ::s, ::s] = y
        fb = self._otf(*up.shape[-2:], up)
        return torch.fft.ifft2(fb.conj() * torch.fft.fft2(up)).real.to(y.dtype)

    def _block_mean(self, z: Tensor) -> Tensor:
        """``S`` in Fourier: the mean of the ``s²`` aliased ``(h/s, w/s)`` blocks of a spectrum."""
        s, (h, w) = self.scale, z.shape[-2:]
        return z.reshape(*z.shape[:-2], s, h // s, s, w // s).mean(dim=(-4, -2))

    def prox_circular(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``argmin ‖y − A_c x‖² + ρ‖x − x̂0‖²`` for the **circular, strided** model ``A_c``
        (DiffPIR / USRNet closed form). With ``b = A_cᵀy + ρ x̂0`` and the Woodbury identity
        ``x = (b − C̄ Sᵀ (ρ + S C C̄ Sᵀ)⁻¹ S C b)/ρ``, where in Fourier ``S`` averages the
        ``s²`` aliased blocks of the spectrum and ``Sᵀ`` tiles them."""
        h, w = x0_hat.shape[-2:]
        self._check_divisible(h, w)
        s = self.scale
        fb = self._otf(h, w, x0_hat)
        rho_t = per_sample(rho, x0_hat)
        up = torch.zeros_like(x0_hat)
        up[..., ::s, ::s] = y
        fbt = fb.conj() * torch.fft.fft2(up) + rho_t * torch.fft.fft2(x0_hat)  # b̂

        small = self._block_mean(fb * fbt) / (self._block_mean(fb.abs() ** 2) + rho_t)
        tiled = small.repeat(*([1] * (small.dim() - 2)), s, s)  # Sᵀ in Fourier
        x_hat = (fbt - fb.conj() * tiled) / rho_t
        return torch.fft.ifft2(x_hat).real.to(x0_hat.dtype)
