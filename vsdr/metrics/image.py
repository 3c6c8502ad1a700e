"""Image metrics (docs/METHOD.md §7): MSE and PSNR on ``[0, 1]`` images, LPIPS (the ``lpips``
package, inputs in ``[−1, 1]``), FID (clean-fid) against the ground-truth folder.

Pretrained weights that the libraries would download at run time are looked up locally:
the torchvision backbone of LPIPS in ``torch.hub``'s checkpoint folder (or a given path),
clean-fid's Inception file in its own download folder, the hub folder, or a given path. When
one is absent, ``MissingWeightsError`` names the file and where to put it; ``ImageMetrics``
records that sentence and computes the rest. Values computed with locally built stand-in
networks carry their own names (``lpips_standin``, ``fid_standin``), never ``lpips``/``fid``.
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
def _per_image(x: Tensor) -> Tensor:
    return x.flatten(1).mean(1)


def image_mse(x0: Tensor, x_hat: Tensor, clamp: bool = True) -> Tensor:
    """Per-image mean squared error of ``[0, 1]`` images, from ``[−1, 1]`` tensors:
    ``mean((x0 − x̂)²)/4``; ``x̂`` clipped to ``[−1, 1]`` first when ``clamp``."""
    if clamp:
        x_hat = x_hat.clamp(-1, 1)
    return _per_image(((x0.double() - x_hat.double()) / 2) ** 2)


def psnr(x0: Tensor, x_hat: Tensor, clamp: bool = True) -> Tensor:
    """Per-image PSNR in dB with data range 1 (``[0, 1]`` images): ``10 log10(1 / MSE)``."""
    return 10.0 * torch.log10(1.0 / image_mse(x0, x_hat, clamp))


# ---------------------------------------------------------------- weights
def hub_checkpoints() -> Path:
    """``torch.hub``'s checkpoint folder, where torchvision keeps downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_backbone(net: str = "alex", path: str | Path | None = None) -> Path:
    """The torchvision weights of the LPIPS trunk ``net``: ``path`` when given, else
    ``<torch hub>/checkpoints/<file>``; ``MissingWeightsError`` when absent."""
    if net not in BACKBONE_FILES:
        raise ConfigError(f"LPIPS network must be one of {sorted(BACKBONE_FILES)}, got {net!r}")
    name = BACKBONE_FILES[net]
    if path is not None:
        p = Path(path)
        if p.is_file():
            return p
        raise MissingWeightsError(
            f"the LPIPS backbone file {p} does not exist (expected torchvision's {name})")
    p = hub_checkpoints() / name
    if p.is_file():
        return p
    raise MissingWeightsError(
        f"LPIPS ({net}) needs torchvision's backbone weights {name}, not found: put the file in "
        f"{hub_checkpoints()}/ or give its path (https://download.pytorch.org/models/{name})")


def find_inception(path: str | Path | None = None) -> Path:
    """clean-fid's Inception file: ``path`` (the file or its folder) when given, else
    clean-fid's download folder (``CLEANFID_FOLDER``) or ``<torch hub>/checkpoints``."""
    if path is not None:
        p = Path(path)
        p = p / INCEPTION_FILE if p.is_dir() else p
        if p.is_file() and p.name == INCEPTION_FILE:
            return p
        raise MissingWeightsError(f"FID needs {INCEPTION_FILE}, not found at {path}")
    for folder in (CLEANFID_FOLDER, hub_checkpoints()):
        if (folder / INCEPTION_FILE).is_file():
            return folder / INCEPTION_FILE
    raise MissingWeightsError(
        f"FID needs clean-fid's Inception weights {INCEPTION_FILE}, not found: put the file in "
        f"{CLEANFID_FOLDER}/ (clean-fid's folder) or {hub_checkpoints()}/, "
        f"or give its path ({INCEPTION_URL})")


# ---------------------------------------------------------------- LPIPS
@contextlib.contextmanager
def _no_downloads():
    """Fail loudly instead of downloading (a trunk built with ``pnet_rand`` must not fetch)."""
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


