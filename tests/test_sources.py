"""score= by _target_ (vsdr/experiments/sources.py) and the one network cache
(vsdr/experiments/cache.py) that the score network and PSCGAN share."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from conftest import compose_cfg

from vsdr.errors import ConfigError
from vsdr.experiments.build import network_files
from vsdr.experiments.cache import NetworkCache
from vsdr.experiments.prior import cache_path
from vsdr.experiments.pscgan import gan_cache_path
from vsdr.experiments.sources import ExactScore, NetworkScore, SamplerNetworks, model_source
from vsdr.experiments.validate import validate_config


def test_score_sources_by_target():
    assert isinstance(model_source(compose_cfg([])), NetworkScore)
    exact = model_source(compose_cfg(["dataset=gaussian", "score=exact_posterior"]))
    assert isinstance(exact, ExactScore) and exact.kind == "posterior"
    assert exact.label == "score=exact_posterior"
    assert isinstance(model_source(compose_cfg(["sampler=pscgan"])), SamplerNetworks)
    with pytest.raises(ConfigError, match=r"score: kind='likelihood' is not one of \['prior', 'posterior'\]"):
        model_source(compose_cfg(["score=exact_prior", "score.kind=likelihood"]))
    with pytest.raises(ConfigError, match="score=exact_prior does not fit sampler=.*brings its own networks"):
        validate_config(compose_cfg(["sampler=pscgan", "score=exact_prior"]))


def test_network_files_follow_the_source():
    cfg = compose_cfg([])
    assert network_files(cfg) == [cache_path(cfg)]
    assert network_files(compose_cfg(["sampler=pscgan"])) == [gan_cache_path(compose_cfg(["sampler=pscgan"]))]
    assert network_files(compose_cfg(["dataset=gaussian", "score=exact_prior"])) == []
    assert network_files(compose_cfg(["model.ckpt=x.pt"])) == []


def test_cache_path_is_the_stem_and_the_sha256_of_the_key(tmp_path):
    key = {"b": [1, 2], "a": "x"}
    cache = NetworkCache(str(tmp_path), "pinwheel-mlp2d", key)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    assert cache.path == tmp_path / f"pinwheel-mlp2d-{digest}.pt"
    cfg = compose_cfg([f"paths.cache_dir={tmp_path}"])  # the score network's file keeps its name
    assert cache_path(cfg).name.startswith("pinwheel-mlp2d-") and cache_path(cfg).parent == tmp_path


def test_load_or_train_trains_once_then_reads_the_cache(tmp_path):
    cache = NetworkCache(str(tmp_path), "d-m", {"k": 1})
    calls = []

    def train():
        calls.append(1)
        net = torch.nn.Linear(2, 2)
        with torch.no_grad():
            net.weight.fill_(3.0)
        return net, 1.5

    net, info = cache.load_or_train(torch.nn.Linear(2, 2), train)
    assert info["source"] == "trained" and info["train_seconds"] == 1.5 and calls == [1]
    assert json.loads(cache.path.with_suffix(".json").read_text()) == {"training_key": {"k": 1},
                                                                      "train_seconds": 1.5}
    again, info = cache.load_or_train(torch.nn.Linear(2, 2), train)
    assert info["source"] == "cache" and calls == [1]
    assert torch.equal(again.weight, torch.full((2, 2), 3.0))
    assert set(torch.load(cache.path, weights_only=True)) == {"weight", "bias"}  # a plain state dict
