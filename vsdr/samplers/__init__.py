"""Samplers: each takes (score model, y, operator, its knob values, per-sample seeds) and
returns samples plus the number of network evaluations. None reads config or writes files."""
from vsdr.samplers.base import SampleResult
from vsdr.samplers.diffpir import DiffPIRSampler
from vsdr.samplers.dps import DPSSampler
from vsdr.samplers.interp import InterpolationSampler
from vsdr.samplers.ours import VarianceScaledSampler
from vsdr.samplers.pscgan import PSCGANSampler

__all__ = ["SampleResult", "VarianceScaledSampler", "InterpolationSampler", "DPSSampler",
           "DiffPIRSampler", "PSCGANSampler"]
