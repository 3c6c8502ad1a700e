"""Running ``run.py`` jobs side by side (``make figures``): each job's config is composed first
for the networks it trains and its results hash; jobs start in an order that trains every
missing network once, a job waits while another trains a network it needs, and jobs with
one results config run once and are copied."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: the repository root (vsdr is installed editable from it): conf/ and run.py
ROOT = Path(__file__).resolve().parents[2]

#: one BLAS/OpenMP thread per job: these networks are tiny, and on a shared 2-core machine two
#: spinning threads ran a PSCGAN training step 10x slower than one (measured: 60 steps in 60 s
#: with 2 threads against 6 s with 1, load average ~9)
JOB_ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1")}


@dataclass
class Job:
    """One ``run.py`` job: its overrides, output folder, the networks it would train, its results hash."""

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
    depend on the logger). A figure needs no restored/ PNGs: ``outputs.images=false``."""
    trains = any(not p.is_file() for p in job.networks)
    return [sys.executable, str(ROOT / "run.py"), *job.overrides, f"hydra.run.dir={job.out}",
            "progress=false", "outputs.images=false", *([] if trains else ["logger=none"])]


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
