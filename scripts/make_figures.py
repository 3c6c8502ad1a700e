"""Regenerate every paper figure this machine can make: one `run.py experiment=NAME` job per
figure, each into outputs/figures/NAME/ (its PNGs, CSVs and metrics.json)."""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: experiment config -> what it reproduces
FIGURES = {
    "mixture_dp": "Figs. 1-3: mixture prior/posterior, trajectories per λ, W2 and KL against MSE",
    "gaussian_theory": "Theorems 1-2 on a 16-D Gaussian: MSE/D* and W2 against λ, optimal DP curve",
    "pinwheel_dp": "Figs. 4-5 (ours): pinwheel reconstructions per λ and the DP curve",
    "images_small": "Fig. 7 at CPU scale: digits 16², Gaussian deblur, ours over λ (grid, DP plot)",
    "images_small_sr": "Fig. 7 at CPU scale: digits 16², ×4 super-resolution, ours over λ",
}
#: figures that are an experiment with overrides (default: `experiment=NAME`)
OVERRIDES = {
    "images_small_sr": ["experiment=images_small", "operator=super_resolution"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"experiments to run (default: all of {list(FIGURES)})")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "figures"))
    args = parser.parse_args()
    failed = []
    for name in args.names or list(FIGURES):
        t0 = time.perf_counter()
        print(f"== {name}: {FIGURES.get(name, '')}", flush=True)
        overrides = OVERRIDES.get(name, [f"experiment={name}"])
        res = subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides,
                              f"hydra.run.dir={args.out}/{name}", "progress=false"], cwd=ROOT)
        print(f"== {name}: {'ok' if res.returncode == 0 else 'FAILED'} in "
              f"{time.perf_counter() - t0:.0f} s -> {args.out}/{name}", flush=True)
        if res.returncode:
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
