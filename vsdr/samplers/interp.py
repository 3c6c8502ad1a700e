"""Linear interpolation between the MMSE and posterior end points of one score network
(Freirich et al. 2021; docs/METHOD.md §3 and §6)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.schedule import VPSchedule
from vsdr.samplers.base import Knob, Sampler, SampleResult, per_sample_knob
from vsdr.samplers.ours import VarianceScaledSampler

#: the interpolation weight between the two end points
S = Knob("s", "s", 0.0, 1.0, what="the interpolation weight between ours at λ = 0 and at λ = 1")


class InterpolationSampler(Sampler):
    """``x̂(s) = (1 − s) x̂_{λ=0} + s x̂_{λ=1}``, knob ``s ∈ [0, 1]``.

    Both end points come from the variance-scaled sampler (Algorithm 1) on the same network
    with the same per-sample seed, so ``s = 0`` is exactly ours at ``λ = 0`` and ``s = 1``
    ours at ``λ = 1``. For posterior Gaussian data this traces the optimal curve
    ``D(P) = D* + (√D* − P)²`` (docs/METHOD.md §3). Rows of the batch that share ``(y, seed)``
    (the same test point under several ``s``) share their two chains: the cost is two
    chains per distinct point, whatever the number of ``s`` values. No trajectory: a
    reconstruction is a mix of two chains' end points.
    """

    name = "interp"
    label = "interp. λ=0↔1"
    knobs = (S,)
    needs_positive_sigma = True

    def __init__(self, form: str = "paper", zeta: dict | None = None, variance: str = "beta",
                 knob: str | None = None, progress: bool = True, pigdm_prior_var: float = 1.0):
        super().__init__(knob, progress)
        self.inner = VarianceScaledSampler(form=form, zeta=zeta, variance=variance,
                                           progress=progress, pigdm_prior_var=pigdm_prior_var)

    def __call__(self, model, y: Tensor, operator, sigma_y: float,
                 knob: Tensor | Sequence[float], seeds: Sequence[int],
                 schedule: VPSchedule, keep_trajectory: bool = False) -> SampleResult:
        s = per_sample_knob(knob, seeds, y.shape[0], "s")
        B = y.shape[0]
        if bool(((s < 0) | (s > 1)).any()):
            raise ValueError(f"interpolation weights s={s.tolist()} must lie in [0, 1]")
        # distinct (seed, y) rows: each gets one λ=0 and one λ=1 chain
        keys: dict[tuple, int] = {}
        index = []
        for b in range(B):
            key = (int(seeds[b]), y[b].detach().cpu().numpy().tobytes())
            index.append(keys.setdefault(key, len(keys)))
        index_t = torch.tensor(index)
        first = [index.index(u) for u in range(len(keys))]
        U = len(first)
        y_u = y[first]
        seeds_u = [int(seeds[b]) for b in first]
        lam = torch.cat([torch.zeros(U, dtype=torch.float64), torch.ones(U, dtype=torch.float64)])
        res = self.inner(model, torch.cat([y_u, y_u]), operator, sigma_y, lam, seeds_u * 2, schedule)
        x_mmse, x_post = res.samples[:U][index_t], res.samples[U:][index_t]
        s_b = per_sample(s, x_mmse)
        return SampleResult((1.0 - s_b) * x_mmse + s_b * x_post, res.nfe)
