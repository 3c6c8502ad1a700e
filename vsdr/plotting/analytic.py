"""Figures of the analytic experiments: Fig. 1 (prior, observation, posterior), Fig. 2
(reverse trajectories per λ), and the Gaussian theory figure (MSE/D* and W2 against λ)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from vsdr.data.analytic import GaussianMixture  # noqa: E402
from vsdr.plotting.dp import wrap_title  # noqa: E402


def _grid(center: np.ndarray, half: float, n: int = 160):
    xs = np.linspace(center[0] - half, center[0] + half, n)
    ys = np.linspace(center[1] - half, center[1] + half, n)
    X, Y = np.meshgrid(xs, ys)
    return X, Y, torch.tensor(np.stack([X.ravel(), Y.ravel()], 1))


def _density(mix: GaussianMixture, pts: torch.Tensor, shape) -> np.ndarray:
    return torch.exp(mix.log_prob(pts)).reshape(shape).numpy()


def plot_posterior(prior: GaussianMixture, post: GaussianMixture, y: np.ndarray | None,
                   title: str = ""):
    """Fig. 1: the prior density, the observation ``y`` (drawn in x-space when A = I), the
    posterior density ``p(x0 | y)``."""
    m = prior.mean().numpy()
    half = 3.0 * float(np.sqrt(np.max(np.linalg.eigvalsh(prior.cov().numpy())))) + 1.0
    X, Y, pts = _grid(m, half)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), sharex=True, sharey=True)
    panels = [("prior p(x0)", _density(prior, pts, X.shape)), ("observation y", None),
              ("posterior p(x0 | y)", _density(post, pts, X.shape))]
    for ax, (name, dens) in zip(axes, panels):
        if dens is not None:
            ax.contourf(X, Y, dens, levels=20, cmap="Blues")
        else:
            ax.contour(X, Y, panels[0][1], levels=8, colors="0.7", linewidths=0.6)
        if y is not None:
            ax.plot(*y, "r*", ms=12, label="y")
        ax.set_title(name, fontsize=9)
        ax.set_aspect("equal")
    axes[1].legend(fontsize=9)
    fig.suptitle(wrap_title(title, 100), fontsize=9)
    fig.tight_layout()
    return fig


def plot_trajectories(trajectories: dict[float, np.ndarray], post: GaussianMixture,
                      mmse: np.ndarray, title: str = ""):
    """Fig. 2: reverse trajectories ``x_T → x_0`` (``(T+1, B, 2)`` per λ) over the posterior
    density, with the MMSE point; at λ = 0 they are deterministic and end at the MMSE."""
    lams = list(trajectories)
    # near-square panels by the figure's size, not set_aspect: equal-aspect panels of
    # different widths (tick labels on the first only) were drawn at different heights, and
    # their titles ran into the suptitle
    fig, axes = plt.subplots(1, len(lams), figsize=(3.0 * len(lams), 3.4), sharex=True, sharey=True,
                             layout="constrained")
    allpts = np.concatenate([t.reshape(-1, 2) for t in trajectories.values()])
    lo, hi = np.percentile(allpts, 0.5, axis=0), np.percentile(allpts, 99.5, axis=0)
    center, half = (lo + hi) / 2, float(np.max(hi - lo)) / 2 + 0.3
    X, Y, pts = _grid(center, half)
    dens = _density(post, pts, X.shape)
    for ax, lam in zip(np.atleast_1d(axes), lams):
        ax.contourf(X, Y, dens, levels=15, cmap="Greys", alpha=0.6)
        tr = trajectories[lam]
        for b in range(tr.shape[1]):
            ax.plot(tr[:, b, 0], tr[:, b, 1], lw=0.6, alpha=0.8)
            ax.plot(tr[-1, b, 0], tr[-1, b, 1], "o", ms=3, color="k")
        ax.plot(*mmse, "r*", ms=11, label="E[x0|y]")
        ax.set_title(f"λ = {lam:g}", fontsize=10)
        ax.set_xlim(center[0] - half, center[0] + half)  # the density fills the panel
        ax.set_ylim(center[1] - half, center[1] + half)
    np.atleast_1d(axes)[0].legend(fontsize=9, loc="lower left")
    fig.suptitle(wrap_title(title, 100), fontsize=10)
    return fig


def plot_gaussian_theory(rows: Sequence[dict], title: str = ""):
    """MSE/D* and W2 against λ, measured (points) and predicted: ``1 + λ`` and
    ``(1 − √λ)√D*`` (docs/METHOD.md §3)."""
    rows = sorted(rows, key=lambda r: float(r["value"]))
    lam = np.array([float(r["value"]) for r in rows])
    d_star = float(rows[0]["mmse"])
    grid = np.linspace(0, 1, 101)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.5, 3.4))
    a1.plot(grid, 1 + grid, "k--", lw=1, label="theory 1 + λ")
    a1.plot(lam, [float(r["mse"]) / d_star for r in rows], "o", label="measured")
    a1.set_xlabel("λ")
    a1.set_ylabel("MSE / D*")
    a2.plot(grid, (1 - np.sqrt(grid)) * np.sqrt(d_star), "k--", lw=1, label="theory (1 − √λ)√D*")
    a2.plot(lam, [float(r["w2"]) for r in rows], "o", label="measured")
    a2.set_xlabel("λ")
    a2.set_ylabel("W2 to the posterior")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=9)
    fig.suptitle(wrap_title(title, 100), fontsize=9)
    fig.tight_layout()
    return fig
