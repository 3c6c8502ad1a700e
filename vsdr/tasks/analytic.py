"""Data with a closed-form posterior (``dataset=gaussian``, ``dataset=mixture``): one
observation ``y``, ``data.n_test`` reconstructions of it per knob value, measured against the
exact posterior ``p(x0 | y)`` (docs/METHOD.md §3–§4)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vsdr.data.analytic import AnalyticDataset, GaussianMixture, posterior, select
from vsdr.diffusion.noise import STREAM_TEST, per_sample_seeds
from vsdr.errors import ConfigError
from vsdr.metrics.bootstrap import Bootstrap, normal_interval, w2_interval
from vsdr.metrics.kl import kl_to_density
from vsdr.metrics.w2 import empirical_w2, gaussian_w2
from vsdr.models.exact import ExactPosterior, ExactPrior
from vsdr.tasks.base import Task, TestSet, TrajectoryFn

#: the random stream of the trajectories drawn for Fig. 2
STREAM_TRAJECTORIES = 9


@dataclass
class Oracle:
    """The exact posterior of one observation, and its moments."""

    y: Tensor                 # (1, k)
    x0_true: Tensor | None    # (1, d): the draw that produced y (None when y was given)
    post: GaussianMixture     # unbatched
    mean: Tensor              # E[x0 | y]
    cov: Tensor               # Cov[x0 | y]

    @property
    def mmse(self) -> float:
        """``D* = E‖x0 − E[x0|y]‖² = tr Cov[x0|y]``."""
        return float(torch.trace(self.cov))


def operator_matrix(operator, dim: int) -> Tensor:
    return operator.A if hasattr(operator, "A") else operator.as_matrix(dim)


def make_oracle(dataset: AnalyticDataset, operator, sigma: float, seed: int,
                stream: int = STREAM_TEST) -> Oracle:
    """``y`` from ``dataset.observation`` or ``y = A x0 + σ n`` drawn from the job seed."""
    A = operator_matrix(operator, dataset.dim)
    if dataset.observation is not None:
        y = torch.tensor([dataset.observation], dtype=torch.float64)
        if y.shape[1] != A.shape[0]:
            raise ConfigError(f"dataset.observation has {y.shape[1]} entries but the operator "
                              f"measures {A.shape[0]}")
        x0 = None
    else:
        g = torch.Generator().manual_seed(per_sample_seeds(seed, [0], stream=stream)[0])
        x0 = dataset.prior.sample(1, g)
        y = x0 @ A.T + sigma * torch.randn(1, A.shape[0], generator=g, dtype=torch.float64)
    post = select(posterior(dataset.prior, A, sigma, y), 0)
    return Oracle(y, x0, post, post.mean(), post.cov())


def optimal_mse(mmse: float, perception: float) -> float:
    """Theorem 2 / Freirich et al.: ``D(P) = D* + (√D* − P)²`` for ``P ≤ √D*``, else ``D*``."""
    return mmse + max(np.sqrt(mmse) - perception, 0.0) ** 2


def gap_summary(rows: list[dict]) -> dict[str, float]:
    """How far one job's DP points lie above the optimal curve (``optimal_mse``; scripts/dp_gap.py).
    ``rows``: one dict per knob value with ``value``, ``mse``, ``w2``, ``mmse`` (strings or
    numbers). Returns ``mse0_over_dstar`` (at the smallest knob value), ``gap_mean``,
    ``gap_max``, ``mse1_over_dstar`` and ``w2_end`` (at the largest)."""
    rows = sorted(rows, key=lambda r: float(r["value"]))
    gaps = [float(r["mse"]) - optimal_mse(float(r["mmse"]), float(r["w2"])) for r in rows]
    return {"mse0_over_dstar": float(rows[0]["mse"]) / float(rows[0]["mmse"]),
            "gap_mean": sum(gaps) / len(gaps), "gap_max": max(gaps),
            "mse1_over_dstar": float(rows[-1]["mse"]) / float(rows[-1]["mmse"]),
            "w2_end": float(rows[-1]["w2"])}


class AnalyticTask(Task):
    """One observation of an ``AnalyticDataset``, its exact posterior and ``n_test``
    reconstructions of it per knob value. ``w2_max_exact``,
    ``kl_max_points``: limits of the empirical W2 and KL (mixtures); ``trajectory_lams`` and
    ``trajectories``: Fig. 2's λ values and chains per λ; ``bootstrap``: the resamples of the
    MSE and W2 intervals (``None``: no interval columns)."""

    kind = "analytic"
    columns = [*Task.columns, "w2", "w2_estimator", "n", "nfe", "seed", "mmse", "mse_opt", "kl"]
    per_item = False  # one observation: the rows are the whole story
    units = {"mse": "data units²", "w2": "data units", "kl": "nats"}

    def __init__(self, dataset: AnalyticDataset, operator, sigma: float, sigma_space: str = "data",
                 n_test: int = 1000, w2_max_exact: int = 5000, kl_max_points: int = 5000,
                 trajectory_lams: Sequence[float] = (0.0, 0.3, 0.8, 1.0), trajectories: int = 8,
                 bootstrap: Bootstrap | None = None):
        super().__init__(dataset, operator, sigma, sigma_space)
        self.bootstrap = bootstrap
        self.n_test = int(n_test)
        self.w2_max_exact, self.kl_max_points = int(w2_max_exact), int(kl_max_points)
        self.trajectory_lams = [float(v) for v in trajectory_lams]
        self.trajectories = int(trajectories)
        self._oracles: dict[int, Oracle] = {}

    def oracle(self, seed: int) -> Oracle:
        if seed not in self._oracles:
            self._oracles[seed] = make_oracle(self.dataset, self.operator, self.sigma, seed)
        return self._oracles[seed]

    def exact_prior(self, schedule) -> ExactPrior:
        """``score=exact_prior``: the diffused prior's score (the sampler adds its guidance)."""
        return ExactPrior(self.dataset.prior, schedule)

    def exact_posterior(self, schedule) -> ExactPosterior:
        """``score=exact_posterior``: the diffused posterior's score of this observation model."""
        A = operator_matrix(self.operator, self.dataset.dim)
        return ExactPosterior(self.dataset.prior, A, self.sigma, schedule)

    def test_set(self, seed: int) -> TestSet:
        """``n_test`` exact posterior draws (the reference panel) and as many copies of ``y``."""
        oracle = self.oracle(seed)
        g = torch.Generator().manual_seed(per_sample_seeds(seed, [1], STREAM_TEST)[0])
        x0 = oracle.post.sample(self.n_test, g).float()
        return TestSet(x0, oracle.y.float().expand(self.n_test, -1).contiguous())

    def evaluate(self, test: TestSet, recon: Tensor, values: Sequence[float], seed: int,
                 workdir=None) -> list[dict]:
        """``mse = E‖x0 − x̂‖²`` with the expectation over ``x0 ~ p(x0|y)`` exact and over
        ``x̂`` Monte Carlo: ``mean_j ‖x̂_j − μ‖² + D*``. ``w2``: Gaussian data → closed form
        between ``N(sample mean, sample cov)`` and the posterior (``gaussian-moments``);
        mixtures → exact empirical W2 against as many exact posterior draws. ``kl``
        (mixtures): ``KL(q̂ ‖ p(x0|y))`` by ``kl_to_density``. With ``bootstrap``: ``mse_lo``,
        ``mse_hi``, ``w2_lo``, ``w2_hi`` over resampled reconstructions (and, for mixtures, the
        reference draws paired with them)."""
        oracle = self.oracle(seed)
        mu, cov, mmse = oracle.mean, oracle.cov, oracle.mmse
        gaussian = oracle.post.weights.numel() == 1
        bs = self.bootstrap
        idx = bs.indices(len(recon[0]), seed) if bs is not None else None
        rows = []
        for r in recon:
            r64 = r.reshape(len(r), -1).to(torch.float64)
            err = (r64 - mu).pow(2).sum(1)
            row = {"mse": float(err.mean()) + mmse}
            if gaussian:
                row["w2"] = self._moments_w2(r64, mu, cov)
                row["w2_estimator"] = "gaussian-moments"
                row["kl"] = ""
            else:
                g = torch.Generator().manual_seed(seed + 7)
                ref = oracle.post.sample(len(r64), g)
                row["w2"], row["w2_estimator"] = empirical_w2(r64.numpy(), ref.numpy(),
                                                              self.w2_max_exact, seed)
                k = min(len(r64), self.kl_max_points)
                row["kl"] = kl_to_density(r64[:k], oracle.post.log_prob)
            row["mmse"] = mmse
            row["mse_opt"] = optimal_mse(mmse, row["w2"])
            if bs is not None:
                row["mse_lo"], row["mse_hi"] = bs.mse_interval(err.numpy(), idx, offset=mmse)
                idx_w2 = idx[:bs.resamples_w2]
                if not bs.resamples_w2 or (not gaussian and not (bs.w2_on(len(r64))
                                                                  and len(r64) <= self.w2_max_exact)):
                    row["w2_lo"], row["w2_hi"] = "", ""
                elif gaussian:
                    boot = [self._moments_w2(r64[torch.from_numpy(i)], mu, cov) for i in idx_w2]
                    row["w2_lo"], row["w2_hi"] = normal_interval(row["w2"], boot, bs.level)
                else:
                    row["w2_lo"], row["w2_hi"] = w2_interval(r64.numpy(), ref.numpy(), row["w2"],
                                                             idx_w2, bs.level)
            rows.append(row)
        return rows

    @staticmethod
    def _moments_w2(r64: Tensor, mu: Tensor, cov: Tensor) -> float:
        """Closed-form W2 between ``N(sample mean, sample cov)`` of ``r64`` and ``N(mu, cov)``."""
        d = r64.shape[1]
        s_cov = torch.cov(r64.T).reshape(d, d) if len(r64) > 1 else torch.zeros(d, d)
        return gaussian_w2(r64.mean(0).numpy(), s_cov.numpy(), mu.numpy(), cov.numpy())

    def figures(self, rows, test: TestSet, recon: Tensor, values, knob: str, title: str,
                trajectories: TrajectoryFn | None = None, seed: int = 0) -> dict:
        """posterior.png (Fig. 1) and trajectories.png (Fig. 2, when the sampler keeps its
        chain and its knob is λ) for 2D data; dp_curve_kl.png (Fig. 3's KL panel) for
        mixtures; theory.png (MSE/D* and W2 against λ) for Gaussians."""
        from vsdr.plotting.analytic import plot_gaussian_theory, plot_posterior, plot_trajectories
        from vsdr.plotting.dp import plot_dp_curve

        oracle = self.oracle(seed)
        figs = {}
        if self.dataset.dim == 2:
            y_plot = oracle.y[0].numpy() if oracle.y.shape[1] == 2 else None
            figs["posterior.png"] = plot_posterior(self.dataset.prior, oracle.post, y_plot, title)
            if trajectories is not None:
                k = self.trajectories
                seeds = per_sample_seeds(seed, range(k), stream=STREAM_TRAJECTORIES)
                y = oracle.y.float().expand(k, -1).contiguous()
                paths = {lam: trajectories(y, [lam] * k, seeds).numpy() for lam in self.trajectory_lams}
                figs["trajectories.png"] = plot_trajectories(paths, oracle.post, oracle.mean.numpy(), title)
        if rows and rows[0].get("kl") not in (None, ""):
            figs["dp_curve_kl.png"] = plot_dp_curve(rows, perception="kl", title=title)
        if oracle.post.weights.numel() == 1 and rows[0]["knob"] == "lam":
            figs["theory.png"] = plot_gaussian_theory(rows, title)
        return figs
