"""Sampler speed, measured as ratios inside one run (docs/RESULTS.md, "Speed").

    OMP_NUM_THREADS=1 python scripts/bench.py                  # the default sections, ~8 min
    python scripts/bench.py --only blocks,mlp2d --reps 5       # some sections

Sections (``--only``):

- ``blocks``: the 2D MLP's cost per row of one forward + backward through x̂0 at fixed block
  sizes 64 … 2048 (what ``data.net_batch`` pads to), and a step on 200 rows (one λ, 200
  points) and on 6,000 (the default job) with each block against the unpadded network;
- ``mlp2d``: the default job's rows (6 λ × 1,000 points, the job's ``data.net_batch``
  blocks), ``adm``: ``model=adm_small`` (64², random weights, 61×61 blur) at batch 1 and 4.
  Per step, ours (``VarianceScaledSampler``, and with ``step_rule=trace``) and DPS
  (``DPSSampler``) against a bare network forward + backward through x̂0, and DiffPIR per
  network evaluation against a bare forward;
- ``job``: ``python run.py`` (the default job, network cached) wall time, quiet and loaded
  (two busy ``python -c "while True: pass"`` processes, started and killed here), with
  ``threads=1`` and torch's default thread count;
- ``memory`` (not in the default set): resident memory along one ``--memory-steps`` chain of
  ours on ``adm_small`` (it replaces the earlier ``bench_sampler.py`` of docs/RESULTS.md §6.1).

Every section alternates its variants (A B C A B C …, ``--reps`` rounds) and reports medians,
so a load change on a shared machine hits all variants alike. Peak memory: ``getrusage``'s
``ru_maxrss`` of this process and of its children (the jobs). Threads: 1 in this process.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import OmegaConf

from vsdr.diffusion import VPSchedule, per_sample_seeds, x0_from_eps
from vsdr.experiments.prior import random_network
from vsdr.models import NetworkPrior, ScoreMLP
from vsdr.models.invariant import FixedShapeNet
from vsdr.models.precondition import PreconditionedEps
from vsdr.operators import GaussianBlur, Identity
from vsdr.samplers import DiffPIRSampler, DPSSampler, VarianceScaledSampler

ROOT = Path(__file__).resolve().parents[1]

BLOCKS = (64, 128, 256, 512, 1024, 2048)


def medians(variants: dict[str, Callable[[], float]], reps: int, warmup: bool = True) -> dict[str, float]:
    """Call every variant once (``warmup``), then once per round, in order, for ``reps``
    rounds; the median of each variant's returned value (seconds per unit)."""
    seen: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values() if warmup else ():  # first-call allocations and caches
        fn()
    for _ in range(reps):
        for k, fn in variants.items():
            seen[k].append(fn())
    return {k: statistics.median(v) for k, v in seen.items()}


def schedule_of(steps: int) -> VPSchedule:
    """A ``steps``-step linear schedule with DDPM's β range rescaled by ``1000/steps``."""
    return VPSchedule.linear(steps, 1e-4 * 1000 / steps, min(0.02 * 1000 / steps, 0.999))


def bare(prior: NetworkPrior, x: torch.Tensor, schedule: VPSchedule, backward: bool) -> Callable[[], float]:
    """Seconds per call of the network on ``x`` at every step of ``schedule``: forward (and,
    with ``backward``, the gradient of ``Σ x̂0`` with respect to ``x_t``, as the guidance takes it)."""
    def run() -> float:
        t0 = time.perf_counter()
        for i in range(schedule.T - 1, -1, -1):
            if backward:
                x_in = x.detach().requires_grad_(True)
                x0 = x0_from_eps(x_in, prior.eps(x_in, i), schedule.at(i)["alpha_bar"])
                torch.autograd.grad(x0.sum(), x_in)
            else:
                with torch.no_grad():
                    prior.eps(x, i)
        return (time.perf_counter() - t0) / schedule.T
    return run


def chain(sampler, prior, y, op, sigma_y: float, knob: list[float],
          schedule: VPSchedule) -> Callable[[], float]:
    """Seconds per network evaluation of one whole chain of ``sampler`` (setup included)."""
    seeds = per_sample_seeds(0, range(len(y)))

    def run() -> float:
        nfe0 = prior.nfe
        t0 = time.perf_counter()
        sampler(prior, y, op, sigma_y, knob, seeds, schedule)
        return (time.perf_counter() - t0) / (prior.nfe - nfe0)
    return run


def mlp(blocks: int | None) -> NetworkPrior:
    """The default job's network shape (preconditioned ScoreMLP, random weights) in blocks."""
    torch.manual_seed(0)
    sch = VPSchedule.linear(1000)
    net: torch.nn.Module = PreconditionedEps(ScoreMLP().eval().requires_grad_(False), sch.alpha_bars)
    if blocks:
        net = FixedShapeNet(net, blocks)
    return NetworkPrior(net, sch)


