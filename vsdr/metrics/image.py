"""Image metrics (docs/METHOD.md §7): MSE, PSNR (torchmetrics) and SSIM (torchmetrics, an
extra column) on ``[0, 1]`` images; LPIPS (``lpips.LPIPS``, inputs in ``[−1, 1]``; the column
names the trunk: ``lpips_alex``, ``lpips_vgg``); FID (clean-fid's features, our guarded
Fréchet routine) against the ground-truth images. Grey (1-channel) images: MSE, PSNR and SSIM
on their one channel; LPIPS and FID, whose networks take RGB, on it repeated into three (``as_rgb``).

Pretrained weights are never downloaded: LPIPS's torchvision trunk is read from ``torch.hub``'s
checkpoint folder (the standard cache, where ``lpips.LPIPS`` finds it), clean-fid's Inception
file from its own download folder, the hub folder, or a given path. When one is absent,
``MissingWeightsError`` names the file, where it is expected and where it is published; a job
stops on it before any compute (``vsdr.experiments.validate.validate_files``), ``ImageMetrics``
used on its own records the sentence and computes the rest. Values computed with locally built
stand-in networks carry ``_standin`` in their names (``lpips_alex_standin``, ``fid_standin``):
they are never LPIPS or FID.
"""
from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from vsdr.data.images import save_images
from vsdr.errors import ConfigError
from vsdr.metrics.frechet import feature_frechet

#: torchvision file of each LPIPS trunk (what ``torchvision.models.<net>(weights=...)`` fetches)
BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}
INCEPTION_FILE = "inception-2015-12-05.pt"
#: where clean-fid downloads (and looks for) its Inception file on Linux/macOS
CLEANFID_FOLDER = Path("/tmp")
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/" + INCEPTION_FILE


class MissingWeightsError(ConfigError):
    """Pretrained weights that are not on this machine; the message names the file and where
    to put it."""


# ---------------------------------------------------------------- distortion
def _to_01(x: Tensor, clamp: bool) -> Tensor:
    """``[−1, 1]`` images as ``[0, 1]`` float64 images (clipped first when ``clamp``)."""
    x = x.double()
    return ((x.clamp(-1, 1) if clamp else x) + 1.0) / 2.0


def as_rgb(x: Tensor) -> Tensor:
    """``(B, 1, H, W)`` grey images with their channel repeated into RGB ``(B, 3, H, W)`` (what
    LPIPS's trunk and FID's Inception take); RGB images as they are."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def image_mse(x0: Tensor, x_hat: Tensor, clamp: bool = True) -> Tensor:
    """Per-image mean squared error of ``[0, 1]`` images, from ``[−1, 1]`` tensors:
    ``mean((x0 − x̂)²)/4``; ``x̂`` clipped to ``[−1, 1]`` first when ``clamp``."""
    if clamp:
        x_hat = x_hat.clamp(-1, 1)
    return (((x0.double() - x_hat.double()) / 2) ** 2).flatten(1).mean(1)


def psnr(x0: Tensor, x_hat: Tensor, clamp: bool = True) -> Tensor:
    """Per-image PSNR in dB of ``[0, 1]`` images, ``10 log10(1 / MSE)``: torchmetrics'
    ``peak_signal_noise_ratio`` with ``data_range=1`` over each image's pixels (float64 inputs;
    its factor ``10 / ln 10`` is float32, so values are within 1e-6 dB of the float64 formula)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(_to_01(x_hat, clamp), _to_01(x0, False), data_range=1.0,
                                   reduction="none", dim=tuple(range(1, x0.dim())))


