"""dataset.channels=1: a folder of grey and colour photos read as grey ``(1, S, S)`` images
(ITU-R 601 luma by hand), a 1-channel diffusers model running a job end to end for every
sampler (metrics, restored/ PNGs in mode L pixel by pixel, the figures), and a 3-channel model
on grey data refused in one sentence."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from conftest import compose_cfg
from PIL import Image
from test_diffusers import save_model

from vsdr.data.images import FolderImages
from vsdr.errors import ConfigError
from vsdr.experiments.job import run_job
from vsdr.experiments.restored import restored_name
from vsdr.experiments.validate import validate_config


def colour_image(seed: int, height: int = 16, width: int = 16) -> np.ndarray:
    """A random ``height × width`` RGB image."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``, rounded (PIL's ``L`` to within 1)."""
    return np.rint(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(int)


@pytest.fixture
def photos(tmp_path):
    """``a_grey.png`` (20×16 grey, cropped to its middle 16 columns) and ``b_colour.png``
    (16×16 RGB); returns the folder and the grey pixels each should give."""
    root = tmp_path / "photos"
    root.mkdir()
    grey = np.random.default_rng(0).integers(0, 256, (16, 20), dtype=np.uint8)
    Image.fromarray(grey, "L").save(root / "a_grey.png")
    colour = colour_image(1)
    Image.fromarray(colour).save(root / "b_colour.png")
    return root, {"a_grey": grey[:, 2:18].astype(int), "b_colour": luma(colour)}


def test_channels_1_reads_grey_images_by_hand(photos, tmp_path):
    root, want = photos
    Image.fromarray(np.full((16, 16), 0x8100, np.uint16)).save(tmp_path / "grey16.png")
    x = FolderImages(root=root, image_size=16, channels=1).test_images()
    assert x.shape == (2, 1, 16, 16)
    got = np.rint((x[:, 0].numpy() + 1) * 127.5).astype(int)
    assert (got[0] == want["a_grey"]).all()
    assert np.abs(got[1] - want["b_colour"]).max() <= 1
    assert FolderImages(root=root, image_size=16).test_images().shape == (2, 3, 16, 16)  # default: RGB
    # 16-bit grey: its top 8 bits, as for RGB
    one = FolderImages(root=tmp_path, image_size=16, channels=1).read(tmp_path / "grey16.png")
    assert one.shape == (1, 16, 16) and np.allclose((one.numpy() + 1) * 127.5, 0x81)
    with pytest.raises(ConfigError, match=r"dataset.channels=2 is not one of \[1, 3\]"):
        FolderImages(root=root, image_size=16, channels=2)


def grey_overrides(tmp_path, root, folder, sampler: str) -> list[str]:
    """A 16² job on ``dataset=folder dataset.channels=1`` and the model in ``folder``."""
    extra = {"ours": ["image_eval.fd_patch=3", "image_eval.chroma=true"],
             "pigdm": ["sampler.form=pigdm", "operator=super_resolution_x4"],
             "ours_images": ["sampler=ours_images", "sampler.variance=fixed_small"],
             "dps": ["sampler=dps", "sampler.values=[0.5,1]"],
             "diffpir": ["sampler=diffpir", "sampler.steps=4", "sampler.values=[0.3,1]"],
             "interp": ["sampler=interp", "sampler.values=[0,1]"]}[sampler]
    return ["dataset=folder", f"dataset.root={root}", "dataset.channels=1", "dataset.image_size=16",
            "operator=gaussian_blur_small", "model=diffusers", f"model.path={folder}", "lam=[0,1]",
            "noise.sigma=0.05", "image_metrics.standin=true", "logger=none", "progress=false",
            "data.net_batch=8", *extra]


SAMPLERS = ["ours", "pigdm", "ours_images", "dps", "diffpir", "interp"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_a_one_channel_model_runs_every_sampler_on_grey_data(photos, tmp_path, cache_dir, sampler):
    root, want = photos
    folder = save_model(tmp_path / "model", channels=1, T=6)
    job = tmp_path / "job"
    rows = run_job(compose_cfg(grey_overrides(tmp_path, root, folder, sampler)), job)
    assert len(rows) == 2 and all(math.isfinite(r["mse"]) for r in rows)
    with open(job / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 and all(math.isfinite(float(r["mse"])) for r in table)
    assert all(math.isfinite(float(r["lpips_alex_standin"])) for r in table)  # on the grey repeated
    if sampler == "ours":
        assert all(float(r["chroma"]) == 0 for r in table)  # one channel: no colour
        assert all(math.isfinite(float(r["fd_patch"])) for r in table)
    with np.load(job / "samples.npz") as z:
        samples, y, knob, values = z["samples"], z["y"], str(z["knob"]), [float(v) for v in z["values"]]
    assert samples.shape == (2, 2, 1, 16, 16)
    for p, item in enumerate(["a_grey", "b_colour"]):
        clean = Image.open(job / "restored" / f"{item}_clean.png")
        assert clean.mode == "L" and clean.size == (16, 16)
        assert np.abs(np.asarray(clean, dtype=int) - want[item]).max() <= (0 if item == "a_grey" else 1)
        for v, value in enumerate(values):
            png = Image.open(job / "restored" / restored_name(item, knob, value))
            want_v = (np.clip(samples[v, p, 0].astype(np.float64), -1, 1) + 1) * 127.5
            assert png.mode == "L" and np.abs(np.asarray(png, dtype=int) - want_v).max() <= 0.5 + 1e-3
        y_png = Image.open(job / "restored" / f"{item}_y.png")
        assert y_png.mode == "L" and y_png.size == y.shape[-1:-3:-1]
    assert (job / "image_grid.png").is_file()


def test_a_three_channel_model_on_grey_data_is_refused(photos, tmp_path):
    root, _ = photos
    folder = save_model(tmp_path / "model", channels=3, T=6)
    cfg = compose_cfg(grey_overrides(tmp_path, root, folder, "ours"))
    message = r"takes 3-channel images but the data set's have 1 channels"
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(cfg)
    assert "\n" not in str(err.value)


def test_dataset_channels_has_a_rule(photos, tmp_path):
    root, _ = photos
    folder = save_model(tmp_path / "model", channels=1, T=6)
    cfg = compose_cfg([*grey_overrides(tmp_path, root, folder, "ours"), "dataset.channels=0"])
    with pytest.raises(ConfigError, match=r"dataset.channels=0 must be a whole number in \[1, 3\]"):
        validate_config(cfg)


def test_grey_metrics_are_those_of_the_grey_repeated_into_rgb():
    """MSE/PSNR/SSIM on the one channel equal the RGB repeat's (three equal channels); LPIPS and
    FID see the repeat (``as_rgb``); chroma is 0 and fd_patch finite."""
    import torch

    from vsdr.metrics.frechet import PatchFrechet, chroma
    from vsdr.metrics.image import ImageMetrics, as_rgb

    g = torch.Generator().manual_seed(0)
    x0, x = (torch.rand(3, 1, 16, 16, generator=g) * 2 - 1 for _ in range(2))
    assert as_rgb(x0).shape == (3, 3, 16, 16) and torch.equal(as_rgb(x0)[:, 2], x0[:, 0])
    metrics = ImageMetrics(standin=True, fid=True)
    grey, rgb = metrics(x0, x, upsample=2), metrics(as_rgb(x0), as_rgb(x), upsample=2)
    assert set(grey) == set(rgb) == {"mse", "psnr", "ssim", "lpips_alex_standin", "fid_standin"}
    for k in grey:
        assert math.isfinite(grey[k]) and grey[k] == pytest.approx(rgb[k], rel=1e-6, abs=1e-9), k
    assert chroma(x) == 0.0 and math.isfinite(PatchFrechet(3)(x0, x))


def test_an_rgb_adm_network_on_grey_data_is_refused(photos):
    root, _ = photos
    base = ["dataset=folder", f"dataset.root={root}", "dataset.channels=1", "model=adm_small",
            "model.ckpt=whatever.pt", "sampler=ours_images", "operator=gaussian_blur_small"]
    with pytest.raises(ConfigError, match=r"model=adm_small does not fit dataset=folder and sampler=ours: "
                       r"it takes 3-channel images but the data set's have 1 channels") as err:
        validate_config(compose_cfg(base))
    assert "\n" not in str(err.value)
