"""What a reviewer checks on a figure, measured on the drawn artists: DP labels that do not
overlap, titles counted right, legend text, bootstrap bars where the intervals are,
reconstruction panels in rows with readable fonts."""
from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
import torch

from vsdr.plotting.dp import plot_dp_curve, plural
from vsdr.plotting.figures import plot_dp_overlay
from vsdr.plotting.images import plot_image_grid
from vsdr.plotting.points import plot_reconstructions


def _row(sampler, knob, value, mse, w2, **extra):
    return {"sampler": sampler, "knob": knob, "value": value, "mse": mse, "w2": w2, **extra}


def _overlay_rows():
    """The crowded corner of Fig. 11: ours at λ = 1 and DPS at ζ = 0.006 almost on one point,
    one DPS point (ζ = 0, unconditional) far above."""
    lams = np.linspace(0, 1, 6)
    rows = [_row("ours", "lam", float(v), 0.92 + 1.06 * v, 0.35 - 0.136 * v) for v in lams]
    rows += [_row("dps", "zeta", z, m, w) for z, m, w in
             [(0.0, 9.0, 0.5), (0.002, 2.3, 0.23), (0.004, 2.05, 0.218), (0.006, 1.985, 0.2150)]]
    return rows


def _text_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    return [t.get_window_extent(renderer) for t in ax.texts], ax.get_window_extent(renderer)


def test_dp_overlay_labels_do_not_overlap_and_stay_in_the_axes():
    fig = plot_dp_overlay(_overlay_rows(), "fig11: pinwheel", label_of=lambda r: {"dps": "DPS (λ=1)"}.get(
        r["sampler"], r["sampler"]), max_mse=2.6)
    boxes, frame = _text_boxes(fig)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert texts == {"λ=0", "λ=1", "ζ=0.002", "ζ=0.006"}  # the ends on the plot (ζ=0 is off it)
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    for b in boxes:
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
    plt.close(fig)


def test_every_point_labelled_in_a_job_plot_without_overlap():
    rows = [_row("ours", "lam", float(v), 0.9 + 0.02 * v, 0.30 - 0.01 * v) for v in np.linspace(0, 1, 11)]
    fig = plot_dp_curve(rows)
    boxes, _ = _text_boxes(fig)
    assert len(boxes) == 11
    overlaps = sum(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    assert overlaps == 0
    plt.close(fig)


def test_titles_count_and_legends_read():
    assert plural(1, "point") == "1 point" and plural(2, "point") == "2 points"
    fig = plot_dp_overlay(_overlay_rows(), "fig11", label_of=lambda r: {"dps": "DPS (λ=1)"}.get(
        r["sampler"], r["sampler"]), max_mse=2.6)
    ax = fig.axes[0]
    assert "1 point with MSE > 2.6 off the plot" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ours, λ swept", "DPS (λ=1), ζ swept"]
    plt.close(fig)


def test_overlay_zooms_on_both_axes():
    """A perception limit takes points off the plot like the MSE limit: a point with a low MSE
    beyond it and the ζ = 0 point beyond both are counted in the title, and the x range ends
    before them."""
    rows = _overlay_rows() + [_row("dps", "zeta", 0.01, 1.5, 0.8)]
    fig = plot_dp_overlay(rows, "zoom", max_mse=2.6, max_perception=0.4)
    ax = fig.axes[0]
    assert "2 points with MSE > 2.6 or w2 > 0.4 off the plot" in ax.get_title()
    assert 0.35 < ax.get_xlim()[1] < 0.5
    plt.close(fig)


def test_a_long_legend_sits_below_the_axes_and_hides_no_point():
    """Five curves (the robustness figure): the legend goes below the axes, inside the figure,
    clear of every plotted point; two curves keep it inside the axes."""
    rows = [_row(s, "lam", float(v), 0.4 + 0.5 * v + 0.05 * k, 0.2 + 0.3 * v * k)
            for k, s in enumerate(["ours", "a", "b", "c", "d"]) for v in np.linspace(0, 1, 6)]
    fig = plot_dp_overlay(rows, "five", label_of=lambda r: r["sampler"])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend, frame = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
    assert legend.y1 <= frame.y0 and legend.y0 >= 0  # below the axes, not cut off
    points = ax.transData.transform([(r["w2"], r["mse"]) for r in rows])
    assert not any(legend.contains(x, y) for x, y in points)
    plt.close(fig)
    fig = plot_dp_overlay(_overlay_rows(), "two", label_of=lambda r: r["sampler"], max_mse=2.6)
    fig.canvas.draw()
    legend = fig.axes[0].get_legend().get_window_extent(fig.canvas.get_renderer())
    assert fig.axes[0].get_window_extent(fig.canvas.get_renderer()).contains(legend.x0, legend.y0)
    plt.close(fig)


def test_bootstrap_intervals_drawn_as_error_bars():
    rows = [_row("ours", "lam", 0.0, 1.0, 0.4, mse_lo=0.9, mse_hi=1.2, w2_lo=0.35, w2_hi=0.5),
            _row("ours", "lam", 1.0, 2.0, 0.2, mse_lo=1.7, mse_hi=2.1, w2_lo=0.15, w2_hi=0.26)]
    fig = plot_dp_curve(rows)
    bars = fig.axes[0].containers[0]
    assert bars.has_xerr and bars.has_yerr
    x_segments, y_segments = (c.get_segments() for c in bars[2])
    assert np.allclose([s[:, 0] for s in x_segments], [[0.35, 0.5], [0.15, 0.26]])
    assert np.allclose([s[:, 1] for s in y_segments], [[0.9, 1.2], [1.7, 2.1]])
    plt.close(fig)
    no_bars = plot_dp_curve([_row("ours", "lam", 0.0, 1.0, 0.4, mse_lo="", mse_hi="")])
    assert not no_bars.axes[0].containers[0].has_yerr
    plt.close(no_bars)


def _font_sizes(fig):
    return [t.get_fontsize() for t in fig.findobj(plt.Text) if t.get_text()]


def test_reconstruction_panels_in_rows_without_ticks_and_readable_fonts():
    rng = np.random.default_rng(0)
    pts = [rng.normal(size=(50, 2)) for _ in range(8)]
    fig = plot_reconstructions(pts[0], pts[1], pts[2:], [0, 0.2, 0.4, 0.6, 0.8, 1], title="pinwheel")
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 8
    assert len({round(ax.get_position().y0, 3) for ax in shown}) == 2  # two rows of four
    w, h = fig.get_size_inches()
    assert w / h < 2.5
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in shown)
    assert min(_font_sizes(fig)) >= 9
    plt.close(fig)


def test_image_grid_fonts_readable():
    x0 = torch.zeros(2, 3, 8, 8)
    fig = plot_image_grid(x0, x0, torch.zeros(3, 2, 3, 8, 8), [0, 0.5, 1], "lam", rows=2, title="digits")
    assert min(_font_sizes(fig)) >= 9
    plt.close(fig)
