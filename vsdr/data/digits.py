"""A small image set available offline: scikit-learn's handwritten digits (1,797 grey 8×8
images shipped with the package), bicubically up-sampled to ``image_size`` and written as
RGB PNGs (grey in all three channels) into ``root/train`` and ``root/test``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsdr.data.images import ImageDataset, _absolute, list_images, save_images


def digits_images(image_size: int = 16) -> torch.Tensor:
    """All 1,797 digits as ``(N, 3, S, S)`` in ``[−1, 1]`` (``S = image_size``): the 0…16
    grey levels scaled to ``[−1, 1]``, up-sampled (bicubic, clipped), repeated over RGB."""
    from sklearn.datasets import load_digits

    x = torch.from_numpy(load_digits().images.astype(np.float32) / 8.0 - 1.0)[:, None]
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bicubic", align_corners=False)
    return x.clamp(-1, 1).repeat(1, 3, 1, 1)


def write_digits_folders(root: str | Path, image_size: int = 16, n_test: int = 297) -> Path:
    """Write the digits once: the last ``n_test`` images into ``root/test``, the others into
    ``root/train`` (kept when both folders are already complete). Returns ``root``."""
    root = Path(root)
    x = digits_images(image_size)
    n_train = len(x) - int(n_test)
    splits = {"train": x[:n_train], "test": x[n_train:]}
    for split, imgs in splits.items():
        folder = root / split
        if folder.is_dir() and len(list_images(folder)) == len(imgs):
            continue
        save_images(imgs, folder)
    return root


class DigitsImages(ImageDataset):
    """The digits as an ``ImageDataset``: written by ``write_digits_folders`` into ``generate``
    (``generate/train`` and ``generate/test``) on first use; ``generate=None`` reads ``root`` and
    ``train_root`` as they are."""

    def __init__(self, root: str | Path | None = None, train_root: str | Path | None = None,
                 image_size: int = 16, limit: int | None = None, name: str = "digits",
                 generate: str | Path | None = None, n_test: int = 297):
        super().__init__(root, train_root, image_size, limit, name)
        self.generate, self.n_test = generate, int(n_test)

    def prepare(self) -> None:
        if self.generate:
            write_digits_folders(_absolute(self.generate), self.image_size, self.n_test)
