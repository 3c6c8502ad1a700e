"""What a job writes to the terminal or to a log file: progress bars that refresh sparsely
when the output is not a terminal (a SLURM log, a pipe, ``> job.log``), and Lightning's
tips and accelerator lines silenced.

Measured on the default job with ``> job.log 2>&1``: 1.2 MB and ~12,000 progress updates
before, a few KB after.
"""
from __future__ import annotations

import logging
import sys
import warnings

#: seconds between two refreshes of a progress bar that does not write to a terminal
SPARSE_SECONDS = 30.0
#: refreshes of Lightning's training bar over a run when not writing to a terminal
SPARSE_TRAINING_UPDATES = 20
#: Lightning's loggers that print its tips and the "GPU available / TPU available" lines
LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def interactive() -> bool:
    """Whether progress bars go to a terminal (stderr is a TTY)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def tqdm_options(enabled: bool) -> dict:
    """Keyword arguments for ``tqdm`` of a sampler's reverse chain: off when not ``enabled``;
    on a terminal a live bar that disappears when done; elsewhere one refresh every
    ``SPARSE_SECONDS`` and the final state kept as one line."""
    if not enabled:
        return {"disable": True}
    if interactive():
        return {"leave": False}
    return {"leave": True, "mininterval": SPARSE_SECONDS, "maxinterval": SPARSE_SECONDS}


def training_progress(enabled: bool, steps: int) -> list:
    """Lightning callbacks for the training bar: none when not ``enabled`` (pass
    ``enable_progress_bar=False``), else a ``TQDMProgressBar`` refreshed every step on a
    terminal and ``SPARSE_TRAINING_UPDATES`` times over ``steps`` elsewhere."""
    if not enabled:
        return []
    from lightning.pytorch.callbacks import TQDMProgressBar

    if interactive():
        return [TQDMProgressBar(refresh_rate=1)]
    rate = max(1, steps // SPARSE_TRAINING_UPDATES) if steps > 0 else 1000
    return [TQDMProgressBar(refresh_rate=rate)]


def quiet_logs() -> None:
    """Silence Lightning's info lines (the "💡 Tip: … litlogger" advert, "GPU available",
    "TPU available", "`Trainer.fit` stopped") and the handler Lightning adds to its own logger
    when imported before logging is configured (every line then appeared twice); its
    warnings still reach the job log once. Also hides a deprecation warning torch raises
    inside Lightning on every run, and Lightning's hint that ``srun`` exists but is not used
    (on every job started outside an allocation on a machine with SLURM: vsdr's SLURM jobs
    run under srun through the launcher, docs/SLURM.md).

    Lightning is not imported here (it takes seconds, and a job whose networks are cached
    never needs it): levels and filters apply before it is loaded, and ``make_trainer``
    calls this again once it is, to remove the handlers its import added."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if type(h) is logging.StreamHandler:
                lg.removeHandler(h)
        lg.propagate = True
    for name in LIGHTNING_INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system")


#: the start of submitit's warning when ``sacct`` fails (a cluster without SLURM's accounting
#: daemon): it then polls ``squeue``-free, by the jobs' result files, and warns on every poll
SACCT_WARNING = "Bypassing sacct error"


class OnceFilter(logging.Filter):
    """Let the first record whose message contains ``text`` through (with ``note`` appended)
    and drop every later one; other records pass untouched."""

    def __init__(self, text: str, note: str = "") -> None:
        super().__init__()
        self.text, self.note, self.seen = text, note, False

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.text not in message:
            return True
        if self.seen:
            return False
        self.seen = True
        if self.note:
            record.msg, record.args = f"{message} {self.note}", None
        return True


def quiet_submitit() -> OnceFilter:
    """Show submitit's ``sacct`` fallback warning once per sweep instead of on every poll of
    the jobs' states (every few seconds, then every minute, for the whole sweep). Idempotent:
    returns the filter installed on the ``submitit`` logger."""
    try:  # submitit configures its logger when imported: import it first, then add the filter
        import submitit.core.logger  # noqa: F401
    except ImportError:  # pragma: no cover - submitit is a dependency
        pass
    lg = logging.getLogger("submitit")
    for f in lg.filters:
        if isinstance(f, OnceFilter) and f.text == SACCT_WARNING:
            return f
    f = OnceFilter(SACCT_WARNING, "(shown once: no SLURM accounting here, job states come from "
                                  "their result files)")
    lg.addFilter(f)
    return f


def log_to_files(message: str, level: int = logging.ERROR, name: str = "vsdr") -> None:
    """Log ``message`` to the log files only (the root logger's ``FileHandler``s: Hydra's job
    log, ``run.log``): for a sentence that is printed on the console already."""
    record = logging.getLogger(name).makeRecord(name, level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and level >= handler.level:
            handler.handle(record)
