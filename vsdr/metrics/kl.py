"""KL divergence from a sample to a known density."""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def kde_log_density_loo(x: Tensor, chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """Leave-one-out Gaussian KDE log density at each sample point, with Scott's rule
    bandwidth ``H = n^(−2/(d+4)) Cov(x)``. Returns ``(log q̂(x_j), H)``."""
    x = x.to(torch.float64)
    n, d = x.shape
    cov = torch.cov(x.T).reshape(d, d) if n > 1 else torch.eye(d, dtype=torch.float64)
    H = cov * n ** (-2.0 / (d + 4)) + 1e-12 * torch.eye(d, dtype=torch.float64)
    L = torch.linalg.cholesky(H)
    z = torch.linalg.solve_triangular(L, x.T, upper=False).T              # whitened points
    log_norm = -0.5 * d * math.log(2 * math.pi) - torch.log(torch.diagonal(L)).sum()
    out = torch.empty(n, dtype=torch.float64)
    for s in range(0, n, chunk):
        d2 = torch.cdist(z[s:s + chunk], z).pow(2)
        idx = torch.arange(s, min(s + chunk, n))
        d2[idx - s, idx] = float("inf")                                      # leave one out
        out[s:s + chunk] = torch.logsumexp(-0.5 * d2, dim=1) - math.log(n - 1) + log_norm
    return out, H


def kl_to_density(samples: Tensor, log_p: Callable[[Tensor], Tensor]) -> float:
    """``KL(q ‖ p) = E_q[log q − log p]`` for samples ``x_j ~ q`` and a known log density
    ``log p``: the Monte-Carlo mean of ``log q̂(x_j) − log p(x_j)`` with ``q̂`` a leave-one-out
    Gaussian KDE (Scott's bandwidth) of the samples. The KDE's smoothing biases the estimate
    (about +0.05 nats for 5,000 2D points of a Gaussian); a collapsed sample (λ = 0, a point
    mass) gives a large value, as the true KL is infinite there."""
    log_q, _ = kde_log_density_loo(samples)
    return float((log_q - log_p(samples.to(torch.float64))).mean())
