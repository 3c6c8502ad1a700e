"""Data sets: 2D point clouds, data with a closed-form posterior, images in folders."""
from vsdr.data.images import ImageDataset, ImageFolder
from vsdr.data.toy2d import Moons, Pinwheel, PointDataset, SCurve

__all__ = ["PointDataset", "Pinwheel", "SCurve", "Moons", "ImageFolder", "ImageDataset"]
