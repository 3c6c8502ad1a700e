"""Image data: a folder of PNG/JPEG files (FFHQ's layout), pixels scaled to ``[−1, 1]``
(DPS: ``ToTensor`` then ``(x − 0.5)/0.5``; docs/METHOD.md §8, DPS). ``FolderImages``: any
folder of photos, each centre-cropped to a square and resized to the model's side."""
from __future__ import annotations

from collections.abc import Callable, Sequence
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
    arr = np.asarray(open_rgb(path), dtype=np.uint8)
    h, w = arr.shape[:2]
    if image_size is not None and (h, w) != (image_size, image_size):
        raise ConfigError(f"image {path} is {w}×{h}, expected {image_size}×{image_size} (dataset.image_size)")
    return to_tensor(arr)


def to_tensor(arr: np.ndarray) -> Tensor:
    """``(H, W, 3)`` uint8 → ``(3, H, W)``, or ``(H, W)`` (grey) → ``(1, H, W)``, float32 in
    ``[−1, 1]`` (``v / 127.5 − 1``)."""
    arr = np.array(arr, dtype=np.uint8)
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr).permute(2, 0, 1).float().div(127.5).sub(1.0)


#: the channel counts ``dataset.channels`` may name, and PIL's mode for each
CHANNEL_MODES = {1: "L", 3: "RGB"}


def channel_mode(channels: int) -> str:
    """PIL's mode for ``channels`` (3: ``RGB``, 1: ``L``), else ``ConfigError``."""
    if channels not in CHANNEL_MODES:
        raise ConfigError(f"dataset.channels={channels!r} is not one of {list(CHANNEL_MODES)} "
                          "(1: grey, 3: RGB)")
    return CHANNEL_MODES[channels]


