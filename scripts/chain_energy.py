"""Diagnostic for experiment=images_small: the energy E[x_t²] of ours's chain (learned
variance, no guidance) for λ = 0, 0.25, 1 against the forward marginal ᾱ E[x0²] + 1 − ᾱ
that the network was trained on. Needs the cached digits network (run the experiment first).

    python scripts/chain_energy.py
"""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from vsdr.data.images import ImageTrainSet
from vsdr.diffusion import VPSchedule, per_sample_seeds
from vsdr.models import ADMUNet, NetworkPrior
from vsdr.models.checkpoint import read_checkpoint, state_dict_of
from vsdr.operators import Identity
from vsdr.samplers import VarianceScaledSampler

ROOT = Path(__file__).resolve().parents[1]

LAMS = (0.0, 0.25, 1.0)
CHAINS = 8
REPORT_STEPS = (90, 70, 50, 30, 10, 0)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
                            ).parse_args(argv)
    torch.set_num_threads(1)
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/model/adm_digits.yaml"))
    for k in ("_target_", "name", "ckpt", "preconditioning"):
        cfg.pop(k)
    ckpts = sorted(glob.glob(str(ROOT / "outputs/checkpoints/digits-adm_digits-*.pt")))
    if not ckpts:
        print("no cached digits network: run `python run.py experiment=images_small` first")
        return 1
    net = ADMUNet(**cfg)
    net.load_state_dict(state_dict_of(read_checkpoint(ckpts[-1], "cached checkpoint")))
    net.eval().requires_grad_(False)
    schedule = VPSchedule.linear(100, 1e-3, 0.2)
    x0 = ImageTrainSet(ROOT / "outputs/data/digits16/train", 16).sample(1500)
    m2 = float(x0.pow(2).mean())
    lams = [lam for lam in LAMS for _ in range(CHAINS)]
    sampler = VarianceScaledSampler(variance="learned_range", clip_x0=True, progress=False,
                                    zeta={"lam": [0, 1], "value": [0.0, 0.0]})
    energy: dict[int, list[float]] = {}

    def callback(i: int, x: torch.Tensor) -> None:
        if i in REPORT_STEPS:
            energy[i] = [float(x[k * CHAINS:(k + 1) * CHAINS].pow(2).mean()) for k in range(len(LAMS))]

    y = torch.zeros(len(lams), 3, 16, 16)
    sampler(NetworkPrior(net, schedule), y, Identity(), 1.0, lams,
            per_sample_seeds(0, range(len(lams))), schedule, callback=callback)
    ab = schedule.alpha_bars
    print(f"E[x0²] of the training digits: {m2:.4f}")
    for i in sorted(energy, reverse=True):
        marginal = float(ab[i - 1]) * m2 + 1 - float(ab[i - 1]) if i > 0 else m2
        cols = "  ".join(f"λ={lam:g}: {e:.4f}" for lam, e in zip(LAMS, energy[i]))
        print(f"after step i={i:3d}: E[x²] {cols}   forward marginal {marginal:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
