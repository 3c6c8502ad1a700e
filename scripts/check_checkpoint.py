"""Check a checkpoint against a model config before a run.

    python scripts/check_checkpoint.py PATH [--model adm_ffhq]

Builds ``conf/model/<model>.yaml`` without weights, reads PATH as data (a plain state dict or
one under ``state_dict``; a file that would run code is refused, see
``vsdr/models/checkpoint.py``) and reports the parameter counts, the missing and unexpected keys and
the shape mismatches. Exit status 0 when the file loads strictly, 1 when it does not.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from vsdr.errors import ConfigError
from vsdr.experiments.prior import bare_network
from vsdr.models.checkpoint import read_checkpoint, state_dict_of


def compare(net: torch.nn.Module, state: dict) -> dict:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``net``."""
    own = net.state_dict()
    return {
        "missing": [k for k in own if k not in state],
        "unexpected": [k for k in state if k not in own],
        "shapes": [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                   for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)],
    }


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
    net = bare_network(args.model)
    n_model = sum(p.numel() for p in net.parameters())
    n_file = sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor))
    print(f"model {args.model}: {n_model:,} parameters, {len(net.state_dict())} tensors")
    print(f"file  {path}: {n_file:,} values, {len(state)} tensors")
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
