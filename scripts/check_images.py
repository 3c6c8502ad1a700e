"""Check a folder of FFHQ test images before a run (docs/FFHQ.md).

    python scripts/check_images.py FOLDER [--count 1000] [--size 256]

Lists the PNG/JPEG files the job would read (sorted, sub-folders included), and checks that
there are ``--count`` of them, named 00000 … (count−1) in order, each ``--size``² and readable
as RGB. Prints what is wrong, first few cases each; exit status 0 when all is well, else 1.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vsdr.data.images import folder_problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--count", type=int, default=1000, help="expected number of images (0: any)")
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args(argv)
    found = folder_problems(a.folder, a.count or None, a.size)
    for line in found:
        print(f"check_images: {line}")
    if not found:
        print(f"check_images: {a.folder}: {a.count or 'all'} images, {a.size}×{a.size} RGB, named in order")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
