"""The paper's 2D score network: the point and the time each through an MLP block,
concatenated, through a third block (§IV-A; the bridge code's ScoreNetwork shape)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer-style sinusoidal embedding of (integer or real) times ``t``: ``(B,) → (B, dim)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs.to(t.device)[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


def mlp_block(sizes: Sequence[int], final_activation: bool = True) -> nn.Sequential:
    """Linear layers with SiLU between them (and after the last when ``final_activation``)."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if final_activation or k < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class ScoreMLP(nn.Module):
    """``ε_θ(x, t)`` for points in ``R^dim``.

    ``x → MLP[dim, enc, enc]``, ``t → sinusoid(temb) → MLP[temb, enc, enc]``, concatenated,
    ``→ MLP[2·enc, *decoder, dim]``. The defaults give 26,586 parameters (the paper: 26,498).
    """

    def __init__(self, dim: int = 2, enc: int = 28, temb: int = 28,
                 decoder: Sequence[int] = (128, 128)):
        super().__init__()
        self.dim, self.temb = dim, temb
        self.x_block = mlp_block([dim, enc, enc])
        self.t_block = mlp_block([temb, enc, enc])
        self.decoder = mlp_block([2 * enc, *decoder, dim], final_activation=False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = torch.cat([self.x_block(x), self.t_block(sinusoidal_embedding(t, self.temb))], dim=1)
        return self.decoder(h)
