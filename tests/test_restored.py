"""restored/ (outputs.images; vsdr/experiments/restored.py): the file names, the PNG pixels
against samples.npz, nothing when off, nothing after a failed write, the shards merge, and a
finished job that ran without them. Jobs: dataset=folder on three photos of mixed sizes, a
random-weight adm_small checkpoint at 64², T = 3, stand-in metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from ffhq_small import make_small_ffhq
from PIL import Image

from vsdr.errors import ConfigError, JobFault
from vsdr.experiments.job import run_job
from vsdr.experiments.restored import restored_name, write_restored
from vsdr.experiments.shards import gather_shards

ITEMS = ["cat", "dog", "bird"]   # the photos' stems, in the sorted order of their paths (zoo/bird.png last)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """``photos/``: a JPEG landscape, a grey PNG portrait, an RGBA PNG in a sub-folder; and the
    random-weight adm_small checkpoint of tests/ffhq_small.py."""
    root = make_small_ffhq(tmp_path_factory.mktemp("restored"), n_images=1)
    g = np.random.default_rng(0)
    photos = root / "photos"
    (photos / "zoo").mkdir(parents=True)
    Image.fromarray(g.integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(photos / "cat.jpg")
    Image.fromarray(g.integers(0, 256, (100, 70), dtype=np.uint8), "L").save(photos / "dog.png")
    Image.fromarray(g.integers(0, 256, (64, 64, 4), dtype=np.uint8), "RGBA").save(photos / "zoo" / "bird.png")
    return root


def overrides(root, *extra: str) -> list[str]:
    """A 64² folder job (the side comes from model=adm_small) at CPU size."""
    return ["dataset=folder", f"dataset.root={root / 'photos'}", "model=adm_small",
            f"model.ckpt={root / 'adm_small.pt'}", "operator=super_resolution_x4", "sampler=ours_images",
            "noise=dps", "diffusion.T=3", "lam=[0,1]", "image_metrics.standin=true", "eval.bootstrap=0",
            "image_eval.fd_pca_k=1", "logger=none", "progress=false", *extra]


def png(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int64)


def expected_png(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(3, H, W)`` in ``[−1, 1]`` → the [0, 255] values by hand, and where they sit within 1e-3
    of a .5 tie (float32 rounding may go either way there)."""
    v = (np.clip(x.astype(np.float64), -1, 1) + 1) * 127.5
    return np.rint(v).transpose(1, 2, 0), (np.abs(v - np.floor(v) - 0.5) < 1e-3).transpose(1, 2, 0)


def assert_png_is(path, x: np.ndarray) -> None:
    want, tie = expected_png(x)
    got = png(path)
    assert got.shape == want.shape
    assert (got[~tie] == want[~tie]).all() and (np.abs(got - want)[tie] <= 1).all()


def test_names_by_hand():
    assert restored_name("cat", "lam", 0.5) == "cat_lam0.5.png"
    assert restored_name("cat", "N", 4.0) == "cat_N4.png"
    assert restored_name("cat", "zeta", 0.3) == "cat_zeta0.3.png"
    assert restored_name("00007", "lam", 1.0, sample=2) == "00007_lam1_s2.png"


def test_pixel_values_by_hand(tmp_path):
    """−1 → 0, 1 → 255, 0 → 127.5 → 128, −0.5 → 63.75 → 64, values beyond ±1 clipped; a
    grey (one-channel) measurement as a grey (mode L) PNG."""
    row = torch.tensor([-1.0, 1.0, 0.0, -0.5, 2.0, -3.0])
    x = row.expand(3, 1, 6)
    write_restored(tmp_path, x[None], row.expand(1, 1, 6)[None], x[None, None], [1.0], "lam",
                   np.array([0]), ["p"])
    want = [0, 255, 128, 64, 255, 0]
    for name in ["p_lam1.png", "p_clean.png"]:
        assert png(tmp_path / "restored" / name).shape == (1, 6, 3)
        assert (png(tmp_path / "restored" / name) == np.array(want)[None, :, None]).all(), name
    assert Image.open(tmp_path / "restored" / "p_y.png").mode == "L"
    assert (png(tmp_path / "restored" / "p_y.png") == np.array([want])).all()


