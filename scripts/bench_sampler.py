"""Time per sampler step and peak memory of `ours` (learned variance, clipped x̂0, DPS-form
guidance on Gaussian blur) with an untrained ADM of `model=NAME`, CPU.

    python scripts/bench_sampler.py --model adm_small --steps 200 --batch 1

Prints seconds per step (network forward + backward through x̂0, the sampler's cost) and the
resident memory (VmRSS) every ``--every`` steps plus the peak (VmHWM), to show memory flat
in the number of steps."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vsdr.diffusion import VPSchedule, per_sample_seeds  # noqa: E402
from vsdr.models import ADMUNet, NetworkPrior  # noqa: E402
from vsdr.operators import GaussianBlur  # noqa: E402
from vsdr.samplers import VarianceScaledSampler  # noqa: E402


def rss_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="adm_small")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "model" / f"{a.model}.yaml"))
    for k in ("_target_", "name", "ckpt", "preconditioning"):
        cfg.pop(k, None)
    torch.manual_seed(0)
    net = ADMUNet(**cfg)
    for q in net.out.parameters():  # non-zero head: ε and v vary
        torch.nn.init.normal_(q, std=0.02)
    net = net.eval().requires_grad_(False)
    size = net.image_size
    schedule = VPSchedule.linear(a.steps, 1e-4 * 1000 / a.steps, min(0.02 * 1000 / a.steps, 0.999))
    prior = NetworkPrior(net, schedule)
    op = GaussianBlur(kernel_size=min(61, size - 1 if size % 2 == 0 else size), std=3.0)
    y = op.forward(torch.rand(a.batch, 3, size, size) * 2 - 1)
    sampler = VarianceScaledSampler(form="dps", variance="learned_range", clip_x0=True, progress=False,
                                    zeta={"lam": [0, 1], "value": [1.0, 1.0]})
    marks: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()

    def callback(i: int, x: torch.Tensor) -> None:
        done = a.steps - i
        if done % a.every == 0 or i == 0:
            marks.append((done, time.perf_counter() - t0, rss_mib()))

    sampler(prior, y, op, 0.05, [1.0] * a.batch, per_sample_seeds(0, range(a.batch)), schedule,
            callback=callback)
    total = time.perf_counter() - t0
    params = sum(q.numel() for q in net.parameters())
    print(f"model={a.model} params={params} image={size}² batch={a.batch} steps={a.steps} "
          f"threads={a.threads}")
    for done, t, rss in marks:
        print(f"  after {done:5d} steps: {t:8.1f} s  RSS {rss:8.1f} MiB")
    print(f"seconds per step: {total / a.steps:.4f}   peak RSS (VmHWM): {rss_mib('VmHWM'):.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
