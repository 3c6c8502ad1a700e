"""The C allocator's settings for a job: keep freed memory instead of handing it back.

A sampling step allocates and frees the same tensor sizes a thousand times. With glibc's
defaults, blocks above the (dynamic) mmap threshold are mapped and unmapped each time, and
freed heap tops are trimmed, so the kernel faults in and zeroes the same pages again on every
step: on the digits DiffPIR job that was 4.4 million page faults and 5.4 s of system time in
a 40 s job (docs/RESULTS.md §16.3). Raising the mmap threshold to glibc's largest (32 MiB on
64-bit) and the trim threshold and top pad far above a job's working set keeps the pages in
the heap for reuse. Results do not change: torch's CPU allocator aligns every tensor to 64
bytes itself, and no computation reads an address. The price: a job's resident memory may
exceed what it uses by up to the trim threshold (1 GiB) of freed heap, which matters only
against a tight memory limit (the digits job's peak RSS: 1.32 → 1.41 GB).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB with 8-byte longs)
MMAP_THRESHOLD_MAX = 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
#: freed heap kept before trimming, and extra heap requested per growth
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 256 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold, trim threshold and top pad as in the module doc. Returns
    whether every setting took (``False`` off glibc, e.g. macOS: nothing is changed). The
    settings are the process's: set once, however many jobs the process runs (a multirun)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD)))
    if not ok:
        log.debug("vsdr: mallopt refused a setting; the allocator keeps its defaults")
    return ok
