"""Point clouds (pinwheel, S-curve, moons, any ``PointDataset``): test points drawn from the
job seed, ``y = A x0 + σ n``, MSE to the paired clean point and exact empirical W2 to the
clean test points."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vsdr.diffusion.noise import STREAM_MEASUREMENT, STREAM_TEST, per_sample_seeds
from vsdr.metrics.distortion import mse
from vsdr.metrics.w2 import empirical_w2
from vsdr.tasks.base import Task, TestSet, TrajectoryFn


class PointCloudTask(Task):
    """``n_test`` points of a 2D (or d-dimensional) distribution and their measurements.
    ``w2_max_exact``: exact OT up to this many points, beyond it a subsample of that size."""

    kind = "points"
    columns = ["dataset", "operator", "sigma", "sigma_space", "sampler", "knob", "value", "mse",
               "w2", "w2_estimator", "n", "nfe", "seed"]
    units = {"mse": "data units²", "w2": "data units"}

    def __init__(self, dataset, operator, sigma: float, sigma_space: str = "data",
                 n_test: int = 1000, w2_max_exact: int = 5000):
        super().__init__(dataset, operator, sigma, sigma_space)
        self.n_test, self.w2_max_exact = int(n_test), int(w2_max_exact)

    def test_set(self, seed: int) -> TestSet:
        """``n_test`` test points ``x0`` (one draw from the job seed) and ``y = A x0 + σ n``."""
        x0 = self.dataset.sample(self.n_test, seed=per_sample_seeds(seed, [0], stream=STREAM_TEST)[0])
        g = torch.Generator().manual_seed(per_sample_seeds(seed, [0], stream=STREAM_MEASUREMENT)[0])
        ax0 = self.operator.forward(x0)
        return TestSet(x0, ax0 + self.sigma * torch.randn(ax0.shape, generator=g))

    def evaluate(self, test: TestSet, recon: Tensor, values: Sequence[float], seed: int,
                 workdir=None) -> list[dict]:
        rows = []
        for r in recon:
            w2, estimator = empirical_w2(r.numpy(), test.x0.numpy(), self.w2_max_exact, seed=seed)
            rows.append({"mse": mse(test.x0, r), "w2": w2, "w2_estimator": estimator})
        return rows

    def figures(self, rows, test: TestSet, recon: Tensor, values, knob: str, title: str,
                trajectories: TrajectoryFn | None = None, seed: int = 0) -> dict:
        """reconstructions.png: clean, noisy (when ``y`` is 2D) and every knob value's cloud."""
        if not (test.x0.dim() == 2 and test.x0.shape[1] == 2):
            return {}
        from vsdr.plotting.points import plot_reconstructions

        y_plot = test.y.numpy() if test.y.shape[-1] == 2 else None
        return {"reconstructions.png": plot_reconstructions(
            test.x0.numpy(), y_plot, [r.numpy() for r in recon], values, knob, title=title)}
