"""Regenerate every paper figure this machine can make into outputs/figures/ (`make figures`).

The figures, their jobs and the scheduler that runs them side by side live in
vsdr.experiments.figures and vsdr.experiments.scheduler.

    python scripts/make_figures.py                      # every figure but those made on request
    python scripts/make_figures.py images_proxy         # one made on request (ON_REQUEST)
    python scripts/make_figures.py [--reuse] fig5 robustness
    python scripts/make_figures.py --dry-run fig5       # the jobs and their commands, nothing run
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from vsdr.experiments.figures import FIGURES, ON_REQUEST, make_figures, plan_jobs
from vsdr.experiments.scheduler import job_command, split_duplicates, start_order

ROOT = Path(__file__).resolve().parents[1]
#: what a bare `make figures` makes: every figure but those made only when named
DEFAULT = [n for n in FIGURES if n not in ON_REQUEST]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help=f"figures to make (default: all of {DEFAULT}; "
                                            f"made only when named: {list(ON_REQUEST)})")
    p.add_argument("--out", default=str(ROOT / "outputs" / "figures"))
    p.add_argument("--reuse", action="store_true",
                   help="skip a job whose metrics.json is already there (results of an earlier run)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="jobs run at once, one thread each (default: the CPU count)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the jobs in start order and their commands; run nothing")
    return p


def dry_run(names: list[str], out: Path, reuse: bool) -> int:
    """Print the jobs ``make_figures`` would run, in start order, and the ones it would copy."""
    order, copies = split_duplicates(start_order(list(plan_jobs(names, out, reuse).values())))
    for job in order:
        print(f"{job.key}: {' '.join(job_command(job)[1:])}")
    for key, src in copies.items():
        print(f"{key}: copied from {src.key} (same results config)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    names = args.names or DEFAULT
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        p.error(f"unknown figure(s) {unknown}: choose from {list(FIGURES)}")
    if args.dry_run:
        return dry_run(names, Path(args.out), args.reuse)
    return make_figures(names, Path(args.out), args.reuse, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
