"""Plots: DP curves, point-cloud scatters."""
from vsdr.plotting.dp import plot_dp_curve
from vsdr.plotting.points import plot_reconstructions

__all__ = ["plot_dp_curve", "plot_reconstructions"]
