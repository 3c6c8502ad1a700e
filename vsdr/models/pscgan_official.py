"""The official PSCGAN networks (Ohayon et al. 2021, code theoad/pscgan), written for vsdr so that
the published FFHQ denoisers (``pscgan-25/50/75.ckpt``, 128², noise std 25/50/75 out of 255)
load strictly and compute what they computed there (docs/METHOD.md §8, PSCGAN).

The module names below are the official ones on purpose: they make the state-dict keys
(``gen.encoder.pipeline.0.conv1.layers.0.weight`` …, 188 tensors, the test data
tests/data/pscgan_official_ffhq_keys.tsv). Facts read from the official code
(nets/encdec.py, nets/utils.py, nets/critic.py, experiments/default_config.json,
datasets/lightning.py, training_methods/gan.py):

- every convolution is *equalised-lr*: weight ``N(0, 1)`` at init, multiplied by
  ``1/sqrt(fan_in)`` in the forward, no bias inside; a separate per-channel bias
  ``(1, C, 1, 1)`` follows, then LeakyReLU(0.2). "up" convolutions up-sample (nearest, ×2)
  *before* convolving; "down" ones convolve with stride 2.
- the decoder concatenates a one-channel Gaussian map of std σ_z before each of its 10
  convolutions, at the resolution of that convolution's *input* (so an up-sampling
  convolution gets its map at the lower side);
- the encoder's side branches ("drips") repeat one module object: in
  ``[ConvLayer(...)] * (n − 1)`` the later layers of a drip share their weights (the state
  dict lists each name, the parameter count counts them once);
- images are in ``[0, 1]`` (``ToTensor``), ``y = x + σ/255 · n`` unclipped, and the generator's
  output is used unclamped (clamped only for figures): no normalisation anywhere;
- the critic (``y_preprocess_old``) encodes ``y`` by four 3×3 convolutions to 64 channels,
  concatenates them with the 64 channels of ``x``'s 1×1 "from RGB" layer, and runs six
  residual down-sampling blocks, a 3×3 convolution and two equalised linear layers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: the FFHQ configuration of experiments/default_config.json
ENC_CHANNELS = (3, 128, 128, 256, 256, 512)
DRIPS_CHANNELS = (64, 64, 64, 64)
DRIPS_DEPTH = (14, 12, 10, 8)
DEC_CHANNELS = (512, 256, 256, 128, 128)
CRITIC_CHANNELS = (64, 128, 128, 256, 256, 256, 512)
Y_CHANNELS = 64


class EqualConv2d(nn.Module):
    """A convolution with the equalised learning rate: ``conv(x, w / sqrt(fan_in))``, no bias;
    ``sampling='up'``: nearest ×2 first; ``'down'``: stride 2 (official nets/utils.py)."""

    def __init__(self, cin: int, cout: int, k: int, sampling: str = "none"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.sampling = sampling

    def forward(self, x: Tensor) -> Tensor:
        if self.sampling == "up":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return F.conv2d(x, self.weight * self.scale, stride=2 if self.sampling == "down" else 1,
                        padding=self.weight.shape[-1] // 2)


class Bias(nn.Module):
    """A learnt per-channel bias of shape ``(1, C, 1, 1)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias


class NoiseCat(nn.Module):
    """The place of the official noise injection (no parameters): concatenates the given
    one-channel map to ``x``."""

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return torch.cat([x, noise], dim=1)


class ConvLayer(nn.Module):
    """``[noise cat] → EqualConv2d → [bias] → [LeakyReLU 0.2]`` held in ``layers`` (index 0 is
    the noise cat when ``noisy``: the official keys ``layers.1.weight``, ``layers.2.bias``)."""

    def __init__(self, cin: int, cout: int, k: int, sampling: str = "none", activation: bool = True,
                 bias: bool = True, noisy: bool = False):
        super().__init__()
        layers: list[nn.Module] = [NoiseCat()] if noisy else []
        layers.append(EqualConv2d(cin + int(noisy), cout, k, sampling))
        if bias:
            layers.append(Bias(cout))
        self.layers = nn.Sequential(*layers)
        self.noisy, self.activation = noisy, activation

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        for m in self.layers:
            x = m(x, noise) if isinstance(m, NoiseCat) else m(x)
        return F.leaky_relu(x, 0.2) if self.activation else x


class DoubleConv(nn.Module):
    """Two 3×3 ``ConvLayer``s; ``mid`` channels (an encoder branch) join before the second.
    ``'up'`` sampling is done by the first, ``'down'`` by the second."""

    def __init__(self, cin: int, cout: int, sampling: str = "none", mid: int = 0, noisy: bool = False):
        super().__init__()
        self.conv1 = ConvLayer(cin, cout, 3, "up" if sampling == "up" else "none", noisy=noisy)
        self.conv2 = ConvLayer(cout + mid, cout, 3, "down" if sampling == "down" else "none", noisy=noisy)

    def forward(self, x: Tensor, mid: Tensor | None = None,
                noises: tuple[Tensor | None, Tensor | None] = (None, None)) -> Tensor:
        x = self.conv1(x, noises[0])
        if mid is not None:
            x = torch.cat([x, mid], dim=1)
        return self.conv2(x, noises[1])


