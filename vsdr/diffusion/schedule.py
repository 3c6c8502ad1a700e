"""The VP / DDPM noise schedule (docs/METHOD.md §1).

Index convention: the paper's steps are t = 1..T; the code uses ``i = t - 1 = 0..T-1``,
which is also the integer time fed to the network (DPS/guided-diffusion convention).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


def _elementwise_log(table: Tensor, index: list[int]) -> Tensor:
    """``log table[index[k]]`` one 0-dim tensor at a time (the bits of ``float(table[i].log())``,
    which a vectorised ``log`` of the whole table need not reproduce)."""
    return torch.tensor([float(table[k].log()) for k in index], dtype=table.dtype, device=table.device)


#: how ``sampler.steps = K`` picks its K times: ``even`` spacing, or ``quad`` (dense near t = 0)
SPACINGS = ("even", "quad")


def spaced_timesteps(T: int, steps: int, spacing: str = "even") -> list[int]:
    """``steps`` distinct increasing times of ``0 … T−1``, both ends kept (``K = steps``):

    - ``even``: ``t_k = ⌊k (T−1)/(K−1) + ½⌋``;
    - ``quad``: ``t_k = k + ⌊(k/(K−1))² (T−K) + ½⌋``, quadratic in ``k`` like DDIM's "quad"
      skip (``t ∝ k²``), plus ``k`` so that no two times coincide near ``t = 0``."""
    if not 2 <= steps <= T:
        raise ValueError(f"sampler.steps={steps} must lie in [2, diffusion.T={T}]")
    if spacing == "even":
        return [(2 * k * (T - 1) + steps - 1) // (2 * (steps - 1)) for k in range(steps)]
    if spacing == "quad":
        d = (steps - 1) ** 2  # exact integers: t_k = k + ⌊(2 k² (T−K) + d) / (2 d)⌋
        return [k + (2 * k * k * (T - steps) + d) // (2 * d) for k in range(steps)]
    raise ValueError(f"sampler.spacing={spacing!r} is not one of {SPACINGS}")


def check_steps(steps: int | None, spacing: str) -> int | None:
    """A sampler's ``sampler.steps`` and ``sampler.spacing``, checked: ``steps`` is ``None``
    (all T steps) or a whole number >= 2, ``spacing`` one of ``SPACINGS``; ``steps`` as an int."""
    if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps < 2):
        raise ValueError(f"sampler.steps={steps!r} must be null (all T steps) or a whole number >= 2")
    if spacing not in SPACINGS:
        raise ValueError(f"sampler.spacing={spacing!r} is not one of {SPACINGS}")
    return None if steps is None else int(steps)


@dataclass(frozen=True)
class VPSchedule:
    """Linear-β VP schedule: ``β_i`` from ``beta_start`` to ``beta_end``, ``α = 1 − β``,
    ``ᾱ_i = ∏_{s≤i} α_s``. All tables are float64 tensors of length ``T``, computed once
    at construction (treat them as read-only):

    - ``alphas``, ``alpha_bars``, ``alpha_bars_prev`` (``ᾱ_{i−1}``, ``ᾱ_{−1} = 1``),
    - ``posterior_variances`` ``β̃_i = β_i (1 − ᾱ_{i−1}) / (1 − ᾱ_i)`` (DDPM's; 0 at i = 0),
    - ``sqrt_betas``, ``sqrt_posterior_variances``: the reverse σ_i of ``variance='beta'`` and
      ``'fixed_small'``,
    - ``log_betas`` and ``posterior_log_variance_clipped`` (``log β̃_i`` with ``β̃_0``
      replaced by ``β̃_1``, guided-diffusion's): the ends of ``'learned_range'``.

    ``at(i)`` gives step ``i``'s scalars as Python floats. See ``vsdr.diffusion.variance`` for
    the reverse σ_i of each variance option.
    """

    betas: Tensor
    alphas: Tensor = field(init=False, repr=False, compare=False)
    alpha_bars: Tensor = field(init=False, repr=False, compare=False)
    alpha_bars_prev: Tensor = field(init=False, repr=False, compare=False)
    posterior_variances: Tensor = field(init=False, repr=False, compare=False)
    sqrt_betas: Tensor = field(init=False, repr=False, compare=False)
    sqrt_posterior_variances: Tensor = field(init=False, repr=False, compare=False)
    log_betas: Tensor = field(init=False, repr=False, compare=False)
    posterior_log_variance_clipped: Tensor = field(init=False, repr=False, compare=False)
    _steps: tuple[dict[str, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        betas = self.betas
        alphas = 1.0 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        alpha_bars_prev = torch.cat([alpha_bars.new_ones(1), alpha_bars[:-1]])
        posterior = betas * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)
        T = int(betas.shape[0])
        clipped = [1 if i == 0 and T > 1 else i for i in range(T)]
        tables = {
            "alphas": alphas,
            "alpha_bars": alpha_bars,
            "alpha_bars_prev": alpha_bars_prev,
            "posterior_variances": posterior,
            "sqrt_betas": betas.sqrt(),
            "sqrt_posterior_variances": posterior.sqrt(),
            "log_betas": _elementwise_log(betas, list(range(T))),
            "posterior_log_variance_clipped": _elementwise_log(posterior, clipped),
        }
        for name, value in tables.items():
            object.__setattr__(self, name, value)
        columns = zip(betas.tolist(), alphas.tolist(), alpha_bars.tolist(), alpha_bars_prev.tolist())
        object.__setattr__(self, "_steps", tuple(
            {"beta": b, "alpha": a, "alpha_bar": ab, "alpha_bar_prev": abp}
            for b, a, ab, abp in columns
        ))

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> VPSchedule:
        if T < 1:
            raise ValueError(f"diffusion.T={T}: the schedule needs at least one step")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(
                f"diffusion betas ({beta_start}, {beta_end}) must satisfy 0 < start <= end < 1"
            )
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def from_alpha_bars(cls, alpha_bars: Tensor) -> VPSchedule:
        """The schedule whose ``ᾱ`` is ``alpha_bars`` (decreasing, in (0, 1]): ``β_i = 1 −
        ᾱ_i/ᾱ_{i−1}`` (``ᾱ_{−1} = 1``), so ``cumprod(1 − β)`` gives ``alpha_bars`` back to
        rounding (a pretrained model's own table: ``vsdr.models.diffusers_unet``)."""
        ab = alpha_bars.to(torch.float64)
        return cls(1.0 - ab / torch.cat([ab.new_ones(1), ab[:-1]]))

    def respace(self, steps: int, spacing: str = "even") -> tuple[VPSchedule, list[int]]:
        """The schedule on ``steps`` of the ``T`` times, ``t_k = spaced_timesteps(T, steps,
        spacing)[k]``,
        and that map ``k → t_k`` (the network's time index of sub-step ``k``). Its betas are

            β'_k = 1 − ᾱ_{t_k} / ᾱ_{t_{k−1}}      (ᾱ_{t_{−1}} = 1),

        so its ``ᾱ'_k = ∏_{j≤k} (1 − β'_j) = ᾱ_{t_k}``: the same marginals at the kept times,
        and every table (``α'``, ``β̃'``, the variance options) follows from ``β'`` as for any
        schedule (guided-diffusion's ``space_timesteps`` with one section does the same)."""
        times = spaced_timesteps(self.T, steps, spacing)
        return VPSchedule.from_alpha_bars(self.alpha_bars[times]), times

    def on_steps(self, steps: int | None, spacing: str = "even") -> tuple[VPSchedule, list[int] | None]:
        """The schedule a ``steps``-step sampler runs on and the network time of each of its
        steps: ``respace(steps, spacing)``, or this schedule and ``None`` (step ``i`` at time
        ``i``) when ``steps`` is ``None`` or ``T``."""
        if steps is None or steps == self.T:
            return self, None
        return self.respace(steps, spacing)

    @property
    def T(self) -> int:
        return int(self.betas.shape[0])

    def at(self, i: int) -> dict[str, float]:
        """Scalars of step ``i`` as Python floats: beta, alpha, alpha_bar, alpha_bar_prev
        (a fresh dict; the values are the tables' entries exactly)."""
        return dict(self._steps[i])
