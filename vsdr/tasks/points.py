"""Point clouds (pinwheel, S-curve, moons, any ``PointDataset``): test points drawn from the
job seed, ``y = A x0 + σ n``, MSE to the paired clean point and exact empirical W2 to the
clean test points."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vsdr.diffusion.noise import STREAM_MEASUREMENT, STREAM_TEST, per_sample_seeds
from vsdr.metrics.bootstrap import Bootstrap, w2_interval
from vsdr.metrics.distortion import mse
from vsdr.metrics.w2 import empirical_w2
from vsdr.tasks.base import Task, TestSet, TrajectoryFn


class PointCloudTask(Task):
    """``n_test`` points of a 2D (or d-dimensional) distribution and their measurements.
    ``w2_max_exact``: exact OT up to this many points, beyond it a subsample of that size;
    ``bootstrap``: the resamples of the MSE and W2 intervals (``None``: no interval columns;
    no W2 interval beyond ``w2_max_exact`` or ``bootstrap.max_items_w2`` points)."""

    kind = "points"
    columns = ["dataset", "operator", "sigma", "sigma_space", "sampler", "knob", "value", "mse",
               "w2", "w2_estimator", "n", "nfe", "seed"]  # then mse_lo, mse_hi, w2_lo, w2_hi
    units = {"mse": "data units²", "w2": "data units"}

    def __init__(self, dataset, operator, sigma: float, sigma_space: str = "data",
                 n_test: int = 1000, w2_max_exact: int = 5000, bootstrap: Bootstrap | None = None):
        super().__init__(dataset, operator, sigma, sigma_space)
        self.n_test, self.w2_max_exact = int(n_test), int(w2_max_exact)
        self.bootstrap = bootstrap

    def test_set(self, seed: int) -> TestSet:
        """``n_test`` test points ``x0`` (one draw from the job seed) and ``y = A x0 + σ n``."""
        x0 = self.dataset.sample(self.n_test, seed=per_sample_seeds(seed, [0], stream=STREAM_TEST)[0])
        g = torch.Generator().manual_seed(per_sample_seeds(seed, [0], stream=STREAM_MEASUREMENT)[0])
        ax0 = self.operator.forward(x0)
        return TestSet(x0, ax0 + self.sigma * torch.randn(ax0.shape, generator=g))

    def evaluate(self, test: TestSet, recon: Tensor, values: Sequence[float], seed: int,
                 workdir=None) -> list[dict]:
        """MSE and exact empirical W2 per knob value; with ``bootstrap``, their intervals
        ``mse_lo``, ``mse_hi``, ``w2_lo``, ``w2_hi`` (``vsdr.metrics.bootstrap``)."""
        x0 = test.x0.numpy()
        bs = self.bootstrap
        idx = bs.indices(len(x0), seed) if bs is not None else None
        rows = []
        for r in recon:
            w2, estimator = empirical_w2(r.numpy(), x0, self.w2_max_exact, seed=seed)
            row = {"mse": mse(test.x0, r), "w2": w2, "w2_estimator": estimator}
            if bs is not None:
                sq_err = (r - test.x0).flatten(1).double().pow(2).sum(1).numpy()
                row["mse_lo"], row["mse_hi"] = bs.mse_interval(sq_err, idx)
                exact = bs.w2_on(len(x0)) and len(x0) <= self.w2_max_exact
                row["w2_lo"], row["w2_hi"] = (w2_interval(r.numpy(), x0, w2, idx[:bs.resamples_w2], bs.level)
                                              if exact else ("", ""))
            rows.append(row)
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
