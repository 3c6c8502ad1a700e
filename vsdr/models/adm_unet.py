"""The ADM UNet of guided-diffusion (Dhariwal & Nichol 2021) with its module and parameter
names, so the DPS FFHQ checkpoint ``ffhq_10m.pt`` loads strictly (docs/METHOD.md §8, DPS).

Written from the architecture's description: a time embedding MLP (``time_embed``), an
encoder (``input_blocks``) of residual blocks with optional self-attention and down-sampling
residual blocks, a ``middle_block`` (ResBlock, attention, ResBlock), a decoder
(``output_blocks``) that concatenates the encoder's skips, and an output head ``out``.
With ``learn_sigma`` the head gives ``2 · in_channels`` channels: ``ε`` then the variance
interpolation ``v`` of the ``learned_range`` parameterisation (docs/METHOD.md §7).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vsdr.models.embedding import timestep_embedding
from vsdr.models.score import load_state_strict


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups, computed in float32."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


def normalization(channels: int) -> nn.Module:
    if channels % 32:
        raise ValueError(f"ADM channel counts must be multiples of 32 (GroupNorm 32), got {channels}")
    return GroupNorm32(32, channels)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a module's parameters (guided-diffusion's initialisation of output convolutions)."""
    for p in module.parameters():
        p.detach().zero_()
    return module


class TimestepBlock(nn.Module):
    """A module whose forward also takes the time embedding."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class TimestepEmbedSequential(nn.Sequential, TimestepBlock):
    """``nn.Sequential`` that passes the time embedding to the children that take one."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Upsample(nn.Module):
    """Nearest-neighbour ×2, optionally followed by a 3×3 convolution (``conv``)."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    """Stride-2 3×3 convolution (``op``) or 2×2 average pooling."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        self.op = (nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1) if use_conv
                   else nn.AvgPool2d(kernel_size=2, stride=2))

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class ResBlock(TimestepBlock):
    """``skip(x) + out_layers(norm(in_layers(x)) · (1 + scale) + shift)`` with ``(scale, shift)``
    from ``emb_layers(emb)`` (scale-shift norm), or ``+ emb_layers(emb)`` without it;
    ``up``/``down`` resample inside the block (``resblock_updown``)."""

    def __init__(self, channels: int, emb_channels: int, dropout: float = 0.0,
                 out_channels: int | None = None, use_conv: bool = False,
                 use_scale_shift_norm: bool = False, up: bool = False, down: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels))
        self.out_layers = nn.Sequential(
            normalization(out_channels), nn.SiLU(), nn.Dropout(p=dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        if out_channels == channels:
            self.skip_connection: nn.Module = nn.Identity()
        elif use_conv:
            self.skip_connection = nn.Conv2d(channels, out_channels, 3, padding=1)
        else:
            self.skip_connection = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:  # type: ignore[override]
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class QKVAttentionLegacy(nn.Module):
    """Multi-head attention on a stacked ``qkv`` of shape ``(B, 3·H·C, T)`` in the legacy order:
    heads first, then (q, k, v) within each head; ``softmax(qᵀk/√C) v``."""

    def __init__(self, n_heads: int):
        super().__init__()
        self.n_heads = n_heads

    def forward(self, qkv: Tensor) -> Tensor:
        bs, width, length = qkv.shape
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.reshape(bs * self.n_heads, 3 * ch, length).split(ch, dim=1)
        scale = 1.0 / math.sqrt(math.sqrt(ch))
        w = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        w = torch.softmax(w.float(), dim=-1).type(w.dtype)
        return torch.einsum("bts,bcs->bct", w, v).reshape(bs, -1, length)


class AttentionBlock(nn.Module):
    """``x + proj_out(attention(qkv(norm(x))))`` over the flattened spatial positions;
    ``qkv`` and ``proj_out`` are 1×1 ``Conv1d`` (``qkv`` weight ``(3C, C, 1)``)."""

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1):
        super().__init__()
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"{channels} channels do not split into heads of {num_head_channels}")
            self.num_heads = channels // num_head_channels
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.attention = QKVAttentionLegacy(self.num_heads)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = self.proj_out(self.attention(self.qkv(self.norm(x))))
        return (x + h).reshape(b, c, *spatial)


