"""What each metrics column measures, in words a newcomer knows: the axis labels of every
DP plot (``vsdr/plotting/*``). One place, so that a job's plot, a sweep's plot and the paper
figures say the same thing. A stand-in column (``*_standin``: random-weight networks, not the
published metric) is always labelled as one."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

#: column → (its name, the words after the name: what it measures and which way is better);
#: ``{ref}``: what it compares with
WORDS: dict[str, tuple[str, str]] = {
    "mse": ("MSE", " = E‖x0 − x̂‖² in data units² (lower is closer to the clean point)"),
    "mse_image": ("per-pixel MSE", " of [0, 1] images (lower is closer to the clean image)"),
    "psnr": ("PSNR", " in dB (higher is closer to the clean image)"),
    "ssim": ("SSIM", ", structural similarity (higher is closer to the clean image)"),
    "lpips": ("LPIPS", ", a learned perceptual distance to the clean image (lower looks more alike)"),
    "fid": ("FID", ", the Fréchet Inception distance to the clean images (lower is more natural)"),
    "fd_patch": ("patch Fréchet distance", " to the clean images (lower is more natural)"),
    "fd_pca": ("PCA Fréchet distance", " to the clean images in the training images' top PCA "
                                       "directions (lower is more natural)"),
    "chroma": ("colour speckle", " of grey images (lower is cleaner)"),
    "w2": ("W2", ", the Wasserstein-2 distance to {ref} in data units (lower is more natural)"),
    "kl": ("KL divergence", " to {ref} (lower is more natural)"),
}
#: how a stand-in column (random-weight networks) is named: never as the real metric
STANDIN = "{name} stand-in (random weights: not the real {short})"


def is_image_rows(rows: Sequence[Mapping]) -> bool:
    """Whether ``rows`` are an image job's (they carry PSNR)."""
    return bool(rows) and "psnr" in rows[0]


def reference(rows: Sequence[Mapping]) -> str:
    """What W2 and KL of point data compare with: the posterior when the rows carry
    its MMSE (closed-form data), else the clean test points."""
    if rows and rows[0].get("mmse") not in (None, ""):
        return "the posterior"
    return "the clean test points"


def describe(column: str, images: bool = False, ref: str = "the clean test points") -> str:
    """``column`` in words: its name, what it measures and which way is better (``images``:
    the column of an image job; ``ref``: what point-data measures compare with)."""
    base = column.removesuffix("_standin")
    generic = "lpips" if base.startswith("lpips") else base
    if generic == "mse" and images:
        generic = "mse_image"
    if generic not in WORDS:
        return f"{column} (docs/METHOD.md §9)"
    short, words = WORDS[generic]
    trunk = base.removeprefix("lpips_") if generic == "lpips" and base != "lpips" else ""
    name = f"{short}-{trunk}" if trunk else short  # lpips_vgg: LPIPS-vgg
    if column.endswith("_standin"):
        name = STANDIN.format(name=name, short=short)
    return name + words.format(ref=ref)


def axis_label(column: str, role: str, rows: Sequence[Mapping] = ()) -> str:
    """The label of a DP plot's axis showing ``column`` as ``role`` (perception or
    distortion), its words chosen by the kind of ``rows`` (image or point data)."""
    return f"{role}: {describe(column, is_image_rows(rows), reference(rows))}"
