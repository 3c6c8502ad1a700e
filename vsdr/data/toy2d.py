"""2D point clouds by the recipes in docs/METHOD.md §8 ("2D data recipes")."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class PointDataset:
    """A distribution of points in ``R^dim`` that draws ``n`` points from a numpy generator."""

    name = "points"
    dim = 2

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name

    def sample_numpy(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int, seed: int) -> Tensor:
        """``n`` points, ``(n, dim)`` float32, drawn from ``np.random.default_rng(seed)``."""
        return torch.from_numpy(self.sample_numpy(n, np.random.default_rng(seed))).float()


class Pinwheel(PointDataset):
    """FFJORD's pinwheel: ``f = randn·[radial_std, tangential_std] + [1, 0]``, rotated by the
    arm angle ``+ rate·exp(f₀)``, times ``scale``."""

    name = "pinwheel"

    def __init__(self, arms: int = 5, radial_std: float = 0.3, tangential_std: float = 0.1,
                 rate: float = 0.25, scale: float = 2.0, name: str | None = None):
        super().__init__(name)
        self.arms, self.radial_std, self.tangential_std = arms, radial_std, tangential_std
        self.rate, self.scale = rate, scale

    def sample_numpy(self, n: int, rng: np.random.Generator) -> np.ndarray:
        arm_angles = np.linspace(0, 2 * np.pi, self.arms, endpoint=False)
        f = rng.standard_normal((n, 2)) * np.array([self.radial_std, self.tangential_std])
        f[:, 0] += 1.0
        labels = rng.integers(0, self.arms, n)
        angles = arm_angles[labels] + self.rate * np.exp(f[:, 0])
        c, s = np.cos(angles), np.sin(angles)
        rotated = np.stack([c * f[:, 0] - s * f[:, 1], s * f[:, 0] + c * f[:, 1]], axis=1)
        return self.scale * rotated


class _Standardised(PointDataset):
    """scikit-learn curves (noise 0), standardised by one global mean and std, times ``scale``."""

    def __init__(self, scale: float = 1.0, name: str | None = None):
        super().__init__(name)
        self.scale = scale

    def raw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def sample_numpy(self, n: int, rng: np.random.Generator) -> np.ndarray:
        pts = self.raw(n, rng)
        # one global mean and std, from a fixed large reference draw so every split agrees
        ref = self.raw(20000, np.random.default_rng(0))
        return self.scale * (pts - ref.mean()) / ref.std()


class SCurve(_Standardised):
    """``make_s_curve(noise=0)``, columns 0 and 2."""

    name = "scurve"

    def raw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        from sklearn.datasets import make_s_curve

        pts, _ = make_s_curve(n, noise=0.0, random_state=int(rng.integers(2**31)))
        return pts[:, [0, 2]]


class Moons(_Standardised):
    """The two half circles of ``make_moons(noise=0)``, with the arc parameter drawn uniformly
    (scikit-learn spaces it evenly, which would make every split the same points):
    outer ``(cos θ, sin θ)``, inner ``(1 − cos θ, 0.5 − sin θ)``, ``θ ~ U(0, π)``."""

    name = "moons"

    def raw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        theta = rng.uniform(0.0, np.pi, n)
        inner = rng.integers(0, 2, n).astype(bool)
        x = np.where(inner, 1.0 - np.cos(theta), np.cos(theta))
        y = np.where(inner, 0.5 - np.sin(theta), np.sin(theta))
        return np.stack([x, y], axis=1)