def section_blocks(a) -> None:
    print("\n## blocks: mlp2d, one forward + backward through x̂0, 1 thread")
    sch = schedule_of(a.block_steps)
    calls = {}
    for b in BLOCKS:
        x = torch.randn(b, 2)
        calls[b] = bare(mlp(None), x, sch, True)
    per_call = medians(calls, a.reps)
    print(" block   ms/call   µs/row")
    for b in BLOCKS:
        print(f"{b:6d} {1e3 * per_call[b]:9.3f} {1e6 * per_call[b] / b:8.3f}")
    for rows, what in ((200, "one λ, 200 points"), (6000, "the default job: 6 λ × 1,000 points")):
        x = torch.randn(rows, 2)
        variants = {"unpadded": bare(mlp(None), x, sch, True)}
        variants.update({f"block {b}": bare(mlp(b), x, sch, True) for b in BLOCKS})
        m = medians(variants, a.reps)
        print(f"{rows} rows ({what}) per step, against unpadded:")
        for k, v in m.items():
            print(f"  {k:11s} {1e3 * v:8.3f} ms  {v / m['unpadded']:5.2f}×")


def compare(title: str, prior: NetworkPrior, raw: NetworkPrior | None, y, op, sigma_y: float,
            knob: list[float], a, steps: int, ours_kw: dict, dps_kw: dict, dps_zeta: float) -> None:
    """Ours and DPS per step against a bare forward + backward; DiffPIR per NFE against a bare
    forward (its chain: ``steps`` evaluations on a ``steps``-step schedule). ``raw``: the
    network without the job's blocks, timed too."""
    sch = schedule_of(steps)
    x = torch.randn(len(y), *op.adjoint(y[:1]).shape[1:])
    variants = {
        "bare fwd+bwd": bare(prior, x, sch, True),
        "ours": chain(VarianceScaledSampler(progress=False, **ours_kw), prior, y, op, sigma_y, knob, sch),
        "ours, step_rule=trace": chain(VarianceScaledSampler(progress=False, step_rule="trace", **ours_kw),
                                       prior, y, op, sigma_y, knob, sch),
        "dps": chain(DPSSampler(progress=False, **dps_kw), prior, y, op, sigma_y,
                     [dps_zeta] * len(y), sch),
        "bare fwd": bare(prior, x, sch, False),
        "diffpir": chain(DiffPIRSampler(steps=steps, progress=False), prior, y, op, sigma_y,
                         [0.3] * len(y), sch),
    }
    if raw is not None:
        variants["bare fwd+bwd, no blocks"] = bare(raw, x, sch, True)
    m = medians(variants, a.reps)
    print(f"\n## {title}: {steps} steps per chain, {a.reps} rounds, medians")
    for k, v in m.items():
        print(f"  {k:24s} {1e3 * v:9.3f} ms/step")
    print(f"  ours / bare fwd+bwd     {m['ours'] / m['bare fwd+bwd']:.3f}")
    print(f"  ours trace / ours       {m['ours, step_rule=trace'] / m['ours']:.3f}  (two Hutchinson "
          "backward passes a step)")
    print(f"  dps / bare fwd+bwd      {m['dps'] / m['bare fwd+bwd']:.3f}")
    print(f"  diffpir / bare fwd+bwd  {m['diffpir'] / m['bare fwd+bwd']:.3f}  (per NFE; the issue's "
          "denominator, target <= 1.0: it has no backward)")
    print(f"  diffpir / bare fwd      {m['diffpir'] / m['bare fwd']:.3f}  (per NFE, against a forward alone)")
    if raw is not None:
        print(f"  blocks / no blocks      {m['bare fwd+bwd'] / m['bare fwd+bwd, no blocks']:.3f}  (bare)")


def section_mlp2d(a) -> None:
    """Random weights diverge under guidance, so ζ = 0 here: the likelihood gradient is still
    computed (and weighted by 0), so the cost is the guided one."""
    cfg = OmegaConf.load(ROOT / "conf" / "config.yaml")
    rows = OmegaConf.load(ROOT / "conf" / "model" / "mlp2d.yaml").get("net_batch")
    lams = list(cfg.lam)
    n = int(cfg.data.n_test)
    y = torch.randn(n, 2, generator=torch.Generator().manual_seed(0)).repeat(len(lams), 1)
    knob = torch.tensor(lams, dtype=torch.float64).repeat_interleave(n).tolist()
    compare(f"mlp2d, {len(lams)} λ × {n} points, blocks of {rows}", mlp(rows), mlp(None), y,
            Identity(), 0.75, knob, a, a.steps, {"zeta": {"lam": [0, 1], "value": [0.0, 0.0]}}, {}, 0.0)


