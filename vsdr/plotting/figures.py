"""Paper figures that combine several jobs: point panels from several samplers, DP curves of
several samplers on one plane (with units and σ)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vsdr.plotting.dp import plot_dp_curve  # noqa: E402


def plot_point_panels(panels: Sequence[tuple[str, np.ndarray]], title: str = ""):
    """One scatter panel per ``(name, points (n, 2))``, shared square axes."""
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


def plot_dp_overlay(rows: Sequence[dict], title: str, label_of=None,
                    max_mse: float | None = None):
    """Every (sampler, knob) group of ``rows`` as one curve; ``label_of(row)`` may rename the
    sampler (e.g. to say at which σ a GAN was trained). Axes in the data's units. Points with
    MSE above ``max_mse`` (e.g. DPS at ζ = 0, an unconditional sampler) fall off the plot and
    the title says how many."""
    if label_of is not None:
        rows = [{**r, "sampler": label_of(r)} for r in rows]
    off = [r for r in rows if max_mse is not None and float(r["mse"]) > max_mse]
    if off:
        title = f"{title}\n{len(off)} points with MSE > {max_mse:.2g} off the plot (see dp_points.csv)"
    fig = plot_dp_curve(rows, title=title)
    ax = fig.axes[0]
    if off:
        lo = min(float(r["mse"]) for r in rows)
        ax.set_ylim(lo - 0.05 * (max_mse - lo), max_mse)
    ax.set_xlabel("perception: W2 to the clean test points (data units; lower is better)")
    ax.set_ylabel("distortion: MSE = E‖x0 − x̂‖² (data units²)")
    fig.set_size_inches(6.4, 4.8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
