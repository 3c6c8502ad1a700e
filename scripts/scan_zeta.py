"""Scan the DPS weight ζ of our sampler over a (λ, ζ) grid on one 2D setting: the measurements
behind the per-setting ζ(λ) tables of conf/tuned/ (docs/RESULTS.md, "ζ(λ) per data set and σ").

Every (λ, ζ) pair is one row of a single batch through the same cached score network, the same
1,000 test points and the same per-point seeds as `run.py dataset=D noise.sigma=S lam=[λ]
'sampler.zeta={lam:[0,1],value:[ζ,ζ]}'`, so each row equals that job's row (batch-invariant
network calls). Writes a CSV (lam, zeta, mse, w2) and prints it. With --tables, each ζ(λ)
table (λ:ζ breakpoints, linearly interpolated as in sampler.zeta) is evaluated at every --lam.

    python scripts/scan_zeta.py dataset=scurve noise.sigma=0.75 --lam 0,0.5,1 --zeta 0.1,0.2,0.5
    python scripts/scan_zeta.py dataset=scurve --lam 0,0.5,1 --tables "0:0.3,1:0.2;0:0.4,1:0.25"
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from hydra import compose, initialize_config_dir

    from vsdr.experiments.build import build_job, build_sampling_model
    from vsdr.experiments.job import sample_all
    from vsdr.experiments.tuning import PairSampler
    from vsdr.experiments.writer import write_csv

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (dataset=, noise.sigma=, ...)")
    parser.add_argument("--lam", required=True, help="comma-separated λ values")
    parser.add_argument("--zeta", default="", help="comma-separated ζ values (a grid with --lam)")
    parser.add_argument("--tables", default="", help="ζ(λ) tables 'λ:ζ,λ:ζ;λ:ζ,…' to evaluate at --lam")
    parser.add_argument("--out", default=None, help="CSV file (default outputs/scan/zeta-DATASET-SIGMA.csv)")
    args = parser.parse_args()
    lams = [float(v) for v in args.lam.split(",")]
    zetas = [float(v) for v in args.zeta.split(",") if v]
    tables = [[tuple(float(x) for x in pt.split(":")) for pt in t.split(",")]
              for t in args.tables.split(";") if t]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["sampler=ours", "progress=false", "logger=none",
                                           *args.overrides])
    pairs = [(lam, z) for z in zetas for lam in lams]
    for t in tables:
        pairs += [(lam, round(float(np.interp(lam, [a for a, _ in t], [b for _, b in t])), 6))
                  for lam in lams]
    pairs = list(dict.fromkeys(pairs))
    parts = build_job(cfg)
    seed = int(cfg.seed)
    torch.manual_seed(seed)
    model, _ = build_sampling_model(cfg, parts, None)  # the job's precision and net_batch
    sampler, task = parts.sampler, parts.task

    test = task.test_set(seed)
    values = list(range(len(pairs)))
    recon, _, seconds = sample_all(PairSampler(sampler, pairs), model, test.y, task.operator, task.sigma_y,
                                   values, parts.schedule, torch.device("cpu"), seed)
    rows = task.evaluate(test, recon, values, seed)
    out_rows = [{"dataset": cfg.dataset.name, "sigma": float(cfg.noise.sigma), "lam": lam,
                 "zeta": z, "mse": r["mse"], "w2": r["w2"]} for (lam, z), r in zip(pairs, rows)]
    name = f"zeta-{cfg.dataset.name}-{float(cfg.noise.sigma):g}.csv"
    out = Path(args.out or ROOT / "outputs" / "scan" / name)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, out_rows)
    print(f"{cfg.dataset.name} σ={float(cfg.noise.sigma):g}: {len(pairs)} pairs in {seconds:.0f} s -> {out}")
    at = {(r["lam"], r["zeta"]): r for r in out_rows}
    print(f"{'zeta':>6} " + " ".join(f"λ={lam:<12g}" for lam in lams))
    for z in zetas:
        print(f"{z:>6g} " + " ".join(f"{at[lam, z]['mse']:.3f}/{at[lam, z]['w2']:.3f}  " for lam in lams))
    for t in tables:
        print("table " + ",".join(f"{a:g}:{b:g}" for a, b in t))
        for lam in lams:
            r = at[lam, round(float(np.interp(lam, [a for a, _ in t], [b for _, b in t])), 6)]
            print(f"   λ={lam:<5g} ζ={r['zeta']:<8.4g} MSE {r['mse']:.4f}  W2 {r['w2']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
