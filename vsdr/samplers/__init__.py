"""Samplers: each takes (score model, y, operator, its knob values, per-sample seeds) and
returns samples plus the number of network evaluations. None reads config or writes files.
Each declares its knobs and labels (``vsdr.samplers.base.Sampler``)."""
from vsdr.samplers.base import Knob, Sampler, SampleResult, knob_symbol, sampler_label
from vsdr.samplers.diffpir import DiffPIRSampler
from vsdr.samplers.dps import DPSSampler
from vsdr.samplers.interp import InterpolationSampler
from vsdr.samplers.ours import VarianceScaledSampler
from vsdr.samplers.pscgan import PSCGANSampler

__all__ = ["Knob", "Sampler", "SampleResult", "knob_symbol", "sampler_label", "VarianceScaledSampler",
           "InterpolationSampler", "DPSSampler", "DiffPIRSampler", "PSCGANSampler"]
