"""Offline perception measures for small image sets: FID's formula (the Fréchet distance
between Gaussian fits) with, in place of Inception features, the top-``k`` principal
components of the training images (``PCAFrechet``) or every ``p×p`` patch (``PatchFrechet``)."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from vsdr.metrics.w2 import gaussian_w2_squared


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """FID's ``‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})``: the squared Gaussian ``W2``
    (``vsdr.metrics.w2.gaussian_w2_squared``, guarded for singular covariances)."""
    return gaussian_w2_squared(mu1, cov1, mu2, cov2)


def feature_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """``frechet_distance`` between the Gaussian fits (mean, sample covariance) of the rows of
    ``a`` and of ``b``."""
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


class PCAFrechet:
    """Fréchet distance in the top-``k`` PCA space of ``train`` images ``(N, C, H, W)``.

    MMSE-like estimates lose variance along the data's principal directions (a blurred,
    averaged digit), which a Gaussian fit in that space sees as a covariance that is too
    small; posterior samples restore it. Lower is better; 0 for identical statistics."""

    def __init__(self, train: Tensor, k: int = 8):
        flat = train.flatten(1).double().numpy()
        self.mean = flat.mean(0)
        _, _, vt = np.linalg.svd(flat - self.mean, full_matrices=False)
        self.components = vt[: int(k)]
        self.k = int(k)

    def features(self, x: Tensor) -> np.ndarray:
        return (x.detach().cpu().flatten(1).double().numpy() - self.mean) @ self.components.T

    def __call__(self, x_ref: Tensor, x: Tensor) -> float:
        return feature_frechet(self.features(x_ref), self.features(x.clamp(-1, 1)))


class PatchFrechet:
    """Fréchet distance between Gaussian fits of all ``p×p×C`` patches (every position, stride
    1, images clipped to ``[−1, 1]``) of two image sets; ``grey=True`` takes the channel mean
    first (``C = 1``: for grey data stored as RGB, whose colour noise ``chroma`` reports).

    Local statistics: an MMSE estimate is smooth, so its patches have too little variance
    along the high-frequency directions (edges, strokes) that a posterior sample restores.
    Many patches per image make the fit stable for a few dozen images. Lower is better; 0 for
    identical statistics."""

    def __init__(self, patch: int = 5, grey: bool = False):
        if int(patch) < 1:
            raise ValueError(f"image_eval.fd_patch={patch} must be a patch size >= 1")
        self.patch = int(patch)
        self.grey = bool(grey)

    def features(self, x: Tensor) -> np.ndarray:
        """``(n · positions, C·p·p)``: one row per patch."""
        x = x.detach().cpu().double().clamp(-1, 1)
        if self.grey:
            x = x.mean(1, keepdim=True)
        cols = F.unfold(x, self.patch)  # (n, C·p·p, L)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1]).numpy()

    def __call__(self, x_ref: Tensor, x: Tensor) -> float:
        return feature_frechet(self.features(x_ref), self.features(x))


def chroma(x: Tensor) -> float:
    """Mean absolute deviation of each pixel's channels from their mean (images clipped to
    ``[−1, 1]``): 0 for grey images (one channel, or three equal ones); the colour speckle a
    sampler leaves on grey data stored as RGB."""
    x = x.detach().cpu().double().clamp(-1, 1)
    return float((x - x.mean(1, keepdim=True)).abs().mean())


__all__ = ["frechet_distance", "feature_frechet", "PCAFrechet", "PatchFrechet", "chroma"]
