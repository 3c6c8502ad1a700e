"""The allocator setting of every job (vsdr.experiments.memory): freed blocks stay in the heap
for reuse instead of being unmapped and faulted in again, and results do not change.

Page-fault counts show the effect (docs/RESULTS.md §16.3) but vary from run to run with
transparent huge pages, so the test reads glibc's own bookkeeping (``mallinfo2``): where a
24 MB block lives while it is alive, and how much free heap is kept after it is freed."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest
from conftest import compose_cfg

from vsdr.experiments.memory import keep_freed_memory

PROBE = """
import ctypes, hashlib, sys, torch
if sys.argv[1] == "keep":
    from vsdr.experiments.memory import keep_freed_memory
    assert keep_freed_memory()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
before = libc.mallinfo2()
t = torch.ones(6_000_000)  # 24 MB
alive = libc.mallinfo2()
del t
freed = libc.mallinfo2()
# a sampling-shaped loop (a 20 MB and a 5 MB temporary a step): its numbers
g = torch.Generator().manual_seed(0)
x = torch.randn(20000, 64, generator=g)
w, w2 = torch.randn(64, 256, generator=g), torch.randn(256, 64, generator=g)
for _ in range(20):
    x = x + 0.01 * ((x @ w).relu() @ w2)
print(alive.hblkhd - before.hblkhd, freed.fordblks, hashlib.sha256(x.numpy().tobytes()).hexdigest())
"""


def probe(mode: str) -> tuple[int, int, str]:
    """(bytes mmapped for the live 24 MB block, free heap bytes after freeing it, digest)."""
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    mapped, free, digest = out.stdout.split()[-3:]
    return int(mapped), int(free), digest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_stay_in_the_heap_and_results_do_not_change():
    if not keep_freed_memory():
        pytest.skip("not glibc: the setting is a no-op")
    if not hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2"):
        pytest.skip("glibc before 2.33: no mallinfo2 to read")
    mapped, free, digest = probe("default")
    mapped_kept, free_kept, digest_kept = probe("keep")
    block = 24_000_000
    assert mapped >= block and free < block  # by default: mapped, then handed back
    assert mapped_kept == 0 and free_kept >= block  # kept: from the heap, and kept there
    assert digest_kept == digest  # the same numbers


def test_every_job_keeps_freed_memory_before_its_work(tmp_path, monkeypatch):
    import vsdr.experiments.job as job

    calls = []
    monkeypatch.setattr(job, "keep_freed_memory", lambda: calls.append("mallopt") or True)
    real_build = job.build_job
    monkeypatch.setattr(job, "build_job", lambda cfg: calls.append("build") or real_build(cfg))
    cfg = compose_cfg(["dataset=gaussian", "dataset.dim=2", "score=exact_prior", "data.n_test=16",
                       "diffusion.T=10", "lam=[0,1]", "progress=false", "logger=none"])
    job.run_job(cfg, tmp_path / "job")
    assert calls[:2] == ["mallopt", "build"]