def section_adm(a) -> None:
    net = adm_small()
    prior = NetworkPrior(net, schedule_of(a.adm_steps))
    op = GaussianBlur(kernel_size=61, std=3.0)
    size = net.image_size
    images = dict(form="dps", variance="learned_range", clip_x0=True,
                  zeta={"lam": [0, 1], "value": [1.0, 1.0]})
    for batch in (1, 4):
        g = torch.Generator().manual_seed(batch)
        y = op.forward(torch.rand(batch, 3, size, size, generator=g) * 2 - 1)
        compare(f"adm_small 64², batch {batch}, unblocked", prior, None, y, op, 0.05,
                [0.5] * batch, a, a.adm_steps, images, {"variance": "learned_range", "clip": [-1, 1]}, 0.5)


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmRSS``) or its peak (``VmHWM``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def adm_small() -> torch.nn.Module:
    """``model=adm_small`` with random weights and a non-zero output head (ε and v vary)."""
    return random_network("adm_small").eval().requires_grad_(False)


def section_memory(a) -> None:
    """Resident memory along one long chain of ours on ``adm_small`` (batch 1): flat in T."""
    net = adm_small()
    sch = schedule_of(a.memory_steps)
    prior = NetworkPrior(net, sch)
    op = GaussianBlur(kernel_size=61, std=3.0)
    y = op.forward(torch.rand(1, 3, net.image_size, net.image_size) * 2 - 1)
    sampler = VarianceScaledSampler(form="dps", variance="learned_range", clip_x0=True, progress=False,
                                    zeta={"lam": [0, 1], "value": [1.0, 1.0]})
    t0, marks = time.perf_counter(), []

    def callback(i: int, x: torch.Tensor) -> None:
        done = sch.T - i
        if done % max(1, sch.T // 4) == 0 or i == 0:
            marks.append((done, time.perf_counter() - t0, rss_mib()))

    sampler(prior, y, op, 0.05, [1.0], per_sample_seeds(0, range(1)), sch, callback=callback)
    print(f"\n## memory: ours on adm_small 64², batch 1, {sch.T} steps")
    for done, t, rss in marks:
        print(f"  after {done:5d} steps: {t:7.1f} s  RSS {rss:7.1f} MiB")
    print(f"  peak (VmHWM) {rss_mib('VmHWM'):.1f} MiB")


def run_default_job(threads: int, cache: str, out: str, timeout: float) -> float:
    """Wall seconds of ``python run.py threads=N`` (the default job; its network cached);
    ``inf`` when it is still running after ``timeout`` seconds (it is killed then)."""
    env = {**os.environ, "VSDR_CACHE_DIR": cache}
    env.pop("OMP_NUM_THREADS", None)
    t0 = time.perf_counter()
    try:
        subprocess.run([sys.executable, str(ROOT / "run.py"), f"threads={threads}", "progress=false",
                        "logger=none", f"hydra.run.dir={out}"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        return math.inf
    return time.perf_counter() - t0


def section_job(a) -> None:
    default = int(subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True,
        text=True, env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}).stdout)
    cache = os.environ.get("VSDR_CACHE_DIR", str(ROOT / "outputs" / "checkpoints"))
    with tempfile.TemporaryDirectory() as tmp:
        run_default_job(1, cache, f"{tmp}/warm", math.inf)  # trains the network if it is not cached
        def job(th: int, name: str) -> Callable[[], float]:
            return lambda: run_default_job(th, cache, f"{tmp}/{name}", a.job_timeout)

        quiet = medians({f"quiet, threads={th}": job(th, f"q{th}") for th in (1, default)}, a.job_reps,
                        warmup=False)
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        try:
            loaded = medians({f"loaded, threads={th}": job(th, f"l{th}") for th in (1, default)},
                             a.job_reps, warmup=False)
        finally:
            for p in busy:
                p.kill()
                p.wait()
    print(f"\n## job: python run.py (network cached), wall seconds, median of {a.job_reps}")
    for k, v in {**quiet, **loaded}.items():
        print(f"  {k:22s} {v:7.1f} s" if math.isfinite(v) else f"  {k:22s} > {a.job_timeout:g} s (killed)")


SECTIONS = {"blocks": section_blocks, "mlp2d": section_mlp2d, "adm": section_adm, "job": section_job,
            "memory": section_memory}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="blocks,mlp2d,adm,job", help="comma-separated sections "
                   f"of {list(SECTIONS)} (memory is not in the default)")
    p.add_argument("--steps", type=int, default=100, help="steps per chain (2D)")
    p.add_argument("--block-steps", type=int, default=30, help="network calls per block measurement")
    p.add_argument("--adm-steps", type=int, default=10, help="steps per chain (adm_small)")
    p.add_argument("--reps", type=int, default=5, help="rounds of alternation")
    p.add_argument("--job-reps", type=int, default=1, help="rounds of default jobs")
    p.add_argument("--job-timeout", type=float, default=180, help="seconds before a job is killed")
    p.add_argument("--memory-steps", type=int, default=200, help="steps of the memory chain")
    a = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    for name in a.only.split(","):
        SECTIONS[name](a)
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\npeak RSS: this process {me:.0f} MiB, largest child (a job) {kids:.0f} MiB; "
          f"{time.perf_counter() - t0:.0f} s in all, load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