def build_lpips(net: str = "alex", backbone: str | Path | None = None) -> nn.Module:
    """The real LPIPS: the package's heads and the torchvision trunk weights from
    ``find_backbone`` (torchvision's ``features.i.*`` keys mapped onto LPIPS's ``sliceK.i.*``;
    every trunk tensor must be found)."""
    file = find_backbone(net, backbone)
    model = _lpips_shell(net)
    state = torch.load(file, map_location="cpu", weights_only=True)
    trunk = model.net.state_dict()
    mapped = {}
    for key in trunk:
        src = "features." + key.split(".", 1)[1]  # slice3.6.weight → features.6.weight
        if src not in state or state[src].shape != trunk[key].shape:
            raise ConfigError(f"{file} is not torchvision's {net} weights "
                              f"(no {src} of shape {tuple(trunk[key].shape)})")
        mapped[key] = state[src]
    model.net.load_state_dict(mapped, strict=True)
    return model


def build_lpips_standin(net: str = "alex", seed: int = 0) -> nn.Module:
    """A stand-in LPIPS for tests: the package's heads on a trunk drawn at random with
    ``seed``. Its values are *not* LPIPS: report them as ``lpips_standin``."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _lpips_shell(net)


@torch.no_grad()
def lpips_distance(model: nn.Module, x0: Tensor, x_hat: Tensor, batch_size: int = 16) -> Tensor:
    """Per-image LPIPS of ``[−1, 1]`` images (the range ``lpips`` expects; ``x̂`` clipped)."""
    dev = next(model.parameters()).device
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
    """MSE, PSNR, LPIPS and FID of reconstructions against ground truth (both ``[−1, 1]``).

    ``standin=True`` uses the locally built stand-ins and names the columns
    ``lpips_standin``/``fid_standin``. Missing weights give ``nan`` for that measure and a
    sentence in ``self.notes`` naming the file; the other measures are still computed.
    """

    def __init__(self, lpips_net: str = "alex", lpips_backbone: str | None = None,
                 inception: str | None = None, fid: bool = True, standin: bool = False,
                 device: str = "cpu", batch_size: int = 16):
        self.lpips_net, self.lpips_backbone, self.inception = lpips_net, lpips_backbone, inception
        self.fid, self.standin = fid, standin
        self.device, self.batch_size = torch.device(device), int(batch_size)
        self.suffix = "_standin" if standin else ""
        self.notes: list[str] = []
        self._lpips: nn.Module | None = None

    def _lpips_model(self) -> nn.Module:
        if self._lpips is None:
            m = (build_lpips_standin(self.lpips_net) if self.standin
                 else build_lpips(self.lpips_net, self.lpips_backbone))
            self._lpips = m.to(self.device)
        return self._lpips

    def _note(self, e: Exception) -> None:
        if str(e) not in self.notes:
            self.notes.append(str(e))

    def __call__(self, x0: Tensor, x_hat: Tensor, workdir: str | Path | None = None) -> dict[str, float]:
        """One row of means over the images (and the FID of the set)."""
        row = {"mse": float(image_mse(x0, x_hat).mean()), "psnr": float(psnr(x0, x_hat).mean())}
        key = "lpips" + self.suffix
        try:
            row[key] = float(lpips_distance(self._lpips_model(), x0, x_hat, self.batch_size).mean())
        except MissingWeightsError as e:
            row[key] = math.nan
            self._note(e)
        if self.fid:
            key = "fid" + self.suffix
            try:
                extractor = (StandinFeatures().to(self.device) if self.standin
                             else build_inception(self.inception, self.device))
                with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                    save_images(x0, Path(tmp) / "truth")
                    save_images(x_hat, Path(tmp) / "recon")
                    row[key] = fid_folders(Path(tmp) / "truth", Path(tmp) / "recon", extractor,
                                           device=self.device, batch_size=self.batch_size)
            except MissingWeightsError as e:
                row[key] = math.nan
                self._note(e)
        return row


__all__ = ["image_mse", "psnr", "lpips_distance", "build_lpips", "build_lpips_standin", "fid_folders",
           "build_inception", "StandinFeatures", "ImageMetrics", "MissingWeightsError"]
