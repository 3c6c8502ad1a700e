"""Regenerate every paper figure this machine can make into outputs/figures/.

An entry of FIGURES is either one `run.py experiment=NAME` job (its dir is the figure), or a
`Figure`: several jobs (each a list of overrides, run once per invocation and shared between
figures, into outputs/figures/jobs/KEY/) gathered by a plot function into
outputs/figures/NAME/ (PNG and PDF, plus the gathered CSV)."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIGMA = 0.75       # the default noise level (conf/noise/gaussian.yaml)
SIGMA2 = 0.5       # the second level: no retraining of the score network
#: the 2D sweeps call the network on 2048-row blocks instead of model=mlp2d's 256: their
#: 6,000–11,000 rows per step run ~1.6× faster (docs/RESULTS.md §9), and on one thread the
#: MLP's rows come out bit-identical for either block (the figures do not change)
BLOCKS_2D = "data.net_batch=2048"


def jobs_for(dataset: str, sigma: float = SIGMA) -> dict[str, list[str]]:
    """The jobs of one DP plane: ours, PSCGAN-N, PSCGAN-σz, DPS, DiffPIR, interpolation (ours and
    the interpolation run the ζ(λ) tuned for the data set and σ, conf/tuned/)."""
    base = [f"dataset={dataset}", f"noise.sigma={sigma}", BLOCKS_2D]
    return {f"{dataset}-{sigma}-{e}": [f"experiment={e}", *base]
            for e in ("ours_lam", "pscgan_n", "pscgan_sigmaz", "dps_zeta", "diffpir_lambda", "interp_s")}


def robustness_jobs(dataset: str = "pinwheel") -> dict[str, list[str]]:
    """At SIGMA2: ours (same network, the ζ(λ) tuned for SIGMA2), PSCGAN trained at SIGMA
    applied there, and PSCGAN retrained at SIGMA2 (the reference it would need)."""
    base = [f"dataset={dataset}", f"noise.sigma={SIGMA2}", BLOCKS_2D]
    return {
        f"{dataset}-{SIGMA2}-ours_lam": ["experiment=ours_lam", *base],
        f"{dataset}-{SIGMA2}-pscgan_n-trained{SIGMA}": ["experiment=pscgan_n", *base,
                                                        f"sampler.gan.train_sigma={SIGMA}"],
        f"{dataset}-{SIGMA2}-pscgan_sigmaz-trained{SIGMA}": ["experiment=pscgan_sigmaz", *base,
                                                             f"sampler.gan.train_sigma={SIGMA}"],
        f"{dataset}-{SIGMA2}-pscgan_n": ["experiment=pscgan_n", *base],
        f"{dataset}-{SIGMA2}-pscgan_sigmaz": ["experiment=pscgan_sigmaz", *base],
    }


#: one BLAS/OpenMP thread per job: these networks are tiny, and on a shared 2-core machine two
#: spinning threads ran a PSCGAN training step 10x slower than one (measured: 60 steps in 60 s
#: with 2 threads against 6 s with 1, load average ~9)
JOB_ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1")}


@dataclass
class Figure:
    doc: str
    jobs: dict[str, list[str]]
    plot: Callable[[str, dict[str, Path], Path], None]


# ------------------------------------------------------------------------- plot functions

def _save(fig, out: Path, stem: str) -> None:
    import matplotlib.pyplot as plt

    from vsdr.experiments.writer import save_figure

    save_figure(fig, out / f"{stem}.png")  # and its PDF
    plt.close(fig)


def _rows(job_dirs: dict[str, Path]) -> list[dict]:
    from vsdr.experiments.gather import read_rows

    rows = read_rows([d / "metrics.csv" for d in job_dirs.values()])
    for r in rows:
        r["job"] = next(k for k, d in job_dirs.items() if d.name == r["job"])
    return rows


def _label(r: dict) -> str:
    """Legend name: the sampler's declared label and its knob; PSCGAN says at which σ it was
    trained when that is not the data's σ."""
    from vsdr.samplers import knob_symbol, sampler_label

    name = sampler_label(r["sampler"])
    if r["sampler"] == "pscgan":
        name = f"{name}-{knob_symbol(r['knob'])}"
        return f"{name} (trained at σ={SIGMA:g})" if "trained" in r["job"] else name
    return name


