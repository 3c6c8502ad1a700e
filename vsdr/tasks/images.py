"""Images (docs/METHOD.md §7): the test images of an image data set, ``y = A x0 + σ_y n`` with
each image's noise from its own seed, MSE/PSNR/SSIM on ``[0, 1]`` images, LPIPS/FID (or their
labelled stand-ins), and the offline Fréchet distances ``fd_pca``, ``fd_patch`` and ``chroma``."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from vsdr.diffusion.noise import STREAM_MEASUREMENT, per_sample_seeds
from vsdr.errors import ConfigError
from vsdr.metrics.bootstrap import Bootstrap
from vsdr.metrics.frechet import PatchFrechet, PCAFrechet, chroma
from vsdr.metrics.image import ImageMetrics, image_mse
from vsdr.tasks.base import Task, TestSet, TrajectoryFn

#: units σ_y may be given in, and the factor that turns it into [−1, 1] units
SIGMA_SPACES = {"[-1,1]": 1.0, "data": 1.0, "[0,1]": 2.0}
#: columns ``image_eval.perception`` may name, in the order tried when it is null (``lpips``:
#: the LPIPS column of ``image_metrics.lpips_net``'s trunk, e.g. ``lpips_vgg``)
PERCEPTION_COLUMNS = ("lpips", "fid", "fd_patch", "fd_pca", "lpips_standin", "fid_standin", "mse")


def sigma_in_pm1(sigma: float, space: str) -> float:
    """``σ_y`` in ``[−1, 1]`` units (the space the images live in); ``space`` says where
    ``sigma`` was given: ``[-1,1]`` (or ``data``) or ``[0,1]`` (doubled)."""
    key = str(space).replace(" ", "")
    if key not in SIGMA_SPACES:
        raise ConfigError(f"noise.space={space!r} is not one of {list(SIGMA_SPACES)} for images")
    return float(sigma) * SIGMA_SPACES[key]


def measure(x0: Tensor, operator, sigma: float, seed: int) -> Tensor:
    """``y = A x0 + σ n`` with image ``j``'s noise drawn from its own seed (so ``data.limit``
    does not change the noise of the images it keeps)."""
    ax0 = operator.forward(x0)
    seeds = per_sample_seeds(seed, range(len(x0)), stream=STREAM_MEASUREMENT)
    n = torch.stack([torch.randn(ax0.shape[1:], generator=torch.Generator().manual_seed(s))
                     for s in seeds]).to(ax0)
    return ax0 + sigma * n


class ImageTask(Task):
    """The first ``limit`` test images of ``dataset`` (an ``ImageDataset``; ``None``: its own
    ``limit``, else all).

    ``metrics``: MSE, PSNR, LPIPS and FID (``ImageMetrics``); ``fd_pca_k``: PCA dimensions of
    ``fd_pca`` (fitted on ``n_train`` training images; off without a training set);
    ``fd_patch``: patch size of ``fd_patch`` (``None``: off; on the channel mean with
    ``fd_patch_grey``); ``chroma``: the colour-speckle column; ``perception``: the DP plot's
    measure (default: the first finite of lpips, fid, fd_patch, fd_pca, the stand-ins);
    ``min_size``: images smaller than this are nearest-up-sampled before LPIPS/FID;
    ``image_rows``: test images shown in image_grid.png; ``samples_per_image``: consecutive test
    items that are samples of one image (``data.samples_per_image``; metrics are over every
    sample, samples_grid.png shows them side by side); ``bootstrap``: the resamples of the
    MSE interval (``mse_lo``, ``mse_hi``; ``None``: none)."""

    kind = "images"
    columns = [*Task.columns, "psnr"]
    size_name = "the test images (data.limit)"
    #: ``sigma_y`` is in ``[−1, 1]`` units: halved, it is in ``[0, 1]`` units
    sigma_to_01 = 0.5

    def __init__(self, dataset, operator, sigma: float, sigma_space: str, metrics: ImageMetrics,
                 limit: int | None = None, n_train: int = 1500, fd_pca_k: int = 8,
                 fd_patch: int | None = None, fd_patch_grey: bool = False, chroma: bool = False,
                 perception: str | None = None, min_size: int = 32, image_rows: int = 4,
                 samples_per_image: int = 1, bootstrap: Bootstrap | None = None):
        super().__init__(dataset, operator, sigma, sigma_space)
        self.bootstrap = bootstrap
        self._sigma_y = sigma_in_pm1(sigma, sigma_space)
        self.metrics, self.limit, self.n_train = metrics, limit, int(n_train)
        self.fd_pca_k = int(fd_pca_k)
        self.fd_patch = PatchFrechet(int(fd_patch), grey=bool(fd_patch_grey)) if fd_patch else None
        self.chroma, self.wanted_perception = bool(chroma), perception
        self.min_size, self.image_rows = int(min_size), int(image_rows)
        self.samples_per_image = int(samples_per_image)
        self.notes = metrics.notes
        self.units = {"mse": "[0, 1] images", "psnr": "dB, data range 1",
                      "ssim": "[0, 1] images, 11×11 Gaussian window of std 1.5",
                      "sigma": f"{sigma_space} units"}

    @property
    def sigma_y(self) -> float:
        return self._sigma_y

    def training_data(self):
        return self.dataset.training_set()

    def test_set(self, seed: int) -> TestSet:
        x0 = self.dataset.test_images(self.limit)
        return TestSet(x0, measure(x0, self.operator, self.sigma_y, seed))

    def item_names(self, n: int) -> list[str]:
        """The source files' stems (``ImageDataset.item_names``; a user finds their photo), else
        the index, zero-padded (a data set that is no folder)."""
        if getattr(self.dataset, "root", None) is None or not hasattr(self.dataset, "item_names"):
            return super().item_names(n)
        return self.dataset.item_names(self.limit)

    def evaluate(self, test: TestSet, recon: Tensor, values: Sequence[float], seed: int,
                 workdir=None) -> list[dict]:
        """One dict per knob value: MSE/PSNR/SSIM on ``[0, 1]`` images, LPIPS/FID (or their
        stand-ins), ``fd_pca`` when a training set is there, ``fd_patch``, ``chroma``; with
        ``bootstrap``, ``mse_lo`` and ``mse_hi`` (percentile interval over resampled images)."""
        x0 = test.x0
        train = self.dataset.training_set()
        fd = PCAFrechet(train.sample(self.n_train), self.fd_pca_k) if train is not None else None
        up = max(1, math.ceil(self.min_size / x0.shape[-1]))
        bs = self.bootstrap if self.bootstrap is not None and self.bootstrap.resamples else None
        idx = bs.indices(len(x0), seed) if bs is not None else None
        rows = []
        for r in recon:
            row = self.metrics(x0, r, workdir=workdir, upsample=up)
            if fd is not None:
                row["fd_pca"] = fd(x0, r)
            if self.fd_patch is not None:
                row["fd_patch"] = self.fd_patch(x0, r)
            if self.chroma:
                row["chroma"] = chroma(r)
            if bs is not None:
                row["mse_lo"], row["mse_hi"] = bs.mse_interval(image_mse(x0, r).numpy(), idx)
            rows.append(row)
        return rows

    def perception(self, rows: list[dict]) -> str:
        """``perception`` when finite, else the first finite of lpips, fid, fd_patch, fd_pca,
        then the stand-ins (``mse`` when none is)."""
        keys = [self.wanted_perception] if self.wanted_perception else []
        keys += [k for k in PERCEPTION_COLUMNS if k != "mse"]
        for k in map(self.metrics.column, keys):
            if k in rows[0] and all(math.isfinite(float(r[k])) for r in rows):
                return k
        return "mse"

    def figures(self, rows, test: TestSet, recon: Tensor, values, knob: str, title: str,
                trajectories: TrajectoryFn | None = None, seed: int = 0) -> dict:
        """image_grid.png (Fig. 7): clean, measurement and every knob value's reconstruction
        (each image's first sample); with several samples per image also samples_grid.png
        (Fig. 12): each image's samples at the largest knob value."""
        from vsdr.plotting.images import plot_image_grid, plot_samples_grid

        S = self.samples_per_image
        figs = {"image_grid.png": plot_image_grid(test.x0[::S], test.y[::S], recon[:, ::S], values,
                                                  knob, rows=self.image_rows, title=title)}
        if S > 1:
            last = max(range(len(values)), key=lambda v: float(values[v]))
            figs["samples_grid.png"] = plot_samples_grid(test.x0, test.y, recon[last], values[last],
                                                         knob, S, rows=self.image_rows, title=title)
        return figs

    def print_table(self, rows: list[dict]) -> None:
        """knob value, MSE, PSNR and every perception column on stdout."""
        extra = [c for c in rows[0] if c.startswith(("ssim", "lpips", "fid", "fd_", "chroma"))]
        print(f"\n{rows[0]['knob']:>8} {'MSE':>10} {'PSNR':>8} " + " ".join(f"{c:>13}" for c in extra))
        for r in rows:
            print(f"{float(r['value']):>8.3g} {float(r['mse']):>10.5f} {float(r['psnr']):>8.2f} "
                  + " ".join(f"{float(r[c]):>13.4f}" for c in extra))
