"""Data sets: 2D point clouds (and, later, analytic and image data)."""
from vsdr.data.toy2d import Moons, Pinwheel, PointDataset, SCurve

__all__ = ["PointDataset", "Pinwheel", "SCurve", "Moons"]
