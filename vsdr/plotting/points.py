"""Scatter plots of 2D point clouds: clean, noisy, and the reconstructions for each knob value."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vsdr.samplers import knob_symbol  # noqa: E402


def plot_point_panels(panels: Sequence[tuple[str, np.ndarray]], title: str = ""):
    """One scatter panel per ``(name, points (n, 2))`` on shared square axes scaled to the
    first two panels (clean and noisy); a panel named ``noisy…`` is drawn in red."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(2.3 * n, 2.6), sharex=True, sharey=True)
    lim = np.percentile(np.abs(np.concatenate([p for _, p in panels[:2]])), 99.5) * 1.1
    for ax, (name, pts) in zip(np.atleast_1d(axes), panels):
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.5, color="C3" if name.startswith("noisy") else "C0")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_reconstructions(x0: np.ndarray, y: np.ndarray | None, recon: Sequence[np.ndarray],
                         values: Sequence[float], knob: str = "lam", title: str = ""):
    """Panels: clean ``x0``, noisy ``y`` (when it lives in x-space), then one per
    reconstruction set."""
    panels = [("clean x0", x0)] + ([("noisy y", y)] if y is not None else [])
    sym = knob_symbol(knob)
    panels += [(f"{sym} = {v:g}", r) for v, r in zip(values, recon)]
    return plot_point_panels(panels, title)
