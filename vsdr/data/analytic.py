"""Data with closed-form posteriors (docs/METHOD.md §3–§4): Gaussian mixtures in torch, their
diffused marginals and scores, and the posterior under ``y = A x0 + n``, ``n ~ N(0, σ² I)``.

A single Gaussian is the one-component case, so one class serves ``dataset=gaussian`` and
``dataset=mixture``. All densities are float64.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vsdr.data.toy2d import PointDataset

DT = torch.float64


@dataclass
class GaussianMixture:
    """``Σ_k π_k N(μ_k, C_k)``: ``weights (K,)``, ``means (K, d)`` or per-sample ``(B, K, d)``,
    ``covs (K, d, d)``."""

    weights: Tensor
    means: Tensor
    covs: Tensor

    @property
    def dim(self) -> int:
        return int(self.means.shape[-1])

    def diffused(self, alpha_bar: float) -> GaussianMixture:
        """The VP marginal ``p_t``: ``Σ π_k N(√ᾱ μ_k, ᾱ C_k + (1 − ᾱ) I)``."""
        eye = torch.eye(self.dim, dtype=DT)
        return GaussianMixture(self.weights, math.sqrt(alpha_bar) * self.means,
                               alpha_bar * self.covs + (1.0 - alpha_bar) * eye)

    def _precision_residual(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x − μ_k`` and ``P_k (x − μ_k)``, both ``(B, K, d)``."""
        means = self.means if self.means.dim() == 3 else self.means.unsqueeze(0)
        diff = x.to(DT).unsqueeze(1) - means                                  # (B, K, d)
        prec = torch.linalg.inv(self.covs)                                    # (K, d, d)
        return diff, torch.einsum("bkj,kij->bki", diff, prec)

    def _component_logp(self, diff: Tensor, prec_diff: Tensor) -> Tensor:
        """``log π_k + log N(x; μ_k, C_k)``, ``(B, K)``."""
        maha = (diff * prec_diff).sum(-1)
        logdet = torch.linalg.slogdet(self.covs).logabsdet                    # (K,)
        weights = self.weights if self.weights.dim() == 2 else self.weights.unsqueeze(0)
        return torch.log(weights) - 0.5 * (maha + logdet + self.dim * math.log(2 * math.pi))

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self._component_logp(*self._precision_residual(x)), dim=1)

    def score(self, x: Tensor) -> Tensor:
        """``∇ log p(x) = −Σ_k r_k(x) P_k (x − μ_k)``, ``r = softmax_k(log π_k N_k(x))``."""
        diff, prec_diff = self._precision_residual(x)
        if prec_diff.shape[1] == 1:
            return -prec_diff[:, 0]
        r = torch.softmax(self._component_logp(diff, prec_diff), dim=1)
        return -(r.unsqueeze(-1) * prec_diff).sum(1)

    def score_jacobian(self, x: Tensor) -> Tensor:
        """The Hessian of ``log p`` at each row of ``x``, ``(B, d, d)``: with ``g_k = −P_k (x − μ_k)``
        and ``s = Σ_k r_k g_k`` (the score),

            ∇² log p(x) = Σ_k r_k (g_k g_kᵀ − P_k) − s sᵀ,

        which is ``−P`` for one component."""
        diff, prec_diff = self._precision_residual(x)
        prec = torch.linalg.inv(self.covs)                                    # (K, d, d)
        if prec_diff.shape[1] == 1:
            return (-prec[0]).expand(len(diff), -1, -1)
        r = torch.softmax(self._component_logp(diff, prec_diff), dim=1)      # (B, K)
        g = -prec_diff
        s = (r.unsqueeze(-1) * g).sum(1)
        outer = torch.einsum("bk,bki,bkj->bij", r, g, g)
        return outer - torch.einsum("bk,kij->bij", r, prec) - s.unsqueeze(2) * s.unsqueeze(1)

    def mean(self) -> Tensor:
        return (self.weights.unsqueeze(-1) * self.means).sum(-2)

    def cov(self) -> Tensor:
        """Mixture covariance ``Σ π_k (C_k + μ_k μ_kᵀ) − m mᵀ`` (unbatched only)."""
        m = self.mean()
        second = (self.weights[:, None, None]
                  * (self.covs + self.means[:, :, None] * self.means[:, None, :])).sum(0)
        return second - torch.outer(m, m)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` draws (unbatched mixture)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=DT)
        chol = torch.linalg.cholesky(self.covs)
        return self.means[k] + torch.einsum("nij,nj->ni", chol[k], z)


def posterior(prior: GaussianMixture, A: Tensor, sigma: float, y: Tensor) -> GaussianMixture:
    """``p(x0 | y)`` for ``y = A x0 + N(0, σ² I)`` (docs/METHOD.md §3–§4), per row of ``y (B, k)``:

        S_k = (C_k⁻¹ + AᵀA/σ²)⁻¹,   m_k = S_k (C_k⁻¹ μ_k + Aᵀ y/σ²),
        w_k ∝ π_k N(y; A μ_k, A C_k Aᵀ + σ² I).

    Returns a mixture with per-sample means ``(B, K, d)`` and weights ``(B, K)``."""
    A, y = A.to(DT), y.to(DT)
    if sigma <= 0:
        raise ValueError("the analytic posterior needs noise.sigma > 0")
    prec = torch.linalg.inv(prior.covs)                                   # (K, d, d)
    S = torch.linalg.inv(prec + (A.T @ A) / sigma**2)                    # (K, d, d)
    S = 0.5 * (S + S.transpose(-1, -2))
    rhs = (prec @ prior.means.unsqueeze(-1)).squeeze(-1)                  # (K, d)
    rhs = rhs.unsqueeze(0) + (y @ A).unsqueeze(1) / sigma**2             # (B, K, d)
    means = torch.einsum("kij,bkj->bki", S, rhs)
    evidence = GaussianMixture(prior.weights, prior.means @ A.T,
                               A @ prior.covs @ A.T + sigma**2 * torch.eye(A.shape[0], dtype=DT))
    logw = evidence._component_logp(*evidence._precision_residual(y))
    return GaussianMixture(torch.softmax(logw, dim=1), means, S)


def select(mix: GaussianMixture, b: int) -> GaussianMixture:
    """Row ``b`` of a per-sample mixture, as an unbatched mixture."""
    return GaussianMixture(mix.weights[b], mix.means[b], mix.covs)


def random_spd(d: int, rng: np.random.Generator, condition: float = 10.0) -> np.ndarray:
    """A random symmetric positive-definite matrix with eigenvalues in ``[1/condition, 1]``
    (log-uniform) and a random orientation: non-diagonal."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.exp(rng.uniform(-np.log(condition), 0.0, d))
    return (q * eig) @ q.T


class AnalyticDataset(PointDataset):
    """A dataset with a closed-form prior ``self.prior``; ``sample`` draws from it.
    ``observation``: a fixed ``y`` to condition on (``None``: drawn from the job seed)."""

    prior: GaussianMixture
    observation: list[float] | None = None

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.prior.dim

    def sample(self, n: int, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return self.prior.sample(n, g).float()


class GaussianData(AnalyticDataset):
    """``x0 ~ N(m, C)`` in ``dim`` dimensions; ``m ~ N(0, mean_scale² I)`` and a full ``C``
    (eigenvalues log-uniform in ``[1/condition, 1]·scale²``) drawn from ``draw_seed``."""

    name = "gaussian"

    def __init__(self, dim: int = 2, draw_seed: int = 0, mean_scale: float = 1.0,
                 scale: float = 1.0, condition: float = 10.0,
                 observation: Sequence[float] | None = None, name: str | None = None):
        super().__init__(name)
        self.observation = list(observation) if observation is not None else None
        rng = np.random.default_rng(draw_seed)
        m = rng.standard_normal(dim) * mean_scale
        C = random_spd(dim, rng, condition) * scale**2
        self.prior = GaussianMixture(torch.ones(1, dtype=DT), torch.tensor(m[None], dtype=DT),
                                     torch.tensor(C[None], dtype=DT))


class MixtureData(AnalyticDataset):
    """``Σ_k π_k N(μ_k, C_k)`` with everything given in config (docs/METHOD.md §4)."""

    name = "mixture"

    def __init__(self, weights: Sequence[float], means: Sequence[Sequence[float]],
                 covs: Sequence[Sequence[Sequence[float]]],
                 observation: Sequence[float] | None = None, name: str | None = None):
        super().__init__(name)
        self.observation = list(observation) if observation is not None else None
        w = torch.tensor(list(weights), dtype=DT)
        self.prior = GaussianMixture(w / w.sum(), torch.tensor([list(m) for m in means], dtype=DT),
                                     torch.tensor([[list(r) for r in c] for c in covs], dtype=DT))
