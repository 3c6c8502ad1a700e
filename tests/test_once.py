"""One message per event: submitit's "no SLURM accounting" warning of a sweep on
``hydra/launcher=slurm_cpu`` once, on stderr, instead of on submitit's stdout and stderr
handlers and Hydra's console (tests/test_slurm.py checks it on a cluster)."""
from __future__ import annotations

import io
import logging
import subprocess

import pytest

from vsdr.console import BelowWarning, OnceFilter, QuietSacct, quiet_submitit


@pytest.fixture
def submitit_logger():
    """submitit's logger as its own config leaves it, each handler writing to its own
    buffer, and a root handler standing in for Hydra's console; all restored afterwards."""
    import submitit.core.logger  # noqa: F401 - configures the logger

    lg = logging.getLogger("submitit")
    saved = (lg.propagate, list(lg.filters), {h: list(h.filters) for h in lg.handlers})
    buffers = {h.name: io.StringIO() for h in lg.handlers}
    streams = {h: h.setStream(buffers[h.name]) for h in lg.handlers}
    buffers["hydra"] = io.StringIO()
    console = logging.StreamHandler(buffers["hydra"])
    root = logging.getLogger()
    root.addHandler(console)
    lg.propagate, lg.filters = True, [f for f in lg.filters if not isinstance(f, OnceFilter)]
    try:
        yield lg, buffers
    finally:
        root.removeHandler(console)
        lg.propagate, lg.filters = saved[0], saved[1]
        for h, filters in saved[2].items():
            h.filters = filters
            h.setStream(streams[h])


def test_the_sacct_warning_is_printed_once_on_stderr(submitit_logger):
    lg, buffers = submitit_logger
    assert {"submitit_out", "submitit_err"} <= set(buffers)  # submitit's own two handlers
    quiet_submitit()
    quiet_submitit()  # idempotent: a second sweep in the process adds nothing
    for call in (1, 2, 3):
        lg.warning("Call #%d - Bypassing sacct error Command 'sacct' returned 1", call)
    lg.info("an info line")
    assert buffers["submitit_err"].getvalue().count("Bypassing sacct error") == 1
    assert "shown once" in buffers["submitit_err"].getvalue()
    assert "Bypassing" not in buffers["submitit_out"].getvalue() + buffers["hydra"].getvalue()
    assert buffers["submitit_out"].getvalue().count("an info line") == 1  # once, on stdout
    assert "an info line" not in buffers["submitit_err"].getvalue() + buffers["hydra"].getvalue()
    out = next(h for h in lg.handlers if h.name == "submitit_out")
    assert sum(isinstance(f, BelowWarning) for f in out.filters) == 1


def test_sacct_stderr_is_kept_out_of_the_terminal():
    """sacct's own "Slurm accounting storage is disabled" (every poll) is captured; other
    commands run as they are."""
    calls = []

    class Fake:
        PIPE = subprocess.PIPE

        @staticmethod
        def check_output(command, *args, **kwargs):
            calls.append((command, kwargs))
            return b""

    quiet = QuietSacct(Fake)
    quiet.check_output(["sacct", "-j", "1"], shell=False)
    quiet.check_output(["tail", "-40", "log"], encoding="utf-8")
    assert calls == [(["sacct", "-j", "1"], {"shell": False, "stderr": subprocess.PIPE}),
                     (["tail", "-40", "log"], {"encoding": "utf-8"})]
    assert quiet.PIPE == subprocess.PIPE  # the rest is subprocess's
