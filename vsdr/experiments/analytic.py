"""Jobs on data with a closed-form posterior (``dataset=gaussian``, ``dataset=mixture``):
one observation ``y``, ``data.n_test`` reconstructions of it per knob value, measured
against the exact posterior ``p(x0 | y)`` (METHOD.md §3–§4)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from vsdr.data.analytic import AnalyticDataset, GaussianMixture, posterior, select
from vsdr.diffusion.noise import per_sample_seeds
from vsdr.errors import ConfigError
from vsdr.metrics.kl import kl_to_density
from vsdr.metrics.w2 import empirical_w2, gaussian_w2
from vsdr.models.exact import ExactPosterior, ExactPrior


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


def is_analytic(dataset) -> bool:
    return isinstance(dataset, AnalyticDataset)


def operator_matrix(operator, dim: int) -> Tensor:
    return operator.A if hasattr(operator, "A") else operator.as_matrix(dim)


def make_oracle(cfg: DictConfig, dataset: AnalyticDataset, operator, stream: int) -> Oracle:
    """``y`` from ``dataset.observation`` or ``y = A x0 + σ n`` drawn from the job seed."""
    sigma = float(cfg.noise.sigma)
    A = operator_matrix(operator, dataset.dim)
    if dataset.observation is not None:
        y = torch.tensor([dataset.observation], dtype=torch.float64)
        if y.shape[1] != A.shape[0]:
            raise ConfigError(f"dataset.observation has {y.shape[1]} entries but operator="
                              f"{cfg.operator.name} measures {A.shape[0]}")
        x0 = None
    else:
        g = torch.Generator().manual_seed(per_sample_seeds(int(cfg.seed), [0], stream=stream)[0])
        x0 = dataset.prior.sample(1, g)
        y = x0 @ A.T + sigma * torch.randn(1, A.shape[0], generator=g, dtype=torch.float64)
    post = select(posterior(dataset.prior, A, sigma, y), 0)
    return Oracle(y, x0, post, post.mean(), post.cov())


def build_exact_score(cfg: DictConfig, dataset, operator, schedule):
    """``score=exact_prior`` or ``score=exact_posterior``."""
    if not is_analytic(dataset):
        raise ConfigError(f"score={cfg.score.name} needs a data set with a closed-form prior "
                          f"(gaussian, mixture), not dataset={cfg.dataset.name}")
    A = operator_matrix(operator, dataset.dim)
    if cfg.score.name == "exact_prior":
        return ExactPrior(dataset.prior, schedule), {"source": "exact_prior"}
    return ExactPosterior(dataset.prior, A, float(cfg.noise.sigma), schedule), \
        {"source": "exact_posterior"}


def optimal_mse(mmse: float, perception: float) -> float:
    """Theorem 2 / Freirich et al.: ``D(P) = D* + (√D* − P)²`` for ``P ≤ √D*``, else ``D*``."""
    return mmse + max(np.sqrt(mmse) - perception, 0.0) ** 2


def evaluate_analytic(cfg: DictConfig, oracle: Oracle, recon: Tensor, values, nfe: int,
                      base_row: dict) -> list[dict]:
    """One row per knob value. ``mse = E‖x0 − x̂‖²`` with the expectation over
    ``x0 ~ p(x0|y)`` exact and over ``x̂`` Monte Carlo: ``mean_j ‖x̂_j − μ‖² + D*``.
    ``w2``: Gaussian data → closed form between ``N(sample mean, sample cov)`` and the
    posterior (``gaussian-moments``); mixtures → exact empirical W2 against as many exact
    posterior draws. ``kl`` (mixtures): ``KL(q̂ ‖ p(x0|y))`` by ``kl_to_density``."""
    mu, cov, mmse = oracle.mean, oracle.cov, oracle.mmse
    gaussian = oracle.post.weights.numel() == 1
    rows = []
    for value, r in zip(values, recon):
        r64 = r.reshape(len(r), -1).to(torch.float64)
        row = dict(base_row, value=value, n=len(r), nfe=nfe)
        row["mse"] = float((r64 - mu).pow(2).sum(1).mean()) + mmse
        if gaussian:
            d = r64.shape[1]
            s_cov = torch.cov(r64.T).reshape(d, d) if len(r64) > 1 else torch.zeros(d, d)
            row["w2"] = gaussian_w2(r64.mean(0).numpy(), s_cov.numpy(), mu.numpy(), cov.numpy())
            row["w2_estimator"] = "gaussian-moments"
            row["kl"] = ""
        else:
            g = torch.Generator().manual_seed(int(cfg.seed) + 7)
            ref = oracle.post.sample(len(r64), g)
            row["w2"], row["w2_estimator"] = empirical_w2(r64.numpy(), ref.numpy(),
                                                          int(cfg.eval.w2_max_exact), int(cfg.seed))
            k = min(len(r64), int(cfg.eval.kl_max_points))
            row["kl"] = kl_to_density(r64[:k], oracle.post.log_prob)
        row["mmse"] = mmse
        row["mse_opt"] = optimal_mse(mmse, row["w2"])
        rows.append(row)
    return rows


def write_analytic_figures(cfg: DictConfig, job_dir, dataset: AnalyticDataset, oracle: Oracle,
                           sampler, model, operator, schedule, rows: list[dict]) -> None:
    """posterior.png (Fig. 1) and trajectories.png (Fig. 2) for 2D data; dp_curve_kl.png
    (Fig. 3's KL panel) for mixtures; theory.png (MSE/D* and W2 against λ) for Gaussians."""
    import matplotlib.pyplot as plt

    from vsdr.experiments.writer import save_figure
    from vsdr.plotting.analytic import plot_gaussian_theory, plot_posterior, plot_trajectories
    from vsdr.plotting.dp import plot_dp_curve

    sigma = float(cfg.noise.sigma)
    title = (f"{cfg.dataset.name}, {cfg.operator.name}, σ={sigma:g}, "
             f"score={cfg.score.name}, {cfg.sampler.name}")
    figs = {}
    if dataset.dim == 2:
        y_plot = oracle.y[0].numpy() if oracle.y.shape[1] == 2 else None
        figs["posterior.png"] = plot_posterior(dataset.prior, oracle.post, y_plot, title)
        lams = [float(v) for v in cfg.plots.trajectory_lams]
        k = int(cfg.plots.trajectories)
        seeds = per_sample_seeds(int(cfg.seed), range(k), stream=9)
        trajectories = {}
        for lam in lams:
            res = sampler(model, oracle.y.float().expand(k, -1).contiguous(), operator, sigma,
                          [lam] * k, seeds, schedule, keep_trajectory=True)
            trajectories[lam] = res.trajectory.numpy()
        figs["trajectories.png"] = plot_trajectories(trajectories, oracle.post,
                                                     oracle.mean.numpy(), title)
    if rows and rows[0].get("kl") not in (None, ""):
        figs["dp_curve_kl.png"] = plot_dp_curve(rows, perception="kl", title=title)
    if oracle.post.weights.numel() == 1 and rows[0]["knob"] == "lam":
        figs["theory.png"] = plot_gaussian_theory(rows, title)
    for name, fig in figs.items():
        save_figure(fig, job_dir / name)
        plt.close(fig)
