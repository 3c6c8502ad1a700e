"""Measurement operators ``A`` as objects with ``forward``, ``adjoint`` and ``prox_data``."""
from vsdr.operators.blur import GaussianBlur
from vsdr.operators.deepinv_physics import DeepInvOperator
from vsdr.operators.linear import Identity, LinearOperator
from vsdr.operators.matrix import MatrixOperator
from vsdr.operators.superres import SuperResolution

__all__ = ["LinearOperator", "Identity", "MatrixOperator", "GaussianBlur", "SuperResolution",
           "DeepInvOperator"]
