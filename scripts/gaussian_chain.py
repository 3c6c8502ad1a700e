"""The K-step chain's MSE/D* and W2/√D* in closed form on a Gaussian job (docs/RESULTS.md §20):
the job's own observation and posterior (``experiment=gaussian_theory`` by default), the three
``sampler.step_rule`` options, against Theorems 1–2 (``1 + λ`` and ``1 − √λ``). The chain with
the exact score is affine, so its output is ``N(m, C)`` exactly (``chain_moments``).

    python scripts/gaussian_chain.py --steps 20,50,1000 --lam 0,0.25,0.5,0.75,1 [OVERRIDES ...]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from vsdr.diffusion.gaussian_chain import chain_moments
from vsdr.experiments.build import build_schedule, build_task
from vsdr.metrics import gaussian_w2


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=["experiment=gaussian_theory", *overrides])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default="20,50,1000", help="K values (T: the full chain)")
    ap.add_argument("--lam", default="0,0.25,0.5,0.75,1")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    cfg = compose(args.overrides)
    task, schedule = build_task(cfg), build_schedule(cfg)
    oracle = task.oracle(int(cfg.seed))
    mu, Sig, d_star = oracle.mean, oracle.cov, oracle.mmse
    lams = [float(v) for v in args.lam.split(",")]
    theory = " ".join(f"{1 + lam:.2f}/{1 - math.sqrt(lam):.3f}" for lam in lams)
    print(f"D* = {d_star:.4f}; cells: MSE/D* / W2/√D* (theory {theory})")
    for rule in ("eq12", "trace", "marginal"):
        for K in (int(k) for k in args.steps.split(",")):
            sub = schedule if K == schedule.T else schedule.respace(K, str(cfg.sampler.spacing))[0]
            cells = []
            for lam in lams:
                m, C = chain_moments(mu, Sig, sub, lam, rule)
                mse = float((m - mu).pow(2).sum() + torch.trace(C)) + d_star
                w2 = gaussian_w2(m.numpy(), C.numpy(), mu.numpy(), Sig.numpy())
                cells.append(f"{mse / d_star:.4f} / {w2 / math.sqrt(d_star):.4f}")
            print(f"| {rule} | {K} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
