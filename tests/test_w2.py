"""W2 between point clouds (POT, exact) and between Gaussians (closed form), against cases
with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from vsdr.metrics import empirical_w2, gaussian_w2, gaussian_w2_squared, mse
from vsdr.metrics.frechet import frechet_distance


def test_translation_is_exact():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 2))
    shift = np.array([0.3, -0.4])
    w2, est = empirical_w2(a, a + shift)
    assert est == "exact"
    assert w2 == pytest.approx(0.5, abs=1e-9)


def test_one_dimensional_sorted_matching():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(200), rng.uniform(-1, 3, 200)
    expected = np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2))
    assert empirical_w2(a[:, None], b[:, None])[0] == pytest.approx(expected, rel=1e-9)


def test_gaussian_closed_form_by_hand():
    # 1D: W2² = (m1 − m2)² + (s1 − s2)²
    assert gaussian_w2([1.0], [[4.0]], [-2.0], [[1.0]]) == pytest.approx(np.sqrt(9 + 1))
    # commuting (diagonal) covariances: W2² = ‖m1 − m2‖² + Σ (√a_i − √b_i)²
    w = gaussian_w2([0, 0], np.diag([4.0, 9.0]), [1, 1], np.diag([1.0, 1.0]))
    assert w == pytest.approx(np.sqrt(2 + 1 + 4))


def _random_cov(rng, d: int, rank: int) -> np.ndarray:
    f = rng.standard_normal((d, rank))
    return f @ f.T / rank


@pytest.mark.parametrize("d", [3, 40])
def test_gaussian_w2_matches_pot_bures_wasserstein(d):
    """Against POT's independent implementation on full-rank covariances."""
    import ot

    rng = np.random.default_rng(d)
    m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
    c1, c2 = _random_cov(rng, d, 2 * d), _random_cov(rng, d, 3 * d)
    pot = float(ot.gaussian.bures_wasserstein_distance(m1, m2, c1, c2))
    assert gaussian_w2(m1, c1, m2, c2) == pytest.approx(pot, rel=1e-9)
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(pot ** 2, rel=1e-9)  # Fréchet = W2²


def test_gaussian_w2_on_singular_covariances_is_finite_and_right():
    """Rank-one covariances: C1 = u uᵀ, C2 = v vᵀ give (C1^½ C2 C1^½)^½ = |u·v| u uᵀ/|u|², so
    W2² = |u|² + |v|² − 2 |u·v| (by hand); rank-deficient sample covariances (fewer samples than
    dimensions, as FID on few images) agree with POT and are symmetric."""
    import ot

    u, v = np.array([1.0, 2.0, 0.0]), np.array([0.5, -1.0, 3.0])
    c1, c2 = np.outer(u, u), np.outer(v, v)
    zero = np.zeros(3)
    expected = u @ u + v @ v - 2 * abs(u @ v)
    assert gaussian_w2_squared(zero, c1, zero, c2) == pytest.approx(expected, rel=1e-9)
    assert gaussian_w2_squared(zero, c2, zero, c1) == pytest.approx(expected, rel=1e-9)
    # a point mass against itself and against a shifted copy
    assert gaussian_w2_squared(zero, np.zeros((3, 3)), zero, np.zeros((3, 3))) == 0.0
    assert gaussian_w2([1.0, 1.0], np.zeros((2, 2)), [0, 0], np.zeros((2, 2))) == pytest.approx(np.sqrt(2))
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((12, 30)), 0.5 * rng.standard_normal((9, 30)) + 0.1
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # ranks 11 and 8 of 30
    ours = frechet_distance(a.mean(0), ca, b.mean(0), cb)
    assert np.isfinite(ours) and ours > 0
    assert ours == pytest.approx(frechet_distance(b.mean(0), cb, a.mean(0), ca), rel=1e-9)
    # POT has no guard (its square roots give nan on these below a ridge of ~1e-7): agree with
    # it on C + 1e-6 I, and be the limit of the ridged values as the ridge goes to 0
    ridged = [frechet_distance(a.mean(0), ca + r * np.eye(30), b.mean(0), cb + r * np.eye(30))
              for r in (1e-6, 1e-10, 1e-14)]
    pot = float(ot.gaussian.bures_wasserstein_distance(a.mean(0), b.mean(0), ca + 1e-6 * np.eye(30),
                                                       cb + 1e-6 * np.eye(30))) ** 2
    assert ridged[0] == pytest.approx(pot, rel=1e-7)
    assert abs(ridged[1] - ours) < 1e-3 and abs(ridged[2] - ours) < 1e-5
    assert frechet_distance(a.mean(0), ca, a.mean(0), ca) == pytest.approx(0.0, abs=1e-9)


def test_two_gaussian_samples_match_closed_form():
    rng = np.random.default_rng(2)
    m1, m2 = np.array([0.0, 0.0]), np.array([3.0, 0.0])
    c1 = np.array([[1.0, 0.6], [0.6, 1.0]])
    c2 = np.array([[2.0, 0.0], [0.0, 0.5]])
    a = rng.multivariate_normal(m1, c1, 2000)
    b = rng.multivariate_normal(m2, c2, 2000)
    truth = gaussian_w2(m1, c1, m2, c2)
    w2, _ = empirical_w2(a, b)
    assert w2 == pytest.approx(truth, rel=0.05)


def test_large_clouds_are_subsampled_and_say_so():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((120, 2))
    w2, est = empirical_w2(a, a + 1.0, max_exact=50)
    assert est == "exact-subsample-50"
    assert w2 > 1.0  # independent subsamples of the two clouds: at least the shift


def test_mse_sums_coordinates_and_averages_samples():
    import torch

    x = torch.zeros(4, 2)
    y = torch.tensor([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0], [1.0, 0.0]])
    assert mse(x, y) == pytest.approx((2 + 4 + 0 + 1) / 4)


def test_kl_between_two_gaussians_matches_closed_form():
    import torch

    from vsdr.data.analytic import GaussianMixture
    from vsdr.metrics.kl import kl_to_density

    dt = torch.float64
    q_mean, q_cov = torch.tensor([0.0, 0.0], dtype=dt), torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=dt)
    p_mean, p_cov = torch.tensor([1.0, -0.5], dtype=dt), torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=dt)
    p = GaussianMixture(torch.ones(1, dtype=dt), p_mean[None], p_cov[None])
    q = GaussianMixture(torch.ones(1, dtype=dt), q_mean[None], q_cov[None])
    x = q.sample(5000, torch.Generator().manual_seed(0))
    pinv = torch.linalg.inv(p_cov)
    diff = p_mean - q_mean
    truth = 0.5 * (torch.trace(pinv @ q_cov) + diff @ pinv @ diff - 2
                   + torch.logdet(p_cov) - torch.logdet(q_cov))
    est = kl_to_density(x, p.log_prob)
    assert est == pytest.approx(float(truth), abs=0.08)
    assert kl_to_density(x, q.log_prob) == pytest.approx(0.0, abs=0.08)