def ssim(x0: Tensor, x_hat: Tensor, clamp: bool = True) -> Tensor:
    """Per-image SSIM of ``[0, 1]`` images: torchmetrics' ``structural_similarity_index_measure``
    with ``data_range=1`` and its defaults (Wang et al. 2004: 11×11 Gaussian window of std 1.5,
    ``K1 = 0.01``, ``K2 = 0.03``), channels averaged. 1 for identical images."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(_to_01(x_hat, clamp), _to_01(x0, False), data_range=1.0,
                                               reduction="none")


def nearest_upsample(x: Tensor, factor: int) -> Tensor:
    """Nearest-neighbour ×``factor`` up-sampling (for LPIPS and FID on small images: LPIPS's
    AlexNet needs at least 32 pixels a side)."""
    return x if factor == 1 else x.repeat_interleave(factor, -1).repeat_interleave(factor, -2)


# ---------------------------------------------------------------- weights
def hub_checkpoints() -> Path:
    """``torch.hub``'s checkpoint folder, where torchvision keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_backbone(net: str = "alex") -> Path:
    """The torchvision weights of the LPIPS trunk ``net`` in ``<torch hub>/checkpoints/``, where
    ``lpips.LPIPS`` (through torchvision) loads them from; ``MissingWeightsError`` when absent."""
    if net not in BACKBONE_FILES:
        raise ConfigError(f"LPIPS network must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    name = BACKBONE_FILES[net]
    p = hub_checkpoints() / name
    if p.is_file():
        return p
    raise MissingWeightsError(
        f"LPIPS ({net}) needs torchvision's trunk weights {name}, not found in {hub_checkpoints()}/ "
        f"(torch hub's checkpoint folder, under $TORCH_HOME), where it is expected: it is published "
        f"at https://download.pytorch.org/models/{name}")


def find_inception(path: str | Path | None = None) -> Path:
    """clean-fid's Inception file: ``path`` (the file or its folder) when given, else
    clean-fid's download folder (``CLEANFID_FOLDER``) or ``<torch hub>/checkpoints``."""
    if path is not None:
        p = Path(path)
        p = p / INCEPTION_FILE if p.is_dir() else p
        if p.is_file() and p.name == INCEPTION_FILE:
            return p
        raise MissingWeightsError(f"FID needs clean-fid's Inception weights {INCEPTION_FILE}, not found at "
                                  f"{path}, where image_metrics.inception says it is: it is published at "
                                  f"{INCEPTION_URL}")
    for folder in (CLEANFID_FOLDER, hub_checkpoints()):
        if (folder / INCEPTION_FILE).is_file():
            return folder / INCEPTION_FILE
    raise MissingWeightsError(
        f"FID needs clean-fid's Inception weights {INCEPTION_FILE}, not found in {CLEANFID_FOLDER}/ "
        f"(clean-fid's folder) or {hub_checkpoints()}/, where it is expected (or give its path as "
        f"image_metrics.inception): it is published at {INCEPTION_URL}")


# ---------------------------------------------------------------- LPIPS
@contextlib.contextmanager
def _no_downloads():
    """Fail loudly instead of downloading: torch hub's download functions raise (a file already
    in the hub cache is still read)."""
    import torch.hub as hub

    saved = hub.load_state_dict_from_url, hub.download_url_to_file

    def refuse(url, *a, **k):
        raise MissingWeightsError(f"refusing to download {url}")

    hub.load_state_dict_from_url, hub.download_url_to_file = refuse, refuse
    try:
        yield
    finally:
        hub.load_state_dict_from_url, hub.download_url_to_file = saved


def _lpips_shell(net: str) -> nn.Module:
    """``lpips.LPIPS`` with a randomly initialised trunk and the package's own linear heads
    (they ship with the package), built without any download."""
    import warnings

    import lpips

    with _no_downloads(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net=net, pnet_rand=True, pretrained=True, verbose=False).eval()


def build_lpips(net: str = "alex") -> nn.Module:
    """The real LPIPS: plain ``lpips.LPIPS(net=net)``, the package's linear heads and the
    torchvision trunk that torchvision loads from torch hub's cache (``find_backbone`` checks
    it is there first; nothing is downloaded)."""
    import warnings

    import lpips

    find_backbone(net)
    with _no_downloads(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lpips.LPIPS(net=net, pretrained=True, verbose=False).eval()


def build_lpips_standin(net: str = "alex", seed: int = 0) -> nn.Module:
    """A stand-in LPIPS for tests: the package's heads on a trunk drawn at random with
    ``seed``. Its values are *not* LPIPS: report them as ``lpips_<net>_standin``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _lpips_shell(net)


@torch.no_grad()
def lpips_distance(model: nn.Module, x0: Tensor, x_hat: Tensor, batch_size: int = 16) -> Tensor:
    """Per-image LPIPS of ``[−1, 1]`` images (the range ``lpips`` expects; ``x̂`` clipped; grey
    repeated into RGB, ``as_rgb``)."""
    dev = next(model.parameters()).device
    x0, x_hat = as_rgb(x0), as_rgb(x_hat)
    out = [model(a.to(dev).float(), b.to(dev).float().clamp(-1, 1)).flatten().cpu()
           for a, b in zip(x0.split(batch_size), x_hat.split(batch_size))]
    return torch.cat(out).double()


# ---------------------------------------------------------------- FID
def build_inception(path: str | Path | None = None, device: str | torch.device = "cpu") -> Callable:
    """clean-fid's Inception feature extractor (``mode="clean"``) loaded from
    ``find_inception`` (never downloaded)."""
    from cleanfid.inception_torchscript import InceptionV3W

    file = find_inception(path)
    return InceptionV3W(str(file.parent), download=False).to(device).eval()


class StandinFeatures(nn.Module):
    """A small random conv net as clean-fid's ``custom_feat_extractor`` for tests: input
    ``(B, 3, 299, 299)`` in ``[0, 255]``, output ``(B, dim)``. Its FID is *not* FID: report
    it as ``fid_standin``."""

    def __init__(self, dim: int = 16, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Conv2d(3, 8, 7, stride=4), nn.ReLU(),
                                     nn.Conv2d(8, dim, 5, stride=4), nn.ReLU(),
                                     nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x / 127.5 - 1.0)


def folder_features(folder: str | Path, extractor: Callable, device: torch.device,
                    batch_size: int = 16) -> np.ndarray:
    """clean-fid's features (``mode="clean"``: its resizing and ``[0, 255]`` input) of every
    image in ``folder``, one row per image."""
    from cleanfid import fid

    with contextlib.redirect_stdout(None):
        return fid.get_folder_features(str(folder), extractor, num_workers=0, batch_size=batch_size,
                                       device=device, mode="clean", verbose=False)


def fid_folders(dir_a: str | Path, dir_b: str | Path, feature_extractor: Callable | None = None,
                inception: str | Path | None = None, device: str | torch.device = "cpu",
                batch_size: int = 16) -> float:
    """FID between two folders of images: clean-fid's features (``folder_features``; the
    Inception network from ``build_inception`` unless a ``feature_extractor`` is given) and
    ``vsdr.metrics.frechet.feature_frechet`` on them, which is what ``cleanfid.fid.compute_fid``
    computes, minus its ``scipy.linalg.sqrtm(disp=False)`` (deprecated by SciPy 1.16, removed
    in 1.18) and with the guard for singular covariances (fewer images than features)."""
    device = torch.device(device)
    model = feature_extractor if feature_extractor is not None else build_inception(inception, device)
    return feature_frechet(folder_features(dir_a, model, device, batch_size),
                           folder_features(dir_b, model, device, batch_size))


# ---------------------------------------------------------------- all together
class ImageMetrics:
    """MSE, PSNR, SSIM, LPIPS and FID of reconstructions against ground truth (both ``[−1, 1]``).

    Columns: ``mse``, ``psnr``, ``ssim``, ``lpips_<lpips_net>`` and ``fid`` (``fid`` only with
    ``fid=True``). ``standin=True`` uses the locally built stand-ins and names their columns
    ``lpips_<lpips_net>_standin``/``fid_standin``. Missing weights give ``nan`` for that measure
    and a sentence in ``self.notes`` naming the file; the other measures are still computed (a
    job stops before this: ``vsdr.experiments.validate.validate_files``).
    """

    def __init__(self, lpips_net: str = "alex", inception: str | None = None, fid: bool = True,
                 standin: bool = False, device: str = "cpu", batch_size: int = 16):
        self.lpips_net, self.inception = lpips_net, inception
        self.fid, self.standin = fid, standin
        self.device, self.batch_size = torch.device(device), int(batch_size)
        self.suffix = "_standin" if standin else ""
        self.lpips_key, self.fid_key = f"lpips_{lpips_net}{self.suffix}", f"fid{self.suffix}"
        self.notes: list[str] = []
        self._lpips: nn.Module | None = None

    def column(self, name: str) -> str:
        """The column a generic name means: ``lpips`` (or ``lpips_standin``) is the LPIPS column
        of this trunk, ``lpips_<net>`` (or ``lpips_<net>_standin``); other names are columns."""
        return {"lpips": f"lpips_{self.lpips_net}",
                "lpips_standin": f"lpips_{self.lpips_net}_standin"}.get(name, name)

    def _lpips_model(self) -> nn.Module:
        if self._lpips is None:
            m = build_lpips_standin(self.lpips_net) if self.standin else build_lpips(self.lpips_net)
            self._lpips = m.to(self.device)
        return self._lpips

    def _note(self, e: Exception | str) -> None:
        if str(e) not in self.notes:
            self.notes.append(str(e))

    def __call__(self, x0: Tensor, x_hat: Tensor, workdir: str | Path | None = None,
                 upsample: int = 1) -> dict[str, float]:
        """One row of means over the images (and the FID of the set). ``upsample``: LPIPS and
        FID see the images nearest-up-sampled by this factor (small images; the other
        measures are taken at the images' own size). Grey ``(B, 1, H, W)`` images: MSE, PSNR
        and SSIM on their one channel, LPIPS and FID on it repeated into RGB (``as_rgb``)."""
        row = {"mse": float(image_mse(x0, x_hat).mean()), "psnr": float(psnr(x0, x_hat).mean()),
               "ssim": float(ssim(x0, x_hat).mean())}
        x0, x_hat = (as_rgb(nearest_upsample(x, upsample)) for x in (x0, x_hat))
        try:
            d = lpips_distance(self._lpips_model(), x0, x_hat, self.batch_size)
            row[self.lpips_key] = float(d.mean())
        except MissingWeightsError as e:
            row[self.lpips_key] = math.nan
            self._note(e)
        if self.fid and x0.shape[0] < 2:  # a covariance needs two images (a one-image shard)
            row[self.fid_key] = math.nan
            self._note(f"{self.fid_key}: nan, a Fréchet distance needs at least 2 images and this "
                       f"set has {x0.shape[0]} (a shard of one image: FID comes from the merged shards)")
        elif self.fid:
            try:
                extractor = (StandinFeatures().to(self.device) if self.standin
                             else build_inception(self.inception, self.device))
                with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                    save_images(x0, Path(tmp) / "truth")
                    save_images(x_hat, Path(tmp) / "recon")
                    row[self.fid_key] = fid_folders(Path(tmp) / "truth", Path(tmp) / "recon", extractor,
                                                    device=self.device, batch_size=self.batch_size)
            except MissingWeightsError as e:
                row[self.fid_key] = math.nan
                self._note(e)
        return row


__all__ = ["as_rgb", "image_mse", "psnr", "ssim", "nearest_upsample", "lpips_distance", "build_lpips",
           "build_lpips_standin", "fid_folders", "folder_features", "build_inception", "StandinFeatures",
           "ImageMetrics", "MissingWeightsError"]
