"""Bootstrap intervals over test items: how much MSE and W2 would move with another draw of
the test set (docs/METHOD.md §9).

Every resample draws ``n`` test items with replacement from one ``numpy`` generator seeded by
the job seed, and the same resamples serve every knob value (so the intervals of two λ are
compared on the same resampled test sets).

- **MSE** (a mean over items): the percentile interval, the ``(1 − level)/2`` and
  ``(1 + level)/2`` quantiles of the ``B`` resampled means.
- **W2** (an optimal-transport cost between clouds): a resample holds only ~63 % distinct
  items (the rest are repeats), which makes the resampled cloud coarser and its W2 larger
  than the estimate (by about a sixth on two clouds of 1,000 2D Gaussian points), so its
  percentile interval would miss the estimate. The interval is the normal one instead,
  ``W2 ± z·sd`` with ``sd`` the standard deviation of the ``B`` resampled values: the spread
  of W2 over test sets, centred on the estimate.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

#: the random stream of the resampled test-item indices (vsdr.diffusion.noise's streams are 1–3)
STREAM_BOOTSTRAP = 11


@dataclass(frozen=True)
class Bootstrap:
    """How many resamples serve the MSE and the W2 intervals (0: no interval), the
    intervals' coverage ``level``, and the most test items a W2 interval is computed for
    (``max_items_w2``: each resample is an OT solve on ~63 % of them)."""

    resamples: int = 1000
    resamples_w2: int = 20
    level: float = 0.95
    max_items_w2: int = 2000

    def w2_on(self, n: int) -> bool:
        """Whether ``n`` items get a W2 interval."""
        return self.resamples_w2 > 0 and n <= self.max_items_w2

    def __post_init__(self) -> None:
        if self.resamples < 0 or self.resamples_w2 < 0 or not 0.0 < self.level < 1.0:
            raise ValueError(f"bootstrap resamples must be >= 0 and level in (0, 1), not {self}")

    def mse_interval(self, per_item: np.ndarray, indices: np.ndarray,
                     offset: float = 0.0) -> tuple[float, float] | tuple[str, str]:
        """``(mse_lo, mse_hi)``: the percentile interval of the mean of ``per_item`` (one error
        per test item) over the first ``resamples`` rows of ``indices``, shifted by ``offset``;
        empty cells when ``resamples`` is 0."""
        if not self.resamples:
            return "", ""
        lo, hi = mean_interval(per_item, indices[:self.resamples], self.level)
        return lo + offset, hi + offset

    def indices(self, n: int, seed: int) -> np.ndarray:
        """The resamples of ``n`` items for job seed ``seed``: ``max(resamples, resamples_w2)``
        rows; the W2 interval uses the first ``resamples_w2``."""
        return resample_indices(n, max(self.resamples, self.resamples_w2), seed)


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` item indices drawn with replacement from ``seed``'s generator."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), STREAM_BOOTSTRAP]))
    return rng.integers(0, n, size=(int(resamples), int(n)))


def percentile_interval(stats: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of ``stats`` (numpy's linear
    interpolation)."""
    a = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(np.asarray(stats, dtype=np.float64), [a, 1.0 - a])
    return float(lo), float(hi)


def mean_interval(values: np.ndarray, indices: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``values.mean()`` (one value per test item) over the
    resamples ``indices (B, n)``."""
    v = np.asarray(values, dtype=np.float64)
    return percentile_interval(v[indices].mean(axis=1), level)


def resampled_w2(a: np.ndarray, b: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """W2 between the resampled clouds ``a[idx]`` and ``b[idx]`` (item ``i`` of ``a`` paired
    with item ``i`` of ``b``) for each row ``idx`` of ``indices``: exact OT on the distinct
    items, weighted by how often each was drawn. One ``(n, n)`` cost matrix for all."""
    a = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    b = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    import ot  # POT (with scikit-learn) takes ~2 s to import: only where W2 is computed

    cost = ot.dist(a, b, metric="sqeuclidean")
    out = np.empty(len(indices))
    for k, idx in enumerate(indices):
        u, counts = np.unique(idx, return_counts=True)
        w = counts / counts.sum()
        out[k] = np.sqrt(max(ot.emd2(w, w, cost[np.ix_(u, u)], numItermax=10_000_000), 0.0))
    return out


def normal_interval(estimate: float, resampled: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """``estimate ± z·sd(resampled)`` with ``z`` the standard normal's ``(1 + level)/2`` quantile."""
    z = NormalDist().inv_cdf((1.0 + float(level)) / 2.0)
    sd = float(np.std(np.asarray(resampled, dtype=np.float64), ddof=1)) if len(resampled) > 1 else 0.0
    return float(estimate - z * sd), float(estimate + z * sd)


def w2_interval(a: np.ndarray, b: np.ndarray, estimate: float, indices: np.ndarray,
                level: float = 0.95) -> tuple[float, float]:
    """Normal bootstrap interval of W2 between paired clouds ``a`` and ``b`` (module doc)."""
    return normal_interval(estimate, resampled_w2(a, b, indices), level)
