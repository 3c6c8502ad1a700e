"""Exact score sources for analytic data (``score=exact_prior`` / ``score=exact_posterior``):
they isolate the DPS approximation and the variance scaling from network error."""
from __future__ import annotations

import torch
from torch import Tensor

from vsdr.data.analytic import GaussianMixture, posterior, select
from vsdr.diffusion.schedule import VPSchedule


class ExactPrior:
    """The exact unconditional model: ``ε(x_t, i) = −√(1−ᾱ_i) ∇ log p_t(x_t)`` with
    ``p_t`` the diffused prior (differentiable in ``x_t``: the DPS term goes through it)."""

    is_conditional = False

    def __init__(self, prior: GaussianMixture, schedule: VPSchedule):
        self.prior, self.schedule, self.nfe = prior, schedule, 0

    def eps(self, x: Tensor, i: int) -> Tensor:
        self.nfe += 1
        ab = self.schedule.at(i)["alpha_bar"]
        return (-(1.0 - ab) ** 0.5 * self.prior.diffused(ab).score(x)).to(x.dtype)


class ExactPosterior:
    """The exact conditional score ``∇ log p_t(x_t | y)`` of the diffused posterior
    ``Σ_k w_k(y) N(√ᾱ m_k(y), ᾱ S_k + (1 − ᾱ) I)`` (docs/METHOD.md §4), per sample's ``y``."""

    is_conditional = True

    def __init__(self, prior: GaussianMixture, A: Tensor, sigma: float, schedule: VPSchedule):
        self.prior, self.A, self.sigma, self.schedule, self.nfe = prior, A, sigma, schedule, 0
        self._key: tuple | None = None
        self._post: GaussianMixture | None = None

    def posterior(self, y: Tensor) -> GaussianMixture:
        key = (y.data_ptr(), tuple(y.shape))
        if key != self._key:
            if bool((y == y[:1]).all()):  # one observation for the whole batch: unbatched
                post = select(posterior(self.prior, self.A, self.sigma, y[:1]), 0)
            else:
                post = posterior(self.prior, self.A, self.sigma, y)
            self._key, self._post = key, post
        return self._post

    def score(self, x: Tensor, i: int, y: Tensor) -> Tensor:
        self.nfe += 1
        ab = self.schedule.at(i)["alpha_bar"]
        with torch.no_grad():
            return self.posterior(y).diffused(ab).score(x).to(x.dtype)

    def score_jacobian(self, x: Tensor, i: int, y: Tensor) -> Tensor:
        """``∇_x ∇ log p_t(x_t | y)``, ``(B, d, d)``: the Hessian of the log diffused posterior
        (``GaussianMixture.score_jacobian``, float64; one matrix expanded over the batch for a
        Gaussian); not counted as a network evaluation."""
        ab = self.schedule.at(i)["alpha_bar"]
        with torch.no_grad():
            return self.posterior(y).diffused(ab).score_jacobian(x)  # float64
