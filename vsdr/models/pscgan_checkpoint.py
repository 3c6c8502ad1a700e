"""Reading the published PSCGAN checkpoints (``pscgan-25/50/75.ckpt``, theoad/pscgan) with
``torch.load(weights_only=True)``, and loading them strictly into ``PSCGANOfficial``.

A published file is a PyTorch Lightning 1.2.1 checkpoint (torch 1.6): ``state_dict`` (the
``gen.*`` and ``disc.*`` tensors) beside Lightning's bookkeeping (``epoch``, ``global_step``,
``optimizer_states``, ``lr_schedulers``, ``callbacks``). ``weights_only=True`` refuses two
Lightning names such a file can hold: the ``callbacks`` dict is keyed by the callback *class*
(``ModelCheckpoint``), and saved hyper-parameters are an ``AttributeDict`` (the official
``GAN`` saves none, so this one is likely absent). Both are read as inert stand-ins
(``LIGHTNING_STAND_INS``: a bare class, a plain dict) through
``torch.serialization.safe_globals``, which runs no code from the file. A file naming any
other non-tensor global is refused in one sentence that points at
``python -m vsdr.models.checkpoint convert IN OUT --trust`` (run once, on a file one trusts:
keeps the tensors; classes that cannot be imported read as stand-ins).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from vsdr.errors import ConfigError
from vsdr.models.checkpoint import bare_class


class _AttributeDict:
    """Stand-in for Lightning's ``AttributeDict`` (a dict subclass): unpickles as a plain dict."""

    def __new__(cls, *args, **kwargs):
        return {}


#: the Lightning globals a published checkpoint may hold outside its tensors, and what they read as
LIGHTNING_STAND_INS: list[tuple[object, str]] = [
    (bare_class(n), n) for n in (
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
        "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
        "pytorch_lightning.callbacks.progress.ProgressBar",
        "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor")
] + [(_AttributeDict, "pytorch_lightning.utilities.parsing.AttributeDict")]


def _first_line(e: Exception) -> str:
    text = str(e)
    for key in ("Unsupported global:", "Can only", "WeightsUnpickler error:"):
        if key in text:
            return text[text.index(key):].splitlines()[0][:200]
    return (text.strip().splitlines() or [type(e).__name__])[0][:200]


def read_state_dict(path: str | Path, what: str = "sampler.gan.ckpt") -> dict[str, torch.Tensor]:
    """The tensors of a Lightning checkpoint's ``state_dict`` (or of a bare state dict), read
    with ``weights_only=True``; ``ConfigError`` in one sentence when the file is missing,
    unreadable or holds objects other than the known Lightning ones."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}={path} does not exist: give the path of a published PSCGAN checkpoint "
                          "(pscgan-25.ckpt, pscgan-50.ckpt or pscgan-75.ckpt)")
    try:
        with torch.serialization.safe_globals(LIGHTNING_STAND_INS):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ConfigError(f"{what}={path} holds objects that a weights-only load refuses ({_first_line(e)}): "
                          "if the file is trusted, convert it once with "
                          f"`python -m vsdr.models.checkpoint convert {path} OUT.pt --trust` and give "
                          "OUT.pt") from e
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same sentence
        raise ConfigError(f"{what}={path} is not a readable torch checkpoint ({_first_line(e)})") from e
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{what}={path} holds no state dict of tensors")
    return state


def shared_groups(net: nn.Module) -> list[list[str]]:
    """The state-dict names that are one tensor in ``net`` (the official drips' repeated layer)."""
    groups: dict[tuple[int, tuple[int, ...]], list[str]] = {}
    for k, v in net.state_dict().items():
        groups.setdefault((v.data_ptr(), tuple(v.shape)), []).append(k)
    return [g for g in groups.values() if len(g) > 1]


def load_strict(net: nn.Module, state: dict[str, torch.Tensor], path: str | Path,
                what: str = "sampler.gan.ckpt") -> None:
    """``net.load_state_dict(state, strict=True)`` after checks that name the first offending
    keys in a ``ConfigError``: missing, unexpected, mis-shaped, or names of one shared tensor
    holding different values (they would silently collapse to the last one)."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    found = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
    parts = [f"{label} {keys[:3]}" for label, keys in found if keys]
    if parts:
        raise ConfigError(f"{what}={path} does not fit the official PSCGAN layout: " + "; ".join(parts))
    for group in shared_groups(net):
        differ = [k for k in group[1:] if not torch.equal(state[k], state[group[0]])]
        if differ:
            raise ConfigError(f"{what}={path} holds different values for {group[0]} and {differ[0]}, "
                              "which are one shared layer in the official PSCGAN")
    net.load_state_dict(state, strict=True)


def load_official(net: nn.Module, path: str | Path, what: str = "sampler.gan.ckpt") -> None:
    """Read ``path`` (weights only) and load it strictly into ``net`` (a ``PSCGANOfficial``)."""
    load_strict(net, read_state_dict(path, what), path, what)
