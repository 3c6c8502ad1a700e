"""PSCGAN's 2D networks (METHOD.md §6, REFERENCES.md "PSCGAN"): an MLP generator ``G(y, z)``
and an MLP critic ``D(x, y)``; the paper's sizes are 25,682 and 25,025 parameters."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vsdr.models.mlp2d import mlp_block


class GeneratorMLP(nn.Module):
    """``G(y, z) = MLP[dim + z_dim, *hidden, dim]([y, z])``; defaults: 25,538 parameters."""

    def __init__(self, dim: int = 2, z_dim: int = 2, hidden: Sequence[int] = (128, 128, 64), **_: object):
        super().__init__()
        self.dim, self.z_dim = dim, z_dim
        self.net = mlp_block([dim + z_dim, *hidden, dim], final_activation=False)

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([y, z], dim=1))


class CriticMLP(nn.Module):
    """``D(x, y) = MLP[2·dim, *hidden, 1]([x, y])`` (WGAN critic: no output squashing);
    defaults: 25,473 parameters."""

    def __init__(self, dim: int = 2, hidden: Sequence[int] = (128, 128, 64), **_: object):
        super().__init__()
        self.net = mlp_block([2 * dim, *hidden, 1], final_activation=False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([x, y], dim=1)).squeeze(1)


class ConditionalGenerator:
    """A trained ``G`` as the object PSCGAN's sampler consumes; counts generator passes."""

    is_conditional = True

    def __init__(self, generator: GeneratorMLP):
        self.generator = generator
        self.z_dim = generator.z_dim
        self.nfe = 0

    def __call__(self, y: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        with torch.no_grad():
            return self.generator(y, z)
