"""Table IV and the FFHQ DP planes (Figs. 6 and 8) from the results of an FFHQ sweep
(vsdr.experiments.figures_ffhq says what is read and written).

    python scripts/figures_ffhq.py RESULTS [--out outputs/figures/ffhq]   # make figures-ffhq RESULTS=DIR
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vsdr.errors import ConfigError
from vsdr.experiments.figures_ffhq import make, table_markdown

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="folder of finished FFHQ jobs (any depth)")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "figures" / "ffhq")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        table = make(a.results.resolve(), a.out.resolve())
    except ConfigError as e:
        print(f"figures_ffhq: {e}", file=sys.stderr)
        return 1
    print(table_markdown(table))
    print(f"wrote {a.out}/table_iv.{{csv,md}}, dp_points.csv and the DP planes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
