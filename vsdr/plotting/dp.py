"""Distortion-perception plane: distortion (MSE) against perception (W2 or another measure)."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vsdr.samplers import knob_symbol  # noqa: E402 - every sampler declares its knobs' symbols


def plot_dp_curve(rows: Sequence[dict], perception: str = "w2", distortion: str = "mse",
                  title: str = "", optimal: tuple[float, np.ndarray] | None = None):
    """One line per (sampler, knob) through its points sorted by knob value, each point
    labelled with its value. ``optimal = (D*, P grid)`` overlays ``D(P) = D* + (√D* − P)²``
    (Theorem 2); by default it is drawn when every row carries the same ``mmse``."""
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["sampler"], r["knob"]), []).append(r)
    for (sampler, knob), pts in groups.items():
        pts = sorted(pts, key=lambda r: float(r["value"]))
        xs = [float(r[perception]) for r in pts]
        ys = [float(r[distortion]) for r in pts]
        sym = knob_symbol(knob)
        ax.plot(xs, ys, "o-", label=f"{sampler} ({sym} swept)")
        for x, y, r in zip(xs, ys, pts):
            ax.annotate(f"{sym}={float(r['value']):g}", (x, y), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    if optimal is None and perception == "w2":
        mmse = {float(r["mmse"]) for r in rows if r.get("mmse") not in (None, "")}
        if len(mmse) == 1:
            d_star = mmse.pop()
            top = max([float(r[perception]) for r in rows] + [np.sqrt(d_star)]) * 1.05
            optimal = (d_star, np.linspace(0.0, top, 200))
    if optimal is not None:
        d_star, p = optimal
        ax.plot(p, d_star + (np.sqrt(d_star) - np.minimum(p, np.sqrt(d_star))) ** 2, "k--",
                lw=1, label="optimal D(P)")
    reference = "the posterior" if rows and rows[0].get("mmse") not in (None, "") else "clean data"
    ax.set_xlabel(f"perception: {perception.upper()} to {reference} (lower is better)")
    ax.set_ylabel(f"distortion: {distortion.upper()} = E‖x0 − x̂‖²")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
