"""PSCGAN's 2D networks (docs/METHOD.md §6, docs/METHOD.md §8, PSCGAN): an MLP generator ``G(y, z)``
and an MLP critic ``D(x, y)``; the paper's sizes are 25,682 and 25,025 parameters."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vsdr.models.mlp2d import mlp_block


class GeneratorMLP(nn.Module):
    """``G(y, z)``: an MLP on ``[y, z]`` with widths ``[dim + z_dim, *hidden, dim]`` and SiLU.

    ``inject='all'`` concatenates ``z`` again before every later layer (PSCGAN's official
    generator concatenates a noise map before every decoder convolution), which keeps the
    noise from being washed out; ``'input'`` only at the input. Defaults: 25,926 parameters
    with ``'all'``, 25,538 with ``'input'``.
    """

    def __init__(self, dim: int = 2, z_dim: int = 2, hidden: Sequence[int] = (128, 128, 64),
                 inject: str = "all"):
        super().__init__()
        if inject not in ("all", "input"):
            raise ValueError(f"generator inject={inject!r} is not one of 'all', 'input'")
        self.dim, self.z_dim, self.inject = dim, z_dim, inject
        self.z_shape = (z_dim,)
        extra = z_dim if inject == "all" else 0
        sizes = [dim + z_dim, *hidden, dim]
        self.layers = nn.ModuleList(
            nn.Linear(a + (extra if k > 0 else 0), b) for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
        self.act = nn.SiLU()

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        h = torch.cat([y, z], dim=1)
        for k, layer in enumerate(self.layers):
            if k > 0:
                h = self.act(h)
                if self.inject == "all":
                    h = torch.cat([h, z], dim=1)
            h = layer(h)
        return h


class CriticMLP(nn.Module):
    """``D(x, y) = MLP[2·dim, *hidden, 1]([x, y])`` (WGAN critic: no output squashing);
    defaults: 25,473 parameters."""

    def __init__(self, dim: int = 2, hidden: Sequence[int] = (128, 128, 64)):
        super().__init__()
        self.net = mlp_block([2 * dim, *hidden, 1], final_activation=False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.net(torch.cat([x, y], dim=1)).squeeze(1)


class ConditionalGenerator:
    """A trained ``G`` as the object PSCGAN's sampler consumes; counts generator passes.

    ``z_shape``: the shape of one sample's noise (the generator's ``z_shape``, else
    ``(z_dim,)``). The network is held as ``net`` so that ``make_batch_invariant`` can wrap it
    (``FixedShapeNet`` pads ``y`` and ``z`` alike): a sample's output then does not depend on
    the batch it is drawn in."""

    is_conditional = True

    def __init__(self, generator: nn.Module):
        self.net = generator
        self.z_shape = tuple(getattr(generator, "z_shape", (generator.z_dim,)))
        self.z_dim = generator.z_dim
        self.nfe = 0

    @property
    def generator(self) -> nn.Module:
        return self.net

    def __call__(self, y: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        with torch.no_grad():
            return self.net(y, z)
