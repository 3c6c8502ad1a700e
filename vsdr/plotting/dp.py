"""Distortion-perception plane: distortion (MSE) against perception (W2 or another measure),
with the bootstrap intervals as error bars where the rows carry them."""
from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vsdr.plotting.words import axis_label  # noqa: E402
from vsdr.samplers import knob_symbol  # noqa: E402 - every sampler declares its knobs' symbols

#: font sizes of the DP figures (a reviewer reads 9 pt and up at the figure's printed size)
FONT, SMALL = 10, 9
#: where a point's label may go, in points from the point (tried in this order)
OFFSETS = [(6, 6), (6, -12), (-6, 6), (-6, -12), (10, -3), (-10, -3), (6, 14), (6, -20),
           (-6, 14), (-6, -20), (18, 6), (-18, 6)]


def plural(n: int, word: str) -> str:
    """``"1 point"``, ``"3 points"``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def wrap_title(title: str, width: int = 70) -> str:
    """Each line of ``title`` wrapped at ``width`` characters."""
    return "\n".join(textwrap.fill(line, width) for line in title.split("\n"))


def interval(r: dict, column: str) -> tuple[float, float] | None:
    """``(column_lo, column_hi)`` of row ``r`` when both are there and finite."""
    try:
        lo, hi = float(r[f"{column}_lo"]), float(r[f"{column}_hi"])
    except (KeyError, TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def errors(pts: Sequence[dict], column: str, centres: Sequence[float]) -> np.ndarray | None:
    """Matplotlib's ``(2, n)`` error array (below, above) of ``column`` for ``pts``; ``None``
    unless every point has an interval."""
    ivs = [interval(r, column) for r in pts]
    if any(iv is None for iv in ivs):
        return None
    return np.array([[max(c - lo, 0.0) for c, (lo, _) in zip(centres, ivs)],
                     [max(hi - c, 0.0) for c, (_, hi) in zip(centres, ivs)]])


def place_labels(ax, labels: Sequence[tuple[float, float, str, str]],
                 curves: Sequence[tuple[Sequence[float], Sequence[float]]] = (), fontsize: float = 9) -> list:
    """Annotate ``(x, y, text, colour)`` each at the offset of ``OFFSETS`` whose box (the text's
    drawn size) collides least: with a label placed before or the axes' edge (heavy),
    then with the drawn ``curves`` (their points and lines, sampled every few pixels); the
    earlier offset on a tie. Points off the axes get no label."""
    fig = ax.figure
    fig.canvas.draw()  # fixes the transforms
    to_px = ax.transData.transform
    scale = fig.dpi / 72.0
    frame = ax.get_window_extent()
    dense = [np.empty((0, 2))]
    for xs, ys in curves:
        pts = to_px(np.column_stack([xs, ys]))
        for a, b in zip(pts[:-1], pts[1:]):
            k = int(np.hypot(*(b - a)) // 3) + 2
            dense.append(a + np.linspace(0, 1, k)[:, None] * (b - a))
        dense.append(pts)
    obstacles = np.concatenate(dense)
    placed, out = [], []
    for x, y, text, colour in labels:
        px, py = to_px((x, y))
        if not (frame.x0 <= px <= frame.x1 and frame.y0 <= py <= frame.y1):
            continue  # off the plot (e.g. beyond a y limit): no label
        w, h = _text_size(ax, text, fontsize)
        best = None
        for dx, dy in OFFSETS:
            x0 = px + dx * scale - (w if dx < 0 else 0.0)
            box = (x0, py + dy * scale, x0 + w, py + dy * scale + h)
            outside = not (frame.x0 <= box[0] and box[2] <= frame.x1
                           and frame.y0 <= box[1] and box[3] <= frame.y1)
            hits = np.count_nonzero((obstacles[:, 0] >= box[0] - 2) & (obstacles[:, 0] <= box[2] + 2)
                                    & (obstacles[:, 1] >= box[1] - 2) & (obstacles[:, 1] <= box[3] + 2))
            cost = 1000 * (outside + sum(_overlap(box, b) for b in placed)) + hits
            if best is None or cost < best[0]:
                best = (cost, dx, dy, box)
        _, dx, dy, box = best
        placed.append(box)
        out.append(ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy),
                               fontsize=fontsize, color=colour, ha="left" if dx >= 0 else "right"))
    return out


def _text_size(ax, text: str, fontsize: float) -> tuple[float, float]:
    """Width and height in pixels of ``text`` drawn at ``fontsize``."""
    t = ax.text(0, 0, text, fontsize=fontsize)
    box = t.get_window_extent(ax.figure.canvas.get_renderer())
    t.remove()
    return box.width, box.height


def _within(v: float, lim: tuple[float, float] | None) -> bool:
    return lim is None or lim[0] <= v <= lim[1]


def _overlap(a: tuple, b: tuple) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def plot_dp_curve(rows: Sequence[dict], perception: str = "w2", distortion: str = "mse",
                  title: str = "", optimal: tuple[float, np.ndarray] | None = None,
                  label_points: str = "all", xlabel: str | None = None, ylabel: str | None = None,
                  xlim: tuple[float, float] | None = None, ylim: tuple[float, float] | None = None):
    """One line per (sampler, knob) through its points sorted by knob value; the bootstrap
    intervals (``mse_lo`` … ``w2_hi``) as error bars where every point has them. Points are
    labelled with their knob value (``label_points``: ``"all"``, ``"ends"`` (first and last of
    each curve within ``xlim``/``ylim``) or ``"none"``), each placed clear of the others and of
    the curves where it can (``place_labels``). ``optimal = (D*, P grid)`` overlays
    ``D(P) = D* + (√D* − P)²`` (Theorem 2); by default it is drawn when every row carries the
    same ``mmse``. The axes say in words what they measure (``vsdr.plotting.words``);
    ``xlabel``, ``ylabel``, ``xlim``, ``ylim`` replace the defaults (before the labels are
    placed)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["sampler"], r["knob"]), []).append(r)
    labels, curves, barred = [], [], set()
    for (sampler, knob), pts in groups.items():
        pts = sorted(pts, key=lambda r: float(r["value"]))
        xs = [float(r[perception]) for r in pts]
        ys = [float(r[distortion]) for r in pts]
        sym = knob_symbol(knob)
        xerr, yerr = errors(pts, perception, xs), errors(pts, distortion, ys)
        barred |= {c for c, e in ((distortion, yerr), (perception, xerr)) if e is not None}
        line = ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o-", ms=4, capsize=2, elinewidth=0.8,
                           label=f"{sampler}, {sym} swept")
        colour = line[0].get_color()
        curves.append((xs, ys))
        shown = [i for i in range(len(pts)) if _within(xs[i], xlim) and _within(ys[i], ylim)]
        keep = {"all": shown, "ends": sorted({shown[0], shown[-1]}) if shown else [],
                "none": []}[label_points]
        labels += [(xs[i], ys[i], f"{sym}={float(pts[i]['value']):g}", colour) for i in keep]
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
    ax.set_xlabel(wrap_title(xlabel or axis_label(perception, "perception", rows), 75), fontsize=FONT)
    ax.set_ylabel(wrap_title(ylabel or axis_label(distortion, "distortion", rows), 50), fontsize=FONT)
    if barred:
        which = " and ".join(c.upper() for c in (distortion, perception) if c in barred)
        note = f"bars: bootstrap intervals of {which} over the test items"
        title = f"{title}\n{note}" if title else note
    ax.set_title(wrap_title(title), fontsize=SMALL)
    ax.tick_params(labelsize=SMALL)
    ax.grid(alpha=0.3)
    entries = len(ax.get_legend_handles_labels()[1])
    if entries > 3:  # several jobs: the legend below the axes, where it hides no point
        ax.legend(fontsize=SMALL, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
        fig.set_size_inches(6.4, 4.8 + 0.25 * ((entries + 1) // 2))
    else:
        ax.legend(fontsize=SMALL)
    ax.margins(x=0.12, y=0.08)
    if xlim is not None:
        ax.set_xlim(*xlim)
    if ylim is not None:
        ax.set_ylim(*ylim)
    fig.tight_layout()
    place_labels(ax, labels, curves, fontsize=SMALL)
    return fig
