"""Speed settings that must not change what a job computes: the ``threads`` root key (set
before any work, training included) and the fixed-row network blocks (``data.net_batch``)."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import FAST, compose_cfg

from vsdr.errors import ConfigError
from vsdr.experiments import job as job_module
from vsdr.experiments.build import apply_threads
from vsdr.experiments.job import run_job
from vsdr.experiments.resume import results_hash


def test_apply_threads_defaults_to_one_on_cpu_and_leaves_cuda_alone():
    torch.set_num_threads(2)
    assert apply_threads(None, torch.device("cpu")) == 1 == torch.get_num_threads()
    assert apply_threads(3, torch.device("cpu")) == 3 == torch.get_num_threads()
    torch.set_num_threads(2)
    assert apply_threads(None, torch.device("cuda")) == 2  # torch's own choice is kept
    assert apply_threads(1, torch.device("cuda")) == 1


def test_threads_is_a_root_key_in_the_results_hash():
    """``run.py threads=N`` composes; threads changes the last bits of the image UNet's
    convolutions (measured: 7e-9), so it stays in the results hash."""
    assert compose_cfg([]).threads is None
    assert compose_cfg(["threads=2"]).threads == 2
    assert results_hash(compose_cfg([*FAST, "threads=2"])) != results_hash(compose_cfg(FAST))


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_threads_stop_the_job(value, tmp_path):
    with pytest.raises(ConfigError, match="threads="):
        run_job(compose_cfg([*FAST, f"threads={value}"]), tmp_path / "job")


def test_threads_are_set_before_training(tmp_path, cache_dir, monkeypatch):
    seen = []
    build = job_module.build_score_model

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return build(*args, **kwargs)

    monkeypatch.setattr(job_module, "build_score_model", spy)
    run_job(compose_cfg([*FAST, "threads=2", "data.n_test=8"]), tmp_path / "job")
    assert seen == [2]
    assert json.loads((tmp_path / "job" / "metrics.json").read_text())["threads"] == 2
