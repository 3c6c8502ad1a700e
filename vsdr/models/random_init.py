"""Random weights that give a network non-trivial outputs (for speed and precision checks
without a checkpoint): guided-diffusion zero-initialises its output convolutions, so a freshly
built ADM UNet returns exactly 0; ``unzero`` gives those layers PyTorch's default init."""
from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def unzero(net: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise (PyTorch's default, from ``seed``) every convolution or linear layer whose
    weight is all zeros; return ``net``."""
    torch.manual_seed(seed)
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and not m.weight.any():
            m.reset_parameters()
    return net
