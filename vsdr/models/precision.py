"""The network call in lower precision or memory format, the sampler around it in float32.

``precision=bf16`` (or ``fp16``) runs the ε-network under ``torch.autocast`` and returns its
output as float32: the guidance gradient ∇‖y − A x̂0‖ (docs/METHOD.md §2) flows back through
the autocast network, while x̂0, the reverse step (eq. 12) and the measurement residual stay
float32. ``channels_last=true`` stores the network's weights and its input in channels-last
order (faster convolutions on recent GPUs; the same numbers up to the kernels' rounding).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

#: ``precision=`` → the autocast dtype (``None``: plain float32, no autocast)
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NetworkPrecision(nn.Module):
    """``net(x, t)`` under autocast to ``dtype`` (``None``: none) and/or in channels-last
    memory format; the output is float32 and contiguous."""

    def __init__(self, net: nn.Module, dtype: torch.dtype | None = None, channels_last: bool = False):
        super().__init__()
        self.net, self.dtype, self.channels_last = net, dtype, bool(channels_last)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device_type=x.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            out = self.net(x, t)
        return out.float().contiguous()


def apply_precision(prior, precision: str = "fp32", channels_last: bool = False):
    """Wrap ``prior.net`` (a ``NetworkPrior``) in ``NetworkPrecision``; fp32 without
    channels-last leaves it untouched (bit-identical to no wrapper)."""
    dtype = DTYPES[str(precision)]
    if (dtype is not None or channels_last) and hasattr(prior, "net"):
        prior.net = NetworkPrecision(prior.net, dtype, channels_last)
    return prior
