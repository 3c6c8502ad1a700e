"""Is a setting within another's seed-to-seed noise? Two sets of finished jobs (the same
experiment with different seeds, e.g. all T steps against K = 100), matched seed for seed
(``vsdr.experiments.compare``). Per knob value it prints the paired change of the per-item
squared error over every (seed, test item) pair, with its standard error and ``z``, and for each
``--columns`` entry of metrics.csv (MSE, a perception measure) the mean and range over seeds of
each set, ``in`` when the new mean lies inside the reference's range.

    python scripts/compare_runs.py --ref DIR [DIR ...] --new DIR [DIR ...] --columns mse,fd_patch
"""
from __future__ import annotations

import argparse
import sys

from vsdr.experiments.compare import compare_jobs, read_finished_job


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", nargs="+", required=True, metavar="DIR", help="reference jobs, one a seed")
    ap.add_argument("--new", nargs="+", required=True, metavar="DIR", help="jobs to compare, one a seed")
    ap.add_argument("--columns", default="mse", help="comma-separated metrics.csv columns (default mse)")
    args = ap.parse_args(argv)
    columns = [c for c in args.columns.split(",") if c]
    try:
        rows = compare_jobs([read_finished_job(d) for d in args.ref],
                            [read_finished_job(d) for d in args.new], columns)
    except ValueError as e:
        print(f"vsdr: {e}", file=sys.stderr)
        return 2
    head = ["value", "seeds", "paired change of sq_err", "z"]
    head += [f"{c} {w}" for c in columns for w in ("ref", "new")]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        it = r["items"]
        cells = [f"{r['value']:g}", str(r["seeds"]),
                 f"{100 * it['rel']:+.1f} % ± {100 * it['se'] / it['ref']:.1f} % ({it['n']} pairs)",
                 f"{it['z']:+.1f}"]
        for c in columns:
            ref, new = r[c]["ref"], r[c]["new"]
            cells += [f"{ref['mean']:.4g} ({ref['lo']:.4g}–{ref['hi']:.4g})",
                      f"{new['mean']:.4g} ({new['lo']:.4g}–{new['hi']:.4g})"
                      + (" in" if r[c]["inside"] else " out")]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
