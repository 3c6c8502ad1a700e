"""Diagnostic for the few-step λ = 0 end on images (docs/RESULTS.md §21.6): where does K steps'
MSE gap to the T-step chain come from, the coarse prior steps or the coarse guidance pulls?

Runs the λ = 0 chain of ours' ``dps`` form (deterministic: eq. 12's mean, no noise;
``vsdr.diffusion.pulls.lam0_chain``, without changes the bits of ``run.py``'s λ = 0) on the
test images of an experiment (default ``experiment=images_proxy``; its network must be cached,
run the experiment once first) and prints MSE (the task's, ``[0, 1]`` units), the residual's
rms ``‖y − A x̂‖/√m`` and how successive pull directions agree (the median cosine between the
gradients of steps k and k + 1, and k and k + 10). Per step the pull is the config's
(``dps_scale`` included); three changes to it, one at a time:

  --pulls M     split each step's pull in M parts; part j > 1 is the gradient at the point the
                parts before it reached (M network evaluations a step; the last step, with
                no later time to evaluate at, pulls whole)
  --refresh N   compute the gradient on every N-th step only and reuse it on the N − 1 steps
                after (a coarse pull on fine prior steps)
  --damp        scale the pull by φ(L c) = (1 − e^{−L c})/(L c): the exact flow along the
                gradient's direction of ‖y − A x̂0‖ linearised, L = ‖A J v̂‖²/‖r‖ its curvature
                there (v̂ the unit gradient, J = ∂x̂0/∂x_t, one more double-backward a step)

    python scripts/pull_refresh.py --steps 100,1000
    python scripts/pull_refresh.py --steps 100 --pulls 2
    python scripts/pull_refresh.py --steps 1000 --refresh 10
    python scripts/pull_refresh.py --steps 50,100,200 --damp
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

import vsdr  # noqa: F401 - registers vsdr's config resolvers
from vsdr.diffusion.noise import sample_seeds
from vsdr.diffusion.pulls import lam0_chain, median_cosine
from vsdr.experiments.build import build_job, build_sampling_model
from vsdr.metrics.image import image_mse
from vsdr.samplers.base import signal_shape

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="100,1000", help="comma-separated K (T: all steps)")
    ap.add_argument("--pulls", type=int, default=1, help="parts of each step's pull (default 1)")
    ap.add_argument("--refresh", type=int, default=1, help="gradient on every N-th step (default 1)")
    ap.add_argument("--damp", action="store_true", help="the pull times φ(Lc)")
    ap.add_argument("--overrides", nargs="*", default=["experiment=images_proxy"],
                    help="Hydra overrides of the experiment (default: experiment=images_proxy)")
    args = ap.parse_args(argv)
    if args.pulls < 1 or args.refresh < 1:
        ap.error("--pulls and --refresh must be >= 1")
    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*args.overrides, "logger=none", "progress=false"])
    parts = build_job(cfg)
    sampler, op = parts.sampler, parts.task.operator
    if getattr(sampler, "form", None) != "dps":
        print("vsdr: scripts/pull_refresh.py needs ours with sampler.form=dps", file=sys.stderr)
        return 2
    model, _ = build_sampling_model(cfg, parts, None)   # as run.py's job samples with it: same bits
    test = parts.task.test_set(int(cfg.seed))
    seeds = sample_seeds(int(cfg.seed), range(len(test.y)))
    print(f"λ = 0, {len(test.y)} test images, ζ = {float(sampler.zeta(0.0)[0]):g}, pulls={args.pulls}, "
          f"refresh={args.refresh}, damp={args.damp}")
    print("| K | MSE | residual rms | cos k,k+1 | cos k,k+10 | seconds |")
    print("|---|---|---|---|---|---|")
    for K in (int(k) for k in args.steps.split(",")):
        t0 = time.perf_counter()
        x, dirs = lam0_chain(sampler, model, test.y, op, signal_shape(test.y, op), seeds,
                             parts.schedule, K, args.pulls, args.refresh, args.damp)
        mse = float(image_mse(test.x0, x).mean())
        res = float((test.y - op.forward(x)).flatten(1).norm(dim=1).mean()) / test.y[0].numel() ** 0.5
        print(f"| {K} | {mse:.5f} | {res:.4f} | {median_cosine(dirs, 1):.2f} | "
              f"{median_cosine(dirs, 10):.2f} | {time.perf_counter() - t0:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
