"""Tasks: what each kind of data (point clouds, closed-form posteriors, images) brings to the
one job pipeline of ``vsdr.experiments.job``."""
from vsdr.tasks.analytic import AnalyticTask
from vsdr.tasks.base import Task, TestSet
from vsdr.tasks.images import ImageTask
from vsdr.tasks.points import PointCloudTask

__all__ = ["Task", "TestSet", "PointCloudTask", "AnalyticTask", "ImageTask"]
