"""restored/: a job's reconstructions as images a user can open (``outputs.images``; docs/METHOD.md
§9). One 8-bit PNG per test item and knob value, ``<item>_<knob><value>.png`` (``_s<k>`` added
with ``data.samples_per_image > 1``), and once per item its measurement ``<item>_y.png`` (at its
own size: a super-resolution's y is smaller) and its clean image ``<item>_clean.png``: RGB, or
grey (mode L) for 1-channel images. The
pixels are the clipped ``[−1, 1]`` values mapped to ``[0, 255]`` and rounded (``to_uint8``).

They are written into the job's result set (``vsdr.experiments.writer.result_set``): published
with the tables and figures, ``metrics.json`` last, or not at all."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vsdr.data.images import to_uint8
from vsdr.experiments.writer import atomic_write

#: the folder of a job dir that holds the PNGs
FOLDER = "restored"


def value_tag(knob: str, value: float) -> str:
    """``lam0.5``, ``N4``, ``zeta0.3``: the knob's name and its value (``%g``)."""
    return f"{knob}{float(value):g}"


def restored_name(item: str, knob: str, value: float, sample: int | None = None) -> str:
    """``<item>_<knob><value>.png``, with ``_s<sample>`` before ``.png`` when ``sample`` is given."""
    return f"{item}_{value_tag(knob, value)}" + (f"_s{sample}" if sample is not None else "") + ".png"


def write_png(path: Path, image: Tensor) -> Path:
    """``image`` ``(C, H, W)`` in ``[−1, 1]`` as an 8-bit PNG (``C`` = 3: RGB, 1: grey, mode
    ``L``), atomically."""
    from PIL import Image

    arr = to_uint8(image[None])[0]
    picture = Image.fromarray(arr)
    return atomic_write(path, lambda p: picture.save(p, format="PNG"))


def is_picture(x: Tensor) -> bool:
    """Whether ``x`` (one item, no batch axis) can be shown as an image: ``(1 or 3, H, W)``."""
    return x.dim() == 3 and x.shape[0] in (1, 3)


def write_restored(out_dir: Path, x0: Tensor, y: Tensor, recon: Tensor, values: Sequence[float],
                   knob: str, index: np.ndarray, names: Sequence[str],
                   samples_per_item: int = 1) -> list[Path]:
    """Write ``out_dir/restored/``: for test item ``p`` (global id ``index[p]``, the sample
    ``index[p] % S`` of test image ``index[p] // S``, named ``names[index[p] // S]``) one PNG per
    knob value of ``recon (V, n, C, H, W)``, and the clean image ``x0[p]`` and measurement
    ``y[p]`` once per test image (``y`` left out when it is no picture). Returns the paths."""
    folder = Path(out_dir) / FOLDER
    S = int(samples_per_item)
    written: list[Path] = []
    seen: set[int] = set()
    for p, j in enumerate(np.asarray(index).tolist()):
        image, sample = divmod(int(j), S)
        item = names[image]
        for v, value in enumerate(values):
            written.append(write_png(folder / restored_name(item, knob, value, sample if S > 1 else None),
                                     recon[v, p]))
        if image not in seen:
            seen.add(image)
            written.append(write_png(folder / f"{item}_clean.png", x0[p]))
            if is_picture(y[p]):
                written.append(write_png(folder / f"{item}_y.png", y[p]))
    return written


def copy_restored(job_dirs: Sequence[Path], out_dir: Path) -> list[Path]:
    """The PNGs of every job dir's restored/ (shards: each holds its own items) copied into
    ``out_dir/restored/``. Returns the copies."""
    out = []
    for d in job_dirs:
        for f in sorted((Path(d) / FOLDER).glob("*.png")):
            target = Path(out_dir) / FOLDER / f.name
            out.append(atomic_write(target, lambda p, f=f: shutil.copyfile(f, p)))
    return out


def restore_finished_job(job_dir: Path, item_names: Callable[[int], Sequence[str]]) -> Path | None:
    """A finished job's restored/ written from its samples.npz when it has none (the job ran
    with ``outputs.images=false``; the option does not change results, so the job is not rerun):
    staged in ``.restored.tmp/`` and renamed whole. ``item_names(n)``: the names of the first
    ``n`` test images (``Task.item_names``). Returns the folder, or ``None`` when it was there."""
    job_dir = Path(job_dir)
    if (job_dir / FOLDER).is_dir():
        return None
    stage = job_dir / f".{FOLDER}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        with np.load(job_dir / "samples.npz") as z:
            S = int(z["samples_per_image"]) if "samples_per_image" in z.files else 1
            index = z["index"]
            write_restored(stage, torch.from_numpy(z["x0"]), torch.from_numpy(z["y"]),
                           torch.from_numpy(z["samples"]), [float(v) for v in z["values"]],
                           str(z["knob"]), index, item_names(int(index.max()) // S + 1), S)
        os.replace(stage / FOLDER, job_dir / FOLDER)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return job_dir / FOLDER
