"""Distortion and perception measures."""
from vsdr.metrics.distortion import mse
from vsdr.metrics.image import ImageMetrics, MissingWeightsError, image_mse, psnr
from vsdr.metrics.w2 import empirical_w2, gaussian_w2, gaussian_w2_squared

__all__ = ["mse", "empirical_w2", "gaussian_w2", "gaussian_w2_squared", "ImageMetrics", "MissingWeightsError",
           "image_mse", "psnr"]
