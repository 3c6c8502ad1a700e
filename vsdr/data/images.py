"""Image data: a folder of PNG/JPEG files (FFHQ's layout), pixels scaled to ``[−1, 1]``
(DPS: ``ToTensor`` then ``(x − 0.5)/0.5``; docs/METHOD.md §8, DPS)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vsdr.errors import ConfigError

EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_images(root: str | Path, key: str = "dataset.root") -> list[Path]:
    """Every PNG/JPEG under ``root`` (sub-folders included, FFHQ's ``00000/00000.png``
    layout), sorted by path relative to ``root``; ``key`` names the setting in errors."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{key}={root} is not a folder of images")
    return sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS),
                  key=lambda p: p.relative_to(root).as_posix())


def read_image(path: str | Path, image_size: int | None = None) -> Tensor:
    """One image as ``(3, H, W)`` float32 in ``[−1, 1]`` (grey or RGBA converted to RGB);
    ``ConfigError`` naming the file when it cannot be read or is not ``image_size²``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ConfigError(f"cannot read image {path} ({e})") from e
    h, w = arr.shape[:2]
    if image_size is not None and (h, w) != (image_size, image_size):
        raise ConfigError(f"image {path} is {w}×{h}, expected {image_size}×{image_size} (dataset.image_size)")
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(x: Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in ``[−1, 1]`` → ``(B, H, W, 3)`` uint8 (clipped, rounded)."""
    return ((x.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_images(x: Tensor, folder: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Write ``(B, 3, H, W)`` images in ``[−1, 1]`` as PNGs (``00000.png``… unless ``names``),
    each atomically."""
    from PIL import Image

    from vsdr.experiments.writer import atomic_write

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = list(names) if names is not None else [f"{i:05d}.png" for i in range(len(x))]
    paths = []
    for arr, name in zip(to_uint8(x), names):
        paths.append(folder / name)
        image = Image.fromarray(arr)
        atomic_write(paths[-1], lambda p, image=image: image.save(p, format="PNG"))  # no half PNG
    return paths


def folder_problems(folder: Path, count: int | None, size: int) -> list[str]:
    """What is wrong with ``folder`` as a test set of ``count`` images (any number when ``None``)
    named 00000 … in order, each ``size``² RGB (empty: nothing; scripts/check_images.py)."""
    try:
        files = list_images(folder)
    except ConfigError as e:
        return [str(e)]
    out = []
    if count is not None and len(files) != count:
        out.append(f"{len(files)} images, expected {count}")
    names = [p.stem for p in files]
    wrong = [f"{n} (position {i})" for i, n in enumerate(names) if n != f"{i:05d}"]
    if wrong:
        out.append(f"{len(wrong)} images not named 00000, 00001, … in order: {wrong[:3]}")
    bad = []
    for p in files:
        try:
            read_image(p, size)
        except ConfigError as e:
            bad.append(str(e))
    if bad:
        out.append(f"{len(bad)} images unreadable or not {size}×{size}: {bad[:3]}")
    return out


class ImageFolder:
    """The sorted images of ``root``, the first ``limit`` of them (all when ``None``), each
    ``image_size × image_size`` RGB, as ``[−1, 1]`` tensors."""

    name = "images"

    def __init__(self, root: str | Path, image_size: int = 256, limit: int | None = None,
                 key: str = "dataset.root"):
        self.root, self.image_size = Path(root), int(image_size)
        files = list_images(self.root, key)
        if not files:
            raise ConfigError(f"{key}={self.root} holds no PNG or JPEG images")
        if limit is not None:
            if int(limit) < 1:
                raise ConfigError(f"data.limit must be positive, got {limit}")
            files = files[: int(limit)]
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        return read_image(self.files[i], self.image_size)

    def load(self, n: int | None = None) -> Tensor:
        """The first ``n`` images (all when ``None``) as ``(n, 3, H, W)`` float32."""
        n = len(self) if n is None else n
        if n > len(self):
            raise ConfigError(f"asked for {n} images but {self.root} (limit applied) holds {len(self)}")
        return torch.stack([self[i] for i in range(n)])


class ImageTrainSet:
    """The training images of a folder, with the ``sample(n, seed)`` of the point data sets:
    the first ``n`` images (all when fewer; ``seed`` unused, the order is the folder's)."""

    def __init__(self, root: str | Path, image_size: int = 256):
        self.folder = ImageFolder(root, image_size, key="dataset.train_root")

    def sample(self, n: int, seed: int = 0) -> Tensor:
        return self.folder.load(min(int(n), len(self.folder)))


def _absolute(path: str | Path) -> Path:
    """``path`` against the directory the command was started in (Hydra changes none here,
    but a relative ``dataset.root`` must not depend on the job's output dir)."""
    from hydra.utils import to_absolute_path

    return Path(to_absolute_path(str(path)))


class ImageDataset:
    """An image data set in folders: the test images in ``root``, the score network's training
    images in ``train_root`` (optional: without it a checkpoint must be given), each
    ``image_size²``; ``limit``: the first ``limit`` test images (all when ``None``).

    Another image source (a file archive, a data set library) subclasses this and overrides
    ``test_images`` and ``training_set``; ``prepare`` may write data, and runs once, before
    the first of them (``ensure_prepared``)."""

    def __init__(self, root: str | Path | None = None, train_root: str | Path | None = None,
                 image_size: int = 256, limit: int | None = None, name: str = "images"):
        self.root = _absolute(root) if root else None
        self.train_root = _absolute(train_root) if train_root else None
        self.image_size, self.limit, self.name = int(image_size), limit, name
        self._prepared = False

    def prepare(self) -> None:
        """Make the data available (nothing to do for folders that exist)."""

    def ensure_prepared(self) -> None:
        """``prepare`` the first time it is asked for, never again."""
        if not self._prepared:
            self.prepare()
            self._prepared = True

    def test_images(self, limit: int | None = None) -> Tensor:
        """The first ``limit`` (else ``self.limit``, else all) test images, ``(n, 3, S, S)``."""
        self.ensure_prepared()
        if self.root is None:
            raise ConfigError(f"dataset={self.name} needs dataset.root=FOLDER of PNG/JPEG images")
        limit = limit if limit is not None else self.limit
        return ImageFolder(self.root, self.image_size, limit=limit).load()

    def training_set(self) -> ImageTrainSet | None:
        """The training images (``sample(n, seed)``), or ``None`` without ``train_root``."""
        self.ensure_prepared()
        return ImageTrainSet(self.train_root, self.image_size) if self.train_root else None
