"""The 2-Wasserstein distance between point clouds (POT's exact OT) and between Gaussians
(one closed-form routine, also FID's Fréchet distance: ``vsdr.metrics.frechet``)."""
from __future__ import annotations

import numpy as np

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
    import ot  # POT (with scikit-learn) takes ~2 s to import: only where W2 is computed

    cost = ot.dist(a, b, metric="sqeuclidean")
    w2_sq = ot.emd2(np.full(len(a), 1 / len(a)), np.full(len(b), 1 / len(b)), cost,
                    numItermax=10_000_000)
    return float(np.sqrt(max(w2_sq, 0.0))), estimator


def _clip_eigenvalues(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise removed: those below
    ``d · ε · max|w|`` (negative ones included) set to 0."""
    tol = len(w) * np.finfo(np.float64).eps * (np.abs(w).max() if len(w) else 0.0)
    return np.where(w > tol, w, 0.0)


def psd_sqrt(c: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance: ``V diag(√w) Vᵀ`` from the symmetric
    eigendecomposition of ``(C + Cᵀ)/2``, eigenvalues at rounding level (or negative: a
    singular or near-singular ``C``) clipped to 0, so the root is always real."""
    c = np.asarray(c, dtype=np.float64)
    w, v = np.linalg.eigh(0.5 * (c + c.T))
    return (v * np.sqrt(_clip_eigenvalues(w))) @ v.T


def gaussian_w2_squared(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> float:
    """``W2²(N(m1, C1), N(m2, C2)) = ‖m1 − m2‖² + tr(C1 + C2 − 2 (C1^{½} C2 C1^{½})^{½})``
    (the Bures–Wasserstein formula; FID's Fréchet distance is this number).

    Guarded for singular covariances: ``C1^{½}`` and the trace of the outer root come from
    symmetric eigendecompositions with eigenvalues clipped at 0 (``psd_sqrt``), never from
    ``sqrtm`` of the non-symmetric product ``C1 C2``; the result is clipped at 0."""
    m1, m2 = np.atleast_1d(np.asarray(m1, dtype=np.float64)), np.atleast_1d(np.asarray(m2, dtype=np.float64))
    c1, c2 = np.atleast_2d(np.asarray(c1, dtype=np.float64)), np.atleast_2d(np.asarray(c2, dtype=np.float64))
    r1 = psd_sqrt(c1)
    cross = r1 @ c2 @ r1
    root_trace = np.sqrt(_clip_eigenvalues(np.linalg.eigvalsh(0.5 * (cross + cross.T)))).sum()
    w2_sq = float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * root_trace)
    return max(w2_sq, 0.0)


def gaussian_w2(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> float:
    """Closed form ``W2`` between ``N(m1, C1)`` and ``N(m2, C2)``: the root of
    ``gaussian_w2_squared``."""
    return float(np.sqrt(gaussian_w2_squared(m1, c1, m2, c2)))
