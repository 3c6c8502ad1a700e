"""Result files, written atomically (temporary name, then rename): a killed job leaves no
half file; a job's set of result files is staged and published together (``result_set``):
whole, with its ``metrics.json``, or not at all."""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from vsdr.errors import JobFault
from vsdr.experiments.lock import lock_problem


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared files
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def rows_to_csv(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """CSV text of ``rows`` with ``columns`` (default: every key, in first-seen order)."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> Path:
    return write_text(path, rows_to_csv(rows, columns))


def write_json(path: str | Path, obj: object) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    def _save(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic_write(path, _save)


#: the formats every figure is written in: PNG to look at, PDF for a paper
FIGURE_FORMATS = ("png", "pdf")


def save_figure(fig, path: str | Path, dpi: int = 150) -> list[Path]:
    """``fig`` as ``path`` with each suffix of ``FIGURE_FORMATS`` (``dp_curve.png`` →
    ``dp_curve.png`` and ``dp_curve.pdf``), each written atomically; returns the paths."""
    path = Path(path)
    out = []
    for fmt in FIGURE_FORMATS:
        buf = io.BytesIO()  # drawn in memory: a full disk fails the write below with an OSError
        fig.savefig(buf, dpi=dpi, format=fmt, bbox_inches="tight")  # (matplotlib's PDF writer
        data = buf.getvalue()                                        # hides it in its own error)
        out.append(atomic_write(path.with_suffix(f".{fmt}"), lambda p, data=data: p.write_bytes(data)))
    return out


def write_checkpoint(path: str | Path, state: dict, meta: dict) -> Path:
    """A cached network: ``state`` (a plain state dict, which ``read_checkpoint`` loads as
    data) at ``path`` and ``meta`` (training key, seconds) as JSON beside it
    (``path.with_suffix(".json")``), each atomically; the JSON first, so a ``.pt`` file has
    its metadata."""
    import torch

    path = Path(path)
    write_json(path.with_suffix(".json"), meta)
    plain = {k: v.detach().cpu() for k, v in state.items()}
    return atomic_write(path, lambda p: torch.save(plain, p))


def _json_default(o: object):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


#: bytes a write probe writes: a full disk fails it (an empty file would still be created)
PROBE_BYTES = 64 * 1024


def write_probe(folder: str | Path, prefix: str = ".vsdr-write-test-") -> None:
    """Create a file in ``folder``, write ``PROBE_BYTES`` into it, flush it to disk and remove
    it; raises ``OSError`` where that fails (read-only, full)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    try:
        os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(tmp)


def ensure_writable(job_dir: str | Path) -> Path:
    """Create ``job_dir`` and write-probe it before any compute; a read-only, full or
    missing location raises ``JobFault`` with one sentence."""
    job_dir = Path(job_dir)
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        write_probe(job_dir, ".write-probe.")
    except OSError as e:
        raise JobFault(f"the output dir {job_dir} is not writable ({e.strerror or e}): free space "
                       "there or choose another with hydra.run.dir= / hydra.sweep.dir=") from e
    return job_dir


def output_dir_problem(argv: list[str]) -> str | None:
    """Before Hydra creates the job's output dir: the sentence to show when the dir that
    ``hydra.run.dir=`` (``hydra.sweep.dir=`` with ``-m``) names, or ``paths.output_dir=`` (default
    ``outputs/``), cannot be created or written; ``None`` when it can. Checks the nearest
    existing ancestor with a write probe (``write_probe``: real bytes, so a full disk fails),
    and refuses a run dir that another live job holds (``vsdr.experiments.lock``) before Hydra
    writes its own files into it."""
    multirun = "-m" in argv or "--multirun" in argv
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    out = "paths.output_dir="
    default = next((a[len(out):] for a in argv if a.startswith(out)), "outputs")
    target = next((a[len(key):] for a in argv if a.startswith(key)), default)
    path = Path(target).absolute()
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    held = None if multirun else lock_problem(path)  # a multirun's jobs lock their own subdirs
    if held:
        return held
    try:
        write_probe(probe)
    except OSError as e:
        return (f"the output dir {path} cannot be written ({e.strerror or e} in {probe}): "
                f"{'free space there or ' if e.errno == errno.ENOSPC else ''}"
                f"choose another with {key[:-1]}=")
    return None


#: the folder inside a job dir where its result files are written before they are published
STAGE = ".results.tmp"
#: the file published last: its presence (with the config hash) marks the results complete
LAST = "metrics.json"


@contextlib.contextmanager
def result_set(out_dir: str | Path) -> Iterator[Path]:
    """Write a set of result files whole or not at all: the body writes into the staging
    folder this yields (``out_dir/.results.tmp``); when it ends without error, ``publish``
    moves every file into ``out_dir``, ``metrics.json`` last. On any error (or a kill) no new
    result file reaches ``out_dir``; the staging folder is removed either way."""
    out_dir = Path(out_dir)
    stage = out_dir / STAGE
    shutil.rmtree(stage, ignore_errors=True)  # a killed job's leftovers
    stage.mkdir(parents=True)
    try:
        yield stage
        publish(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, out_dir: Path) -> list[Path]:
    """Rename every file under ``stage`` to the same place under ``out_dir``, ``metrics.json``
    last; the old ``metrics.json`` goes first, so that the folder never holds a finished
    marker beside other results. Should a rename fail, every file of the set is removed from
    ``out_dir`` (the old ones of the same names too: without their ``metrics.json`` they are
    no results). Returns the published paths."""
    files = sorted((p for p in stage.rglob("*") if p.is_file()), key=lambda p: p.name == LAST)
    targets = [out_dir / f.relative_to(stage) for f in files]
    (out_dir / LAST).unlink(missing_ok=True)
    try:
        for f, target in zip(files, targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
    except BaseException:
        for t in targets:
            t.unlink(missing_ok=True)
        raise
    return targets
