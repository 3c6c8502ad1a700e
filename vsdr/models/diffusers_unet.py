"""The diffusers family (``model=diffusers model.path=DIR_OR_ID``): a pretrained
``UNet2DModel`` and the diffusion it was trained with, both read from one folder.

The folder is a pipeline folder (``unet/`` and ``scheduler/scheduler_config.json``), a UNet
folder with ``scheduler_config.json`` beside its ``config.json``, or the ``unet/`` folder of a
pipeline (its ``../scheduler/`` is read); a hub id is looked up the same way when
``local_files_only`` is false. The network's prediction is turned into the ε every sampler
uses (docs/METHOD.md §8):

- ``epsilon``:      ε = out
- ``v_prediction``: ε = √ᾱ v + √(1−ᾱ) x_t
- ``sample`` (x0):  ε = (x_t − √ᾱ x0)/√(1−ᾱ)

A ``learned_range`` model (``out_channels = 2C``) returns the converted ε and then its
variance channels ``v`` unchanged, as ADM's ``learn_sigma`` does. Nothing is trained: the
class is ``pretrained`` (no cache entry, no training data needed).
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.schedule import VPSchedule
from vsdr.errors import ConfigError
from vsdr.models.checkpoint import first_line

#: the scheduler settings vsdr reads (diffusers' DDPMScheduler names)
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTIONS = ("epsilon", "v_prediction", "sample")
VARIANCE_TYPES = ("fixed_small", "fixed_large", "learned_range")
UNET_CLASS = "UNet2DModel"


@dataclass(frozen=True)
class Layout:
    """Where a model folder keeps its UNet (``root``/``unet_sub``) and its scheduler config."""

    root: str
    unet_sub: str | None
    scheduler_sub: str | None


def _is_local(path: str) -> bool:
    return Path(path).expanduser().is_dir()


def _read_json(root: str, sub: str | None, name: str, local_files_only: bool) -> dict | None:
    """``root/sub/name`` as a dict: a local file, or (``root`` not a folder) the hub's file,
    fetched only when ``local_files_only`` is false; ``None`` when there is none."""
    if _is_local(root):
        f = Path(root).expanduser() / (sub or "") / name
        if not f.is_file():
            return None
    else:
        from huggingface_hub import hf_hub_download

        try:
            f = Path(hf_hub_download(root, name, subfolder=sub, local_files_only=local_files_only))
        except Exception:  # noqa: BLE001 - not in the cache, not on the hub, no network
            return None
    try:
        return json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{f} is not a readable JSON config ({e}): write it again") from None


@functools.lru_cache(maxsize=16)
def find_layout(path: str, local_files_only: bool = True) -> Layout:
    """The layout of ``path``: ``unet/config.json`` (a pipeline) or ``config.json`` (a UNet
    folder); its scheduler config in ``scheduler/``, beside it, or in ``../scheduler/``.
    ``ConfigError`` (one sentence) when either is missing."""
    where = f"model.path={path}"
    if _read_json(path, "unet", "config.json", local_files_only) is not None:
        unet_sub = "unet"
    elif _read_json(path, None, "config.json", local_files_only) is not None:
        unet_sub = None
    elif not _is_local(path):
        raise ConfigError(f"{where} is not a folder, and no hub model of that id could be read "
                          + ("from this machine's hub cache (model.local_files_only=true: nothing is fetched)"
                             if local_files_only else "(not on the hub, or the hub cannot be reached)")
                          + ": give a diffusers pipeline folder (unet/, scheduler/) or a UNet2DModel folder")
    else:
        raise ConfigError(f"{where} holds no unet/config.json nor config.json: give a diffusers "
                          "pipeline folder (unet/, scheduler/) or a UNet2DModel folder")
    subs = ["scheduler", None] + (["../scheduler"] if _is_local(path) else [])
    for sub in subs:  # a pipeline's, one beside the UNet's config, a pipeline's unet/ folder's
        if _read_json(path, sub, "scheduler_config.json", local_files_only) is not None:
            return Layout(path, unet_sub, sub)
    raise ConfigError(f"{where} has no scheduler config (scheduler/scheduler_config.json, or "
                      "scheduler_config.json beside the UNet's config.json): vsdr reads the "
                      "diffusion schedule and the prediction type from it")


def unet_config(path: str, local_files_only: bool = True) -> dict:
    lay = find_layout(path, local_files_only)
    return _read_json(lay.root, lay.unet_sub, "config.json", local_files_only)


def scheduler_config(path: str, local_files_only: bool = True) -> dict:
    lay = find_layout(path, local_files_only)
    return _read_json(lay.root, lay.scheduler_sub, "scheduler_config.json", local_files_only)


def _cosine_betas(T: int, max_beta: float = 0.999) -> Tensor:
    """diffusers' ``squaredcos_cap_v2`` (GLIDE's cosine): ``β_i = min(1 − f(t_{i+1})/f(t_i),
    max_beta)``, ``f(t) = cos²((t + 0.008)/1.008 · π/2)``, ``t_i = i/T``; float32."""
    def f(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)],
                        dtype=torch.float32)


def scheduler_problem(config: dict) -> str | None:
    """Why vsdr cannot take this scheduler config (an unsupported beta schedule, prediction or
    variance type, given betas, zero-SNR rescaling), or ``None``."""
    checks = (("beta_schedule", "linear", BETA_SCHEDULES), ("prediction_type", "epsilon", PREDICTIONS),
              ("variance_type", "fixed_small", VARIANCE_TYPES))
    for key, default, allowed in checks:
        value = config.get(key, default)
        if value not in allowed:
            return f"its scheduler has {key}={value!r}, and vsdr reads {list(allowed)}"
    for key in ("trained_betas", "rescale_betas_zero_snr"):
        if config.get(key):
            return f"its scheduler sets {key}, which vsdr does not read"
    return None


def scheduler_betas(config: dict) -> Tensor:
    """The betas of a DDPMScheduler config, computed as diffusers does (float32):
    ``linear`` (linspace of β), ``scaled_linear`` (linspace of √β, squared), ``squaredcos_cap_v2``."""
    problem = scheduler_problem(config)
    if problem:
        raise ConfigError(f"the diffusers scheduler config does not fit vsdr: {problem}")
    T = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
    kind = config.get("beta_schedule", "linear")
    if kind == "linear":
        return torch.linspace(start, end, T, dtype=torch.float32)
    if kind == "scaled_linear":
        return torch.linspace(start**0.5, end**0.5, T, dtype=torch.float32) ** 2
    return _cosine_betas(T)


def schedule_of_config(config: dict) -> VPSchedule:
    """vsdr's schedule of a scheduler config: the ᾱ table the model was trained with
    (diffusers' float32 ``cumprod(1 − β)``) taken as exact, in float64
    (``VPSchedule.from_alpha_bars``)."""
    alphas_cumprod = torch.cumprod(1.0 - scheduler_betas(config), dim=0)
    if not alphas_cumprod[-1] > 0:
        raise ConfigError("the diffusers scheduler config does not fit vsdr: its ᾱ reaches 0 in float32 "
                          f"(step {int((alphas_cumprod > 0).sum())}), so x̂0 is undefined there")
    return VPSchedule.from_alpha_bars(alphas_cumprod.to(torch.float64))


def folder_schedule(path: str, local_files_only: bool = True) -> VPSchedule:
    """The ``diffusion`` of ``model=diffusers``: the schedule of the folder's scheduler config."""
    return schedule_of_config(scheduler_config(str(path), bool(local_files_only)))


def eps_from_prediction(out: Tensor, x: Tensor, alpha_bar: Tensor, kind: str) -> Tensor:
    """ε from a network prediction ``out`` at ``x_t`` (``alpha_bar``: ᾱ_t per sample, broadcast
    to ``x``): ``epsilon`` as is, ``v_prediction`` ``√ᾱ v + √(1−ᾱ) x_t``, ``sample``
    ``(x_t − √ᾱ x0)/√(1−ᾱ)``."""
    if kind == "epsilon":
        return out
    a, s = alpha_bar.sqrt().to(out.dtype), (1.0 - alpha_bar).sqrt().to(out.dtype)
    if kind == "v_prediction":
        return a * out + s * x
    if kind == "sample":
        return (x - a * out) / s
    raise ConfigError(f"prediction_type={kind!r} is not one of {list(PREDICTIONS)}")


def fit_problem(node: dict, shape: tuple[int, ...], variance: str | None = None) -> str | None:
    """Why the model of ``node`` (``path``, ``local_files_only``) cannot run on items of
    ``shape`` (C, H, W) with the sampler's ``variance``, read from its config files (no weights
    loaded): the folder, the UNet class, its size, its input and output channels, the
    scheduler's settings; ``None`` when it fits."""
    path, lfo = node.get("path"), bool(node.get("local_files_only", True))
    if not path:
        return ("model.path is not set: give model.path=FOLDER (a diffusers pipeline folder or a "
                "UNet2DModel folder) or a hub id")
    try:
        unet, sched = unet_config(str(path), lfo), scheduler_config(str(path), lfo)
    except ConfigError as e:
        return str(e)
    if unet.get("_class_name", UNET_CLASS) != UNET_CLASS:
        return f"its UNet is a {unet.get('_class_name')}, and vsdr loads a {UNET_CLASS}"
    if unet.get("num_class_embeds") or unet.get("class_embed_type"):
        return "its UNet is class-conditional, and vsdr runs unconditional networks"
    channels, side = shape[0], shape[-1]
    size = unet.get("sample_size")
    size = size[-1] if isinstance(size, (list, tuple)) else size
    if size is not None and int(size) != side:
        return f"it is a {size}×{size} UNet but the images are {side}×{side} (dataset.image_size={side})"
    c_in = int(unet.get("in_channels", 3))
    if c_in != channels:
        return f"it takes {c_in}-channel images but the data set's have {channels} channels"
    problem = scheduler_problem(sched)
    if problem:
        return problem
    c_out, kind = int(unet.get("out_channels", 3)), sched.get("variance_type", "fixed_small")
    want = 2 * c_in if kind == "learned_range" else c_in
    if c_out != want:
        what = "prediction and variance" if kind == "learned_range" else "the prediction"
        return (f"its UNet has {c_out} output channels but its scheduler's variance_type={kind} "
                f"needs {want} ({what})")
    if variance == "learned_range" and kind != "learned_range":
        return (f"sampler.variance=learned_range needs a variance output, and its scheduler has "
                f"variance_type={kind}: choose sampler.variance=beta or fixed_small")
    return None


class DiffusersEps(nn.Module):
    """A pretrained diffusers ``UNet2DModel`` as vsdr's ε-network ``net(x_t, t)``: its
    prediction turned into ε (``eps_from_prediction``) with the folder's ᾱ; a learned-range
    model's variance channels follow ε unchanged. ``pretrained``: nothing to train or cache."""

    pretrained = True
    images = True

    def __init__(self, path: str, local_files_only: bool = True):
        super().__init__()
        from diffusers import UNet2DModel

        path, lfo = str(path), bool(local_files_only)
        lay = find_layout(path, lfo)
        try:  # safetensors only: the weights are read as data, never unpickled
            self.unet = UNet2DModel.from_pretrained(lay.root, subfolder=lay.unet_sub, local_files_only=lfo,
                                                    use_safetensors=True, low_cpu_mem_usage=False)
        except (OSError, ValueError, EnvironmentError) as e:
            raise ConfigError(f"model.path={path}: its UNet2DModel could not be loaded ({first_line(e)}): "
                              "vsdr reads its weights from diffusion_pytorch_model.safetensors") from None
        config = scheduler_config(path, lfo)
        self.prediction = config.get("prediction_type", "epsilon")
        self.register_buffer("alpha_bars", schedule_of_config(config).alpha_bars.clone(), persistent=False)
        self.info = {"path": path, "prediction_type": self.prediction,
                     "variance_type": config.get("variance_type", "fixed_small"),
                     "beta_schedule": config.get("beta_schedule", "linear")}

    fit_problem = staticmethod(fit_problem)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.unet(x, t).sample
        c = x.shape[1]
        pred, v = (out[:, :c], out[:, c:]) if out.shape[1] == 2 * c else (out, None)
        eps = eps_from_prediction(pred, x, per_sample(self.alpha_bars.to(x.device)[t], x), self.prediction)
        return eps if v is None else torch.cat([eps, v], dim=1)
