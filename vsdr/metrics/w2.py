"""The 2-Wasserstein distance between point clouds and between Gaussians."""
from __future__ import annotations

import numpy as np
import ot
from scipy import linalg

#: Largest cloud for exact OT (an n × n cost matrix and a network simplex). Beyond it,
#: ``empirical_w2`` draws ``max_exact`` points from each cloud and solves that exactly.
MAX_EXACT = 5000


def empirical_w2(a: np.ndarray, b: np.ndarray, max_exact: int = MAX_EXACT,
                 seed: int = 0) -> tuple[float, str]:
    """Exact empirical ``W2`` between clouds ``a (n, d)`` and ``b (m, d)`` with uniform weights
    (POT's network simplex on squared Euclidean costs). Returns ``(w2, estimator)`` where
    ``estimator`` is ``"exact"`` or ``"exact-subsample-K"`` when a cloud had more than
    ``max_exact`` points and ``K = max_exact`` were drawn (uniformly, without replacement)."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    estimator = "exact"
    if max(len(a), len(b)) > max_exact:
        rng = np.random.default_rng(seed)
        if len(a) > max_exact:
            a = a[rng.choice(len(a), max_exact, replace=False)]
        if len(b) > max_exact:
            b = b[rng.choice(len(b), max_exact, replace=False)]
        estimator = f"exact-subsample-{max_exact}"
    cost = ot.dist(a, b, metric="sqeuclidean")
    w2_sq = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost,
                    numItermax=10_000_000)
    return float(np.sqrt(max(w2_sq, 0.0))), estimator


def gaussian_w2(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> float:
    """Closed form ``W2`` between ``N(m1, C1)`` and ``N(m2, C2)``:
    ``W2² = ‖m1 − m2‖² + tr(C1 + C2 − 2 (C1^{½} C2 C1^{½})^{½})``."""
    m1, m2 = np.atleast_1d(m1).astype(float), np.atleast_1d(m2).astype(float)
    c1, c2 = np.atleast_2d(c1).astype(float), np.atleast_2d(c2).astype(float)
    r1 = linalg.sqrtm(c1)
    cross = linalg.sqrtm(r1 @ c2 @ r1)
    w2_sq = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * np.real(cross))
    return float(np.sqrt(max(w2_sq, 0.0)))
