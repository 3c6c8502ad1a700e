"""DiffPIR (Zhu et al. 2023; docs/METHOD.md §6, docs/METHOD.md §8, DiffPIR): plug-and-play HQS on a
short DDIM-style chain, with the data step in closed form (``operator.prox_data``)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from vsdr.console import tqdm_options
from vsdr.diffusion.broadcast import per_sample
from vsdr.diffusion.noise import PerSampleNoise
from vsdr.diffusion.schedule import VPSchedule
from vsdr.diffusion.tweedie import diffuse, eps_from_x0, x0_from_eps
from vsdr.samplers.base import Knob, Sampler, SampleResult, per_sample_knob, signal_shape

#: DiffPIR's knobs: the data weight λ_D and the re-noising mix ζ_D (either one is swept)
LAMBDA_D = Knob("lambda_d", "λ_D", 0.0, float("inf"), what="DiffPIR's data weight λ_D")
ZETA_D = Knob("zeta_d", "ζ_D", 0.0, 1.0, what="DiffPIR's mix of implied and fresh noise ζ_D")
#: what the chain returns after its last grid time t_0 (``DiffPIRSampler``, docs/METHOD.md §8)
LAST_STEPS = ("paper", "official", "x0hat")


def quadratic_timesteps(T: int, steps: int) -> list[int]:
    """DiffPIR's ``skip_type='quad'`` grid (docs/METHOD.md §8), as increasing times:
    ``seq_k = ⌊√(k T²/(steps−1))⌋`` for ``k = 0 … steps−1`` (``seq`` computed in float64 as
    ``√`` of an evenly spaced ``[0, T²]``), the last one lowered by 1, and the chain visits
    ``t_k = T − 1 − seq_k``: from ``T − 1`` down to 0, dense near ``t = 0`` (T = 1000,
    100 steps: 999, 899, 857, …, 5, 0; spacing about 100 near ``T`` and 5 near 0).
    Where ``steps`` is large against ``T`` two ``k`` can give the same time (T = 100, 100 steps:
    75 distinct times); the chain then re-noises to the same level, as DiffPIR's code does."""
    if not 2 <= steps <= T:
        raise ValueError(f"DiffPIR needs 2 <= sampler.steps <= diffusion.T; got steps={steps}, T={T}")
    seq = np.sqrt(np.linspace(0.0, float(T) ** 2, steps)).astype(np.int64)
    seq[-1] -= 1
    return sorted(int(T - 1 - s) for s in seq)


def diffpir_rho(lambda_d: Tensor | float, sigma_y: float, alpha_bar: float,
                sigma_scale: float = 1.0) -> Tensor | float:
    """``ρ_t = λ_D σ² ᾱ_t / (1 − ᾱ_t) = λ_D σ² / σ̄_t²`` with ``σ = sigma_scale · sigma_y``
    (docs/METHOD.md §8, DiffPIR; the weight of ``‖x − x̂0‖²`` against ``‖y − A x‖²``).

    DiffPIR's code writes ``ρ_t = λ σ²/σ̄_t²`` with ``σ`` the noise level of ``[0, 1]`` images and
    ``σ̄_t = √(1−ᾱ_t)/√ᾱ_t`` the diffusion's noise level in the network's own ``[−1, 1]`` scale;
    its data step itself is scale-free. On images the samplers' ``σ_y`` is in ``[−1, 1]`` units,
    so ``sigma_scale = 0.5`` turns it into DiffPIR's ``σ``; on data with no ``[0, 1]``
    convention (2D) ``sigma_scale = 1``: the formula in the data's own units."""
    return lambda_d * (sigma_scale * sigma_y) ** 2 * alpha_bar / (1.0 - alpha_bar)


