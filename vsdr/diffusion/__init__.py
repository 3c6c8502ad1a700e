"""Diffusion building blocks: the noise schedule, the reverse step, guidance, per-sample noise."""
from vsdr.diffusion.guidance import ZetaTable, likelihood_gradient
from vsdr.diffusion.noise import PerSampleNoise, per_sample_seeds
from vsdr.diffusion.schedule import VPSchedule
from vsdr.diffusion.step import variance_scaled_step

__all__ = [
    "VPSchedule",
    "variance_scaled_step",
    "likelihood_gradient",
    "ZetaTable",
    "PerSampleNoise",
    "per_sample_seeds",
]
