"""Every row of docs/FAULTS.md: each bad input or fault and what the user sees."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FAST, ROOT, compose_cfg, run_cli

from vsdr.diffusion import VPSchedule
from vsdr.errors import ConfigError, JobFault, NonFiniteError
from vsdr.experiments.job import run_job
from vsdr.experiments.prior import build_network
from vsdr.samplers import VarianceScaledSampler


class _NaNAt:
    """A stand-in prior whose ε is 0 except NaN at reverse step ``bad``."""

    is_conditional = False

    def __init__(self, bad: int):
        self.bad, self.nfe = bad, 0

    def eps(self, x, i):
        self.nfe += 1
        out = 0.0 * x
        return out + float("nan") if i == self.bad else out


def test_nan_in_sampling_names_the_step():
    schedule = VPSchedule.linear(T=30)
    sampler = VarianceScaledSampler(progress=False)
    y = torch.zeros(4, 2)
    model = _NaNAt(17)
    with pytest.raises(NonFiniteError, match=r"NaN at reverse step i=17 \(t=18 of T=30\) in 4 of 4 "
                                             r"samples, first sample 0 \(knob 0.5\)"):
        sampler(model, y, _Identity(), 0.5, torch.full((4,), 0.5), [0, 1, 2, 3], schedule)
    assert model.nfe == 30 - 17  # stopped at that step, not at the end


class _Identity:
    def forward(self, x):
        return x

    def adjoint(self, y):
        return y


def test_nan_checkpoint_stops_the_job_without_results(tmp_path, cache_dir):
    cfg = compose_cfg(FAST)
    net = build_network(cfg, VPSchedule.linear(50))
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
             for k, v in net.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "nan.pt")
    with pytest.raises(NonFiniteError, match=r"NaN at reverse step i=49 \(t=50 of T=50\)"):
        run_job(compose_cfg([*FAST, f"model.ckpt={tmp_path / 'nan.pt'}"]), tmp_path / "job")
    assert not (tmp_path / "job" / "metrics.csv").exists()
    assert not (tmp_path / "job" / "metrics.json").exists()


def test_corrupted_checkpoint_is_one_sentence_on_the_cli(tmp_path):
    (tmp_path / "garbage.ckpt").write_bytes(os.urandom(4096))
    res = run_cli([*FAST, f"model.ckpt={tmp_path / 'garbage.ckpt'}", "hydra.run.dir=job"], cwd=tmp_path)
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    garbage = tmp_path / "garbage.ckpt"
    assert last.startswith(f"vsdr: model.ckpt={garbage} is not a readable torch checkpoint (")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "job" / "metrics.csv").exists()


def test_unknown_override_gives_hydras_message(tmp_path):
    res = run_cli(["nosuchkey=1"], cwd=tmp_path)
    assert res.returncode == 1
    assert "Could not override 'nosuchkey'" in res.stderr
    assert "Key 'nosuchkey' is not in struct" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("override,message", [
    ("data.shard=2", r"data.shard=2 is outside 0..1 for data.num_shards=2"),
    ("data.shard=-1", r"data.shard=-1 is outside 0..1"),
])
def test_bad_shard(override, message, tmp_path, cache_dir):
    with pytest.raises(ConfigError, match=message):
        run_job(compose_cfg([*FAST, "data.num_shards=2", override]), tmp_path / "job")
    assert not cache_dir.exists()


def test_too_many_shards(tmp_path, cache_dir):
    with pytest.raises(ConfigError, match=r"data.num_shards=65 does not fit data.n_test=64"):
        run_job(compose_cfg([*FAST, "data.num_shards=65"]), tmp_path / "job")


def test_full_disk_while_writing_results(tmp_path, cache_dir, monkeypatch):
    import vsdr.experiments.writer as writer

    real_replace = os.replace

    def enospc(src, dst):  # the job dir's disk is full (the cache's is not)
        if Path(dst).parent == tmp_path / "job":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(writer.os, "replace", enospc)
    with pytest.raises(JobFault, match=r"could not write the results into .*job \(No space left on "
                                       r"device\): free space there"):
        run_job(compose_cfg(FAST), tmp_path / "job")
    assert not (tmp_path / "job" / "metrics.json").exists()
    assert not list((tmp_path / "job").glob(".*.tmp"))  # no half files


_CHILD = """
import sys
from conftest import FAST, compose_cfg
from vsdr.errors import JobFault
from vsdr.experiments.job import run_job
try:
    run_job(compose_cfg(FAST), sys.argv[1])
except JobFault as e:
    print(f"vsdr: {e}", file=sys.stderr)
    sys.exit(3)
"""


def run_in_read_only_dir(tmp_path, command) -> tuple[subprocess.CompletedProcess, Path]:
    """Run ``command(ro)`` (argv, given the read-only dir) against a real read-only dir (mode
    0555). Root ignores modes, so as root the command runs without the capability to override
    them (``setpriv``), as an unprivileged user would."""
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a dir read-only for us")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}",
           "VSDR_CACHE_DIR": str(tmp_path / "cache")}
    try:
        res = subprocess.run([*prefix, *command(ro)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    finally:
        os.chmod(ro, 0o755)
    return res, ro


def test_read_only_output_dir_is_one_sentence_before_any_compute(tmp_path):
    res, ro = run_in_read_only_dir(tmp_path, lambda ro: [sys.executable, "-c", _CHILD, str(ro / "job")])
    assert res.returncode == 3, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last == (f"vsdr: the output dir {ro / 'job'} is not writable (Permission denied): free "
                    "space there or choose another with hydra.run.dir= / hydra.sweep.dir=")
    assert not (tmp_path / "cache").exists()  # stopped before training


def test_read_only_output_dir_through_run_py_is_one_sentence(tmp_path):
    """Hydra creates the output dir before any job code: run.py checks it first."""
    res, ro = run_in_read_only_dir(tmp_path, lambda ro: [sys.executable, str(ROOT / "run.py"), *FAST,
                                                         f"hydra.run.dir={ro / 'job'}"])
    assert res.returncode == 2, res.stderr[-2000:]
    last = res.stderr.strip().splitlines()[-1]
    assert last == (f"vsdr: the output dir {ro / 'job'} cannot be written (Permission denied in "
                    f"{ro}): choose another with hydra.run.dir=")
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "cache").exists() and not (ro / "job").exists()


def test_check_finite_by_its_sum_and_on_overflow():
    """The per-step check sums ``x``: a NaN or an infinity anywhere makes the sum non-finite;
    finite entries whose sum overflows still pass."""
    import torch

    from vsdr.diffusion.checks import check_finite

    big = torch.full((3, 2), 3e38)                      # float32: the sum overflows to inf
    check_finite(big, 5, 10)
    for bad, kind in ((float("inf"), "an infinity"), (float("nan"), "NaN")):
        x = torch.zeros(3, 2)
        x[1, 0] = bad
        msg = f"{kind} at reverse step i=5 .* in 1 of 3 samples, first sample 1"
        with pytest.raises(NonFiniteError, match=msg):
            check_finite(x, 5, 10)
