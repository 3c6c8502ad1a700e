"""The variance-scaled sampler: the paper's Algorithm 1 (docs/METHOD.md §2)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vsdr.console import tqdm_options
from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.checks import check_finite
from vsdr.diffusion.guidance import (
    FORMS,
    ZetaTable,
    check_residual,
    likelihood_gradient,
    pigdm_r2,
    posterior_mean_shift,
)
from vsdr.diffusion.noise import PerSampleNoise, chain_seeds, probe_seeds
from vsdr.diffusion.schedule import VPSchedule, check_steps
from vsdr.diffusion.step import (
    jump_covariance,
    marginal_step,
    psd_sqrt,
    trace_jump_variance,
    variance_scaled_step,
)
from vsdr.diffusion.tweedie import x0_from_eps
from vsdr.diffusion.variance import check_variance, reverse_std
from vsdr.samplers.base import Knob, Sampler, SampleResult, per_sample_knob, signal_shape

#: how the ``dps`` form's pull scales on a respaced schedule (``sampler.dps_scale``)
DPS_SCALES = ("step", "time")

#: the reverse step (``sampler.step_rule``): eq. 12 with ``σ'² = β'``, eq. 12's mean with the
#: jump's own covariance, or with that covariance's trace (isotropic; docs/METHOD.md §2, "Few
#: steps that keep the theory")
STEP_RULES = ("eq12", "marginal", "trace")

#: ``step_rule='marginal'`` forms a ``d × d`` covariance per sample: points only
MARGINAL_MAX_DIM = 64

#: the paper's knob: the variance scale of every reverse step
LAM = Knob("lam", "λ", 0.0, 1.0,
           what="the variance scale of every reverse step (0: MMSE, 1: posterior sample)")


class VarianceScaledSampler(Sampler):
    """Algorithm 1, variance-scaled DPS. For ``i = T−1, …, 0`` (``t = i + 1``):

        ε  = ε_θ(x_t, t);  s = −ε/√(1−ᾱ_t);  x̂0 = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t
        paper form: score = s + ζ(λ) ĉ,   ĉ = −(1/σ_y²) ∇_{x_t} ‖y − A x̂0‖²
                    (``residual='mean'``: ‖y − A x̂0‖²/m, m the entries of y; docs/METHOD.md §2)
        dps form:   score = s − ζ(λ) (√α_t/β_t) ∇_{x_t} ‖y − A x̂0‖₂
        pigdm form: score = s + 2ζ(λ) (∂x̂0/∂x_t)ᵀ Aᵀ (r_t² A Aᵀ + σ_y² I)⁻¹ (y − A x̂0)
                    (ΠGDM; r_t² = s²(1−ᾱ_t)/(1−ᾱ_t+s²ᾱ_t), s² = ``pigdm_prior_var``;
                    ζ = ½ is Bayes' weight, r_t² = 0 gives the paper form; docs/METHOD.md §2)
        pigdm_iso form: score = (√ᾱ_t x̂0_y − x_t)/(1 − ᾱ_t),
                    x̂0_y = x̂0 + 2ζ(λ) r_t² Aᵀ (r_t² A Aᵀ + σ_y² I)⁻¹ (y − A x̂0)
                    (pigdm with the Jacobian of a N(μ, s² I) prior: no network gradient;
                    ``isotropic_pigdm_score``)
        x_{t−1} = (x_t + β_t score)/√α_t + √λ σ_t z          (eq. 12; z = 0 at the last step)

    With ``steps = K`` (``None``: all ``T``) the same loop runs on ``K`` of the ``T`` times,
    ``t_0 = 0 < … < t_{K−1} = T−1`` (``spacing``: ``even``, or ``quad``, denser near
    ``t = 0``; ``vsdr.diffusion.schedule.spaced_timesteps``), with the respaced schedule
    (``VPSchedule.respace``): ``β_t``, ``α_t``, ``ᾱ_t`` and ``σ_t`` above become
    ``β'_k = 1 − ᾱ_{t_k}/ᾱ_{t_{k−1}}``, ``α'_k = 1 − β'_k``, ``ᾱ_{t_k}`` and ``σ'_k``, and the
    network is called at its own time ``t_k``. λ = 0 is the deterministic mean path on the
    sub-sequence, λ = 1 ancestral (DDPM) sampling with the sub-sequence's β' (docs/METHOD.md §2).
    The ``dps`` form's ``√α_t/β_t`` is the respaced one with ``dps_scale='step'`` (DPS's code:
    one pull ``ζ ∇‖y − A x̂0‖₂`` per step taken, so K steps pull K times) or the original
    schedule's at ``t_k`` with ``dps_scale='time'`` (the term read as a score of the T-step
    chain: a step that spans ``t_{k−1} < t ≤ t_k`` pulls ``ζ (β'_k/β_{t_k}) √(α_{t_k}/α'_k)``
    times the gradient, about ``t_k − t_{k−1}`` pulls). Both are the same chain when K = T.

    ``σ_t`` (``vsdr.diffusion.variance.reverse_std``): ``variance='beta'`` √β_t (the paper),
    ``'fixed_small'`` √β̃_t (DDPM's posterior variance), ``'learned_range'`` the network's own
    per-pixel σ_t of a ``2C``-channel (ADM ``learn_sigma``) network,
    ``log σ_t² = frac·log β_t + (1−frac)·log β̃_t``, ``frac = (v+1)/2`` (docs/METHOD.md §7,
    docs/METHOD.md §8, DPS); the noise is then ``√λ`` times that σ. ``clip_x0`` clips ``x̂0`` to
    ``[−1, 1]`` (images).

    The ``dps`` form written as a score is exactly DPS's update
    ``x_{t−1} = x'_{t−1} − ζ ∇‖y − A x̂0‖₂`` applied after the unconditional step.
    A conditional score model (``is_conditional``) replaces the guided score by its exact one.

    ``step_rule='marginal'`` keeps the mean and replaces ``σ'_k² I`` by the covariance of the
    jump itself, ``Cov[x_s | x_t] = (β'/α')(I + β' H_t)`` with ``H_t = ∇ log p_t(x_t|y)``'s
    Jacobian: the exact score's (an exact conditional model's ``score_jacobian``) or, for a
    network with the paper form, ``(√ᾱ J − I)/(1 − ᾱ) − 2ζ w JᵀAᵀA J`` (``J = ∂x̂0/∂x_t`` by
    ``d`` backward passes; the likelihood's Gauss–Newton Hessian, ``w`` the residual's weight).
    For Gaussian data and the exact score each step maps ``N(√ᾱ_t μ, λ V_t)`` onto
    ``N(√ᾱ_s μ, λ V_s)`` exactly, for any K (docs/METHOD.md §2).

    ``step_rule='trace'`` (any size, images included) keeps the mean and takes the isotropic
    ``σ'² I`` with the jump covariance's trace, ``σ'² = (β'/α')(1 + β' tr(H_t)/d)``
    (``trace_jump_variance``, clipped to ``[β̃', β'/α']``), noise at every step; it replaces
    ``variance``. ``tr(H_t)`` is the exact model's, or for a network one Hutchinson probe per step
    (``network_trace``: two more backward passes). Exact when ``H_t ∝ I``; on the 16-D Gaussian of
    docs/RESULTS.md §21 it is within 2.2 % of Theorem 1 at K = 20.

    ``average = N``: each sample is the mean of ``N`` chains at its λ, chain ``j`` from
    ``chain_seeds`` of the sample's seed (chain 0 is the sample's own chain); ``nfe`` counts the
    network evaluations of all ``N`` chains.

    Each sample carries its own λ, so several λ run side by side in one batch; the graph
    through the network is built and freed inside every step (memory flat in ``T``).
    """

    name = "ours"
    label = "ours"
    knobs = (LAM,)
    needs_positive_sigma = True
    uses_lam = True
    has_trajectory = True

    def __init__(
        self,
        form: str = "paper",
        zeta: dict | None = None,
        variance: str = "beta",
        clip_x0: bool = False,
        residual: str = "sum",
        knob: str | None = None,
        progress: bool = True,
        steps: int | None = None,
        spacing: str = "even",
        pigdm_prior_var: float = 1.0,
        dps_scale: str = "step",
        step_rule: str = "eq12",
        average: int = 1,
    ):
        super().__init__(knob, progress)
        if step_rule not in STEP_RULES:
            raise ValueError(f"sampler.step_rule={step_rule!r} is not one of {STEP_RULES}")
        if step_rule == "marginal" and (form != "paper" or variance != "beta" or clip_x0):
            raise ValueError("sampler.step_rule=marginal takes the jump's own covariance with the "
                             "paper form: it needs sampler.form=paper, sampler.variance=beta and "
                             "sampler.clip_x0=false")
        if step_rule == "trace" and form == "pigdm":
            raise ValueError("sampler.step_rule=trace estimates the score's curvature for the paper "
                             "and dps forms; sampler.form=pigdm has no such estimate")
        self.step_rule = step_rule
        if isinstance(average, bool) or int(average) != average or average < 1:
            raise ValueError(f"sampler.average={average!r} must be a whole number >= 1")
        self.average = int(average)
        self.steps, self.spacing = check_steps(steps, spacing), spacing
        if dps_scale not in DPS_SCALES:
            raise ValueError(f"sampler.dps_scale={dps_scale!r} is not one of {DPS_SCALES}")
        self.dps_scale = dps_scale
        if form not in FORMS:
            raise ValueError(f"sampler.form={form!r} is not one of {FORMS}")
        check_residual(form, residual)
        if isinstance(pigdm_prior_var, bool) or not float(pigdm_prior_var) > 0:
            raise ValueError(f"sampler.pigdm_prior_var={pigdm_prior_var!r} must be a number > 0")
        self.pigdm_prior_var = float(pigdm_prior_var)
        self.residual = residual
        check_variance(variance)
        zeta = dict(zeta or {"lam": [0.0, 1.0], "value": [0.5, 0.5]})
        self.form = form
        self.zeta = ZetaTable(zeta["lam"], zeta["value"])
        self.variance = variance
        self.clip_x0 = bool(clip_x0)

    def conditional_score(self, model, x: Tensor, i: int, y: Tensor, operator, sigma_y: float,
                          zeta: Tensor, schedule: VPSchedule) -> Tensor:
        """``∇ log p_t(x_t | y)`` estimate at step ``i``, detached from any graph."""
        return self.score_and_v(model, x, i, y, operator, sigma_y, zeta, schedule)[0]

    def score_and_v(self, model, x: Tensor, i: int, y: Tensor, operator, sigma_y: float,
                    zeta: Tensor, schedule: VPSchedule, t: int | None = None,
                    original: VPSchedule | None = None, hessian: bool = False,
                    probes: tuple[Tensor, Tensor] | None = None,
                    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The conditional score, with ``variance='learned_range'`` the network's variance
        channels ``v`` (detached; ``None`` otherwise) and, with ``hessian``, the score's Jacobian
        ``H_t`` (``(B, d, d)``: the exact model's ``score_jacobian``, or ``network_hessian``; ``None``
        otherwise). With ``clip_x0`` Tweedie's ``x̂0`` is
        clipped to ``[−1, 1]`` (as DPS does) and the prior score is the one of the clipped
        estimate, ``s = (√ᾱ_t x̂0 − x_t)/(1 − ᾱ_t)``; the likelihood term sees it too.
        ``schedule.at(i)`` gives the step's scalars; the model is called at time ``t``
        (``None``: ``i``; a respaced schedule's step ``k`` calls it at ``t_k``); ``original``:
        the T-step schedule a respaced ``schedule`` came from (``dps_scale='time'`` reads the
        ``dps`` form's ``√α_t/β_t`` from it at ``t``). With ``probes = (u_x, u_y)`` (shaped like
        ``x`` and ``y``) the third value is instead ``tr(H_t)/d`` per sample ``(B,)``: the exact
        model's, or ``network_trace``'s estimate."""
        t = i if t is None else t
        if getattr(model, "is_conditional", False):
            with torch.no_grad():
                score = model.score(x, t, y)
            if probes is not None:
                d = x[0].numel()
                return score, None, model.score_jacobian(x, t, y).diagonal(dim1=-2, dim2=-1).sum(-1) / d
            return score, None, model.score_jacobian(x, t, y) if hessian else None
        ab = schedule.at(i)["alpha_bar"]
        if self.form == "pigdm_iso":
            return self.isotropic_pigdm_score(model, x, t, ab, y, operator, sigma_y, zeta, probes)
        dps_coef = self.dps_coef(schedule, i, t, original)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            eps, v, x0_hat = self.denoise(model, x_in, t, ab)
            H = self.network_hessian(x_in, x0_hat, ab, operator, sigma_y, zeta) if hessian else None
            if probes is not None:
                H = self.network_trace(x_in, x0_hat, ab, y, operator, sigma_y, zeta, dps_coef, *probes)
            r2 = pigdm_r2(ab, self.pigdm_prior_var) if self.form == "pigdm" else 0.0
            grad = likelihood_gradient(x_in, x0_hat, y, operator, self.form, self.residual,
                                       r2=r2, sigma_y=sigma_y)
        score = self.prior_score(x, eps, x0_hat, ab)
        zeta_b = per_sample(zeta, x)
        if self.form in ("paper", "pigdm"):
            return score - zeta_b * grad / sigma_y**2, v, H
        return score - zeta_b * dps_coef * grad, v, H

    def isotropic_pigdm_score(self, model, x: Tensor, t: int, alpha_bar: float, y: Tensor, operator,
                              sigma_y: float, zeta: Tensor, probes: tuple[Tensor, Tensor] | None = None,
                              ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``form='pigdm_iso'``: Tweedie's score of ``x̂0`` moved towards the measurement,

            x̂0_y = x̂0 + 2ζ(λ) r_t² Aᵀ (r_t² A Aᵀ + σ_y² I)⁻¹ (y − A x̂0),
            score = (√ᾱ_t x̂0_y − x_t)/(1 − ᾱ_t),

        ``E[x0 | x_t, y]`` at ζ = ½ if ``x0 | x_t ~ N(x̂0, r_t² I)`` (``posterior_mean_shift``;
        ``r_t²`` ΠGDM's, ``pigdm_prior_var = s²``). It is the ``pigdm`` form with ``∂x̂0/∂x_t``
        replaced by the value it has for a ``N(μ, s² I)`` prior, ``√ᾱ_t r_t²/(1 − ᾱ_t) I``: no
        gradient through the network, so exact where ``pigdm`` is (that prior) and one forward pass
        a step. Returns ``(score, v, None)``, or with ``probes = (u_x, u_y)`` the third value
        ``tr(H_t)/d`` per sample: ``H_t = (√ᾱ_t P J − I)/(1 − ᾱ_t)``, ``P = I − 2ζ r_t² Aᵀ(r_t² A Aᵀ +
        σ_y² I)⁻¹ A``, ``J = ∂x̂0/∂x_t``, with ``tr(P J) ≈ (P u_x)ᵀ J u_x`` (one backward pass; ``u_y``
        unused)."""
        r2 = pigdm_r2(alpha_bar, self.pigdm_prior_var)
        zeta_b = per_sample(zeta, x)
        with torch.set_grad_enabled(probes is not None):
            x_in = x.detach().requires_grad_(probes is not None)
            eps, v, x0_hat = self.denoise(model, x_in, t, alpha_bar)
        with torch.no_grad():
            shift = posterior_mean_shift(x0_hat.detach(), y, operator, r2, sigma_y)
            score = (self.prior_score(x, eps, x0_hat, alpha_bar)
                     + 2.0 * zeta_b * (alpha_bar**0.5 / (1.0 - alpha_bar)) * shift)
        if probes is None:
            return score, v, None
        u = probes[0]
        pu = u + 2.0 * zeta_b * posterior_mean_shift(u, torch.zeros_like(y), operator, r2, sigma_y)  # P u
        (jtpu,) = torch.autograd.grad(x0_hat, x_in, grad_outputs=pu)
        d = x[0].numel()
        tr_pj = (u * jtpu).reshape(len(x), -1).sum(1)
        return score, v, (alpha_bar**0.5 * tr_pj.detach() - d) / ((1.0 - alpha_bar) * d)

    def dps_coef(self, schedule: VPSchedule, i: int, t: int, original: VPSchedule | None) -> float:
        """The ``dps`` form's ``√α_t/β_t`` at step ``i`` (network time ``t``) of ``schedule``: the
        respaced step's, or with ``dps_scale='time'`` the T-step ``original``'s at ``t``."""
        sc = original.at(t) if self.dps_scale == "time" and original is not None else schedule.at(i)
        return sc["alpha"] ** 0.5 / sc["beta"]

    def denoise(self, model, x_in: Tensor, t: int, alpha_bar: float) -> tuple[Tensor, Tensor | None, Tensor]:
        """``ε_θ(x_t, t)``, the network's variance channels ``v`` (detached, with
        ``variance='learned_range'``; ``None`` otherwise) and Tweedie's ``x̂0`` (clipped to
        ``[−1, 1]`` with ``clip_x0``), ``ε`` and ``x̂0`` in the graph of ``x_in``."""
        if self.variance == "learned_range":
            eps, v = model.eps_and_v(x_in, t)
            if v is None:
                raise ValueError("sampler.variance=learned_range needs a network with 2C "
                                 "output channels (ADM's learn_sigma=true)")
            v = v.detach()
        else:
            eps, v = model.eps(x_in, t), None
        x0_hat = x0_from_eps(x_in, eps, alpha_bar)
        if self.clip_x0:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        return eps, v, x0_hat

    def prior_score(self, x: Tensor, eps: Tensor, x0_hat: Tensor, alpha_bar: float) -> Tensor:
        """The network's prior score at ``x_t``, detached: ``−ε/√(1 − ᾱ)``, or with ``clip_x0``
        the clipped estimate's ``(√ᾱ x̂0 − x_t)/(1 − ᾱ)``."""
        if self.clip_x0:
            return (alpha_bar**0.5 * x0_hat.detach() - x) / (1.0 - alpha_bar)
        return -eps.detach() / (1.0 - alpha_bar) ** 0.5

    def network_hessian(self, x_in: Tensor, x0_hat: Tensor, alpha_bar: float, operator,
                        sigma_y: float, zeta: Tensor) -> Tensor:
        """The Jacobian of the paper form's score for a network, ``(B, d, d)``:

            H = (√ᾱ J − I)/(1 − ᾱ) − 2 ζ(λ) w Jᵀ AᵀA J,      J = ∂x̂0/∂x_t,

        the prior score ``(√ᾱ x̂0 − x_t)/(1 − ᾱ)`` differentiated, and the Gauss–Newton Hessian
        of ``−ζ w ‖y − A x̂0‖²`` (``w``: ``1/σ_y²``, ``1/(σ_y² m)`` for ``residual='mean'``,
        1 for ``'sum_no_sigma'``). ``J`` takes ``d`` backward passes through the graph of
        ``x0_hat``, which is kept for the likelihood gradient."""
        B, d = len(x_in), x_in[0].numel()
        flat = x0_hat.reshape(B, d)
        rows = [torch.autograd.grad(flat[:, j].sum(), x_in, retain_graph=True)[0].reshape(B, d)
                for j in range(d)]
        J = torch.stack(rows, 1).detach().to(torch.float64)                   # J[b, j, k] = ∂x̂0_j/∂x_k
        eye = torch.eye(d, dtype=J.dtype, device=J.device)
        cols = [operator.forward(J[:, :, k].reshape(x_in.shape).to(x_in.dtype)).reshape(B, -1)
                for k in range(d)]
        AJ = torch.stack(cols, 2).to(J.dtype)                                  # (B, m, d)
        w = self.residual_weight(sigma_y, AJ.shape[1])
        zeta_b = zeta.to(J).reshape(-1, 1, 1)
        return (alpha_bar**0.5 * J - eye) / (1.0 - alpha_bar) - 2.0 * w * zeta_b * AJ.transpose(1, 2) @ AJ

    def residual_weight(self, sigma_y: float, m: int) -> float:
        """``w``, the weight of ``‖y − A x̂0‖²`` in the paper form's log-likelihood term:
        ``1/σ_y²`` (``residual='sum'``), ``1/(σ_y² m)`` (``'mean'``, ``m`` entries of y), 1
        (``'sum_no_sigma'``)."""
        return {"sum": 1.0 / sigma_y**2, "mean": 1.0 / (sigma_y**2 * m), "sum_no_sigma": 1.0}[self.residual]

    def network_trace(self, x_in: Tensor, x0_hat: Tensor, alpha_bar: float, y: Tensor, operator,
                      sigma_y: float, zeta: Tensor, dps_coef: float, u_x: Tensor, u_y: Tensor) -> Tensor:
        """Hutchinson's estimate of ``tr(H_t)/d`` per sample, ``(B,)``, from one probe ``u_x``
        (signal) and ``u_y`` (measurement), both ``N(0, I)``:

            tr J ≈ u_xᵀ Jᵀ u_x,   tr(JᵀAᵀ Π A J) ≈ ‖Jᵀ Aᵀ Π u_y‖²        (J = ∂x̂0/∂x_t)
            paper: tr H = (√ᾱ tr J − d)/(1 − ᾱ) − 2 ζ(λ) w tr(JᵀAᵀAJ)            (Π = I)
            dps:   tr H = (√ᾱ tr J − d)/(1 − ᾱ) − ζ (√α/β) tr(JᵀAᵀ Π A J)/‖r‖   (Π = I − r̂r̂ᵀ)

        the Jacobian of the prior score and the Gauss–Newton Hessian of the likelihood term
        (``w`` as in ``network_hessian``; ``r = y − A x̂0``; ``dps_coef = √α/β`` of the step).
        Two backward passes; the graph of ``x0_hat`` is kept for the likelihood gradient."""
        B, d = len(x_in), x_in[0].numel()
        (jtu,) = torch.autograd.grad(x0_hat, x_in, grad_outputs=u_x, retain_graph=True)
        tr_j = (u_x * jtu).reshape(B, -1).sum(1)
        Ax = operator.forward(x0_hat)
        r = (y - Ax).detach().reshape(B, -1)
        u = u_y.reshape(B, -1)
        if self.form == "dps":
            rn = r.norm(dim=1, keepdim=True).clamp_min(1e-30)
            u = u - (r / rn) * ((r / rn) * u).sum(1, keepdim=True)
        (g,) = torch.autograd.grad(Ax, x_in, grad_outputs=u.reshape(Ax.shape), retain_graph=True)
        gg = g.detach().reshape(B, -1).pow(2).sum(1)
        zeta_b = zeta.to(gg)
        if self.form == "dps":
            tr_g = -zeta_b * dps_coef * gg / rn.squeeze(1)
        else:
            tr_g = -2.0 * self.residual_weight(sigma_y, r.shape[1]) * zeta_b * gg
        return ((alpha_bar**0.5 * tr_j.detach() - d) / (1.0 - alpha_bar) + tr_g) / d

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
        """Sample ``x_0`` for each row of ``y`` with its own ``λ = knob[b]`` and seed ``seeds[b]``
        (with ``average = N``: the mean of ``N`` chains, ``chain_seeds``)."""

        lam = per_sample_knob(knob, seeds, y.shape[0], "λ")
        N = self.average
        if N == 1:
            return self.chain(model, y, operator, sigma_y, lam, seeds, schedule, x_T,
                              keep_trajectory, callback)
        if x_T is not None:
            raise ValueError("sampler.average > 1 draws each chain's x_T from its own seed; "
                             "x_T cannot be given")
        B = y.shape[0]
        out = self.chain(model, y.repeat_interleave(N, 0), operator, sigma_y,
                         lam.repeat_interleave(N), chain_seeds(seeds, N), schedule, None,
                         keep_trajectory, callback)
        mean = out.samples.reshape(B, N, *out.samples.shape[1:]).mean(1)
        traj = None
        if out.trajectory is not None:
            tr = out.trajectory
            traj = tr.reshape(tr.shape[0], B, N, *tr.shape[2:]).mean(2)
        return SampleResult(mean, out.nfe * N, traj)

    def chain(self, model, y: Tensor, operator, sigma_y: float, lam: Tensor, seeds: Sequence[int],
              schedule: VPSchedule, x_T: Tensor | None = None, keep_trajectory: bool = False,
              callback: Callable[[int, Tensor], None] | None = None) -> SampleResult:
        """One reverse chain per row of ``y`` (its ``λ = lam[b]``, seed ``seeds[b]``)."""
        T, original = schedule.T, schedule
        # times: network time of each step; None: the step index itself
        schedule, times = schedule.on_steps(self.steps, self.spacing)
        shape = signal_shape(y, operator) if x_T is None else x_T.shape[1:]
        marginal = self.step_rule == "marginal"
        if marginal and math.prod(shape) > MARGINAL_MAX_DIM:
            raise ValueError(f"sampler.step_rule=marginal forms a d × d covariance per sample; "
                             f"d = {math.prod(shape)} is more than {MARGINAL_MAX_DIM}")
        noise = PerSampleNoise(seeds, shape, schedule.T, dtype=y.dtype)
        trace = self.step_rule == "trace"
        if trace:  # the Hutchinson probes: their own streams, one draw each per step
            probe_x = PerSampleNoise(probe_seeds(seeds, 0), shape, schedule.T, dtype=y.dtype)
            probe_y = PerSampleNoise(probe_seeds(seeds, 1), y.shape[1:], schedule.T, dtype=y.dtype)
        x = noise.initial() if x_T is None else x_T.clone()
        x = x.to(y.device)
        zeta = self.zeta(lam)
        lam_x = lam.to(x)
        traj = [x.clone()] if keep_trajectory else None
        nfe0 = model.nfe
        steps = range(schedule.T - 1, -1, -1)
        for i in tqdm(steps, desc="sampling", **tqdm_options(self.progress)):
            t = i if times is None else times[i]
            probes = (probe_x.next().to(x), probe_y.next().to(y)) if trace else None
            score, v, H = self.score_and_v(model, x, i, y, operator, sigma_y, zeta, schedule, t,
                                           original, hessian=marginal, probes=probes)
            sc = schedule.at(i)
            if trace:
                var = trace_jump_variance(sc["beta"], sc["alpha_bar"], sc["alpha_bar_prev"],
                                          H.to(torch.float64))
                x = variance_scaled_step(x, score, sc["beta"], sc["alpha"],
                                         per_sample(var.sqrt().to(x), x), lam_x,
                                         noise.next().to(x)).detach()
            elif marginal:
                root = psd_sqrt(jump_covariance(sc["beta"], H.to(torch.float64)))
                x = marginal_step(x, score, sc["beta"], sc["alpha"], root, lam_x,
                                  noise.next().to(x)).detach()
            else:
                z = noise.next().to(x) if i > 0 else None
                sigma = reverse_std(schedule, i, self.variance, v)
                x = variance_scaled_step(x, score, sc["beta"], sc["alpha"], sigma, lam_x, z).detach()
            check_finite(x, t, T, lam, what="x_{t-1}")
            if traj is not None:
                traj.append(x.clone())
            if callback is not None:
                callback(i, x)
        return SampleResult(x, model.nfe - nfe0, torch.stack(traj) if traj is not None else None)
