"""Image folders: sorted, scaled to [−1, 1], limit, clear errors naming the file."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vsdr.data import ImageFolder
from vsdr.data.images import save_images, to_uint8
from vsdr.errors import ConfigError


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    # FFHQ layout: sub-folders; written out of order, mixed extensions
    for rel in ["01000/01001.png", "00000/00002.png", "00000/00001.PNG", "00000/00000.png"]:
        arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        _write(tmp_path / rel, arr)
        arrays[rel] = arr
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path, arrays


def test_sorted_scaled_and_limited(folder):
    root, arrays = folder
    ds = ImageFolder(root, image_size=8)
    assert [p.relative_to(root).as_posix() for p in ds.files] == [
        "00000/00000.png", "00000/00001.PNG", "00000/00002.png", "01000/01001.png"]
    x = ds.load()
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.float32
    expect = arrays["00000/00001.PNG"].astype(np.float64) / 127.5 - 1.0
    np.testing.assert_allclose(x[1].permute(1, 2, 0).numpy(), expect, atol=1e-6)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    # 0 → −1 and 255 → +1 exactly
    rgb = np.stack([np.zeros((8, 8)), np.full((8, 8), 255), np.zeros((8, 8))], -1).astype(np.uint8)
    _write(root / "zz/extremes.png", rgb)
    last = ImageFolder(root, image_size=8)[4]
    assert float(last[0].max()) == -1.0 and float(last[1].min()) == 1.0
    assert len(ImageFolder(root, image_size=8, limit=2)) == 2
    torch.testing.assert_close(ImageFolder(root, image_size=8, limit=2).load(), x[:2])


def test_jpeg_and_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(0, 256, (2, 3, 8, 8)).astype(np.float32) / 127.5 - 1)
    save_images(x, tmp_path / "out")
    back = ImageFolder(tmp_path / "out", image_size=8).load()
    torch.testing.assert_close(back, x, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(to_uint8(back), to_uint8(x))
    (tmp_path / "j").mkdir()
    Image.fromarray(to_uint8(x)[0]).save(tmp_path / "j" / "a.jpg")
    assert ImageFolder(tmp_path / "j", image_size=8).load().shape == (1, 3, 8, 8)


def test_wrong_size_names_the_file(folder):
    root, _ = folder
    _write(root / "00000/00003.png", np.zeros((8, 10, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match=r"00003\.png is 10×8, expected 8×8"):
        ImageFolder(root, image_size=8).load()


def test_unreadable_names_the_file(folder):
    root, _ = folder
    (root / "00000/00004.png").write_bytes(b"this is not a png")
    with pytest.raises(ConfigError, match=r"cannot read image .*00004\.png"):
        ImageFolder(root, image_size=8).load()


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(ConfigError, match="holds no PNG or JPEG"):
        ImageFolder(tmp_path)
    _write(tmp_path / "a.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ConfigError, match="limit must be positive"):
        ImageFolder(tmp_path, image_size=4, limit=0)
    with pytest.raises(ConfigError, match="asked for 2 images"):
        ImageFolder(tmp_path, image_size=4).load(2)
