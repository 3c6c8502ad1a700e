"""Diffusion posterior sampling (Chung et al. 2023; docs/METHOD.md §6, docs/METHOD.md §8, DPS):
λ = 1, DPS's own step, its step size ζ as the traversal knob (Fig. 11)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vsdr.console import tqdm_options
from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.guidance import likelihood_gradient
from vsdr.diffusion.noise import PerSampleNoise
from vsdr.diffusion.schedule import VPSchedule, check_steps
from vsdr.diffusion.step import ddpm_posterior_mean
from vsdr.diffusion.tweedie import x0_from_eps
from vsdr.diffusion.variance import check_variance, reverse_std
from vsdr.samplers.base import Knob, Sampler, SampleResult, per_sample_knob, signal_shape

#: DPS's step size: the weight of the plain-norm likelihood step
ZETA = Knob("zeta", "ζ", 0.0, float("inf"), what="DPS's step size ζ (0 is unconditional)")


class DPSSampler(Sampler):
    """DPS, one ζ per sample. For ``i = T−1, …, 0`` (``t = i + 1``):

        ε  = ε_θ(x_t, t);   x̂0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t   (clamped to ``clip`` if given)
        x'_{t−1} = μ̃(x_t, x̂0) + σ_t z                         (z = 0 at the last step)
        x_{t−1}  = x'_{t−1} − ζ ∇_{x_t} ‖y − A x̂0‖₂            (one norm per sample)

    ``σ_t² = β̃_t`` (``variance='fixed_small'``, DDPM's posterior variance, DPS's 2D default),
    ``β_t`` (``'beta'``), or the network's learned variance (``'learned_range'``: the model's
    ``eps_and_v(x, i)`` must return a ``v ∈ [−1, 1]``, as a ``NetworkPrior`` of the images'
    ``2C``-channel ADM network does); see ``vsdr.diffusion.variance.reverse_std``.
    ``clip = (lo, hi)`` clamps ``x̂0`` as DPS does on images ([−1, 1]); ``None`` on 2D data.
    ``steps = K`` runs the same loop on ``K`` of the ``T`` times (``VPSchedule.respace``, the
    network called at its own ``t_k``; guided-diffusion's respacing, as ours' ``sampler.steps``):
    one pull ``ζ ∇‖y − A x̂0‖₂`` per step taken, DPS's code at fewer steps.
    Without clipping and with ``variance='fixed_small'`` this is exactly
    ``VarianceScaledSampler(form='dps', variance='fixed_small')`` at λ = 1 (tested).
    """

    name = "dps"
    label = "DPS (λ=1)"
    knobs = (ZETA,)
    has_trajectory = True

    def __init__(self, variance: str = "fixed_small", clip: Sequence[float] | None = None,
                 knob: str | None = None, progress: bool = True, steps: int | None = None,
                 spacing: str = "even"):
        super().__init__(knob, progress)
        check_variance(variance)
        self.steps, self.spacing = check_steps(steps, spacing), spacing
        if clip is not None and (len(clip) != 2 or not float(clip[0]) < float(clip[1])):
            raise ValueError(f"sampler.clip={clip!r} must be null or [lo, hi] with lo < hi")
        self.variance = variance
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))

    def _eps(self, model, x: Tensor, i: int) -> tuple[Tensor, Tensor | None]:
        if self.variance != "learned_range":
            return model.eps(x, i), None
        eps, v = model.eps_and_v(x, i) if hasattr(model, "eps_and_v") else (None, None)
        if v is None:
            raise ValueError("sampler.variance=learned_range needs a network with a learned variance "
                             f"(2C output channels, ADM's learn_sigma); {type(model).__name__} has none")
        return eps, v

    def __call__(self, model, y: Tensor, operator, sigma_y: float,
                 knob: Tensor | Sequence[float], seeds: Sequence[int],
                 schedule: VPSchedule, keep_trajectory: bool = False) -> SampleResult:
        """Sample ``x_0`` for each row of ``y`` with its own ``ζ = knob[b]`` and seed ``seeds[b]``
        (with ``keep_trajectory``, every ``x_t`` from ``x_T`` to ``x_0`` too)."""
        zeta = per_sample_knob(knob, seeds, y.shape[0], "ζ")
        if bool((zeta < 0).any()):
            raise ValueError(f"DPS step sizes ζ={zeta.tolist()} must be >= 0")
        # times: network time of each step; None: the step index itself
        schedule, times = schedule.on_steps(self.steps, self.spacing)
        noise = PerSampleNoise(seeds, signal_shape(y, operator), schedule.T, dtype=y.dtype)
        x = noise.initial().to(y.device)
        zeta_b = per_sample(zeta, x)
        traj = [x.clone()] if keep_trajectory else None
        nfe0 = model.nfe
        for i in tqdm(range(schedule.T - 1, -1, -1), desc="DPS", **tqdm_options(self.progress)):
            sc = schedule.at(i)
            with torch.enable_grad():
                x_in = x.detach().requires_grad_(True)
                eps, v = self._eps(model, x_in, i if times is None else times[i])
                x0_hat = x0_from_eps(x_in, eps, sc["alpha_bar"])
                if self.clip is not None:
                    x0_hat = x0_hat.clamp(*self.clip)
                grad = likelihood_gradient(x_in, x0_hat, y, operator, "dps")
            x_next = ddpm_posterior_mean(x, x0_hat.detach(), sc["alpha_bar"], sc["alpha_bar_prev"],
                                         sc["beta"])
            if i > 0:
                z = noise.next().to(x)
                std = reverse_std(schedule, i, self.variance, None if v is None else v.detach())
                x_next = x_next + std * z
            x = (x_next - zeta_b * grad).detach()
            if traj is not None:
                traj.append(x.clone())
        return SampleResult(x, model.nfe - nfe0, torch.stack(traj) if traj is not None else None)


