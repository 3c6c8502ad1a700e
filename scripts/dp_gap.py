"""How far analytic jobs' DP points lie from the optimum (docs/RESULTS.md §15): per job, the
λ = 0 distortion over the MMSE, ``MSE(0)/D*``; the vertical gap of each point above the
optimal curve, ``MSE − (D* + (√D* − W2)²)`` (``D*`` beyond ``W2 = √D*``; docs/METHOD.md §3),
averaged and at its largest over the job's λ; and where the curve ends, ``MSE(1)/D*`` and
``W2(1)`` (the largest knob value). Reads each job's ``metrics.csv``.

    python scripts/dp_gap.py LABEL=JOB_DIR [LABEL=JOB_DIR ...]
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from vsdr.tasks.analytic import gap_summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jobs", nargs="+", metavar="LABEL=JOB_DIR", help="a job dir, optionally labelled")
    jobs = ap.parse_args(argv).jobs
    print(f"{'job':>16} {'MSE(0)/D*':>10} {'mean gap':>9} {'max gap':>8} {'MSE(1)/D*':>10} {'W2(1)':>7}")
    for arg in jobs:
        label, _, job = arg.rpartition("=")
        with open(Path(job) / "metrics.csv", newline="") as f:
            s = gap_summary(list(csv.DictReader(f)))
        print(f"{label or job:>16} {s['mse0_over_dstar']:10.4f} {s['gap_mean']:9.4f} {s['gap_max']:8.4f}"
              f" {s['mse1_over_dstar']:10.4f} {s['w2_end']:7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
