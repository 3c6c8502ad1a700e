"""Resumable and reproducible sweeps (issue 6): a finished job is skipped, a stale one reruns,
a sweep killed by a real signal finishes on rerun with nothing lost and nothing done twice,
and metrics.csv is bit-identical whatever the batch size and however λ are split into jobs."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter

import numpy as np
import torch
from conftest import FAST, ROOT, compose_cfg, kill_once_logged

from vsdr.experiments.job import run_job
from vsdr.experiments.resume import ChunkStore, results_config, results_hash


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_results_hash_ignores_only_what_does_not_change_results():
    base = compose_cfg(FAST)
    h = results_hash(base)
    for same in ["progress=true", "logger=csv", "data.batch_size=7", "paths.cache_dir=/elsewhere"]:
        assert results_hash(compose_cfg([*FAST, same])) == h, same
    for other in ["seed=1", "lam=[0,0.5]", "noise.sigma=0.5", "data.n_test=65", "data.num_shards=2",
                  "diffusion.T=51", "sampler.form=dps"]:
        assert results_hash(compose_cfg([*FAST, other])) != h, other
    assert "batch_size" not in results_config(base)["data"] and "progress" not in results_config(base)


def test_finished_job_is_skipped_and_stale_one_reruns(tmp_path, cache_dir, caplog):
    cfg = compose_cfg(FAST)
    job = tmp_path / "job"
    rows = run_job(cfg, job)
    stamp = (job / "metrics.json").stat().st_mtime_ns
    umask = os.umask(0)
    os.umask(umask)
    assert (job / "metrics.csv").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    caplog.set_level("INFO")
    again = run_job(compose_cfg([*FAST, "data.batch_size=16"]), job)  # same results hash
    assert again == json.loads(json.dumps(rows))
    assert (job / "metrics.json").stat().st_mtime_ns == stamp
    assert "skipping job" in caplog.text
    # stale: another seed in the same dir reruns and rewrites the hash
    caplog.clear()
    run_job(compose_cfg([*FAST, "seed=1"]), job)
    assert "stale, rerunning" in caplog.text and "computed job" in caplog.text
    meta = json.loads((job / "metrics.json").read_text())
    assert meta["config_hash"] == results_hash(compose_cfg([*FAST, "seed=1"]))
    # a damaged metrics.json reruns too
    (job / "metrics.json").write_text("{not json")
    caplog.clear()
    run_job(compose_cfg([*FAST, "seed=1"]), job)
    assert "computed job" in caplog.text


def test_metrics_bit_identical_across_batch_sizes_and_job_splits(tmp_path, cache_dir):
    texts = {}
    for bs in ["null", "7"]:
        d = tmp_path / f"bs{bs}"
        run_job(compose_cfg([*FAST, "lam=[0,0.5,1]", f"data.batch_size={bs}"]), d)
        texts[bs] = ((d / "metrics.csv").read_bytes(), (d / "items.csv").read_bytes())
    assert texts["7"] == texts["null"]
    # λ = 0.5 in a job of its own (and another batch size) gives the same row, byte for byte
    header, *lines = texts["null"][0].decode().splitlines()
    d = tmp_path / "lam0.5"
    run_job(compose_cfg([*FAST, "lam=0.5", "data.batch_size=10"]), d)
    assert (d / "metrics.csv").read_text().splitlines() == [header, lines[1]]


def _sweep_cmd(lams: str) -> list[str]:
    return [sys.executable, str(ROOT / "run.py"), "-m",
            *[a for a in FAST if not a.startswith(("lam=", "diffusion.T="))],
            "diffusion.T=100", "data.batch_size=16", f"lam={lams}", "hydra.sweep.dir=sweep"]


def test_killed_sweep_resumes_with_nothing_lost_and_nothing_done_twice(tmp_path, cache_dir):
    """SIGKILL a real 3-job multirun once job 1 has finished a chunk, rerun the same command:
    every job ends finished, every chunk is sampled exactly once over both runs, job 0 is
    skipped, job 1 continues from its saved chunks, and the gathered curve is what one
    uninterrupted job gives."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VSDR_CACHE_DIR": str(cache_dir)}
    lams = "0,0.5,1"
    sweep = tmp_path / "sweep"
    code = kill_once_logged(_sweep_cmd(lams), tmp_path, env, sweep / "1" / "run.log")
    assert code == -signal.SIGKILL
    assert (sweep / "0" / "metrics.json").is_file()
    assert not (sweep / "1" / "metrics.json").exists() and not (sweep / "2").exists()
    assert list((sweep / "1" / "partial").glob("*.pt"))

    res = subprocess.run(_sweep_cmd(lams), cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    for j in range(3):
        text = (sweep / str(j) / "run.log").read_text()
        assert text.count("vsdr: computed job") == 1, (j, text)
        chunks = Counter(re.findall(r"sampled chunk (\d+\.\.\d+)", text))
        assert sorted(chunks) == sorted(f"{a}..{a + 15}" for a in range(0, 64, 16)), (j, chunks)
        assert set(chunks.values()) == {1}, (j, chunks)  # no chunk sampled twice
        assert not (sweep / str(j) / "partial").exists()
    assert "skipping job" in (sweep / "0" / "run.log").read_text()
    assert "reused" in (sweep / "1" / "run.log").read_text()
    assert not list(sweep.rglob(".*.tmp"))

    gathered = read_csv(sweep / "dp_curve.csv")
    assert [float(r["value"]) for r in gathered] == [0.0, 0.5, 1.0]
    ref = run_job(compose_cfg([*FAST, "diffusion.T=100", f"lam=[{lams}]"]), tmp_path / "ref")
    assert [(float(r["mse"]), float(r["w2"])) for r in gathered] == [(r["mse"], r["w2"]) for r in ref]


def test_requeued_job_continues_from_its_chunks(tmp_path, cache_dir, caplog):
    """In process: a job that died after some chunks (simulated by deleting its results but
    not its chunks) samples only the rest and gives the same numbers."""
    bs = 16
    cfg = compose_cfg([*FAST, f"data.batch_size={bs}"])
    rows = run_job(cfg, tmp_path / "a")
    job = tmp_path / "b"
    store = ChunkStore(job, results_hash(cfg))
    ref = np.load(tmp_path / "a" / "samples.npz")["samples"]
    store.save(0, bs, torch.from_numpy(ref[:, :bs]), 50)
    store.save(bs, 2 * bs, torch.from_numpy(ref[:, bs:2 * bs]), 50)
    caplog.set_level("INFO")
    again = run_job(cfg, job)
    assert "reused 2 finished chunks" in caplog.text
    assert caplog.text.count("sampled chunk") == -(-64 // bs) - 2
    assert again == rows


def test_results_hash_without_operator_boundary_at_its_default():
    """operator.boundary=reflect (the default) is left out of the results hash, so blur and SR
    jobs finished before the key existed keep their hash; circular changes it."""
    from omegaconf import OmegaConf

    cfg = compose_cfg(["experiment=images_small_dps"])
    old = OmegaConf.to_container(cfg, resolve=True)
    old["operator"].pop("boundary")
    assert results_hash(cfg) == results_hash(old)
    circular = compose_cfg(["experiment=images_small_dps", "operator.boundary=circular"])
    assert results_hash(circular) != results_hash(cfg)