def drip(cin: int, cout: int, depth: int) -> nn.Sequential:
    """An encoder side branch of ``depth`` 3×3 layers whose layers 1 … depth−1 are *one* module
    (the official ``[ConvLayer(...)] * (depth − 1)``: shared weights)."""
    shared = ConvLayer(cout, cout, 3)
    return nn.Sequential(ConvLayer(cin, cout, 3), *([shared] * (depth - 1)))


class Encoder(nn.Module):
    """``pipeline``: five DoubleConvs (the last four halve the side); ``drips``: a branch on
    the outputs of the first four. Returns ``[deepest, branch 3, branch 2, branch 1, branch 0]``."""

    def __init__(self, channels: Sequence[int] = ENC_CHANNELS, drips_channels: Sequence[int] = DRIPS_CHANNELS,
                 drips_depth: Sequence[int] = DRIPS_DEPTH):
        super().__init__()
        self.pipeline = nn.Sequential(
            DoubleConv(channels[0], channels[1]),
            *(DoubleConv(a, b, "down") for a, b in zip(channels[1:-1], channels[2:])))
        self.drips = nn.Sequential(
            *(drip(c, d, n) for c, d, n in zip(channels[1:-1], drips_channels, drips_depth)))

    def forward(self, y: Tensor) -> list[Tensor]:
        outs = []
        for block, branch in zip(self.pipeline[:-1], self.drips):
            y = block(y)
            outs.append(branch(y))
        return [self.pipeline[-1](y), *outs[::-1]]


class ToRGB(nn.Module):
    """A 1×1 equalised convolution to RGB (+ bias), plus the previous RGB output up-sampled by
    an equalised 3×3 'up' convolution (no bias) when ``upsample``."""

    def __init__(self, cin: int, upsample: bool):
        super().__init__()
        self.upsample = EqualConv2d(3, 3, 3, "up") if upsample else None
        self.conv = nn.Sequential(ConvLayer(cin, 3, 1, activation=False))

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        out = self.conv(x)
        return out if skip is None else out + self.upsample(skip)


class Decoder(nn.Module):
    """``conv_blocks``: a DoubleConv at the deepest side, then four up-sampling ones taking the
    encoder branches; every convolution gets a noise map. ``trgbs``: the RGB outputs summed
    across sides (StyleGAN2's skip outputs)."""

    def __init__(self, channels: Sequence[int] = DEC_CHANNELS,
                 drips_channels: Sequence[int] = DRIPS_CHANNELS):
        super().__init__()
        self.conv_blocks = nn.Sequential(
            DoubleConv(channels[0], channels[0], noisy=True),
            *(DoubleConv(a, b, "up", mid=m, noisy=True)
              for m, a, b in zip(drips_channels, channels[:-1], channels[1:])))
        self.trgbs = nn.Sequential(ToRGB(channels[0], False), *(ToRGB(c, True) for c in channels[1:]))

    def forward(self, feats: Sequence[Tensor], noises: Sequence[Tensor]) -> Tensor:
        out = self.conv_blocks[0](feats[0], None, (noises[0], noises[1]))
        rgb = self.trgbs[0](out, None)
        for k, (block, trgb, mid) in enumerate(zip(self.conv_blocks[1:], self.trgbs[1:], feats[1:]), start=1):
            out = block(out, mid, (noises[2 * k], noises[2 * k + 1]))
            rgb = trgb(out, rgb)
        return rgb


def noise_sides(size: int, n_blocks: int = len(DEC_CHANNELS)) -> list[int]:
    """The side of each decoder convolution's noise map for a ``size²`` input: the deepest
    block's two at ``size/16``, then per up-sampling block one at the lower side (its first
    convolution up-samples after the concatenation) and one at the higher."""
    s = size // 2 ** (n_blocks - 1)
    return [s, s] + [x for k in range(n_blocks - 1) for x in (s * 2 ** k, s * 2 ** (k + 1))]


