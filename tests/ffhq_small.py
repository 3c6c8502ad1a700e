"""A CPU-size stand-in for the FFHQ set-up, shared by tests: two random 64² test images and a
random-weight ``adm_small`` checkpoint (the same ADM architecture, strictly loadable), and the
overrides that run an ``ffhq_*`` experiment on them with T = 3 and stand-in metrics."""
from __future__ import annotations

from pathlib import Path

import torch
from conftest import compose_cfg

from vsdr.data.images import save_images


def make_small_ffhq(root: Path, n_images: int = 2) -> Path:
    """Write ``root/test/*.png`` and ``root/adm_small.pt``; return ``root``."""
    from vsdr.diffusion import VPSchedule
    from vsdr.experiments.prior import build_network

    g = torch.Generator().manual_seed(0)
    save_images(torch.rand(n_images, 3, 64, 64, generator=g) * 2 - 1, root / "test")
    cfg = compose_cfg(["experiment=ffhq_deblur", "model=adm_small"])
    torch.manual_seed(0)
    torch.save(build_network(cfg, VPSchedule.linear(T=3)).state_dict(), root / "adm_small.pt")
    return root


def small_overrides(root: Path, experiment: str = "ffhq_deblur", T: int = 3) -> list[str]:
    """The overrides that run ``experiment`` at CPU size on ``make_small_ffhq(root)``, on a
    ``T``-step schedule (DiffPIR: 3 evaluations)."""
    out = [f"experiment={experiment}", "model=adm_small", f"model.ckpt={root / 'adm_small.pt'}",
           "dataset.image_size=64", f"dataset.root={root / 'test'}", f"diffusion.T={T}",
           "image_metrics.standin=true", "logger=none", "progress=false", "outputs.images=false"]
    if "diffpir" in experiment:
        out.append("sampler.steps=3")
    return out
