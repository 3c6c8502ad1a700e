"""What a job writes is whole or absent (issue 20, item 2): its result files are staged and
published together, ``metrics.json`` last; a full disk is one sentence; one job per dir
(``.vsdr.lock``)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST, ROOT, compose_cfg, run_cli

from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.experiments.lock import LOCK_NAME, job_lock, lock_problem
from vsdr.experiments.prior import ddp_worker_rank
from vsdr.experiments.resume import results_hash
from vsdr.experiments.shards import gather_shards

#: the files of a FAST job that figures and tables give (Hydra's .hydra/ and run.log aside)
RESULTS = ["dp_curve.csv", "dp_curve.pdf", "dp_curve.png", "items.csv", "metrics.csv", "metrics.json",
           "reconstructions.pdf", "reconstructions.png", "samples.npz"]
OTHER_LAM = [a for a in FAST if not a.startswith("lam=")] + ["lam=[0,0.5]"]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def meta_of(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def test_crash_mid_set_leaves_no_result_and_keeps_the_old_set(tmp_path, cache_dir, monkeypatch, caplog):
    import vsdr.experiments.job as job_module

    real_figures, seen = job_module.write_figures, []

    def crash(out_dir, *args, **kwargs):  # the tables are written, the figures never are
        seen.append(names(out_dir))
        raise RuntimeError("killed while writing the figures")

    job = tmp_path / "job"
    monkeypatch.setattr(job_module, "write_figures", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run_job(compose_cfg(FAST), job)
    assert seen == [["dp_curve.csv", "items.csv", "metrics.csv", "samples.npz"]]
    assert names(job) == []  # no result, no staging folder, no lock
    monkeypatch.setattr(job_module, "write_figures", real_figures)
    with caplog.at_level("INFO"):
        run_job(compose_cfg(FAST), job)  # the rerun computes the job
    assert "vsdr: computed job" in caplog.text
    assert names(job) == RESULTS and meta_of(job)["config_hash"] == results_hash(compose_cfg(FAST))
    before = {n: (job / n).read_bytes() for n in RESULTS}
    monkeypatch.setattr(job_module, "write_figures", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run_job(compose_cfg(OTHER_LAM), job)  # another config crashes in the same dir
    assert {n: (job / n).read_bytes() for n in names(job)} == before  # the old set, whole


def test_publish_that_fails_half_way_leaves_no_result(tmp_path, monkeypatch):
    import vsdr.experiments.writer as writer

    job = tmp_path / "job"
    job.mkdir()
    (job / "metrics.json").write_text("{}")  # an old set
    (job / "a.csv").write_text("old")
    real_replace, calls = os.replace, []

    def full_after_one(src, dst):
        calls.append(Path(dst).name)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", full_after_one)
    with pytest.raises(OSError), writer.result_set(job) as stage:
        for name in ("a.csv", "b.csv", "metrics.json"):
            (stage / name).write_text("new")
    assert calls == ["a.csv", "b.csv"]
    assert names(job) == []


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size)``: a fresh tmpfs of ``size`` (e.g. ``"128k"``) mounted in
    ``tmp_path``; skips where this process cannot mount one; unmounted afterwards."""
    mounted = []

    def mount(size: str) -> Path:
        d = tmp_path / f"disk-{size}"
        d.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command here: cannot make a small filesystem to fill")
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                             capture_output=True, text=True)
        if res.returncode:
            pytest.skip(f"cannot mount a small tmpfs here ({res.stderr.strip()[:200]}): run as root")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", str(d)], capture_output=True)


def fill(disk: Path) -> None:
    """Write zeros into ``disk`` until it is full."""
    fd = os.open(disk / "filler", os.O_CREAT | os.O_WRONLY)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_disk_full_while_writing_results_through_run_py(tmp_path, small_disk):
    disk = small_disk("128k")  # room for Hydra's files and the write probe, not for the results
    job = disk / "job"
    res = run_cli([*FAST, f"hydra.run.dir={job}"], cwd=tmp_path,
                  env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 3, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1] == (
        f"vsdr: could not write the results into {job} (No space left on device): free space "
        "there or choose another output dir")
    assert "Traceback" not in res.stderr
    assert names(job) == [".hydra", "run.log"]  # Hydra's files only: no result, no staging, no lock