class EncDec(nn.Module):
    """The official generator ``gen`` (EncDec) on ``size²`` images in ``[0, 1]``.

    ``forward(y, z)``: ``z`` holds the 10 decoder noise maps flattened and concatenated
    (``z_shape = (z_dim,)``), already multiplied by σ_z, in the order of ``noise_sides``: the
    official forward draws each map as ``σ_z · N(0, 1)`` itself, so ``z = σ_z · n`` with
    ``n ~ N(0, I)`` is the same distribution, and ``z = 0`` is its ``noise_stds=0``.
    """

    def __init__(self, size: int = 128):
        super().__init__()
        if size % 16:
            raise ValueError(f"the official PSCGAN generator needs a side divisible by 16, not {size}")
        self.size = int(size)
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.sides = noise_sides(self.size)
        self.z_dim = sum(s * s for s in self.sides)
        self.z_shape = (self.z_dim,)

    def noise_maps(self, z: Tensor) -> list[Tensor]:
        """``z`` (B, z_dim) split into the decoder's ``(B, 1, s, s)`` maps."""
        parts = torch.split(z.reshape(z.shape[0], -1), [s * s for s in self.sides], dim=1)
        return [p.reshape(-1, 1, s, s) for p, s in zip(parts, self.sides)]

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        return self.decoder(self.encoder(y), self.noise_maps(z.to(y.dtype)))


class ResBlock(nn.Module):
    """The critic's residual block: two 3×3 layers (the second with stride 2) and a 1×1
    stride-2 skip without bias or activation, summed and divided by √2."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = ConvLayer(cin, cin, 3)
        self.conv2 = ConvLayer(cin, cout, 3, "down")
        self.skip = ConvLayer(cin, cout, 1, "down", activation=False, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class EqualLinear(nn.Module):
    """A linear layer with the equalised learning rate (``w / sqrt(in)``), bias, optional
    LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, activation: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale, self.activation = 1.0 / math.sqrt(cin), activation

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias)
        return F.leaky_relu(out, 0.2) if self.activation else out


class Critic(nn.Module):
    """The official critic ``disc`` (``y_preprocess_old``) on ``size²`` images in ``[0, 1]``:
    ``D(x, y)`` of shape ``(B,)`` (the official one returns ``(B, 1)``)."""

    def __init__(self, size: int = 128, channels: Sequence[int] = CRITIC_CHANNELS):
        super().__init__()
        ins = [channels[0] + Y_CHANNELS, *channels[1:-1]]
        self.f_rgb = ConvLayer(3, channels[0], 1)
        self.blocks = nn.Sequential(*(ResBlock(a, b) for a, b in zip(ins, channels[1:])))
        self.final_conv = ConvLayer(channels[-1], channels[-1], 3)
        side = size // 2 ** (len(channels) - 1)
        if side < 1:
            raise ValueError(f"the official PSCGAN critic needs a side >= {2 ** (len(channels) - 1)}")
        self.linear = nn.Sequential(EqualLinear(side * side * channels[-1], channels[-1], True),
                                    EqualLinear(channels[-1], 1, False))
        self.y_conv = nn.Sequential(ConvLayer(3, Y_CHANNELS, 3),
                                    *(ConvLayer(Y_CHANNELS, Y_CHANNELS, 3) for _ in range(3)))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.blocks(torch.cat([self.f_rgb(x), self.y_conv(y)], dim=1))
        return self.linear(self.final_conv(h).flatten(1)).squeeze(1)


class PSCGANOfficial(nn.Module):
    """The LightningModule's network part: ``gen`` and ``disc``, so that ``state_dict()`` has
    the published checkpoints' keys."""

    def __init__(self, gen: EncDec, disc: Critic):
        super().__init__()
        self.gen, self.disc = gen, disc


def param_count(net: nn.Module) -> int:
    """Parameters counted once (shared drip layers once), as ``sum(p.numel())`` over
    ``parameters()``."""
    return sum(p.numel() for p in net.parameters())


def resize(x: Tensor, side: int) -> Tensor:
    """``x`` at ``side²``: area averaging to shrink (2×2 means for 256 → 128), bicubic to grow,
    as is at the same side."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    mode = "area" if x.shape[-1] > side else "bicubic"
    extra = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=(side, side), mode=mode, **extra)


class OfficialGenerator(nn.Module):
    """``G(y, z)`` on vsdr's images (``image_size²``, ``[−1, 1]``) through the official
    ``net_size²`` denoiser ``gen``: ``y`` resized to ``net_size`` (``resize``: area from 256²),
    mapped to the official ``[0, 1]`` (``(y + 1)/2``, unclipped as its noisy inputs were),
    denoised, mapped back (``2x − 1``, unclamped) and resized to ``image_size`` (bicubic).
    ``z``: the flat decoder noise maps of ``EncDec.forward`` (``σ_z`` already applied)."""

    def __init__(self, image_size: int = 256, net_size: int = 128):
        super().__init__()
        self.image_size, self.net_size = int(image_size), int(net_size)
        self.gen = EncDec(self.net_size)
        self.z_dim, self.z_shape = self.gen.z_dim, self.gen.z_shape

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        x01 = self.gen((resize(y, self.net_size) + 1) / 2, z)
        return resize(2 * x01 - 1, self.image_size)
