"""The allocator setting of every job (vsdr.experiments.memory): freed pages are kept for
reuse instead of being returned and faulted in again, and results do not change."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import compose_cfg

from vsdr.experiments.memory import keep_freed_memory

# 50 steps of a small residual MLP on 20,000 rows (a 20 MB and a 5 MB temporary a step, the
# shape of a sampling step): with glibc's defaults the freed heap top is trimmed and faulted
# in again every step (~390k page faults); kept, only the first steps fault
CHURN = """
import hashlib, resource, sys, torch
if sys.argv[1] == "keep":
    from vsdr.experiments.memory import keep_freed_memory
    assert keep_freed_memory()
g = torch.Generator().manual_seed(0)
x = torch.randn(20000, 64, generator=g)
w, w2 = torch.randn(64, 256, generator=g), torch.randn(256, 64, generator=g)
def step(x):
    return x + 0.01 * ((x @ w).relu() @ w2)
x = step(x)
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    x = step(x)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
print(hashlib.sha256(x.numpy().tobytes()).hexdigest(), faults)
"""


def digest_and_page_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    digest, faults = out.stdout.split()[-2:]
    return digest, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_not_faulted_in_again():
    if not keep_freed_memory():
        pytest.skip("not glibc: the setting is a no-op")
    (digest, default), (digest_kept, kept) = digest_and_page_faults("default"), digest_and_page_faults("keep")
    assert default > 100_000, default  # the cost removed: a 20 MB temporary refaulted each step
    assert kept < 0.1 * default, (kept, default)
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
