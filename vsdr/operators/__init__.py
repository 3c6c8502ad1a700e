"""Measurement operators ``A`` as objects with ``forward`` and ``adjoint``."""
from vsdr.operators.blur import GaussianBlur
from vsdr.operators.linear import Identity, LinearOperator
from vsdr.operators.superres import SuperResolution

__all__ = ["LinearOperator", "Identity", "GaussianBlur", "SuperResolution"]
