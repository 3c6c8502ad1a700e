"""Paper figures that combine several jobs: DP curves of
several samplers on one plane (with units and σ)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

from vsdr.plotting.dp import plot_dp_curve  # noqa: E402


def plot_dp_overlay(rows: Sequence[dict], title: str, label_of=None,
                    max_mse: float | None = None, perception: str = "w2",
                    xlabel: str = "perception: W2 to the clean test points (data units; lower is better)",
                    ylabel: str = "distortion: MSE = E‖x0 − x̂‖² (data units²)"):
    """Every (sampler, knob) group of ``rows`` as one curve; ``label_of(row)`` may rename the
    sampler (e.g. to say at which σ a GAN was trained). Axes in the data's units. Points with
    MSE above ``max_mse`` (e.g. DPS at ζ = 0, an unconditional sampler) fall off the plot and
    the title says how many."""
    if label_of is not None:
        rows = [{**r, "sampler": label_of(r)} for r in rows]
    off = [r for r in rows if max_mse is not None and float(r["mse"]) > max_mse]
    if off:
        title = f"{title}\n{len(off)} points with MSE > {max_mse:.2g} off the plot (see dp_points.csv)"
    fig = plot_dp_curve(rows, perception=perception, title=title)
    ax = fig.axes[0]
    if off:
        lo = min(float(r["mse"]) for r in rows)
        ax.set_ylim(lo - 0.05 * (max_mse - lo), max_mse)
        shown = [float(r[perception]) for r in rows if float(r["mse"]) <= max_mse]
        if shown:
            pad = 0.08 * (max(shown) - min(shown) or max(shown) or 1.0)
            ax.set_xlim(min(shown) - pad, max(shown) + 4 * pad)  # room for the labels
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.set_size_inches(6.4, 4.8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