def open_rgb(path: str | Path, channels: int = 3):
    """The image of ``path`` as a loaded PIL image of ``channels`` channels: 3 (RGB: grey,
    palette and RGBA images converted by PIL's ``convert("RGB")``, grey in all three channels,
    alpha dropped, the colours kept) or 1 (grey: ``convert("L")``, colours to their ITU-R 601
    luma); 16-bit grey (``I;16``) first reduced to its top 8 bits (PIL would clip it to white).
    ``ConfigError`` naming the file when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    mode = channel_mode(channels)
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I;16"):
                im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8))
            return im.convert(mode)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise ConfigError(f"cannot read image {path} ({e}): remove it from the folder or replace it "
                          "with a readable PNG or JPEG") from e


def to_uint8(x: Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in ``[−1, 1]`` → ``(B, H, W, 3)`` uint8 (clipped, rounded); one channel
    ``(B, 1, H, W)`` → ``(B, H, W)`` (PIL's mode ``L``, a grey picture for matplotlib)."""
    arr = ((x.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def save_images(x: Tensor, folder: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Write ``(B, 3, H, W)`` (RGB) or ``(B, 1, H, W)`` (grey, mode ``L``) images in ``[−1, 1]``
    as PNGs (``00000.png``… unless ``names``), each atomically."""
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


#: PIL's filters ``dataset.resize`` may name; PIL's ``resize`` antialiases: when it shrinks, the
#: filter's support is widened by the scale factor (a proper low-pass, unlike a plain
#: ``F.interpolate``)
RESIZE_FILTERS = ("bicubic", "bilinear", "lanczos", "box", "nearest")
#: the crops ``dataset.crop`` may name
CROPS = ("center",)


def center_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The box ``(left, top, right, bottom)`` of the largest centred square of a
    ``width × height`` image: the longer side trimmed equally at both ends, an odd excess's
    extra pixel at the right (bottom)."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def resize_filter(resize: str):
    """PIL's resampling filter named ``resize`` (one of ``RESIZE_FILTERS``), else ``ConfigError``."""
    from PIL import Image

    if resize not in RESIZE_FILTERS:
        raise ConfigError(f"dataset.resize={resize!r} is not one of {list(RESIZE_FILTERS)} (PIL's filters)")
    return Image.Resampling[resize.upper()]


def load_square(path: str | Path, size: int, resize: str = "bicubic", channels: int = 3) -> Tensor:
    """The image of ``path`` as ``(channels, size, size)`` float32 in ``[−1, 1]``: RGB or grey
    (``open_rgb``), turned upright by its EXIF orientation (phone photos), its centred square
    (``center_square``), resized to ``size²`` with PIL's ``resize`` filter (kept as it is when
    already ``size²``)."""
    from PIL import ImageOps

    resample = resize_filter(resize)
    im = ImageOps.exif_transpose(open_rgb(path, channels))
    im = im.crop(center_square(*im.size))
    if im.size != (size, size):
        im = im.resize((size, size), resample)
    return to_tensor(np.asarray(im, dtype=np.uint8))


def unique_names(files: Sequence[Path], root: Path) -> list[str]:
    """One name per file for what is written about it (restored/): its stem; where two files
    share a stem, their path under ``root`` with ``/`` and ``.`` as ``_`` (``a/x.png`` →
    ``a_x_png``); should even those collide, the position (``00003_``) in front of every name."""
    stems = [f.stem for f in files]
    if len(set(stems)) == len(stems):
        return stems
    seen = {s: stems.count(s) for s in stems}
    names = [f.relative_to(root).as_posix().replace("/", "_").replace(".", "_") if seen[s] > 1 else s
             for f, s in zip(files, stems)]
    if len(set(names)) == len(names):
        return names
    return [f"{i:05d}_{n}" for i, n in enumerate(names)]


class ImageFolder:
    """The sorted images of ``root``, the first ``limit`` of them (all when ``None``), each
    ``image_size × image_size`` RGB, as ``[−1, 1]`` tensors."""

    name = "images"

    def __init__(self, root: str | Path, image_size: int = 256, limit: int | None = None,
                 key: str = "dataset.root", read: Callable[[Path], Tensor] | None = None):
        self.root, self.image_size = Path(root), int(image_size)
        self.read = read or (lambda path: read_image(path, self.image_size))
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
        return self.read(self.files[i])

    def load(self, n: int | None = None) -> Tensor:
        """The first ``n`` images (all when ``None``) as ``(n, 3, H, W)`` float32."""
        n = len(self) if n is None else n
        if n > len(self):
            raise ConfigError(f"asked for {n} images but {self.root} (limit applied) holds {len(self)}")
        return torch.stack([self[i] for i in range(n)])


class ImageTrainSet:
    """The training images of a folder, with the ``sample(n, seed)`` of the point data sets:
    the first ``n`` images (all when fewer; ``seed`` unused, the order is the folder's)."""

    def __init__(self, root: str | Path, image_size: int = 256,
                 read: Callable[[Path], Tensor] | None = None):
        self.folder = ImageFolder(root, image_size, key="dataset.train_root", read=read)

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
        self.channels = 3  # each image's channels (FolderImages: dataset.channels)
        self._prepared = False

    def prepare(self) -> None:
        """Make the data available (nothing to do for folders that exist)."""

    def ensure_prepared(self) -> None:
        """``prepare`` the first time it is asked for, never again."""
        if not self._prepared:
            self.prepare()
            self._prepared = True

    def read(self, path: Path) -> Tensor:
        """One image file as ``(3, S, S)`` in ``[−1, 1]`` (here: exactly ``S²`` already)."""
        return read_image(path, self.image_size)

    def test_folder(self, limit: int | None = None) -> ImageFolder:
        """The first ``limit`` (else ``self.limit``, else all) test image files."""
        self.ensure_prepared()
        if self.root is None:
            raise ConfigError(f"dataset={self.name} needs dataset.root=FOLDER of PNG/JPEG images")
        limit = limit if limit is not None else self.limit
        return ImageFolder(self.root, self.image_size, limit=limit, read=self.read)

    def test_images(self, limit: int | None = None) -> Tensor:
        """The first ``limit`` (else ``self.limit``, else all) test images, ``(n, 3, S, S)``."""
        return self.test_folder(limit).load()

    def item_names(self, limit: int | None = None) -> list[str]:
        """The names of the test images in what a job writes about each (restored/): the
        source files' stems (``unique_names``)."""
        folder = self.test_folder(limit)
        return unique_names(folder.files, folder.root)

    def training_set(self) -> ImageTrainSet | None:
        """The training images (``sample(n, seed)``), or ``None`` without ``train_root``."""
        self.ensure_prepared()
        return ImageTrainSet(self.train_root, self.image_size, self.read) if self.train_root else None


class FolderImages(ImageDataset):
    """Any folder of PNG/JPEG photos of any size (``dataset=folder``): each image, in the
    sorted order of its path under ``root``, converted to RGB (``channels=3``) or grey
    (``channels=1``, ITU-R 601 luma) (``open_rgb``), turned upright (EXIF), centre-cropped to a
    square (``crop="center"``, ``center_square``) and resized to ``image_size²`` with PIL's
    ``resize`` filter (``load_square``): ``(channels, image_size, image_size)`` tensors."""

    def __init__(self, root: str | Path | None = None, train_root: str | Path | None = None,
                 image_size: int = 256, limit: int | None = None, name: str = "folder",
                 crop: str = "center", resize: str = "bicubic", channels: int = 3):
        super().__init__(root, train_root, image_size, limit, name)
        if crop not in CROPS:
            raise ConfigError(f"dataset.crop={crop!r} is not one of {list(CROPS)}")
        resize_filter(resize)  # refused here, before any image is read
        channel_mode(channels)
        self.crop, self.resize, self.channels = crop, resize, int(channels)

    def read(self, path: Path) -> Tensor:
        return load_square(path, self.image_size, self.resize, self.channels)
