"""PSCGAN's traversals at inference (docs/METHOD.md §6): PSCGAN-N and PSCGAN-σz."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample
from vsdr.samplers.base import Knob, Sampler, SampleResult, per_sample_knob

#: PSCGAN's traversals: how many generator samples are averaged, the injected noise's scale
N_SAMPLES = Knob("N", "N", 1.0, float("inf"), integer=True,
                 what="how many generator samples PSCGAN averages")
SIGMA_Z = Knob("sigma_z", "σz", 0.0, float("inf"), what="the scale σ_z of PSCGAN's injected noise")


class PSCGANSampler(Sampler):
    """``x̂ = (1/N) Σ_{n≤N} G(y, σ_z z_n)``, ``z_n ~ N(0, I)`` of shape ``model.z_shape`` (a
    vector for 2D data, a noise map for images) from sample ``b``'s own seed.

    ``sweep='N'``: the knob is ``N`` (PSCGAN-N, at ``σ_z = sigma_z``, 1 by default);
    ``sweep='sigma_z'``: the knob is ``σ_z`` (PSCGAN-σz, one pass, ``N = N``, 1 by default).
    ``N → ∞`` tends to the generator's sample mean, which the first-moment penalty pushes to
    the MMSE; ``σ_z = 0`` gives ``G(y, 0)``. The ``schedule`` argument is unused; no
    trajectory (one generator pass).
    """

    name = "pscgan"
    label = "PSCGAN"
    knobs = (N_SAMPLES, SIGMA_Z)
    own_networks = True

    def __init__(self, sigma_z: float = 1.0, N: int = 1, knob: str | None = None):
        super().__init__(knob, progress=False)
        self.sweep = self.knob
        self.sigma_z, self.N = float(sigma_z), int(N)

    def __call__(self, model, y: Tensor, operator, sigma_y: float, knob: Tensor | Sequence[float],
                 seeds: Sequence[int], schedule=None, keep_trajectory: bool = False) -> SampleResult:
        values = per_sample_knob(knob, seeds, y.shape[0], self.sweep)
        B = y.shape[0]
        if self.sweep == "N":
            if bool((values < 1).any()) or bool((values != values.round()).any()):
                raise ValueError(f"PSCGAN-N needs whole numbers N >= 1; got {values.tolist()}")
            counts, sz = [int(v) for v in values], torch.full((B,), self.sigma_z, dtype=torch.float64)
        else:
            if bool((values < 0).any()):
                raise ValueError(f"PSCGAN-σz needs σ_z >= 0; got {values.tolist()}")
            counts, sz = [self.N] * B, values
        z = torch.cat([torch.randn((n, *model.z_shape), generator=torch.Generator().manual_seed(int(s)))
                       for n, s in zip(counts, seeds)]).to(y)
        owner = torch.repeat_interleave(torch.arange(B), torch.tensor(counts)).to(y.device)
        scale = per_sample(sz.to(y)[owner], z)
        nfe0 = model.nfe
        out = model(y[owner], scale * z)
        total = torch.zeros((B, *out.shape[1:]), dtype=out.dtype, device=out.device).index_add_(0, owner, out)
        n_b = torch.tensor(counts, dtype=out.dtype, device=out.device)
        mean = total / per_sample(n_b, out)
        return SampleResult(mean, model.nfe - nfe0)
