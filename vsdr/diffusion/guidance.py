"""The likelihood terms (DPS's, ΠGDM's) and their weight ζ(λ) (docs/METHOD.md §2,
"Conditional score")."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from vsdr.operators.linear import adjoint_by_vjp

FORMS = ("paper", "dps", "pigdm", "pigdm_iso")
#: how the paper form weighs the squared residual over the ``m`` entries of ``y``: summed,
#: averaged, or summed with ζ absorbing the likelihood's 1/σ_y² (docs/METHOD.md §2 and §7)
RESIDUALS = ("sum", "mean", "sum_no_sigma")


def check_residual(form: str, residual: str) -> None:
    """``residual`` must be one of ``RESIDUALS``; all but ``sum`` exist only for the paper form."""
    if residual not in RESIDUALS:
        raise ValueError(f"sampler.residual={residual!r} is not one of {RESIDUALS}")
    if residual != "sum" and form != "paper":
        raise ValueError(f"sampler.residual={residual} belongs to sampler.form=paper (the {form} form "
                         "takes its own norm of y − A x̂0)")


def pigdm_r2(alpha_bar: float, prior_var: float = 1.0) -> float:
    """ΠGDM's ``r_t²``: the variance of ``x0`` given ``x_t`` for a prior ``N(μ, s² I)``,
    ``s² (1 − ᾱ_t)/(1 − ᾱ_t + s² ᾱ_t)`` with ``s² = prior_var``. With ``s² = 1`` it is
    ``1 − ᾱ_t``, which is ΠGDM's ``σ_t²/(1 + σ_t²)`` for the VE noise level
    ``σ_t² = (1 − ᾱ_t)/ᾱ_t`` of ``x_t/√ᾱ_t``."""
    return prior_var * (1.0 - alpha_bar) / (1.0 - alpha_bar + prior_var * alpha_bar)


def posterior_mean_shift(x0_hat: Tensor, y: Tensor, operator, r2: float, sigma_y: float) -> Tensor:
    """``E[x0 | x_t, y] − E[x0 | x_t]`` when ``x0 | x_t ~ N(x̂0, r2 I)`` and ``y = A x0 + σ_y n``:

        δ = r2 Aᵀ (r2 A Aᵀ + σ_y² I)⁻¹ (y − A x̂0)

    (Gaussian conditioning; the solve by ``operator.solve_gram``). It needs no gradient through
    the network: ``form='pigdm_iso'`` (``VarianceScaledSampler``) moves Tweedie's ``x̂0`` by ``2ζ δ``."""
    res = y - operator.forward(x0_hat)
    w = operator.solve_gram(res, r2, sigma_y**2, tuple(x0_hat.shape[1:]))
    return r2 * adjoint_by_vjp(operator, w, tuple(x0_hat.shape[1:]))


def likelihood_gradient(x_t: Tensor, x0_hat: Tensor, y: Tensor, operator, form: str,
                        residual: str = "sum", r2: float = 0.0, sigma_y: float = 1.0) -> Tensor:
    """Per-sample gradient, through the network, of the measurement residual at ``x̂0(x_t)``:

    - ``form='paper'``: ``∇_{x_t} ‖y − A x̂0‖²`` (squared norm, Algorithm 1); with
      ``residual='mean'`` the squared residual is averaged over the ``m`` entries of ``y``
      instead, ``∇_{x_t} ‖y − A x̂0‖²/m`` (the reconstruction under which the paper's ζ tables
      make sense, docs/METHOD.md §2); with ``residual='sum_no_sigma'`` it is
      ``σ_y² ∇_{x_t} ‖y − A x̂0‖²``, so that the score's ``−ζ·grad/σ_y²`` becomes
      ``−ζ ∇‖y − A x̂0‖²``: ζ absorbs the likelihood's ``1/σ_y²`` and its Bayes weight is
      ``1/(2σ_y²)`` (a reading of the paper's appendix, docs/METHOD.md §7),
    - ``form='dps'``:   ``∇_{x_t} ‖y − A x̂0‖₂`` (plain norm, DPS's code),
    - ``form='pigdm'``: ``σ_y² ∇_{x_t} (y − A x̂0)ᵀ (r2 A Aᵀ + σ_y² I)⁻¹ (y − A x̂0)`` with the
      matrix held fixed (ΠGDM, Song et al. 2023): the vector–Jacobian product through the
      network of ``2 σ_y² (r2 A Aᵀ + σ_y² I)⁻¹ (y − A x̂0)``, the solve by
      ``operator.solve_gram``. At ``r2 = 0`` it is the paper form's ``∇‖y − A x̂0‖²``, so both
      enter the score as ``−ζ·grad/σ_y²`` with the Bayes weight ``ζ = ½``.

    One norm per sample (DPS's code takes one over the whole batch, which couples samples).
    ``x0_hat`` must be a function of ``x_t`` in the current autograd graph; the graph is
    released by this call (``retain_graph=False``).
    """
    check_residual(form, residual)
    if form == "pigdm":
        res = y - operator.forward(x0_hat)
        w = operator.solve_gram(res.detach(), r2, sigma_y**2, tuple(x0_hat.shape[1:]))
        (grad,) = torch.autograd.grad(res, x_t, grad_outputs=2.0 * sigma_y**2 * w)
        return grad
    r = (y - operator.forward(x0_hat)).flatten(1)
    sq = r.pow(2).sum(dim=1)
    if form == "paper":
        per_sample = {"sum": sq, "mean": sq / r.shape[1], "sum_no_sigma": sq * sigma_y**2}[residual]
    elif form == "dps":
        per_sample = sq.clamp_min(1e-30).sqrt()
    else:
        raise ValueError(f"guidance form {form!r} is not one of {FORMS}")
    (grad,) = torch.autograd.grad(per_sample.sum(), x_t)
    return grad


class ZetaTable:
    """``ζ(λ)``: a table of (λ, ζ) pairs, linearly interpolated (flat beyond its ends).

    The paper's Tables I–III give ζ at λ = 0, 0.1, …, 1 for its FFHQ tasks; the 2D values are
    lost, so the table lives in config.
    """

    def __init__(self, lam: Sequence[float], value: Sequence[float]):
        lam_a = np.asarray(list(lam), dtype=float)
        val_a = np.asarray(list(value), dtype=float)
        if lam_a.ndim != 1 or lam_a.shape != val_a.shape or lam_a.size == 0:
            raise ValueError("the ζ table needs lists 'lam' and 'value' of the same length")
        if np.any(np.diff(lam_a) <= 0):
            raise ValueError(f"the ζ table's λ values {lam_a.tolist()} must increase")
        self.lam, self.value = lam_a, val_a

    def __call__(self, lam: Tensor | Sequence[float] | float) -> Tensor:
        lam_np = np.atleast_1d(np.asarray(lam.cpu() if isinstance(lam, Tensor) else lam, float))
        return torch.as_tensor(np.interp(lam_np, self.lam, self.value), dtype=torch.float64)
