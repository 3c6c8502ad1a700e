"""Bootstrap intervals of MSE and W2 (vsdr.metrics.bootstrap): hand-computed cases, scipy's
percentile bootstrap, the spread of W2 over independent test sets, and the columns a point
job adds to metrics.csv without changing the others."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from vsdr.metrics.bootstrap import (
    Bootstrap,
    mean_interval,
    normal_interval,
    resample_indices,
    resampled_w2,
    w2_interval,
)
from vsdr.metrics.w2 import empirical_w2


def test_percentile_interval_of_the_mean_by_hand():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    idx = np.array([[0, 0, 0, 0], [3, 3, 3, 3], [0, 1, 2, 3], [1, 1, 2, 2]])
    # resampled means 1, 4, 2.5, 2.5 -> sorted 1, 2.5, 2.5, 4; quantile q at position 3q
    # (linear): q = 0.25 -> 1 + 0.75 * 1.5 = 2.125, q = 0.75 -> 2.5 + 0.25 * 1.5 = 2.875
    assert mean_interval(values, idx, level=0.5) == pytest.approx((2.125, 2.875))


def test_normal_interval_by_hand():
    # sd of (0, 2) with ddof 1 is √2; z(0.975) = 1.959964
    lo, hi = normal_interval(1.0, np.array([0.0, 2.0]), level=0.95)
    assert (lo, hi) == pytest.approx((1 - 1.959964 * 2 ** 0.5, 1 + 1.959964 * 2 ** 0.5), rel=1e-6)


def test_mean_interval_matches_scipy_percentile_bootstrap():
    x = np.random.default_rng(3).exponential(size=300)
    ours = mean_interval(x, resample_indices(len(x), 20000, seed=0), level=0.9)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.9,
                          random_state=np.random.default_rng(1)).confidence_interval
    width = ref.high - ref.low
    assert abs(ours[0] - ref.low) < 0.05 * width and abs(ours[1] - ref.high) < 0.05 * width


def test_resamples_depend_on_n_and_seed_only():
    a, b = resample_indices(50, 10, seed=4), resample_indices(50, 10, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, resample_indices(50, 10, seed=5))
    assert a.shape == (10, 50) and a.min() >= 0 and a.max() < 50
    assert np.array_equal(Bootstrap(10, 3).indices(50, 4), a)


def test_resampled_w2_without_repeats_is_the_exact_w2():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    identity = np.arange(40)[None]
    assert resampled_w2(a, b, identity)[0] == pytest.approx(empirical_w2(a, b)[0], rel=1e-9)
    # every item drawn twice: the same clouds, the same W2
    assert resampled_w2(a, b, np.repeat(np.arange(40), 2)[None])[0] == pytest.approx(empirical_w2(a, b)[0])


def _pairs(rng, n):
    x = rng.normal(size=(n, 2))
    return x, x + 0.5 * rng.normal(size=(n, 2))


def test_intervals_contain_the_estimate_and_shrink_as_n_grows():
    rng = np.random.default_rng(2)
    widths = {}
    for n in (100, 1600):
        x, r = _pairs(rng, n)
        sq = ((r - x) ** 2).sum(1)
        idx = resample_indices(n, 25 if n > 500 else 200, seed=0)
        lo, hi = mean_interval(sq, resample_indices(n, 2000, seed=0))
        assert lo < sq.mean() < hi
        w2 = empirical_w2(r, x)[0]
        wlo, whi = w2_interval(r, x, w2, idx)
        assert wlo < w2 < whi
        widths[n] = (hi - lo, whi - wlo)
    # √n scaling: 16 times the items, about a quarter of the width
    assert widths[1600][0] < widths[100][0] / 2.5 and widths[1600][1] < widths[100][1] / 2


def test_w2_interval_spread_matches_w2_over_independent_test_sets():
    """The bootstrap sd of W2 from one test set is the sd of W2 over 30 fresh test sets
    (measured: 0.0256 against 0.0246 at n = 200)."""
    rng = np.random.default_rng(1)
    n = 200
    replicates = [empirical_w2(r, x)[0] for x, r in (_pairs(rng, n) for _ in range(30))]
    sds = [np.std(resampled_w2(r, x, resample_indices(n, 25, seed=k)), ddof=1)
           for k, (x, r) in enumerate(_pairs(rng, n) for _ in range(5))]
    ratio = np.mean(sds) / np.std(replicates, ddof=1)
    assert 0.67 < ratio < 1.5, ratio


def test_point_task_adds_interval_columns_and_keeps_mse_and_w2():
    from vsdr.data.toy2d import Pinwheel
    from vsdr.operators import Identity
    from vsdr.tasks.base import TestSet
    from vsdr.tasks.points import PointCloudTask

    rng = np.random.default_rng(0)
    x0 = torch.from_numpy(rng.normal(size=(80, 2))).float()
    recon = torch.stack([x0 + 0.3 * torch.from_numpy(rng.normal(size=(80, 2))).float() for _ in range(2)])
    test = TestSet(x0, x0)
    plain = PointCloudTask(Pinwheel(), Identity(), 0.5, n_test=80)
    boot = PointCloudTask(Pinwheel(), Identity(), 0.5, n_test=80,
                          bootstrap=Bootstrap(500, 20))
    rows0 = plain.evaluate(test, recon, [0.0, 1.0], seed=0)
    rows1 = boot.evaluate(test, recon, [0.0, 1.0], seed=0)
    for r0, r1 in zip(rows0, rows1):
        assert set(r0) == {"mse", "w2", "w2_estimator"}
        assert r1["mse"] == r0["mse"] and r1["w2"] == r0["w2"]
        assert r1["mse_lo"] < r1["mse"] < r1["mse_hi"] and r1["w2_lo"] < r1["w2"] < r1["w2_hi"]
    no_w2 = PointCloudTask(Pinwheel(), Identity(), 0.5, n_test=80,
                           bootstrap=Bootstrap(500, 0)).evaluate(test, recon, [0.0, 1.0], seed=0)
    assert no_w2[0]["w2_lo"] == "" and no_w2[0]["mse_lo"] == rows1[0]["mse_lo"]
    capped = PointCloudTask(Pinwheel(), Identity(), 0.5, n_test=80,
                            bootstrap=Bootstrap(500, 20, max_items_w2=79))
    too_many = capped.evaluate(test, recon, [0.0], seed=0)
    assert too_many[0]["w2_lo"] == "" and too_many[0]["mse_lo"] == rows1[0]["mse_lo"]
