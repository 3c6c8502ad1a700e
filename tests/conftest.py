"""Shared test helpers: composing configs and running small jobs."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import vsdr  # noqa: F401 - registers vsdr's config resolvers before any composition

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

#: overrides that make a job take seconds: few points, short chain, short training
FAST = [
    "data.n_train=2000",
    "data.n_test=64",
    "diffusion.T=50",
    "trainer.max_steps=60",
    "train.batch_size=128",
    "progress=false",
    "logger=none",
    "lam=[0,1]",
    "data.net_batch=64",
]


def load_script(name: str):
    """``scripts/NAME.py`` as a module (its ``main`` callable in-process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_cfg(overrides: list[str] | None = None, config_name: str = "config"):
    """Compose ``conf/config.yaml`` with ``overrides`` (no Hydra run, no output dir)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides or []))


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 600):
    """``python run.py ARGS`` in ``cwd`` (results under ``cwd/outputs``)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def kill_once_logged(cmd: list[str], cwd: Path, env: dict, log: Path, marker: str = "sampled chunk",
                     timeout: float = 300) -> int:
    """Start ``cmd`` and SIGKILL it (its whole session) as soon as ``log`` contains ``marker``;
    return its exit code (``-SIGKILL``). Fails if it ends first or never logs ``marker``."""
    import signal
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not (log.is_file() and marker in log.read_text()):
            assert proc.poll() is None, f"{cmd[1:3]} ended before it could be killed"
            assert time.monotonic() < deadline, f"{log} never showed {marker!r}"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


@functools.lru_cache(maxsize=1)
def slurm_problem() -> str | None:
    """Why SLURM jobs cannot run here (no ``srun``/``sbatch`` on PATH, or a cluster that does
    not answer ``srun`` within 30 s), or ``None`` when they can. Asked once per session."""
    missing = [c for c in ("srun", "sbatch", "scontrol", "squeue") if shutil.which(c) is None]
    if missing:
        return f"no SLURM here ({', '.join(missing)} not on PATH)"
    try:
        res = subprocess.run(["srun", "-N1", "-n1", "true"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "SLURM's srun did not answer within 30 s (is the controller up?)"
    if res.returncode:
        return f"SLURM's srun failed: {res.stderr.strip()[-300:]}"
    return None


def pytest_runtest_setup(item):
    """Tests marked ``slurm`` need a SLURM cluster (``.ci/run`` starts a one-node one with
    ``shared/tools/slurm-local``): without one they skip, saying why, except under CI
    (``CI=true``), where a missing cluster fails them: CI never skips them silently."""
    if item.get_closest_marker("slurm") is None:
        return
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {problem}: start the cluster (.ci/run does, with "
                    "shared/tools/slurm-local start)", pytrace=False)
    pytest.skip(f"{problem}; start one with shared/tools/slurm-local start (as root)")


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)  # tiny networks; two spinning OpenMP threads are slower here
    yield


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("VSDR_CACHE_DIR", str(d))
    return d


@pytest.fixture
def setup():
    """A T = 30 schedule, an untrained 2D score network and 6 observations."""
    from vsdr.diffusion import VPSchedule
    from vsdr.models import NetworkPrior, ScoreMLP

    torch.manual_seed(0)
    schedule = VPSchedule.linear(T=30)
    prior = NetworkPrior(ScoreMLP().eval().requires_grad_(False), schedule)
    y = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    return schedule, prior, y
