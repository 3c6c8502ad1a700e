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
    build = job_module.build_sampling_model

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return build(*args, **kwargs)

    monkeypatch.setattr(job_module, "build_sampling_model", spy)
    run_job(compose_cfg([*FAST, "threads=2", "data.n_test=8"]), tmp_path / "job")
    assert seen == [2]
    assert json.loads((tmp_path / "job" / "metrics.json").read_text())["threads"] == 2


class RowCounter(torch.nn.Module):
    """A network ``(x, t) ↦ 2x + t`` that records the row count of every call."""

    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def forward(self, x, t):
        self.calls.append(x.shape[0])
        return 2 * x + t[:, None].to(x)


def test_fixed_shape_net_pads_only_the_last_block():
    from vsdr.models.invariant import FixedShapeNet

    inner = RowCounter()
    x, t = torch.randn(600, 2), torch.arange(600)
    out = FixedShapeNet(inner, 256)(x, t)
    assert inner.calls == [256, 256, 256]          # 600 rows: two full blocks, one padded
    torch.testing.assert_close(out, 2 * x + t[:, None].float(), rtol=0, atol=0)
    inner.calls.clear()
    FixedShapeNet(inner, 256)(x[:256], t[:256])
    assert inner.calls == [256]


def test_mlp2d_block_keeps_a_200_point_job_within_1_3x_of_its_rows():
    """The default 2D network's block (``data.net_batch``) makes a single-λ, 200-point chain
    call the network on at most 1.3× its rows (2048 rows would be 10.2×), and the default
    job's 6 × 1,000 rows on 2.4 % more."""
    from vsdr.diffusion import VPSchedule, per_sample_seeds
    from vsdr.models import NetworkPrior
    from vsdr.models.invariant import make_batch_invariant
    from vsdr.operators import Identity
    from vsdr.samplers import VarianceScaledSampler

    rows = int(compose_cfg([]).data.net_batch)
    assert rows == 256
    sch = VPSchedule.linear(T=3)
    for n, bound in ((200, 1.3), (6000, 1.025)):
        inner = RowCounter()
        prior = make_batch_invariant(NetworkPrior(inner, sch), rows)
        VarianceScaledSampler(progress=False)(prior, torch.zeros(n, 2), Identity(), 0.75, [0.5] * n,
                                              per_sample_seeds(0, range(n)), sch)
        assert sum(inner.calls) / (n * sch.T) <= bound, (n, inner.calls)
        assert set(inner.calls) == {rows}
