"""Scatter plots of 2D point clouds: clean, noisy, and the reconstructions for each knob value."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vsdr.samplers import knob_symbol  # noqa: E402


def plot_point_panels(panels: Sequence[tuple[str, np.ndarray]], title: str = "", max_cols: int = 4):
    """One scatter panel per ``(name, points (n, 2))`` on shared square axes scaled to the
    first two panels (clean and noisy), in rows of at most ``max_cols`` panels, without ticks
    (every panel has the same scale); a panel named ``noisy…`` is drawn in red."""
    n = len(panels)
    cols = min(n, max_cols)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.8 * nrows + 0.5), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    lim = np.percentile(np.abs(np.concatenate([p for _, p in panels[:2]])), 99.5) * 1.1
    flat = axes.ravel()
    for ax, (name, pts) in zip(flat, panels):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color="C3" if name.startswith("noisy") else "C0")
        ax.set_title(name, fontsize=10)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[n:]:
        ax.set_visible(False)
    if title:
        from vsdr.plotting.dp import wrap_title

        fig.suptitle(wrap_title(title, 30 * cols), fontsize=10)
    return fig


def plot_reconstructions(x0: np.ndarray, y: np.ndarray | None, recon: Sequence[np.ndarray],
                         values: Sequence[float], knob: str = "lam", title: str = ""):
    """Panels: clean ``x0``, noisy ``y`` (when it lives in x-space), then one per
    reconstruction set."""
    panels = [("clean x0", x0)] + ([("noisy y", y)] if y is not None else [])
    sym = knob_symbol(knob)
    panels += [(f"{sym} = {v:g}", r) for v, r in zip(values, recon)]
    return plot_point_panels(panels, title)
