"""``data.samples_per_image = S`` (Fig. 12): every test image's measurement is drawn once,
from the measurement stream; each of its ``S`` samples per knob value has its own sampler
seed. Checked on the CPU-size FFHQ deblur job (tests/ffhq_small.py): the ``S`` samples of an
image share ``y`` and differ; sample 0 is the ``S = 1`` reconstruction bit for bit; the
result does not depend on ``data.batch_size`` or on the shard split; ``S = 1`` keeps the old
seeds and the old results hash."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from ffhq_small import make_small_ffhq, small_overrides

from vsdr.diffusion.noise import STREAM_SAMPLER, per_sample_seeds, sample_seeds
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.experiments.resume import results_hash
from vsdr.experiments.shards import gather_shards
from vsdr.experiments.validate import validate_config
from vsdr.tasks.base import expand_items


def _seed_of(*key: int) -> int:
    """The seed of a SeedSequence key, written out independently of vsdr: two 32-bit words
    ``a, b`` combined as ``a · 2³¹ + b`` in float64 (how vsdr has always combined them)."""
    a, b = np.random.SeedSequence(list(key)).generate_state(2, np.uint32)
    return int(float(a) * 2.0 ** 31 + float(b))


def test_sample_seeds_keep_the_old_seeds_for_one_sample():
    assert sample_seeds(5, range(4), 1) == per_sample_seeds(5, range(4), stream=STREAM_SAMPLER) \
        == [_seed_of(5, 3, j) for j in range(4)]
    # S = 3: items k = 3 j + s; sample 0 has image j's old seed, samples 1, 2 their own keys
    got = sample_seeds(5, range(6), 3)
    assert got == [_seed_of(5, 3, 0), _seed_of(5, 3, 0, 1), _seed_of(5, 3, 0, 2),
                   _seed_of(5, 3, 1), _seed_of(5, 3, 1, 1), _seed_of(5, 3, 1, 2)]
    assert len(set(got)) == 6
    assert expand_items([2, 3], 3).tolist() == [6, 7, 8, 9, 10, 11]


def test_results_hash_of_the_defaults_is_the_old_one():
    """The new keys at their defaults are left out of the results hash: a job finished before
    they existed (its config without them) has the same hash and is still skipped."""
    cfg = compose_cfg(["lam=[0,1]"])
    from omegaconf import OmegaConf

    old = OmegaConf.to_container(cfg, resolve=True)
    for k in ("precision", "channels_last"):
        old.pop(k)
    old["data"].pop("samples_per_image")
    assert results_hash(cfg) == results_hash(old)
    assert results_hash(compose_cfg(["lam=[0,1]", "data.samples_per_image=2"])) != results_hash(cfg)
    assert results_hash(compose_cfg(["lam=[0,1]", "precision=bf16"])) != results_hash(cfg)


@pytest.mark.parametrize("bad", ["0", "1.5", "true"])
def test_bad_samples_per_image_is_refused(bad):
    with pytest.raises(ConfigError, match=r"data.samples_per_image=.* must be a whole number >= 1"):
        validate_config(compose_cfg([f"data.samples_per_image={bad}"]))


def test_samples_per_image_on_points_is_refused():
    with pytest.raises(ConfigError, match="data.samples_per_image=2 is for image data sets"):
        validate_config(compose_cfg(["data.samples_per_image=2"]))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_small_ffhq(tmp_path_factory.mktemp("ffhq_small"))


def test_two_samples_per_image(small, tmp_path):
    base = [*small_overrides(small), "lam=[0,1]"]
    run_job(compose_cfg(base), tmp_path / "one")
    run_job(compose_cfg([*base, "data.samples_per_image=2"]), tmp_path / "two")
    for i in range(2):  # the same two samples whatever the split into shards and chunks
        run_job(compose_cfg([*base, "data.samples_per_image=2", "data.batch_size=1",
                             f"data.shard={i}", "data.num_shards=2"]), tmp_path / f"shard{i}")
    gather_shards([tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "merged")

    one, two = np.load(tmp_path / "one" / "samples.npz"), np.load(tmp_path / "two" / "samples.npz")
    assert two["samples"].shape == (2, 4, 3, 64, 64) and int(two["samples_per_image"]) == 2
    assert two["index"].tolist() == [0, 1, 2, 3]
    for j in range(2):
        # one measurement per image: both samples see the S = 1 job's y, bit for bit
        for s in range(2):
            assert np.array_equal(two["y"][2 * j + s], one["y"][j])
        assert np.array_equal(two["x0"][2 * j + 1], one["x0"][j])
        # sample 0 is the S = 1 reconstruction; sample 1 is another draw (at λ = 1 and λ = 0)
        assert np.array_equal(two["samples"][:, 2 * j], one["samples"][:, j])
        for v in range(2):
            assert np.abs(two["samples"][v, 2 * j + 1] - two["samples"][v, 2 * j]).max() > 1e-3
    merged = np.load(tmp_path / "merged" / "samples.npz")
    assert np.array_equal(merged["samples"], two["samples"]) and np.array_equal(merged["y"], two["y"])
    # metrics over all four samples: MSE is their mean squared error (in [0, 1] units)
    import csv

    with open(tmp_path / "two" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "merged" / "metrics.csv") as f:
        assert list(csv.DictReader(f)) == rows
    x0 = torch.from_numpy(two["x0"]).double()
    for v, r in enumerate(rows):
        rec = torch.from_numpy(two["samples"][v]).double()
        assert float(r["mse"]) == pytest.approx(float((((rec - x0) / 2) ** 2).mean()), rel=1e-5)
        assert int(r["n"]) == 4
    with open(tmp_path / "two" / "items.csv") as f:
        items = list(csv.DictReader(f))
    assert [(r["index"], r["image"], r["sample"]) for r in items[:4]] == \
        [("0", "0", "0"), ("1", "0", "1"), ("2", "1", "0"), ("3", "1", "1")]
    assert (tmp_path / "two" / "samples_grid.png").is_file()
    assert not (tmp_path / "one" / "samples_grid.png").exists()
