"""The λ = 0 chain of ours' ``dps`` form with its guidance pull taken apart (a diagnostic of
few steps on images: docs/RESULTS.md §21.6, ``scripts/pull_refresh.py``).

At λ = 0 a step of the variance-scaled sampler (docs/METHOD.md §2, eq. 12) is deterministic:

    x_s = (x_t + β' s_prior)/√α' + c v,     v = −∇_{x_t} ‖y − A x̂0(x_t)‖ = Jᵀ Aᵀ r/‖r‖,

with ``s_prior = (√ᾱ_t x̂0 − x_t)/(1 − ᾱ_t)`` (``= −ε/√(1 − ᾱ_t)`` unless ``x̂0`` is clipped),
``J = ∂x̂0/∂x_t``, ``r = y − A x̂0`` and the
pull's length ``c = ζ (β'/√α') √α_t/β_t`` (``dps_scale='time'``: ``α_t, β_t`` of the T-step
schedule at the step's time; ``'step'``: the respaced ones). ``lam0_chain`` runs it with one of
three changes, to tell the coarse prior steps from the coarse pulls."""
from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.guidance import likelihood_gradient
from vsdr.diffusion.noise import PerSampleNoise
from vsdr.diffusion.schedule import VPSchedule
from vsdr.diffusion.step import variance_scaled_step


def pull_direction(sampler, model, x: Tensor, t: int, alpha_bar: float, y: Tensor, operator,
                   damp_c: float | None = None) -> tuple[Tensor, Tensor]:
    """The prior score and ``g = ∇_{x_t} ‖y − A x̂0‖ = −v`` per sample, both detached, as the
    ours ``sampler`` computes them (``denoise``, ``prior_score``, ``likelihood_gradient``). With
    ``damp_c = c``: ``φ(L c) g``, ``φ(z) = (1 − e^{−z})/z``, ``L = ‖A J v̂‖²/‖r‖`` the linearised
    residual's curvature along ``v̂ = v/‖v‖``, so that the pull ``−c φ(Lc) g`` is the exact flow
    of ``dx/dτ = v`` along ``v̂`` for a time ``c`` (``A J v̂`` by a double backward pass)."""
    with torch.enable_grad():
        xi = x.detach().requires_grad_(True)
        eps, _, x0 = sampler.denoise(model, xi, t, alpha_bar)
        prior = sampler.prior_score(x, eps, x0, alpha_bar)
        if damp_c is None:
            return prior, likelihood_gradient(xi, x0, y, operator, "dps")
        Ax = operator.forward(x0)
        r = (y - Ax).detach()
        rho = r.flatten(1).norm(dim=1).clamp_min(1e-30)
        u = (r / rho.reshape(-1, *[1] * (r.dim() - 1))).requires_grad_(True)
        (v,) = torch.autograd.grad(Ax, xi, grad_outputs=u, create_graph=True)
        shape = (-1, *[1] * (v.dim() - 1))
        vhat = v.detach() / v.detach().flatten(1).norm(dim=1).clamp_min(1e-30).reshape(shape)
        (ajv,) = torch.autograd.grad(v, u, grad_outputs=vhat)   # A J v̂: v is linear in u
    z = (ajv.flatten(1).pow(2).sum(1) / rho * damp_c).clamp_min(1e-12)
    return prior, -v.detach() * (-torch.expm1(-z) / z).reshape(shape)   # φ(z), no cancellation


def lam0_chain(sampler, model, y: Tensor, operator, shape: Sequence[int], seeds: Sequence[int],
               schedule: VPSchedule, steps: int | None, pulls: int = 1, refresh: int = 1,
               damp: bool = False) -> tuple[Tensor, list[Tensor]]:
    """The λ = 0 chain above of the ours ``sampler`` (``form='dps'``; its ζ(0), ``spacing``,
    ``dps_scale``, ``clip_x0`` and ``variance``) on ``steps`` of the ``schedule``'s T times
    (``None``: all), from ``x_T`` of ``seeds`` (the sampler's ``PerSampleNoise``; ``shape``: one
    signal's), with the pulls changed:

    - ``pulls = M``: each step's pull in ``M`` parts ``c v/M``; part ``j > 1`` takes ``v`` at
      the point the parts before it reached, the network at the next step's time (``M``
      network evaluations a step; the last step, with no later time, pulls whole);
    - ``refresh = N``: ``v`` recomputed on every ``N``-th step only, the last one reused between;
    - ``damp``: each part ``φ(L c/M) c v/M`` (``pull_direction``).

    ``pulls = refresh = 1``, ``damp = False`` is the sampler at λ = 0 with ``steps``, in its own
    arithmetic: the same bits. Returns ``x_0`` and the gradients ``g = −v`` of the steps that
    computed one, in the chain's order."""
    if sampler.form != "dps":
        raise ValueError(f"the pull diagnostic runs ours' dps form, not sampler.form={sampler.form!r}")
    if pulls < 1 or refresh < 1:
        raise ValueError(f"pulls={pulls} and refresh={refresh} must be >= 1")
    sub, times = schedule.on_steps(steps, sampler.spacing)
    x = PerSampleNoise(seeds, shape, sub.T, dtype=y.dtype).initial().to(y.device)
    zeta = sampler.zeta(torch.zeros(len(y), dtype=torch.float64))
    zeta_b = per_sample(zeta, x)
    directions: list[Tensor] = []
    g = None
    for i in range(sub.T - 1, -1, -1):
        t = i if times is None else times[i]
        sc = sub.at(i)
        ab, beta, alpha = sc["alpha_bar"], sc["beta"], sc["alpha"]
        dps_coef = sampler.dps_coef(sub, i, t, schedule)
        parts = pulls if i > 0 else 1   # the last step has no later time: its pull is whole
        c = float(zeta[0]) * dps_coef * beta / alpha**0.5 / parts   # the length of one part
        prior, g_new = pull_direction(sampler, model, x, t, ab, y, operator, c if damp else None)
        if g is None or (sub.T - 1 - i) % refresh == 0:
            g = g_new
            directions.append(g)
        score = prior - zeta_b * dps_coef * g / parts
        x = variance_scaled_step(x, score, beta, alpha, 0.0, 0.0, None)
        if i == 0:
            break
        t_next, ab_next = (i - 1 if times is None else times[i - 1]), sub.at(i - 1)["alpha_bar"]
        for _ in range(pulls - 1):   # the rest of the pull, each part at the point it starts from
            x = x - c * pull_direction(sampler, model, x, t_next, ab_next, y, operator,
                                       c if damp else None)[1]
    return x, directions


def median_cosine(directions: Sequence[Tensor], lag: int) -> float:
    """The median over the chain of the batch-mean cosine between directions ``lag`` steps
    apart (NaN when there are not ``lag + 1`` of them)."""
    if len(directions) <= lag:
        return float("nan")
    return statistics.median(float(F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1).mean())
                             for a, b in zip(directions, directions[lag:]))
