"""Per-step cost of a diffusers UNet2DModel against the same-size ADM UNet (docs/RESULTS.md §19).

    OMP_NUM_THREADS=1 python scripts/bench_diffusers.py [--batch 64] [--reps 7]

Both at 16², base width 32, channel multipliers (1, 2, 2), one residual block per level,
attention only in the middle block, learned variance (6 output channels), random weights;
one step = a forward + backward through the input (what ours and DPS pay per step). The two
networks alternate (A B A B …) and the medians are reported, so a load change on a shared
machine hits both alike. Threads: 1.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from vsdr.experiments.prior import random_network


def diffusers_twin() -> torch.nn.Module:
    """A UNet2DModel of adm_digits' size: widths (32, 64, 64), one layer per block, no attention
    outside the middle block, 3 → 6 channels."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=16, in_channels=3, out_channels=6, block_out_channels=(32, 64, 64),
                       layers_per_block=1, down_block_types=("DownBlock2D",) * 3,
                       up_block_types=("UpBlock2D",) * 3, norm_num_groups=32, attention_head_dim=16)


def step_seconds(net, x: torch.Tensor, t: torch.Tensor, call) -> float:
    """One forward + backward through the input, in seconds."""
    x = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    call(net, x, t).sum().backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    adm = random_network("adm_digits").eval().requires_grad_(False)
    torch.manual_seed(0)
    twin = diffusers_twin().eval().requires_grad_(False)
    nets = {"adm_digits (ADMUNet)": (adm, lambda n, x, t: n(x, t)),
            "diffusers UNet2DModel": (twin, lambda n, x, t: n(x, t).sample)}
    x = torch.randn(args.batch, 3, 16, 16)
    t = torch.full((args.batch,), 50)
    times: dict[str, list[float]] = {k: [] for k in nets}
    for net, call in nets.values():  # warm-up
        step_seconds(net, x, t, call)
    for _ in range(args.reps):
        for name, (net, call) in nets.items():
            times[name].append(step_seconds(net, x, t, call))
    base = statistics.median(times["adm_digits (ADMUNet)"])
    print(f"batch {args.batch}, 16x16, threads 1, {args.reps} alternating reps (medians)")
    for name, (net, _) in nets.items():
        med = statistics.median(times[name])
        params = sum(p.numel() for p in net.parameters())
        print(f"{name:24s} params {params:>9,d}  step {med * 1e3:7.1f} ms  "
              f"{med / args.batch * 1e3:5.2f} ms/row  x{med / base:.2f}")


if __name__ == "__main__":
    main()
