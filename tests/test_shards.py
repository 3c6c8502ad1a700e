"""Shards: data.shard=i data.num_shards=n jobs gather into the unsharded run's tables."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import FAST, compose_cfg

from vsdr.errors import ConfigError
from vsdr.experiments.gather import gather_dp_curve
from vsdr.experiments.job import run_job
from vsdr.experiments.shards import gather_shards, main


def test_three_shards_gather_into_the_unsharded_tables(tmp_path, cache_dir):
    run_job(compose_cfg([*FAST, "lam=[0,0.5,1]"]), tmp_path / "full")
    sweep = tmp_path / "sweep"
    for i, bs in enumerate(["null", "5", "9"]):  # shards of 22, 21, 21 points, any batch size
        run_job(compose_cfg([*FAST, "lam=[0,0.5,1]", "data.num_shards=3", f"data.shard={i}",
                             f"data.batch_size={bs}"]), sweep / str(i))
    assert len(np.load(sweep / "1" / "samples.npz")["index"]) == 21
    # reverse order on purpose: the gather sorts by test-point index
    rows = gather_shards([sweep / "2", sweep / "0", sweep / "1"], tmp_path / "merged")
    for name in ["metrics.csv", "items.csv"]:
        assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    a, b = np.load(tmp_path / "merged" / "samples.npz"), np.load(tmp_path / "full" / "samples.npz")
    for key in ["x0", "y", "samples", "values", "index"]:
        assert np.array_equal(a[key], b[key]), key
    full_meta = json.loads((tmp_path / "full" / "metrics.json").read_text())
    merged_meta = json.loads((tmp_path / "merged" / "metrics.json").read_text())
    assert merged_meta["config_hash"] == full_meta["config_hash"]  # a rerun of full would skip
    assert rows == full_meta["rows"]
    # the sweep's gathered DP curve counts the merged table, not the shards
    curve = gather_dp_curve(sweep)
    assert len(curve) == 3 and {r["job"] for r in curve} == {merged_meta["config_hash"]}
    # missing shard, and the CLI's one sentence
    with pytest.raises(ConfigError, match=r"the shards cover 43 distinct test points of 64"):
        gather_shards([sweep / "0", sweep / "1"], tmp_path / "bad")
    assert main([str(tmp_path / "bad"), str(sweep / "0")]) == 2
