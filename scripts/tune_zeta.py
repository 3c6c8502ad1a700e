"""Calibrate ζ(λ) of ours on an image task (docs/RESULTS.md §18): scan every (λ, ζ) pair side
by side in one batch on held-out test images (``--start``, ``--count``: by default the 32 after
the job's ``data.limit``), pick one ζ per λ (the rule of vsdr/experiments/tuning.py), write a CSV
of the scan and, with ``--write``, the table into conf/tuned/calibrated/images.yaml, where
``${vsdr.tuned_zeta:...}`` finds it for this data set, operator, form and σ.

    python scripts/tune_zeta.py experiment=images_small_severe --lam 0,0.25,0.5,0.75,1 \\
        --zeta 0.3,0.6,1,2,3,5 --write
    python scripts/tune_zeta.py experiment=images_small_severe --rows SCAN.csv --write   # re-pick
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from vsdr.experiments.tuning import CALIBRATED, pick_zeta, scan, tuned_key, write_table

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from hydra import compose, initialize_config_dir

    from vsdr.experiments.writer import write_csv

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (experiment=, noise.sigma=, ...)")
    parser.add_argument("--lam", default="", help="comma-separated λ values")
    parser.add_argument("--zeta", default="", help="comma-separated ζ values")
    parser.add_argument("--rows", default=None,
                        help="pick from this scan CSV (an earlier run's --out) instead of sampling")
    parser.add_argument("--start", type=int, default=None,
                        help="first held-out test image (default data.limit)")
    parser.add_argument("--count", type=int, default=32, help="held-out images")
    parser.add_argument("--batch", type=int, default=None, help="images sampled together (default all)")
    parser.add_argument("--out", default=None, help="CSV of the scan (default outputs/scan/tune-KEY.csv)")
    parser.add_argument("--write", action="store_true", help="write the picked table into --table")
    parser.add_argument("--table", default=str(ROOT / "conf" / CALIBRATED),
                        help="the YAML file --write updates")
    args = parser.parse_args()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["progress=false", "logger=none", *args.overrides])
    start = int(cfg.data.limit) if args.start is None else args.start
    perception = str(cfg.get("image_eval", {}).get("perception") or "fd_patch")
    key = tuned_key(cfg)
    if args.rows:
        with open(args.rows, newline="") as f:
            rows = [{**r, **{k: float(r[k]) for k in ("lam", "zeta", "mse", perception)}}
                    for r in csv.DictReader(f)]
        lams, zetas = sorted({r["lam"] for r in rows}), sorted({r["zeta"] for r in rows})
        out, seconds = Path(args.rows), 0.0
    else:
        if not args.lam or not args.zeta:
            parser.error("give --lam and --zeta (or --rows CSV)")
        lams = [float(v) for v in args.lam.split(",")]
        zetas = [float(v) for v in args.zeta.split(",")]
        pairs = [(lam, z) for z in zetas for lam in lams]
        rows, seconds = scan(cfg, pairs, start, args.count, args.batch)
        out = Path(args.out or ROOT / "outputs" / "scan" / f"tune-{'-'.join(key)}.csv")
        out.parent.mkdir(parents=True, exist_ok=True)
        write_csv(out, rows)
    table = pick_zeta(rows, perception)
    print(f"{'.'.join(key)}: {len(rows)} pairs × {args.count} images ({start}..{start + args.count - 1}) "
          f"in {seconds:.0f} s -> {out}")
    print(f"{'zeta':>6} " + " ".join(f"λ={lam:<16g}" for lam in lams))
    at = {(r["lam"], r["zeta"]): r for r in rows}
    for z in zetas:
        print(f"{z:>6g} " + " ".join(f"{at[lam, z]['mse']:.5f}/{at[lam, z][perception]:.4f}  "
                                     for lam in lams))
    print("picked (raw):", table["raw"], " monotone:", table["value"])
    edge = [lam for lam, z in zip(table["lam"], table["raw"]) if z in (min(zetas), max(zetas))]
    if edge:
        print(f"warning: at λ = {edge} the pick is an end of the ζ grid: widen --zeta")
    if args.write:
        note = (f"picked on test images {start}..{start + args.count - 1} from ζ in {zetas} "
                f"(mse, {perception}); scripts/tune_zeta.py {' '.join(args.overrides)}")
        write_table(Path(args.table), key, {"lam": table["lam"], "value": table["value"]}, note)
        print(f"written: {args.table} zeta.{'.'.join(key)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
