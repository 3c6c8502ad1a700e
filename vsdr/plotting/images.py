"""The image grid of the paper's Fig. 7: one row per image, columns clean / measurement /
one reconstruction per knob value."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402

from vsdr.data.images import to_uint8  # noqa: E402
from vsdr.plotting.dp import wrap_title  # noqa: E402
from vsdr.samplers import knob_symbol  # noqa: E402


def measurement_for_display(y: Tensor, size: tuple[int, int]) -> Tensor:
    """``y`` at the image size (nearest-neighbour up-sampling when the operator shrinks it)."""
    if tuple(y.shape[-2:]) == tuple(size):
        return y
    return F.interpolate(y.float(), size=size, mode="nearest")


def plot_image_grid(x0: Tensor, y: Tensor, recon: Tensor, values: Sequence[float], knob: str,
                    rows: int = 4, title: str = ""):
    """``x0 (n, C, H, W)``, ``y``, ``recon (V, n, C, H, W)`` in ``[−1, 1]`` (``C`` = 3, or 1:
    shown grey); the first ``rows`` images. Returns the figure."""
    sym = knob_symbol(knob)
    return plot_image_columns(x0, y, [(f"{sym}={float(v):g}", r) for v, r in zip(values, recon)],
                              rows=rows, title=title)


def plot_image_columns(x0: Tensor, y: Tensor, columns: Sequence[tuple[str, Tensor]],
                       rows: int = 4, title: str = ""):
    """Columns clean / measurement / each ``(label, images (n, C, H, W))`` of ``columns``, one
    row per image (the first ``rows``), all in ``[−1, 1]``; one channel is drawn with the grey
    colour map over ``[0, 255]``. Returns the figure."""
    n = min(rows, x0.shape[0])
    y_show = measurement_for_display(y[:n], tuple(x0.shape[-2:]))
    columns = [("clean", x0[:n]), ("measurement", y_show), *((c, r[:n]) for c, r in columns)]
    fig, axes = plt.subplots(n, len(columns), figsize=(1.3 * len(columns), 1.3 * n + 0.4),
                             squeeze=False)
    for c, (label, imgs) in enumerate(columns):
        arr = to_uint8(torch.as_tensor(imgs))
        for r in range(n):
            ax = axes[r][c]
            grey = dict(cmap="gray", vmin=0, vmax=255) if arr[r].ndim == 2 else {}
            ax.imshow(arr[r], interpolation="nearest", **grey)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=9)
    fig.suptitle(wrap_title(title, max(40, 12 * len(columns))), fontsize=9)
    fig.tight_layout()
    return fig


def plot_samples_grid(x0: Tensor, y: Tensor, recon: Tensor, value: float, knob: str,
                      samples_per_image: int, rows: int = 4, title: str = ""):
    """Fig. 12: several samples of one observation. ``x0``, ``y`` ``(n·S, ...)`` and ``recon``
    ``(n·S, 3, H, W)`` (one knob ``value``) hold ``S = samples_per_image`` consecutive samples
    per image; one row per image (the first ``rows``): clean, measurement, its ``S`` samples."""
    S = int(samples_per_image)
    cols = [(f"{knob_symbol(knob)}={float(value):g} #{s + 1}", recon[s::S]) for s in range(S)]
    return plot_image_columns(x0[::S], y[::S], cols, rows=rows, title=title)
