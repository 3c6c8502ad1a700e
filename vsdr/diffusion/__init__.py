"""Diffusion building blocks: the noise schedule, Tweedie's estimate, the reverse variance,
the reverse step, guidance, per-sample noise and broadcasting."""
from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.guidance import ZetaTable, likelihood_gradient
from vsdr.diffusion.noise import PerSampleNoise, per_sample_seeds
from vsdr.diffusion.schedule import VPSchedule
from vsdr.diffusion.step import variance_scaled_step
from vsdr.diffusion.tweedie import diffuse, eps_from_x0, x0_from_eps
from vsdr.diffusion.variance import VARIANCES, check_variance, reverse_std

__all__ = [
    "VPSchedule",
    "variance_scaled_step",
    "likelihood_gradient",
    "ZetaTable",
    "PerSampleNoise",
    "per_sample_seeds",
    "per_sample",
    "x0_from_eps",
    "eps_from_x0",
    "diffuse",
    "VARIANCES",
    "check_variance",
    "reverse_std",
]