class ADMUNet(nn.Module):
    """guided-diffusion's ``UNetModel`` (2D, unconditional): ``forward(x, t) → (B, out, H, W)``
    with integer timesteps ``t`` (0…T−1) and ``out = 2·in_channels`` when ``learn_sigma``.

    ``attention_resolutions`` are feature-map sizes in pixels (FFHQ: ``[16]``), converted to
    down-sampling factors ``image_size // r`` as guided-diffusion's scripts do.
    """

    @staticmethod
    def fit_problem(node: dict, shape: tuple[int, ...], variance: str | None = None) -> str | None:
        """Why a network of ``node`` (``model.*``) cannot take items of ``shape`` ``(C, H, W)``:
        its ``in_channels`` is not ``C`` (a grey ``dataset.channels=1`` on an RGB network);
        ``None`` when it fits."""
        c_in = int(node.get("in_channels", 3))
        if c_in != shape[0]:
            return (f"it takes {c_in}-channel images but the data set's have {shape[0]} channels "
                    f"(model.in_channels={c_in}, dataset.channels={shape[0]})")
        return None

    def __init__(self, image_size: int = 256, in_channels: int = 3, num_channels: int = 128,
                 num_res_blocks: int = 1, channel_mult: Sequence[int] = (1, 1, 2, 2, 4, 4),
                 attention_resolutions: Sequence[int] = (16,), num_heads: int = 4,
                 num_head_channels: int = 64, num_heads_upsample: int = -1,
                 use_scale_shift_norm: bool = True, resblock_updown: bool = True,
                 dropout: float = 0.0, learn_sigma: bool = True, conv_resample: bool = True):
        super().__init__()
        self.image_size, self.in_channels = image_size, in_channels
        self.learn_sigma = learn_sigma
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.model_channels = num_channels
        num_heads_upsample = num_heads if num_heads_upsample == -1 else num_heads_upsample
        attn_ds = {image_size // int(r) for r in attention_resolutions}
        emb_dim = 4 * num_channels
        self.time_embed = nn.Sequential(nn.Linear(num_channels, emb_dim), nn.SiLU(),
                                        nn.Linear(emb_dim, emb_dim))

        def res(cin: int, cout: int, **kw: bool) -> ResBlock:
            return ResBlock(cin, emb_dim, dropout, out_channels=cout,
                            use_scale_shift_norm=use_scale_shift_norm, **kw)

        ch = int(channel_mult[0] * num_channels)
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        chans, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [res(ch, int(mult * num_channels))]
                ch = int(mult * num_channels)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, num_heads, num_head_channels))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                down = res(ch, ch, down=True) if resblock_updown else Downsample(ch, conv_resample, ch)
                self.input_blocks.append(TimestepEmbedSequential(down))
                chans.append(ch)
                ds *= 2
        self.middle_block = TimestepEmbedSequential(
            res(ch, ch), AttentionBlock(ch, num_heads, num_head_channels), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                skip = chans.pop()
                layers = [res(ch + skip, int(num_channels * mult))]
                ch = int(num_channels * mult)
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, num_heads_upsample, num_head_channels))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown
                                  else Upsample(ch, conv_resample, ch))
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))
        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 zero_module(nn.Conv2d(ch, self.out_channels, 3, padding=1)))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h).type(x.dtype)


def build_adm(ckpt: str | None = None, **kwargs: object) -> ADMUNet:
    """Build an ``ADMUNet`` from config keys and, when ``ckpt`` is given, load it strictly
    (``load_state_strict`` names the first missing, unexpected and mis-shaped keys)."""
    net = ADMUNet(**kwargs)  # type: ignore[arg-type]
    if ckpt is not None:
        load_state_strict(net, ckpt)
    return net
