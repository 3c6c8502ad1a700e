"""One job per output dir: a job holds ``.vsdr.lock`` in its dir (created with
``O_CREAT | O_EXCL``, holding the host, PID and SLURM job id) from after validation to its end,
so a second job started on the same ``hydra.run.dir=`` is refused instead of overwriting the
first's files. A lock left by a dead process on this host, or by an earlier attempt of the same
(requeued) SLURM job, is taken over; DDP workers (rank > 0) run under rank 0's lock and take
none."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from vsdr.errors import ConfigError

log = logging.getLogger(__name__)

#: the lock file's name in a job dir
LOCK_NAME = ".vsdr.lock"


def holder_of(path: Path) -> dict:
    """The lock's content (``host``, ``pid``, ``started``); ``{}`` when unreadable or empty."""
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def is_stale(holder: dict) -> bool:
    """A lock whose job is known to be over: an earlier attempt of this SLURM job (a requeued
    job runs again, perhaps on another node, after its last attempt ended), or a process on
    this host that no longer runs or is this one (a new PID namespace may give a requeued job
    its old PID; a job does not ask for a lock it holds)."""
    if holder.get("slurm_job") and holder["slurm_job"] == os.environ.get("SLURM_JOB_ID"):
        return True
    return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
            and (holder["pid"] == os.getpid() or not is_alive(holder["pid"])))


def env_rank() -> int:
    """The DDP rank that the environment gives this process (``RANK``, ``LOCAL_RANK``,
    ``NODE_RANK`` as Lightning and torchrun set them, ``SLURM_PROCID`` in a SLURM step of
    several tasks); 0 when none."""
    keys = ["RANK", "LOCAL_RANK", "NODE_RANK"]
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1:
        keys.append("SLURM_PROCID")
    ranks = []
    for k in keys:
        try:
            ranks.append(int(os.environ.get(k, "0") or 0))
        except ValueError:
            ranks.append(0)
    return max(ranks)


def _create(path: Path, me: dict) -> bool:
    """Create the lock holding ``me``; ``False`` when it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(me) + "\n")
    return True


def _take_over(path: Path, stale: dict) -> None:
    """Move the stale lock ``path`` (holding ``stale``) aside and remove it; a lock that
    changed meanwhile (another job took it over first) is put back."""
    aside = path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:
        return
    if holder_of(aside) != stale:  # not the file we judged: restore it, unless a new one exists
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


def refusal(job_dir: Path, path: Path, holder: dict) -> ConfigError:
    who = (f"PID {holder['pid']} on {holder['host']}, started {holder.get('started', '?')}"
           if holder.get("pid") is not None else f"an unreadable {LOCK_NAME}")
    return ConfigError(f"the output dir {job_dir} is in use by another job ({who}): wait for it to "
                       f"end, choose another dir with hydra.run.dir=, or remove {path} if that job "
                       "no longer runs")


def lock_problem(job_dir: str | Path) -> str | None:
    """The refusal sentence when ``job_dir`` is locked by a job that is not known to be dead
    (run.py asks before Hydra writes into the dir); ``None`` otherwise."""
    path = Path(job_dir) / LOCK_NAME
    if env_rank() > 0 or not path.is_file():  # a DDP worker runs under rank 0's lock
        return None
    holder = holder_of(path)
    return None if is_stale(holder) else str(refusal(Path(job_dir), path, holder))


def acquire(job_dir: str | Path) -> dict:
    """Take ``job_dir``'s lock; return what it holds. Raises ``ConfigError`` naming the holder
    when a live job (or one on another host, or an unreadable lock) holds it."""
    job_dir = Path(job_dir)
    path = job_dir / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "slurm_job": os.environ.get("SLURM_JOB_ID")}
    for _ in range(3):
        if _create(path, me):
            return me
        holder = holder_of(path)
        if not is_stale(holder):
            if not path.exists():
                continue  # released meanwhile
            raise refusal(job_dir, path, holder)
        log.warning("vsdr: taking over the stale lock %s of PID %s on %s (no longer running)",
                    path, holder.get("pid"), holder.get("host"))
        _take_over(path, holder)
    raise refusal(job_dir, path, holder_of(path))


def release(job_dir: str | Path, me: dict) -> None:
    """Remove ``job_dir``'s lock if it is still ``me``'s."""
    path = Path(job_dir) / LOCK_NAME
    if holder_of(path) == me:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def job_lock(job_dir: str | Path, take: bool = True) -> Iterator[None]:
    """Hold ``job_dir``'s lock while the body runs (``take=False``: hold none, for a DDP
    worker); released however the body ends."""
    if not take:
        yield
        return
    me = acquire(job_dir)
    try:
        yield
    finally:
        release(job_dir, me)
