"""What a job writes to the terminal or to a log file: progress bars that refresh sparsely
when the output is not a terminal (a SLURM log, a pipe, ``> job.log``), and Lightning's
tips and accelerator lines silenced.

Measured on the default job with ``> job.log 2>&1``: 1.2 MB and ~12,000 progress updates
before, a few KB after.
"""
from __future__ import annotations

import logging
import sys
import time
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
    terminal; elsewhere (a redirected log) a ``SparseProgressBar``: at most one line every
    ``SPARSE_SECONDS``, and the final state, like the sampling bars (``tqdm_options``).
    ``steps``: the run's steps; the bar reads its state every ``steps //
    SPARSE_TRAINING_UPDATES`` of them."""
    if not enabled:
        return []
    from lightning.pytorch.callbacks import TQDMProgressBar

    if interactive():
        return [TQDMProgressBar(refresh_rate=1)]
    return [sparse_progress_bar(max(1, steps // SPARSE_TRAINING_UPDATES) if steps > 0 else 1)]


def sparse_progress_bar(refresh_rate: int, seconds: float = SPARSE_SECONDS):
    """A ``TQDMProgressBar`` whose training bar writes at most one line every ``seconds``
    (Lightning refreshes its bars explicitly, on every update, description and postfix, which
    tqdm's ``mininterval`` does not hold back), plus the first and the final line."""
    from lightning.pytorch.callbacks import TQDMProgressBar
    from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

    class SparseTqdm(Tqdm):
        """A bar whose ``refresh`` is a no-op until ``seconds`` passed since the last line;
        ``close`` still writes the final state."""

        def refresh(self, nolock: bool = False, lock_args=None) -> None:
            now = time.monotonic()
            last = getattr(self, "_vsdr_last", None)
            if last is not None and now - last < seconds:
                return
            self._vsdr_last = now
            super().refresh(nolock=nolock, lock_args=lock_args)

    class SparseProgressBar(TQDMProgressBar):
        """Lightning's bar, its training bar a ``SparseTqdm``."""

        def init_train_tqdm(self) -> Tqdm:  # Lightning's own, but a SparseTqdm
            return SparseTqdm(desc=self.train_description, position=2 * self.process_position,
                              disable=self.is_disabled, leave=True, dynamic_ncols=True,
                              file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT)

    return SparseProgressBar(refresh_rate=refresh_rate)


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


class BelowWarning(logging.Filter):
    """Pass records below ``WARNING`` only (submitit's stdout handler: its stderr handler
    prints the warnings)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def one_copy_per_record(lg: logging.Logger) -> None:
    """Print each of submitit's records once. submitit's own config sends a warning to its
    stdout handler (level DEBUG), to its stderr handler and, propagated, to Hydra's console
    (stdout): three copies. With both of submitit's handlers there (its default config),
    warnings go to stderr only, the rest to stdout, and nothing on to Hydra's console.
    Idempotent; a submitit without its handlers (``SUBMITIT_LOG_LEVEL=NOCONFIG``) is left as
    it is."""
    handlers = {h.name: h for h in lg.handlers}
    if not {"submitit_out", "submitit_err"} <= set(handlers):
        return
    out = handlers["submitit_out"]
    if not any(isinstance(f, BelowWarning) for f in out.filters):
        out.addFilter(BelowWarning())
    lg.propagate = False


class QuietSacct:
    """Stands in for ``subprocess`` in submitit's core module: ``check_output`` of a ``sacct``
    command keeps sacct's stderr (``Slurm accounting storage is disabled``, on every poll of a
    cluster without accounting) out of the terminal; submitit's warning, shown once, says it.
    Everything else is ``subprocess`` itself."""

    def __init__(self, module) -> None:
        self.module = module

    def __getattr__(self, name: str):
        return getattr(self.module, name)

    def check_output(self, command, *args, **kwargs):
        if list(command)[:1] == ["sacct"]:
            kwargs.setdefault("stderr", self.module.PIPE)
        return self.module.check_output(command, *args, **kwargs)


def quiet_sacct() -> None:
    """Route submitit's ``sacct`` polls through ``QuietSacct`` (idempotent)."""
    try:
        from submitit.core import core
    except ImportError:  # pragma: no cover - submitit is a dependency
        return
    if not isinstance(core.subprocess, QuietSacct):
        core.subprocess = QuietSacct(core.subprocess)


def quiet_submitit() -> OnceFilter:
    """Show submitit's ``sacct`` fallback warning once per sweep instead of on every poll of
    the jobs' states (every few seconds, then every minute, for the whole sweep), print it
    once, on stderr (``one_copy_per_record``), and keep ``sacct``'s own complaint of every
    poll out of the terminal (``quiet_sacct``). Idempotent: returns the filter installed on
    the ``submitit`` logger."""
    try:  # submitit configures its logger when imported: import it first, then add the filter
        import submitit.core.logger  # noqa: F401
    except ImportError:  # pragma: no cover - submitit is a dependency
        pass
    lg = logging.getLogger("submitit")
    one_copy_per_record(lg)
    quiet_sacct()
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
