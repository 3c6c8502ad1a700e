"""Training batches drawn from a fixed tensor of points (no Lightning import: a job whose
networks are cached never loads Lightning)."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class RandomBatches(Dataset):
    """``num_batches`` random mini-batches of a fixed tensor of points; item ``k`` is a whole
    batch drawn with generator seed ``(seed, k)`` (cheap: no per-point indexing)."""

    def __init__(self, points: Tensor, batch_size: int, num_batches: int, seed: int = 0):
        self.points, self.batch_size, self.num_batches, self.seed = points, batch_size, num_batches, seed

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, k: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + k)
        idx = torch.randint(0, len(self.points), (self.batch_size,), generator=g)
        return self.points[idx]