def mse_limit(rows: list[dict], ours_factor: float) -> float | None:
    """The MSE axis's top: ``ours_factor`` × ours' largest MSE, raised so that every sampler
    keeps at least its best point on the plot (with 15 % room above it)."""
    ours = [float(r["mse"]) for r in rows if r["sampler"] == "ours"]
    if not ours:
        return None
    best = {}
    for r in rows:
        best[r["sampler"]] = min(best.get(r["sampler"], float("inf")), float(r["mse"]))
    return max(ours_factor * max(ours), 1.15 * max(best.values()))


def plot_dp(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    from vsdr.experiments.writer import write_csv
    from vsdr.plotting.figures import plot_dp_overlay

    rows = _rows(job_dirs)
    write_csv(out / "dp_points.csv", rows)
    sigmas = ", ".join(sorted({f"{float(r['sigma']):g}" for r in rows}))
    title = f"{name}: {rows[0]['dataset']}, denoising, σ={sigmas} (data units)"
    _save(plot_dp_overlay(rows, title, label_of=_label, max_mse=mse_limit(rows, 1.3)), out, name)


def plot_points(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    """Clean, noisy, ours at λ ∈ {0, 0.3, 0.8, 1}, one PSCGAN sample (σ_z = 1)."""
    from vsdr.plotting.points import plot_point_panels

    ours = np.load(next(d for k, d in job_dirs.items() if k.endswith("ours_lam")) / "samples.npz")
    gan = np.load(next(d for k, d in job_dirs.items() if k.endswith("pscgan_sigmaz")) / "samples.npz")
    panels = [("clean x0", ours["x0"]), ("noisy y", ours["y"])]
    for lam in (0.0, 0.3, 0.8, 1.0):
        k = int(np.argmin(np.abs(ours["values"] - lam)))
        panels.append((f"ours λ={ours['values'][k]:g}", ours["samples"][k]))
    k = int(np.argmin(np.abs(gan["values"] - 1.0)))
    panels.append((f"PSCGAN σz={gan['values'][k]:g}", gan["samples"][k]))
    _save(plot_point_panels(panels, f"{name}: denoising at σ={SIGMA:g} (data units)"), out, name)


def plot_points_and_dp(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    plot_points(f"{name}_points", job_dirs, out)
    plot_dp(f"{name}_dp", job_dirs, out)


def image_jobs(operator: str = "gaussian_blur_small") -> dict[str, list[str]]:
    """images_small (digits 16²) on one operator: ours over λ, DPS over ζ, DiffPIR over λ_D,
    PSCGAN-N over N (its GAN trained for this operator and σ, cached)."""
    extra = [f"operator={operator}"] if operator != "gaussian_blur_small" else []
    return {f"digits-{operator}-{e}": [f"experiment={e}", *extra]
            for e in ("images_small", "images_small_dps", "images_small_diffpir", "images_small_pscgan")}


def plot_images(name: str, job_dirs: dict[str, Path], out: Path) -> None:
    """Fig. 7 at CPU scale: the DP plane (MSE of [0, 1] images against the perception measure
    the jobs chose, image_eval.perception) and one image grid: clean, measurement, ours for every λ,
    and DPS, DiffPIR and PSCGAN each at its lowest-MSE knob value."""
    import json

    import torch

    from vsdr.experiments.writer import write_csv
    from vsdr.plotting.figures import plot_dp_overlay
    from vsdr.plotting.images import plot_image_columns
    from vsdr.samplers import knob_symbol, sampler_label

    rows = _rows(job_dirs)
    write_csv(out / "dp_points.csv", rows)
    meta = json.loads((next(iter(job_dirs.values())) / "metrics.json").read_text())
    perception = meta["perception"]
    r0 = rows[0]
    title = (f"{name}: {r0['dataset']} 16², {r0['operator']}, σ_y={float(r0['sigma']):g} "
             f"({r0['sigma_space']} units)")
    patch = meta["config"]["image_eval"].get("fd_patch")
    grey = " grey" if meta["config"]["image_eval"].get("fd_patch_grey") else ""
    xlabel = {"fd_pca": "perception: fd_pca, Fréchet distance in the top-8 PCA space of the "
                        "training digits (lower is better)",
              "fd_patch": f"perception: fd_patch, Fréchet distance of{grey} {patch}×{patch} patches to the "
                          "clean images (lower is better)"}.get(perception, f"perception: {perception}")
    _save(plot_dp_overlay(rows, title, label_of=_label, max_mse=mse_limit(rows, 2.0),
                          perception=perception, xlabel=xlabel,
                          ylabel="distortion: MSE of [0, 1] images"), out, f"{name}_dp")
    columns, x0, y = [], None, None
    for key, d in job_dirs.items():
        z = np.load(d / "samples.npz")
        x0, y = (z["x0"], z["y"]) if x0 is None else (x0, y)
        knob = str(z["knob"])
        sym = knob_symbol(knob)
        job_rows = [r for r in rows if r["job"] == key]
        sampler = job_rows[0]["sampler"]
        if sampler == "ours":
            picks = range(len(z["values"]))
        else:
            best = min(job_rows, key=lambda r: float(r["mse"]))
            picks = [int(np.argmin(np.abs(z["values"] - float(best["value"]))))]
        prefix = "" if sampler == "ours" else f"{sampler_label(sampler).split(' (')[0]} "
        columns += [(f"{prefix}{sym}={float(z['values'][k]):g}", torch.from_numpy(z["samples"][k]))
                    for k in picks]
    fig = plot_image_columns(torch.from_numpy(x0), torch.from_numpy(y), columns, rows=6,
                             title=f"{title}; baselines at their lowest-MSE setting")
    _save(fig, out, f"{name}_grid")


def _only(jobs: dict[str, list[str]], *suffixes: str) -> dict[str, list[str]]:
    return {k: v for k, v in jobs.items() if k.endswith(suffixes)}


#: experiment config (str) or Figure -> what it reproduces
FIGURES: dict[str, str | Figure] = {
    "mixture_dp": "Figs. 1-3: mixture prior/posterior, trajectories per λ, W2 and KL against MSE",
    "gaussian_theory": "Theorems 1-2 on a 16-D Gaussian: MSE/D* and W2 against λ, optimal DP curve",
    "pinwheel_dp": "Figs. 4-5 (ours): pinwheel reconstructions per λ and the DP curve",
    "fig4": Figure("Fig. 4: pinwheel clean, noisy, ours λ ∈ {0, 0.3, 0.8, 1}, PSCGAN",
                   _only(jobs_for("pinwheel"), "ours_lam", "pscgan_sigmaz"), plot_points),
    "fig5": Figure("Fig. 5: pinwheel DP plane: ours, PSCGAN-N, PSCGAN-σz, DPS, DiffPIR, interp.",
                   jobs_for("pinwheel"), plot_dp),
    "fig9": Figure("Fig. 9: S-curve points and DP plane", jobs_for("scurve"), plot_points_and_dp),
    "fig10": Figure("Fig. 10: moons points and DP plane", jobs_for("moons"), plot_points_and_dp),
    "fig11": Figure("Fig. 11: DPS with ζ swept at λ = 1 against ours with λ swept (pinwheel)",
                    _only(jobs_for("pinwheel"), "ours_lam", "dps_zeta"), plot_dp),
    "robustness": Figure(f"Second noise level σ={SIGMA2:g}: the same score network vs PSCGAN "
                         f"trained at σ={SIGMA:g} (and retrained at σ={SIGMA2:g})",
                         robustness_jobs("pinwheel"), plot_dp),
    "images_small": Figure("Fig. 7 at CPU scale: digits 16², Gaussian deblur: ours over λ, DPS, "
                           "DiffPIR, PSCGAN-N (DP plane, image grid)", image_jobs("gaussian_blur_small"),
                           plot_images),
    "images_small_sr": Figure("Fig. 7 at CPU scale: digits 16², ×4 super-resolution: ours over λ, "
                              "DPS, DiffPIR, PSCGAN-N", image_jobs("super_resolution_x4"), plot_images),
    "images_small_severe": "Fig. 7 at CPU scale, σ_y = 0.2: digits deblur, ours, calibrated ζ(λ)",
}


#: overrides of the single-job entries (pinwheel_dp is then fig5's ours_lam job: run once)
EXTRA = {"pinwheel_dp": [BLOCKS_2D]}


@dataclass
class Job:
    key: str
    overrides: list[str]
    out: Path
    networks: list[Path]   # the network files it trains when missing (network_files)
    results: str = ""      # results_hash of its config: equal hashes, equal results


def job_plan(overrides: list[str]) -> tuple[list[Path], str]:
    """``network_files`` of the job's composed config (paths as the job, started in ROOT,
    resolves them) and its ``results_hash``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import vsdr  # noqa: F401 - registers the config resolvers
    from vsdr.experiments.build import network_files
    from vsdr.experiments.resume import results_hash

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return [Path(p).resolve() for p in network_files(cfg)], results_hash(cfg)
    finally:
        os.chdir(cwd)


def start_order(jobs: list[Job]) -> list[Job]:
    """The order ``run_jobs`` starts ``jobs`` in: first the job that trains each missing
    network (the first one that needs it; image ones first, the digits ADM being the longest
    training), then the other image jobs (the longest runs), then the jobs without networks
    (closed-form scores, about a minute each), then the 2D jobs on cached networks (seconds
    to a minute), so that short jobs fill the end while the other worker finishes."""
    trainers, claimed = set(), set()
    for job in jobs:
        missing = {p for p in job.networks if not p.is_file()} - claimed
        if missing:
            trainers.add(job.key)
            claimed |= missing

    def rank(job: Job) -> int:
        image = any(o.startswith("experiment=images") for o in job.overrides)
        if job.key in trainers:
            return 0 if image else 1
        return 2 if image else 3 if not job.networks else 4

    return sorted(jobs, key=rank)


def split_duplicates(jobs: list[Job]) -> tuple[list[Job], dict[str, Job]]:
    """The jobs to run (the first of each ``results`` hash) and, for each other job, the one
    whose results it will copy (e.g. ``pinwheel_dp`` is fig5's pinwheel ``ours_lam`` job)."""
    first: dict[str, Job] = {}
    run, copy = [], {}
    for job in jobs:
        if job.results and job.results in first:
            copy[job.key] = first[job.results]
            continue
        if job.results:
            first[job.results] = job
        run.append(job)
    return run, copy


def copy_results(src: Job, dst: Job) -> None:
    """``dst``'s folder as a copy of ``src``'s (same results config, so the same files)."""
    shutil.copytree(src.out, dst.out, dirs_exist_ok=True)
    (dst.out / "make_figures.log").write_text(f"same results config as job {src.key} "
                                              f"({src.results}): copied from {src.out}\n")


def job_command(job: Job) -> list[str]:
    """``run.py`` with the job's overrides. A job whose networks are all cached trains nothing,
    so it runs with ``logger=none``: the Lightning training log would hold only a copy of
    ``metrics.csv``, and not loading Lightning saves seconds per job (the results do not
    depend on the logger)."""
    trains = any(not p.is_file() for p in job.networks)
    return [sys.executable, str(ROOT / "run.py"), *job.overrides, f"hydra.run.dir={job.out}",
            "progress=false", *([] if trains else ["logger=none"])]


def start_job(job: Job) -> subprocess.Popen:
    """``job_command`` in the background, its output to ``OUT/make_figures.log``."""
    job.out.mkdir(parents=True, exist_ok=True)
    log = open(job.out / "make_figures.log", "w")
    return subprocess.Popen(job_command(job), cwd=ROOT, env=JOB_ENV, stdout=log,
                            stderr=subprocess.STDOUT)


def run_jobs(jobs: list[Job], workers: int) -> dict[str, bool]:
    """Run ``jobs`` ``workers`` at a time, in the given order, except that a job waits while
    another running job trains a network it needs (so each network is trained once and
    then loaded from the cache). Returns ok per job key."""
    done: dict[str, bool] = {}
    pending, running, training = list(jobs), {}, set()
    t_all = time.perf_counter()
    while pending or running:
        for job in list(pending):
            if len(running) >= workers:
                break
            missing = {p for p in job.networks if not p.is_file()}
            if missing & training:
                continue  # its network is being trained: start it once that is cached
            running[job.key] = (job, start_job(job), missing, time.perf_counter())
            training |= missing
            pending.remove(job)
        time.sleep(0.2)
        for key, (job, proc, missing, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            done[key] = proc.returncode == 0
            training -= missing
            del running[key]
            what = f", trained {len(missing)} network(s)" if missing else ""
            status = "ok" if done[key] else f"FAILED (see {job.out / 'make_figures.log'})"
            print(f"   job {key}: {status} in {time.perf_counter() - t0:.0f} s{what} "
                  f"[{time.perf_counter() - t_all:.0f} s]", flush=True)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"figures to make (default: all of {list(FIGURES)})")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "figures"))
    parser.add_argument("--reuse", action="store_true",
                        help="skip a job whose metrics.json is already there (results of an earlier run)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="jobs run at once, one thread each (default: the CPU count)")
    args = parser.parse_args()
    out_root = Path(args.out)
    names = args.names or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}: choose from {list(FIGURES)}")
    t_all = time.perf_counter()
    jobs: dict[str, Job] = {}
    for name in names:
        spec = FIGURES[name]
        entries = {name: [f"experiment={name}", *EXTRA.get(name, [])]} if isinstance(spec, str) else spec.jobs
        for key, overrides in entries.items():
            out = out_root / name if isinstance(spec, str) else out_root / "jobs" / key
            if key in jobs:
                continue
            if args.reuse and (out / "metrics.json").is_file():
                print(f"   job {key}: reused", flush=True)
                continue
            jobs[key] = Job(key, overrides, out, *job_plan(overrides))
    order = start_order(list(jobs.values()))
    order, copies = split_duplicates(order)
    print(f"== {len(order)} jobs for {names}, {args.jobs} at a time"
          + (f" ({len(copies)} more share a results config and are copied)" if copies else ""), flush=True)
    ok_job = run_jobs(order, max(1, args.jobs))
    for key, src in copies.items():
        ok_job[key] = ok_job.get(src.key, False)
        if ok_job[key]:
            copy_results(src, jobs[key])
            print(f"   job {key}: copied from {src.key} (same results config)", flush=True)
    failed = []
    for name in names:
        spec = FIGURES[name]
        keys = [name] if isinstance(spec, str) else list(spec.jobs)
        ok = all(ok_job.get(k, True) for k in keys)
        if ok and not isinstance(spec, str):
            (out_root / name).mkdir(parents=True, exist_ok=True)
            spec.plot(name, {k: out_root / "jobs" / k for k in keys}, out_root / name)
        print(f"== {name}: {'ok' if ok else 'FAILED'} -> {out_root / name}  "
              f"({spec if isinstance(spec, str) else spec.doc})", flush=True)
        if not ok:
            failed.append(name)
    print(f"== all: {len(failed)} failed, {time.perf_counter() - t_all:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
