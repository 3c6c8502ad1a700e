"""Batch-invariant network evaluation: results that do not depend on the batch size.

BLAS kernels (MKL on CPU, cuBLAS on GPU) choose their blocking from the number of rows, so
row ``b`` of ``net(x)`` can differ in the last bit between a batch of 7 and a batch of 64.
``FixedShapeNet`` always calls the network on exactly ``rows`` rows (splitting larger
batches, padding the last piece by repeating its last row and dropping the padding), so a
sample's network outputs, and its gradients through the network, are the same bits in any
batch (tested in tests/test_resume.py on the job's metrics.csv).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class FixedShapeNet(nn.Module):
    """``net(x, t)`` evaluated in pieces of exactly ``rows`` rows (last piece padded)."""

    def __init__(self, net: nn.Module, rows: int):
        super().__init__()
        if rows < 1:
            raise ValueError(f"rows={rows} must be >= 1")
        self.net, self.rows = net, int(rows)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        K, outs = self.rows, []
        for i in range(0, x.shape[0], K):
            xb, tb = x[i:i + K], t[i:i + K]
            m = xb.shape[0]
            if m < K:
                xb = torch.cat([xb, xb[-1:].expand(K - m, *xb.shape[1:])])
                tb = torch.cat([tb, tb[-1:].expand(K - m, *tb.shape[1:])])
            outs.append(self.net(xb, tb)[:m])
        return outs[0] if len(outs) == 1 else torch.cat(outs)


def make_batch_invariant(prior, rows: int | None):
    """Wrap ``prior.net`` (a ``NetworkPrior``) in ``FixedShapeNet(rows)``; ``None``/0: as is."""
    if rows and hasattr(prior, "net") and not isinstance(prior.net, FixedShapeNet):
        prior.net = FixedShapeNet(prior.net, int(rows))
    return prior
