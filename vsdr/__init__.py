"""vsdr: variance-scaled diffusion restoration."""
__version__ = "0.1.0"
