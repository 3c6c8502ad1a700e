"""Data sets: 2D point clouds and folders of images (and, later, analytic data)."""
from vsdr.data.images import ImageFolder
from vsdr.data.toy2d import Moons, Pinwheel, PointDataset, SCurve

__all__ = ["PointDataset", "Pinwheel", "SCurve", "Moons", "ImageFolder"]
