"""Check a checkpoint against a model config before a run.

    python scripts/check_checkpoint.py PATH [--model adm_ffhq|adm_imagenet256|adm_lsun|...]

Builds ``conf/model/<model>.yaml`` without weights (on torch's ``meta`` device: names, shapes and
counts, nothing allocated, so the 552M-parameter ImageNet network costs no memory), reads PATH as
data (a plain state dict or one under ``state_dict``; a file that would run code is refused, see
``vsdr/models/checkpoint.py``) and reports the parameter counts, the file's dtypes, the missing
and unexpected keys, the shape mismatches and the tensors of another kind. Floating-point
tensors of another precision (a float16 file) are not a mismatch: loading casts them to the
model's dtype (``vsdr.models.score.cast_to_model``). Exit status 0 when the file loads strictly,
1 when it does not.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from vsdr.errors import ConfigError
from vsdr.experiments.prior import bare_network
from vsdr.models.checkpoint import read_checkpoint, state_dict_of
from vsdr.models.score import kind_mismatches


def compare(net: torch.nn.Module, state: dict) -> dict:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``net``, and tensors of
    another kind (integer for floating or the reverse)."""
    own = net.state_dict()
    return {
        "missing": [k for k in own if k not in state],
        "unexpected": [k for k in state if k not in own],
        "shapes": [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                   for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)],
        "dtypes": kind_mismatches(state, own),
    }


def dtype_counts(state: dict) -> str:
    """``float32 ×N, float16 ×M``: how many of the file's tensors have each dtype."""
    counts: dict[str, int] = {}
    for v in state.values():
        if isinstance(v, torch.Tensor):
            name = str(v.dtype).removeprefix("torch.")
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("path")
    ap.add_argument("--model", default="adm_ffhq", help="a conf/model option (default adm_ffhq)")
    ap.add_argument("--show", type=int, default=10, help="how many keys to list per kind")
    args = ap.parse_args(argv)
    path = Path(args.path)
    try:
        state = state_dict_of(read_checkpoint(path, "checkpoint"))  # as data: nothing in it runs
    except ConfigError as e:
        print(e)
        return 1
    if state is None:
        print(f"{path} holds no state dict")
        return 1
    with torch.device("meta"):  # the architecture only: nothing allocated
        net = bare_network(args.model)
    n_model = sum(p.numel() for p in net.parameters())
    n_file = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))
    print(f"model {args.model}: {n_model:,} parameters, {len(net.state_dict())} tensors")
    print(f"file  {path}: {n_file:,} values, {len(state)} tensors ({dtype_counts(state)})")
    dtype = next(net.parameters()).dtype
    if any(isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != dtype
           for v in state.values()):
        print(f"floating-point tensors of another precision are cast to the model's {dtype} on load")
    report = compare(net, state)
    for kind, keys in report.items():
        print(f"{kind}: {len(keys)}")
        for k in keys[: args.show]:
            print(f"  {k}")
        if len(keys) > args.show:
            print(f"  ... {len(keys) - args.show} more")
    ok = not any(report.values())
    print("loads strictly" if ok else "does NOT load strictly")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
