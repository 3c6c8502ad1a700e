"""The variance-scaled sampler: the paper's Algorithm 1 (METHOD.md §2)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vsdr.diffusion.checks import check_finite
from vsdr.diffusion.guidance import FORMS, ZetaTable, likelihood_gradient
from vsdr.diffusion.noise import PerSampleNoise
from vsdr.diffusion.schedule import VPSchedule
from vsdr.diffusion.step import variance_scaled_step
from vsdr.samplers.base import SampleResult


def signal_shape(y: Tensor, operator) -> tuple[int, ...]:
    """The shape of one ``x0`` that explains ``y``: that of ``Aᵀ y`` (``A`` may be non-square)."""
    return tuple(operator.adjoint(y[:1]).shape[1:])


class VarianceScaledSampler:
    """Algorithm 1, variance-scaled DPS. For ``i = T−1, …, 0`` (``t = i + 1``):

        ε  = ε_θ(x_t, t);  s = −ε/√(1−ᾱ_t);  x̂0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t
        paper form: score = s + ζ(λ) ĉ,   ĉ = −(1/σ_y²) ∇_{x_t} ‖y − A x̂0‖²
        dps form:   score = s − ζ(λ) (√α_t/β_t) ∇_{x_t} ‖y − A x̂0‖₂
        x_{t−1} = (x_t + β_t score)/√α_t + √λ σ_t z          (eq. 12; z = 0 at the last step)

    The ``dps`` form written as a score is exactly DPS's update
    ``x_{t−1} = x'_{t−1} − ζ ∇‖y − A x̂0‖₂`` applied after the unconditional step.
    A conditional score model (``is_conditional``) replaces the guided score by its exact one.

    Each sample carries its own λ, so several λ run side by side in one batch; the graph
    through the network is built and freed inside every step (memory flat in ``T``).
    """

    knob = "lam"

    def __init__(
        self,
        form: str = "paper",
        zeta: dict | None = None,
        variance: str = "beta",
        progress: bool = True,
    ):
        if form not in FORMS:
            raise ValueError(f"sampler.form={form!r} is not one of {FORMS}")
        zeta = dict(zeta or {"lam": [0.0, 1.0], "value": [0.5, 0.5]})
        self.form = form
        self.zeta = ZetaTable(zeta["lam"], zeta["value"])
        self.variance = variance
        self.progress = progress

    def conditional_score(self, model, x: Tensor, i: int, y: Tensor, operator, sigma_y: float,
                          zeta: Tensor, schedule: VPSchedule) -> Tensor:
        """``∇ log p_t(x_t | y)`` estimate at step ``i``, detached from any graph."""
        if getattr(model, "is_conditional", False):
            with torch.no_grad():
                return model.score(x, i, y)
        ab = float(schedule.alpha_bars[i])
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            eps = model.eps(x_in, i)
            x0_hat = (x_in - (1.0 - ab) ** 0.5 * eps) / ab**0.5
            grad = likelihood_gradient(x_in, x0_hat, y, operator, self.form)
        score = -eps.detach() / (1.0 - ab) ** 0.5
        zeta_b = zeta.to(x).view(-1, *([1] * (x.dim() - 1)))
        if self.form == "paper":
            return score - zeta_b * grad / sigma_y**2
        beta, alpha = float(schedule.betas[i]), float(schedule.alphas[i])
        return score - zeta_b * (alpha**0.5 / beta) * grad

    def __call__(
        self,
        model,
        y: Tensor,
        operator,
        sigma_y: float,
        knob: Tensor | Sequence[float],
        seeds: Sequence[int],
        schedule: VPSchedule,
        x_T: Tensor | None = None,
        keep_trajectory: bool = False,
        callback: Callable[[int, Tensor], None] | None = None,
    ):
        """Sample ``x_0`` for each row of ``y`` with its own ``λ = knob[b]`` and seed ``seeds[b]``."""

        lam = torch.as_tensor(knob, dtype=torch.float64).reshape(-1)
        B = y.shape[0]
        if lam.numel() != B or len(seeds) != B:
            raise ValueError(f"need one λ and one seed per sample: {lam.numel()}, {len(seeds)}, {B}")
        shape = signal_shape(y, operator) if x_T is None else x_T.shape[1:]
        noise = PerSampleNoise(seeds, shape, schedule.T, dtype=y.dtype)
        x = noise.initial() if x_T is None else x_T.clone()
        x = x.to(y.device)
        zeta = self.zeta(lam)
        sigmas = schedule.reverse_std(self.variance)
        lam_x = lam.to(x)
        traj = [x.clone()] if keep_trajectory else None
        nfe0 = model.nfe
        steps = range(schedule.T - 1, -1, -1)
        for i in tqdm(steps, desc="sampling", disable=not self.progress, leave=False):
            score = self.conditional_score(model, x, i, y, operator, sigma_y, zeta, schedule)
            z = noise.next().to(x) if i > 0 else None
            x = variance_scaled_step(x, score, float(schedule.betas[i]), float(schedule.alphas[i]),
                                     float(sigmas[i]), lam_x, z).detach()
            check_finite(x, i, schedule.T, lam, what="x_{t-1}")
            if traj is not None:
                traj.append(x.clone())
            if callback is not None:
                callback(i, x)
        return SampleResult(x, model.nfe - nfe0, torch.stack(traj) if traj is not None else None)