def test_a_folder_job_writes_every_reconstruction_as_a_png(small, tmp_path):
    job = tmp_path / "job"
    run_job(compose_cfg(overrides(small)), job)
    names = sorted(p.name for p in (job / "restored").iterdir())
    assert names == sorted(f"{i}_{s}.png" for i in ITEMS for s in ["lam0", "lam1", "clean", "y"])
    with np.load(job / "samples.npz") as z:
        assert z["samples"].shape == (2, 3, 3, 64, 64) and z["y"].shape == (3, 3, 16, 16)
        for p, item in enumerate(ITEMS):
            assert_png_is(job / "restored" / f"{item}_lam0.png", z["samples"][0, p])
            assert_png_is(job / "restored" / f"{item}_lam1.png", z["samples"][1, p])
            assert_png_is(job / "restored" / f"{item}_clean.png", z["x0"][p])
            assert_png_is(job / "restored" / f"{item}_y.png", z["y"][p])   # 16×16: its own size
    assert png(job / "restored" / "dog_y.png").shape == (16, 16, 3)
    # the same config with outputs.images=false is the same finished job: skipped, and a job
    # without restored/ gets it written from its samples.npz when asked
    off = tmp_path / "off"
    run_job(compose_cfg(overrides(small, "outputs.images=false")), off)
    assert not (off / "restored").exists() and (off / "metrics.json").is_file()
    stamp = (off / "metrics.json").stat().st_mtime_ns
    run_job(compose_cfg(overrides(small)), off)
    assert (off / "metrics.json").stat().st_mtime_ns == stamp        # not rerun
    assert {p.name: p.read_bytes() for p in (off / "restored").iterdir()} == \
        {p.name: p.read_bytes() for p in (job / "restored").iterdir()}


def test_a_failed_write_leaves_no_png(small, tmp_path, monkeypatch):
    import vsdr.experiments.restored as restored

    real, calls = restored.write_png, []

    def fail_third(path, image):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(path, image)

    monkeypatch.setattr(restored, "write_png", fail_third)
    job = tmp_path / "job"
    with pytest.raises(JobFault, match="could not write the results"):
        run_job(compose_cfg(overrides(small)), job)
    assert len(calls) == 3
    assert not (job / "restored").exists() and not (job / "metrics.json").exists()
    assert not list(job.rglob("*.png"))


def test_shards_write_their_own_items_and_the_merge_carries_them(small, tmp_path):
    """Two samples per image (``_s0``, ``_s1``); shard 0 holds cat and dog, shard 1 bird."""
    extra = ["data.samples_per_image=2", "lam=[1]"]
    run_job(compose_cfg(overrides(small, *extra)), tmp_path / "whole")
    shards = [tmp_path / f"shard{i}" for i in range(2)]
    for i, d in enumerate(shards):
        run_job(compose_cfg(overrides(small, *extra, f"data.shard={i}", "data.num_shards=2")), d)
    per_item = lambda item: {f"{item}_lam1_s0.png", f"{item}_lam1_s1.png", f"{item}_clean.png",  # noqa: E731
                             f"{item}_y.png"}
    assert {p.name for p in (shards[0] / "restored").iterdir()} == per_item("cat") | per_item("dog")
    assert {p.name for p in (shards[1] / "restored").iterdir()} == per_item("bird")
    gather_shards(shards, tmp_path / "merged")
    whole = {p.name: p.read_bytes() for p in (tmp_path / "whole" / "restored").iterdir()}
    assert set(whole) == set().union(*map(per_item, ITEMS))
    assert {p.name: p.read_bytes() for p in (tmp_path / "merged" / "restored").iterdir()} == whole
    assert json.loads((tmp_path / "merged" / "metrics.json").read_text())["config_hash"] == \
        json.loads((tmp_path / "whole" / "metrics.json").read_text())["config_hash"]


def test_the_default_is_on_for_images_off_for_points_and_refused_on_points():
    from vsdr.experiments.scheduler import Job, job_command
    from vsdr.experiments.validate import validate_config

    assert compose_cfg(["dataset=folder"]).outputs.images is True
    assert compose_cfg(["experiment=ffhq_deblur"]).outputs.images is True
    assert compose_cfg(["dataset=digits", "model=adm_digits"]).outputs.images is True
    assert compose_cfg([]).outputs.images is False
    with pytest.raises(ConfigError, match=r"^outputs.images=true is for image data sets: dataset=pinwheel"):
        validate_config(compose_cfg(["outputs.images=true"]))
    with pytest.raises(ConfigError, match=r"^outputs.images='yes' must be true or false"):
        validate_config(compose_cfg(["outputs.images=yes"]))
    assert "outputs.images=false" in job_command(Job("j", ["experiment=images_small"], None, []))
