"""Paper figures that combine several jobs: DP curves of
several samplers on one plane (with units and σ)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

from vsdr.plotting.dp import plot_dp_curve, plural  # noqa: E402


def plot_dp_overlay(rows: Sequence[dict], title: str, label_of=None,
                    max_mse: float | None = None, perception: str = "w2",
                    xlabel: str | None = None, ylabel: str | None = None,
                    max_perception: float | None = None):
    """Every (sampler, knob) group of ``rows`` as one curve, its two end points labelled with
    their knob values; ``label_of(row)`` may rename the sampler (e.g. to say at which σ a GAN
    was trained). Axes in words (``vsdr.plotting.words``) unless ``xlabel``/``ylabel`` are
    given. Points with MSE above ``max_mse`` (e.g. DPS at ζ = 0, an unconditional sampler) or
    perception above ``max_perception`` fall off the plot and the title says how many."""
    if label_of is not None:
        rows = [{**r, "sampler": label_of(r)} for r in rows]

    def inside(r: dict) -> bool:
        return ((max_mse is None or float(r["mse"]) <= max_mse)
                and (max_perception is None or float(r[perception]) <= max_perception))

    off = [r for r in rows if not inside(r)]
    xlim = ylim = None
    if off:
        limits = " or ".join(f"{what} > {lim:.2g}" for what, lim in
                             (("MSE", max_mse), (perception, max_perception)) if lim is not None)
        title = f"{title}\n{plural(len(off), 'point')} with {limits} off the plot (see dp_points.csv)"
        kept = [r for r in rows if inside(r)] or rows
        lo, hi = min(float(r["mse"]) for r in kept), max(float(r["mse"]) for r in kept)
        top = max_mse if max_mse is not None else hi
        ylim = (lo - 0.05 * (top - lo), top)
        shown = [float(r[perception]) for r in kept]
        pad = 0.08 * (max(shown) - min(shown) or max(shown) or 1.0)
        xlim = (min(shown) - pad, max(shown) + 3 * pad)  # room for the labels
    return plot_dp_curve(rows, perception=perception, title=title, label_points="ends",
                         xlabel=xlabel, ylabel=ylabel, xlim=xlim, ylim=ylim)
