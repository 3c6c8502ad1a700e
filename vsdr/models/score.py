"""Score interfaces: what a sampler asks of a model.

A *prior* gives ``ε(x_t, i)`` (differentiable in ``x_t``); from it
``s = −ε/√(1−ᾱ_i)`` and Tweedie's ``x̂0 = (x_t − √(1−ᾱ_i) ε)/√ᾱ_i`` (docs/METHOD.md §1;
``vsdr.diffusion.tweedie.x0_from_eps``).
A *conditional* score model (``is_conditional = True``, the analytic oracles) gives
``∇ log p_t(x_t | y)`` directly.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from vsdr.diffusion.schedule import VPSchedule
from vsdr.errors import ConfigError


def split_learned_variance(out: Tensor, x: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(ε, v)`` of a network output ``out`` for input ``x``: a learned-variance network
    (ADM's ``learn_sigma``) returns ``2C`` channels for ``C``-channel images, ``ε`` first and
    the variance interpolation ``v ∈ [−1, 1]`` second; any other output is ``(out, None)``."""
    if out.dim() == x.dim() and out.dim() > 2 and out.shape[1] == 2 * x.shape[1]:
        eps, v = out.split(x.shape[1], dim=1)
        return eps, v
    return out, None


class NetworkPrior:
    """An ε-prediction network as an unconditional score model. Counts network evaluations."""

    is_conditional = False

    def __init__(self, net: nn.Module, schedule: VPSchedule):
        self.net = net
        self.schedule = schedule
        self.nfe = 0

    def eps(self, x: Tensor, i: int) -> Tensor:
        """``ε_θ(x_t, i)``: the network's first ``C`` channels (``C`` those of ``x``); a
        learned-variance network (``2C`` outputs, ADM's ``learn_sigma``) also gives ``v``,
        which ``eps_and_v`` returns."""
        return self.eps_and_v(x, i)[0]

    def eps_and_v(self, x: Tensor, i: int) -> tuple[Tensor, Tensor | None]:
        """``(ε, v)`` of one network evaluation: ``v ∈ [−1, 1]`` is the learned-range variance
        interpolation of a ``2C``-channel network (``None`` for a ``C``-channel one)."""
        self.nfe += 1
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        return split_learned_variance(self.net(x, t), x)


def kind_mismatches(state: dict, own: dict) -> list[str]:
    """``"KEY file-dtype vs model-dtype"`` for each tensor of ``state`` whose kind differs from
    ``own``'s of the same name: integer (or bool) for floating point or the reverse."""
    return [f"{k} {state[k].dtype} vs {own[k].dtype}" for k in own
            if isinstance(state.get(k), Tensor)
            and state[k].is_floating_point() != own[k].is_floating_point()]


def cast_to_model(state: dict, own: dict) -> dict:
    """``state`` with each floating-point tensor cast to the dtype of ``own``'s floating tensor
    of the same name: a float16 file (e.g. a state dict saved after guided-diffusion's
    ``convert_to_fp16``) loads into a float32 model (docs/METHOD.md §8). Tensors already of
    the model's dtype are not copied."""
    out = dict(state)
    for k, mine in own.items():
        theirs = state.get(k)
        if (isinstance(theirs, Tensor) and theirs.dtype != mine.dtype
                and theirs.is_floating_point() and mine.is_floating_point()):
            out[k] = theirs.to(mine.dtype)
    return out


def load_state_strict(net: nn.Module, path: str | Path, what: str = "model.ckpt") -> dict:
    """Load a state dict into ``net`` strictly; on any mismatch raise ``ConfigError`` naming
    the first missing, unexpected and mis-shaped keys (and tensors of another kind: integer for
    floating or the reverse). Floating-point tensors of another precision (float16, bfloat16,
    float64) are cast to the model's dtype (``cast_to_model``). The file is read as data
    (``vsdr.models.checkpoint.read_checkpoint``: nothing in it runs). Returns the file's
    payload."""
    from vsdr.models.checkpoint import label, read_checkpoint, state_dict_of  # not at import:
    # ``python -m vsdr.models.checkpoint`` runs that module after ``vsdr.models`` is imported

    path = Path(path)
    payload = read_checkpoint(path, what)
    state = state_dict_of(payload)
    if state is None:
        raise ConfigError(f"{label(what, path)} holds no state dict")
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    kinds = kind_mismatches(state, own)
    if missing or unexpected or shapes or kinds:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:3]}")
        if shapes:
            parts.append(f"shape mismatches {shapes[:3]}")
        if kinds:
            parts.append(f"dtype mismatches {kinds[:3]}")
        raise ConfigError(
            f"{label(what, path)} does not fit the model {type(net).__name__}: " + "; ".join(parts)
        )
    net.load_state_dict(cast_to_model(state, own), strict=True)
    return payload
