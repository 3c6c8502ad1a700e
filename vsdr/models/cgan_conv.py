"""PSCGAN's image networks (docs/METHOD.md §8, PSCGAN): a convolutional encoder–decoder
generator ``G(y, z)`` with skip connections and a noise map concatenated before every decoder
convolution (as in Ohayon et al.'s published code), and a convolutional WGAN critic
``D(x, y)`` conditioned on ``y``. Width and depth are arguments: a few thousand parameters for
16×16 digits on a CPU, millions at FFHQ size.

``y`` enters at ``x``'s size: a measurement smaller than the image (super-resolution) is
up-sampled bilinearly first (``lift``), a blurred one is taken as it is.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def lift(y: Tensor, image_size: int) -> Tensor:
    """``y`` at ``image_size²``: bilinear up-sampling when its side differs, else ``y``."""
    if y.shape[-1] == image_size and y.shape[-2] == image_size:
        return y
    return F.interpolate(y, size=(image_size, image_size), mode="bilinear", align_corners=False)


def noise_at(z: Tensor, factor: int) -> Tensor:
    """The noise map ``z`` at ``1/factor`` of its side, with unit variance kept: the mean of
    ``factor²`` independent N(0, 1) values times ``factor`` is N(0, 1) again; linear in ``z``, so
    ``σ_z z`` becomes ``σ_z`` times the pooled map and ``z = 0`` stays 0."""
    return z if factor == 1 else F.avg_pool2d(z, factor) * factor


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class GeneratorConv(nn.Module):
    """``G(y, z)`` for ``image_size²`` images of ``channels`` channels; ``z`` is a
    ``(z_channels, S, S)`` Gaussian map (``z_shape``).

    The input ``[lift(y), z]`` goes through a 3×3 convolution to ``width`` channels, then
    ``depth`` encoder levels (two 3×3 convolutions, channels doubled, side halved by average
    pooling at every level but the first); the decoder climbs back, each level taking the
    nearest-up-sampled features, the encoder's skip features and the noise map at that side
    (``noise_at``) before its convolutions. With ``residual`` the output is ``lift(y)`` plus
    the network's correction (the measurement is already close to ``x`` for deblurring).
    ``image_size`` must be divisible by ``2**(depth − 1)``.
    """

    def __init__(self, image_size: int = 16, channels: int = 3, z_channels: int = 1, width: int = 16,
                 depth: int = 2, residual: bool = True):
        super().__init__()
        if depth < 1 or image_size % (2 ** (depth - 1)):
            raise ValueError(f"image_size={image_size} must be divisible by 2**(depth-1) (depth={depth})")
        self.image_size, self.channels, self.z_channels = int(image_size), int(channels), int(z_channels)
        self.depth, self.residual = int(depth), bool(residual)
        self.z_shape = (self.z_channels, self.image_size, self.image_size)
        self.z_dim = self.z_channels * self.image_size ** 2
        widths = [width * 2 ** k for k in range(depth)]
        self.head = nn.Conv2d(channels + z_channels, width, 3, padding=1)
        self.enc = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1), _act(), nn.Conv2d(b, b, 3, padding=1), _act())
            for a, b in zip([width, *widths[:-1]], widths))
        # decoder level k (deepest first): input = up-sampled features (+ skip) + noise map
        self.dec = nn.ModuleList()
        for k in reversed(range(depth)):
            below = widths[k + 1] if k + 1 < depth else 0
            self.dec.append(nn.Sequential(
                nn.Conv2d(widths[k] + below + z_channels, widths[k], 3, padding=1), _act(),
                nn.Conv2d(widths[k], widths[k], 3, padding=1), _act()))
        self.out = nn.Conv2d(width, channels, 1)

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        y = lift(y, self.image_size)
        h = self.head(torch.cat([y, z], dim=1))
        skips = []
        for k, block in enumerate(self.enc):
            h = block(h if k == 0 else F.avg_pool2d(h, 2))
            skips.append(h)
        h = None
        for j, block in enumerate(self.dec):
            k = self.depth - 1 - j
            parts = [skips[k]] if h is None else [skips[k], F.interpolate(h, scale_factor=2, mode="nearest")]
            h = block(torch.cat([*parts, noise_at(z, 2 ** k)], dim=1))
        out = self.out(h)
        return y + out if self.residual else out


class CriticConv(nn.Module):
    """``D(x, y)``: ``[x, lift(y)]`` through ``depth`` levels of two 3×3 convolutions
    (LeakyReLU, no normalisation: WGAN-GP's gradient penalty is per sample), the side halved
    between levels, then global average pooling and a linear map to one score (no squashing)."""

    def __init__(self, image_size: int = 16, channels: int = 3, width: int = 16, depth: int = 2):
        super().__init__()
        self.image_size = int(image_size)
        widths = [width * 2 ** k for k in range(depth)]
        layers: list[nn.Module] = []
        for k, (a, b) in enumerate(zip([2 * channels, *widths[:-1]], widths)):
            if k > 0:
                layers.append(nn.AvgPool2d(2))
            layers += [nn.Conv2d(a, b, 3, padding=1), _act(), nn.Conv2d(b, b, 3, padding=1), _act()]
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(widths[-1], 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.features(torch.cat([x, lift(y, self.image_size)], dim=1))
        return self.score(h.mean(dim=(2, 3))).squeeze(1)
