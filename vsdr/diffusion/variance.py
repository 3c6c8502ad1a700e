"""The reverse step's noise level σ_t, one function for every choice (docs/METHOD.md §2, §7).

``variance`` names, after diffusers' ``variance_type``:

- ``'beta'``: ``σ_t² = β_t``, the paper's choice (diffusers: ``fixed_large``);
- ``'fixed_small'``: ``σ_t² = β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t)``, DDPM's posterior variance
  (DPS's 2D default);
- ``'learned_range'``: the network's own per-pixel σ_t (guided-diffusion's ``learned_range``,
  a ``2C``-channel ADM ``learn_sigma`` network): with ``frac = (v + 1)/2``,
  ``log σ_t² = frac · log β_t + (1 − frac) · log β̃_t``, ``β̃``'s first entry (0) replaced by
  its second (``posterior_log_variance_clipped``).

The names ``'posterior'`` and ``'learned'`` were renamed to ``'fixed_small'`` and
``'learned_range'``; they raise a ``ValueError`` that says so.
"""
from __future__ import annotations

from torch import Tensor

from vsdr.diffusion.schedule import VPSchedule

#: the reverse variances a sampler accepts (``sampler.variance``)
VARIANCES = ("beta", "fixed_small", "learned_range")

#: old name → (new name, what it is), for the error an old command line gets
RENAMED = {
    "posterior": ("fixed_small", "DDPM's β̃_t"),
    "learned": ("learned_range", "the network's learned variance"),
}


def renamed_variance(variance: str) -> str | None:
    """The sentence for a renamed ``sampler.variance`` (``None`` for any other value)."""
    if variance not in RENAMED:
        return None
    new, what = RENAMED[variance]
    return f"sampler.variance={variance!r} is now {new!r} ({what})"


def check_variance(variance: str) -> str:
    """``variance`` if it is one of ``VARIANCES``; a ``ValueError`` otherwise, naming the new
    name of a renamed option."""
    if variance in VARIANCES:
        return variance
    if variance in RENAMED:
        raise ValueError(renamed_variance(variance))
    raise ValueError(f"sampler.variance={variance!r} is not one of {VARIANCES}")


def interpolate_log_variance(v: Tensor, log_beta: float | Tensor,
                             log_beta_tilde: float | Tensor) -> Tensor:
    """``frac · log β + (1 − frac) · log β̃`` with ``frac = (v + 1)/2`` (``v ∈ [−1, 1]``):
    the ``learned_range`` formula, shared with the training bound (``vsdr.training.vlb``)."""
    frac = (v + 1.0) / 2.0
    return frac * log_beta + (1.0 - frac) * log_beta_tilde


def learned_range_log_variance(schedule: VPSchedule, i: int, v: Tensor) -> Tensor:
    """``log σ_i²`` of ``variance='learned_range'`` at step ``i`` for the network's ``v``."""
    return interpolate_log_variance(v, float(schedule.log_betas[i]),
                                    float(schedule.posterior_log_variance_clipped[i]))


def reverse_std(schedule: VPSchedule, i: int, variance: str,
                v: Tensor | None = None) -> float | Tensor:
    """``σ_i`` of the reverse transition at step ``i`` (``t = i + 1``): a Python float
    ``√β_i`` (``'beta'``) or ``√β̃_i`` (``'fixed_small'``, 0 at ``i = 0``), or for
    ``'learned_range'`` a tensor shaped like the network's variance channels ``v``."""
    if variance == "beta":
        return float(schedule.sqrt_betas[i])
    if variance == "fixed_small":
        return float(schedule.sqrt_posterior_variances[i])
    if variance == "learned_range":
        if v is None:
            raise ValueError("variance='learned_range' needs the network's variance channels v")
        return (0.5 * learned_range_log_variance(schedule, i, v)).exp()
    check_variance(variance)
    raise AssertionError(variance)  # unreachable: check_variance raised
