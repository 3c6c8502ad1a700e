"""Result files, written atomically (temporary name, then rename): a killed job leaves no
half file."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vsdr.errors import JobFault


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
        target = path.with_suffix(f".{fmt}")
        out.append(atomic_write(target, lambda p, fmt=fmt: fig.savefig(p, dpi=dpi, format=fmt,
                                                                        bbox_inches="tight")))
    return out


def _json_default(o: object):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def ensure_writable(job_dir: str | Path) -> Path:
    """Create ``job_dir`` and write-probe it before any compute; a read-only, full or
    missing location raises ``JobFault`` with one sentence."""
    job_dir = Path(job_dir)
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=job_dir, prefix=".write-probe.", suffix=".tmp")
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
    except OSError as e:
        raise JobFault(f"the output dir {job_dir} is not writable ({e.strerror or e}): free space "
                       "there or choose another with hydra.run.dir= / hydra.sweep.dir=") from e
    return job_dir


def output_dir_problem(argv: list[str]) -> str | None:
    """Before Hydra creates the job's output dir: the sentence to show when the dir that
    ``hydra.run.dir=`` (``hydra.sweep.dir=`` with ``-m``) names, or ``paths.output_dir=`` (default
    ``outputs/``), cannot be created or written; ``None`` when it can. Checks the nearest existing ancestor by
    creating and removing a temporary file there."""
    multirun = "-m" in argv or "--multirun" in argv
    key = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    out = "paths.output_dir="
    default = next((a[len(out):] for a in argv if a.startswith(out)), "outputs")
    target = next((a[len(key):] for a in argv if a.startswith(key)), default)
    path = Path(target).absolute()
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".vsdr-write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        return (f"the output dir {path} cannot be written ({e.strerror or e} in {probe}): "
                f"choose another with {key[:-1]}=")
    return None