def test_disk_already_full_through_run_py(tmp_path, small_disk):
    disk = small_disk("128k")
    fill(disk)
    job = disk / "job"
    res = run_cli([*FAST, f"hydra.run.dir={job}"], cwd=tmp_path,
                  env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip().splitlines() == [
        f"vsdr: the output dir {job} cannot be written (No space left on device in {disk}): free "
        "space there or choose another with hydra.run.dir="]
    assert not job.exists() and not (tmp_path / "cache").exists()


def test_second_job_on_a_busy_dir_is_refused(tmp_path):
    job, lock = tmp_path / "job", tmp_path / "job" / LOCK_NAME
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VSDR_CACHE_DIR": str(tmp_path / "cache")}
    first = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *FAST, f"hydra.run.dir={job}"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 120
        while not lock.is_file():
            assert first.poll() is None and time.monotonic() < deadline, "the first job never locked"
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGSTOP)  # the first job stays mid-way while the second starts
        try:
            second = run_cli([*OTHER_LAM, f"hydra.run.dir={job}"], cwd=tmp_path,
                             env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
        finally:
            os.kill(first.pid, signal.SIGCONT)
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr[-2000:]
    last = second.stderr.strip().splitlines()[-1]
    host = socket.gethostname()
    assert last.startswith(f"vsdr: the output dir {job} is in use by another job (PID {first.pid} on "
                           f"{host}, started ")
    assert last.endswith(f"): wait for it to end, choose another dir with hydra.run.dir=, or remove "
                         f"{lock} if that job no longer runs")
    assert first.returncode == 0, err[-2000:]
    assert meta_of(job)["config"]["lam"] == [0.0, 1.0]  # the first job's results
    assert (job / "metrics.csv").read_text().count("\n") == 3  # header and λ = 0, 1
    assert "0.5" not in (job / ".hydra" / "overrides.yaml").read_text()  # Hydra's files: the first's
    assert not lock.exists()  # released at the end


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_lock(job: Path, host: str, pid: int) -> Path:
    job.mkdir(parents=True, exist_ok=True)
    (job / LOCK_NAME).write_text(json.dumps({"host": host, "pid": pid, "started": "2026-01-01 00:00:00"}))
    return job / LOCK_NAME


def test_stale_lock_is_taken_over(tmp_path, cache_dir, caplog):
    job, pid, host = tmp_path / "job", dead_pid(), socket.gethostname()
    lock = write_lock(job, host, pid)
    with caplog.at_level("WARNING"):
        run_job(compose_cfg(FAST), job)
    said = f"vsdr: taking over the stale lock {lock} of PID {pid} on {host} (no longer running)"
    assert said in caplog.text
    assert (job / "metrics.json").is_file() and not lock.exists()


@pytest.mark.parametrize("host,pid", [("elsewhere", 12345), (socket.gethostname(), os.getppid())],
                         ids=["another host", "a live process here"])
def test_live_or_foreign_lock_refuses_before_any_compute(host, pid, tmp_path, cache_dir):
    job = tmp_path / "job"
    lock = write_lock(job, host, pid)
    with pytest.raises(ConfigError) as e:
        run_job(compose_cfg(FAST), job)
    assert str(e.value) == (f"the output dir {job} is in use by another job (PID {pid} on {host}, "
                            f"started 2026-01-01 00:00:00): wait for it to end, choose another dir "
                            f"with hydra.run.dir=, or remove {lock} if that job no longer runs")
    assert not cache_dir.exists() and lock.is_file()  # nothing trained; the holder's lock kept


def test_ddp_workers_take_no_lock(tmp_path, monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(k, raising=False)
    ddp = compose_cfg([*FAST, "trainer=ddp"]).trainer
    lock = write_lock(tmp_path / "job", "elsewhere", 1)  # rank 0's lock
    assert ddp_worker_rank(ddp) == 0 and lock_problem(tmp_path / "job") is not None
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning gives the process it starts
    assert ddp_worker_rank(ddp) == 1 and ddp_worker_rank(compose_cfg(FAST).trainer) == 0
    assert lock_problem(tmp_path / "job") is None  # run.py lets the worker start
    with job_lock(tmp_path / "job", take=False):  # and it runs under rank 0's lock
        pass
    assert lock.is_file()


def test_lock_of_an_earlier_attempt_of_the_same_slurm_job_is_taken_over(tmp_path, monkeypatch):
    job = tmp_path / "job"
    job.mkdir()
    (job / LOCK_NAME).write_text(json.dumps({"host": "node7", "pid": 1, "slurm_job": "4242"}))
    monkeypatch.setenv("SLURM_JOB_ID", "4243")  # another job: refused
    with pytest.raises(ConfigError, match=r"in use by another job \(PID 1 on node7, started \?\)"):
        with job_lock(job):
            pass
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # the same job, requeued onto another node
    with job_lock(job):
        assert json.loads((job / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (job / LOCK_NAME).exists()


def test_shards_merge_trusts_only_finished_dirs(tmp_path):
    shard = tmp_path / "0"
    shard.mkdir()
    (shard / "samples.npz").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"shard dirs \[.*'\] hold no finished job \(samples.npz and a "
                                          r"metrics.json that carries its config hash\)"):
        gather_shards([shard], tmp_path / "out")
    (shard / "metrics.json").write_text(json.dumps({"config": {"seed": 0}, "config_hash": "0" * 12}))
    with pytest.raises(ConfigError, match="hold no finished job"):
        gather_shards([shard], tmp_path / "out")
