"""The paper's 2D score network: the point and the time each through an MLP block,
concatenated, through a third block (§IV-A; the bridge code's ScoreNetwork shape)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vsdr.models.embedding import timestep_embedding


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
        emb = timestep_embedding(t, self.temb, freqs_on_cpu=True)
        h = torch.cat([self.x_block(x), self.t_block(emb)], dim=1)
        return self.decoder(h)
