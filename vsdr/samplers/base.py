"""What every sampler declares and returns.

A sampler is a class derived from ``Sampler``. It declares its knobs (``knobs``: name, range,
whole numbers or not, plot symbol, what it is), its name in result tables (``name``) and on
plots (``label``), and whether its likelihood term divides by σ_y² (``needs_positive_sigma``).
Validation, plot labels and the figure scripts read these declarations; defining the class
registers it (``Sampler.registry``), so a new sampler is its module plus its YAML.

Call signature (every sampler)::

    sampler(model, y, operator, sigma_y, knob, seeds, schedule, keep_trajectory=False)
        -> SampleResult

``knob``: one value per row of ``y`` of the swept knob (``sampler.knob``); ``seeds``: one seed
per row. A sampler never reads config or writes files.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor


@dataclass
class SampleResult:
    """``samples``: ``(B, ...)``; ``nfe``: network evaluations (one per forward pass of the
    whole batch); ``trajectory``: optional ``(steps+1, B, ...)`` states from ``x_T`` to ``x_0``."""

    samples: Tensor
    nfe: int
    trajectory: Tensor | None = None


@dataclass(frozen=True)
class Knob:
    """A traversal knob: its config name, plot symbol, allowed range ``[low, high]`` (``high``
    may be ``inf``), whether only whole numbers fit, and what it is (for messages)."""

    name: str
    symbol: str
    low: float
    high: float
    integer: bool = False
    what: str = ""

    @property
    def allowed(self) -> str:
        """The range in words: ``lie in [0, 1]``, ``be finite and >= 0``, ``be a whole number >= 1``."""
        if self.integer:
            return f"be a whole number >= {self.low:g}"
        if math.isinf(self.high):
            return f"be finite and >= {self.low:g}"
        return f"lie in [{self.low:g}, {self.high:g}]"

    def fits(self, x: float) -> bool:
        return (self.low <= x <= self.high and not math.isinf(x)
                and (not self.integer or x == math.floor(x)))


class Sampler:
    """Base class of the samplers. Subclasses set ``name``, ``label``, ``knobs`` (the first is
    the default sweep) and implement ``__call__`` with the module docstring's signature."""

    #: every sampler class by ``name`` (filled when a subclass is defined)
    registry: ClassVar[dict[str, type[Sampler]]] = {}

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    knobs: ClassVar[tuple[Knob, ...]] = ()
    #: the likelihood term divides by σ_y²: noise.sigma = 0 does not fit
    needs_positive_sigma: ClassVar[bool] = False
    #: the knob whose values come from the top-level ``lam`` rather than ``sampler.values``
    uses_lam: ClassVar[bool] = False
    #: the sampler brings its own trained networks (``sampler.gan``: PSCGAN's) and takes no score
    own_networks: ClassVar[bool] = False
    #: ``keep_trajectory=True`` returns the chain's states (``SampleResult.trajectory``)
    has_trajectory: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            Sampler.registry[cls.name] = cls

    def __init__(self, knob: str | None = None, progress: bool = True):
        names = [k.name for k in self.knobs]
        knob = names[0] if knob is None else knob
        if knob not in names:
            raise ValueError(f"sampler.knob={knob!r} is not one of sampler={self.name}'s knobs {names}")
        self.knob = knob
        self.progress = bool(progress)

    @classmethod
    def knob_named(cls, name: str) -> Knob:
        return next(k for k in cls.knobs if k.name == name)

    def __call__(self, model, y: Tensor, operator, sigma_y: float, knob: Tensor | Sequence[float],
                 seeds: Sequence[int], schedule, keep_trajectory: bool = False) -> SampleResult:
        raise NotImplementedError


def knob_symbol(name: str) -> str:
    """The plot symbol of knob ``name`` as some registered sampler declares it (else ``name``)."""
    for cls in Sampler.registry.values():
        for k in cls.knobs:
            if k.name == name:
                return k.symbol
    return name


def sampler_label(name: str) -> str:
    """The plot label of sampler ``name`` (else ``name``)."""
    cls = Sampler.registry.get(name)
    return cls.label if cls is not None and cls.label else name


def per_sample_knob(knob: Tensor | Sequence[float], seeds: Sequence[int], batch: int,
                    name: str) -> Tensor:
    """The knob as one float64 value per sample, checked against the batch and the seeds."""
    values = torch.as_tensor(knob, dtype=torch.float64).reshape(-1)
    if values.numel() != batch or len(seeds) != batch:
        raise ValueError(f"need one {name} and one seed per sample: "
                         f"{values.numel()}, {len(seeds)}, {batch}")
    return values


def signal_shape(y: Tensor, operator) -> tuple[int, ...]:
    """The shape of one ``x0`` that explains ``y``: that of ``Aᵀ y`` (``A`` may be non-square)."""
    return tuple(operator.adjoint(y[:1]).shape[1:])
