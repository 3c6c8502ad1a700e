"""Shared pieces of the image operators: reflect-padding and its exact adjoint, and the
optical transfer function of a small kernel on an ``H × W`` torus."""
from __future__ import annotations

import torch
from torch import Tensor


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