class DiffPIRSampler(Sampler):
    """DiffPIR with ``steps`` network evaluations on ``quadratic_timesteps``. From ``x_T ~ N(0, I)``,
    for ``k = K−1, …, 0`` with ``t = t_k``, ``s = t_{k−1}``:

        x̂0 = (x_t − √(1−ᾱ_t) ε_θ(x_t, t))/√ᾱ_t                    (clamped to ``clip`` if given)
        x̂0 ← argmin_x ‖y − A x‖² + ρ_t ‖x − x̂0‖²                  (operator.prox_data)
        ε̂  = (x_t − √ᾱ_t x̂0)/√(1−ᾱ_t)
        x_s = √ᾱ_s x̂0 + √(1−ᾱ_s) (√(1−ζ_D) ε̂ + √ζ_D z)

    At the last grid time ``t_0`` (= 0) ``last_step`` says what is returned:

    - ``paper`` (default): DiffPIR's Algorithm 1 (Zhu et al. 2023), whose loop runs down to its
      ``t = 1`` (vsdr's ``t_0 = 0``) and returns ``x_0 = √ᾱ_0 x̂0 + √(1−ᾱ_0)(…)`` with ``ᾱ_0 = 1``:
      the data step's output ``argmin_x ‖y − A x‖² + ρ_{t_0} ‖x − x̂0(x_{t_0})‖²`` (``x̂0``
      clamped first; the result is not). ``steps`` evaluations.
    - ``official``: DiffPIR's code (``main_ddpir_deblur.py``): the chain state ``x_{t_0}``
      itself, re-noised from ``t_1`` (it skips the data step and re-noising at ``t_0`` and
      returns ``x``, not ``x̂0``). Its last network call has no effect on the result, so vsdr
      does not make it: ``steps − 1`` evaluations.
    - ``x0hat``: the network's (clamped) ``x̂0(x_{t_0}, t_0)``, no data step (vsdr before
      2026-12-06). ``steps`` evaluations.

    ``knob`` names the knob given per sample (``zeta_d`` or ``lambda_d``); the other is fixed.
    ``keep_trajectory`` keeps ``x`` at every grid time and then the result (``steps + 1`` states).
    ``sigma_scale`` multiplies σ_y before it enters ``ρ_t`` (``diffpir_rho``): 0.5 on images,
    whose σ_y is in ``[−1, 1]`` units while DiffPIR's formula takes ``[0, 1]`` units; ``None``
    (the config's default) is filled in by the job from the task (``Task.sigma_to_01``: 0.5
    for images, 1 for data with no ``[0, 1]`` convention) and means 1 when called directly.
    """

    name = "diffpir"
    label = "DiffPIR"
    knobs = (ZETA_D, LAMBDA_D)
    has_trajectory = True

    def __init__(self, lambda_d: float = 7.0, zeta_d: float = 0.3, steps: int = 100,
                 clip: Sequence[float] | None = None, sigma_scale: float | None = None,
                 knob: str | None = None, last_step: str = "paper", progress: bool = True):
        super().__init__(knob, progress)
        if last_step not in LAST_STEPS:
            raise ValueError(f"sampler.last_step must be one of {list(LAST_STEPS)}, got {last_step!r}")
        self.last_step = last_step
        self.sigma_scale = 1.0 if sigma_scale is None else float(sigma_scale)
        if not self.sigma_scale > 0:
            raise ValueError(f"sampler.sigma_scale must be > 0; got {sigma_scale}")
        self.lambda_d, self.zeta_d, self.steps = float(lambda_d), float(zeta_d), int(steps)
        self.sweep = self.knob
        self.clip = None if clip is None else (float(clip[0]), float(clip[1]))

    def __call__(self, model, y: Tensor, operator, sigma_y: float,
                 knob: Tensor | Sequence[float], seeds: Sequence[int],
                 schedule: VPSchedule, keep_trajectory: bool = False) -> SampleResult:
        values = per_sample_knob(knob, seeds, y.shape[0], self.sweep)
        B = y.shape[0]
        lam_d = values if self.sweep == "lambda_d" else torch.full((B,), self.lambda_d, dtype=torch.float64)
        zeta_d = values if self.sweep == "zeta_d" else torch.full((B,), self.zeta_d, dtype=torch.float64)
        if bool((lam_d < 0).any()) or bool(((zeta_d < 0) | (zeta_d > 1)).any()):
            raise ValueError(f"DiffPIR needs λ_D >= 0 and ζ_D in [0, 1]; got {lam_d.tolist()}, "
                             f"{zeta_d.tolist()}")
        grid = quadratic_timesteps(schedule.T, self.steps)
        noise = PerSampleNoise(seeds, signal_shape(y, operator), len(grid), dtype=y.dtype)
        x = noise.initial().to(y.device)
        zd = per_sample(zeta_d, x)
        traj = [x.clone()] if keep_trajectory else None
        nfe0 = model.nfe
        out = x
        for k in tqdm(range(len(grid) - 1, -1, -1), desc="DiffPIR", **tqdm_options(self.progress)):
            t = grid[k]
            if k == 0 and self.last_step == "official":
                out = x  # x_{t_0}: DiffPIR's code returns the chain state
                break
            ab = schedule.at(t)["alpha_bar"]
            with torch.no_grad():
                eps = model.eps(x, t)
            x0_hat = x0_from_eps(x, eps, ab)
            if self.clip is not None:
                x0_hat = x0_hat.clamp(*self.clip)
            if k == 0 and self.last_step == "x0hat":
                out = x0_hat
                break
            x0_hat = operator.prox_data(x0_hat, y, diffpir_rho(lam_d, sigma_y, ab, self.sigma_scale).to(x))
            if k == 0:  # paper: x_0 = √ᾱ_0 x̂0 + √(1 − ᾱ_0)(…) with ᾱ_0 = 1 (Algorithm 1)
                out = x0_hat
                break
            eps_hat = eps_from_x0(x, x0_hat, ab)
            ab_s = schedule.at(grid[k - 1])["alpha_bar"]
            z = noise.next().to(x)
            x = diffuse(x0_hat, (1.0 - zd).sqrt() * eps_hat + zd.sqrt() * z, ab_s)
            if traj is not None:
                traj.append(x.detach().clone())
        if traj is not None:
            traj.append(out.detach().clone())
        return SampleResult(out.detach(), model.nfe - nfe0,
                            torch.stack(traj) if traj is not None else None)
