"""2D data recipes: shapes, reproducibility from the seed, distinct splits, known geometry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vsdr.data import Moons, Pinwheel, SCurve


@pytest.mark.parametrize("cls", [Pinwheel, SCurve, Moons])
def test_shape_seed_and_splits(cls):
    ds = cls()
    a, b, c = ds.sample(500, seed=1), ds.sample(500, seed=1), ds.sample(500, seed=2)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert torch.isfinite(a).all()


def test_pinwheel_has_five_arms_at_the_recipe_radius():
    pts = Pinwheel(scale=2.0).sample(20000, seed=0).numpy()
    r = np.linalg.norm(pts, axis=1)
    # |f| = sqrt(f0² + f1²) with f0 ~ N(1, 0.3²), f1 ~ N(0, 0.1²): mean ≈ 1.005, times scale 2
    assert r.mean() == pytest.approx(2.0 * 1.005, rel=0.02)
    # the angle minus the spiral offset falls into 5 clusters spaced 2π/5
    f0 = r / 2.0
    base = np.arctan2(pts[:, 1], pts[:, 0]) - 0.25 * np.exp(f0)
    hist, _ = np.histogram(np.mod(base + np.pi / 5, 2 * np.pi), bins=5, range=(0, 2 * np.pi))
    assert hist.min() > 0.17 * len(pts)


@pytest.mark.parametrize("cls", [SCurve, Moons])
def test_standardised_curves(cls):
    pts = cls(scale=1.0).sample(20000, seed=3).numpy()
    assert abs(pts.mean()) < 0.05
    assert pts.std() == pytest.approx(1.0, rel=0.05)


def test_moons_lie_on_the_two_half_circles():
    pts = Moons(scale=1.0).raw(2000, np.random.default_rng(0))
    outer = np.abs(np.hypot(pts[:, 0], pts[:, 1]) - 1) < 1e-9
    inner = np.abs(np.hypot(pts[:, 0] - 1, pts[:, 1] - 0.5) - 1) < 1e-9
    assert np.all(outer | inner) and outer.mean() == pytest.approx(0.5, abs=0.05)
