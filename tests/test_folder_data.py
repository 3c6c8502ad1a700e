"""dataset=folder (vsdr.data.images.FolderImages): any folder of PNG/JPEG photos, each turned
to RGB, cropped to its centred square and resized to the model's side; checked pixel by pixel
on images built by hand (grey, RGB, RGBA, 16-bit grey, JPEG and PNG, landscape and portrait),
their sorted order, the names they give, and the sentences for an unreadable file and an
empty folder."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import compose_cfg
from PIL import Image

from vsdr.data.images import FolderImages, center_square, load_square, unique_names
from vsdr.errors import ConfigError


def halves(width: int, height: int) -> np.ndarray:
    """An RGB ``width × height`` image: left half black, right half white."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, width // 2:] = 255
    return arr


@pytest.fixture
def photos(tmp_path):
    """Five 8-pixel-square-after-cropping images, written out of sorted order."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 4), [10, 20, 30, 0], np.uint8), "RGBA").save(root / "d_rgba.png")
    Image.fromarray(halves(12, 8)).save(root / "b_landscape.png")
    portrait = np.zeros((12, 8, 3), np.uint8)
    portrait[2:10] = 255                     # the centred 8×8 square is white, the rest black
    Image.fromarray(portrait).save(root / "c_portrait.jpg", quality=95)
    Image.fromarray(np.full((8, 8), 64, np.uint8), "L").save(root / "a_grey.png")
    Image.fromarray(np.full((8, 8), 0x4000, np.uint16)).save(root / "sub" / "e_grey16.png")
    return root


def pixels(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in ``[−1, 1]`` back to uint8 values (exact: they were ``v / 127.5 − 1``)."""
    return np.rint((x.permute(1, 2, 0).numpy() + 1) * 127.5).astype(int)


def test_centre_square_by_hand():
    assert center_square(12, 8) == (2, 0, 10, 8)
    assert center_square(8, 12) == (0, 2, 8, 10)
    assert center_square(11, 8) == (1, 0, 9, 8)   # an odd excess: the extra pixel off the right
    assert center_square(5, 5) == (0, 0, 5, 5)


def test_every_mode_and_shape_crops_to_the_middle(photos):
    data = FolderImages(root=photos, image_size=8)
    assert [f.relative_to(photos).as_posix() for f in data.test_folder().files] == \
        ["a_grey.png", "b_landscape.png", "c_portrait.jpg", "d_rgba.png", "sub/e_grey16.png"]
    x = data.test_images()
    assert x.shape == (5, 3, 8, 8) and x.dtype == torch.float32
    grey, land, port, rgba, grey16 = (pixels(v) for v in x)
    assert (grey == 64).all()                                   # grey in all three channels
    assert (land[:, :4] == 0).all() and (land[:, 4:] == 255).all()  # columns 2..9 of 12: 4 black, 4 white
    assert (port >= 245).all()                                  # rows 2..9 of 12, all white (JPEG)
    assert (rgba == [10, 20, 30]).all()                         # alpha dropped, colours kept
    assert (grey16 == 0x40).all()                               # 16-bit grey: its top 8 bits
    assert data.item_names() == ["a_grey", "b_landscape", "c_portrait", "d_rgba", "e_grey16"]
    assert data.item_names(limit=2) == ["a_grey", "b_landscape"]


def test_a_landscape_is_resized_after_its_centre_crop(tmp_path):
    """32×16, left half black: the centred 16×16 square (columns 8..23) is 8 black columns then
    8 white ones; bicubic to 8² keeps the outer columns pure and the halves mirror images."""
    Image.fromarray(halves(32, 16)).save(tmp_path / "wide.png")
    v = pixels(load_square(tmp_path / "wide.png", 8))[..., 0]
    assert (v[:, :2] == 0).all() and (v[:, 6:] == 255).all()
    assert (v[:, :4] + v[:, 7:3:-1] == 255).all()               # symmetric about the centre
    assert (np.diff(v[0]) >= 0).all() and 0 < v[0, 3] < 128 < v[0, 4] < 255


def test_shrinking_antialiases(tmp_path):
    """A one-pixel checkerboard shrunk 4×: antialiased, it is mid-grey, not a sampled black or white."""
    board = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)
    Image.fromarray(board, "L").save(tmp_path / "board.png")
    v = pixels(load_square(tmp_path / "board.png", 8))
    assert np.abs(v[2:-2, 2:-2] - 127.5).max() <= 2


def test_unique_names_when_stems_collide(tmp_path):
    files = [tmp_path / "a.png", tmp_path / "sub" / "a.jpg", tmp_path / "b.png"]
    assert unique_names(files, tmp_path) == ["a_png", "sub_a_jpg", "b"]


def test_an_unreadable_file_is_one_sentence_naming_it(photos):
    (photos / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match=r"^cannot read image .*photos/broken\.png \(.*\): remove it "
                                          r"from the folder or replace it with a readable PNG or JPEG$"):
        FolderImages(root=photos, image_size=8).test_images()


def test_an_empty_folder_is_one_sentence_naming_it(tmp_path):
    from vsdr.experiments.validate import validate_config

    (tmp_path / "empty").mkdir()
    cfg = compose_cfg(["dataset=folder", f"dataset.root={tmp_path / 'empty'}", "model=adm_small",
                       f"model.ckpt={tmp_path / 'x.pt'}"])
    with pytest.raises(ConfigError, match=r"^dataset.root=.*/empty holds no PNG or JPEG image: the test "
                                          r"images of dataset=folder \(a folder of PNG/JPEG images\) "
                                          r"are expected there$"):
        validate_config(cfg)


def test_the_side_is_the_models():
    assert compose_cfg(["dataset=folder", "model=adm_small"]).dataset.image_size == 64
    assert compose_cfg(["dataset=folder", "model=adm_ffhq"]).dataset.image_size == 256
    assert compose_cfg(["dataset=folder", "model=adm_digits"]).dataset.image_size == 16
    given = compose_cfg(["dataset=folder", "model=adm_small", "dataset.image_size=32"])
    assert given.dataset.image_size == 32
    assert compose_cfg(["dataset=ffhq", "model=adm_small"]).dataset.image_size == 256  # FFHQ: its own


def test_unknown_crop_or_filter_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.resize='cubic' is not one of \['bicubic'"):
        FolderImages(root=tmp_path, resize="cubic")
    with pytest.raises(ConfigError, match=r"dataset.crop='top' is not one of \['center'\]"):
        FolderImages(root=tmp_path, crop="top")


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    """Stored 12×8 with its left half white and EXIF orientation 6 (shown turned 90° clockwise):
    upright it is 8×12 with its top half white, and its centred square (rows 2..9) is 4 white
    rows above 4 black ones."""
    stored = np.zeros((8, 12, 3), np.uint8)
    stored[:, :6] = 255
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "phone.png", exif=exif.tobytes())
    v = pixels(load_square(tmp_path / "phone.png", 8))
    assert (v[:4] == 255).all() and (v[4:] == 0).all()
