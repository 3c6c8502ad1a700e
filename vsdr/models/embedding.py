"""The sinusoidal timestep embedding shared by the networks (Vaswani et al. 2017, as
guided-diffusion's ``timestep_embedding``)."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0,
                       freqs_on_cpu: bool = False) -> Tensor:
    """``[cos(t·f_k), sin(t·f_k)]`` for ``k < half = dim // 2`` with
    ``f_k = exp(−log(max_period) · k/half)`` (a zero column appended when ``dim`` is odd):
    ``(B,) → (B, dim)``, float32, for integer or real times ``t``.

    ``freqs_on_cpu`` computes the frequency table on the CPU and moves it to ``t``'s device
    (the 2D MLP's layout); otherwise it is computed on ``t``'s device (guided-diffusion's,
    the ADM UNet's). The two agree exactly on the CPU; on an accelerator ``exp`` may differ in
    the last bit, so each network keeps its own choice.
    """
    half = dim // 2
    device = None if freqs_on_cpu else t.device
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=device) / half)
    args = t.float()[:, None] * freqs.to(t.device)[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb
