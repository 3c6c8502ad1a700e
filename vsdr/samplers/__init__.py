"""Samplers: each takes (score model, y, operator, its knob values, per-sample seeds) and
returns samples plus the number of network evaluations. None reads config or writes files."""
from vsdr.samplers.base import SampleResult
from vsdr.samplers.ours import VarianceScaledSampler

__all__ = ["SampleResult", "VarianceScaledSampler"]
