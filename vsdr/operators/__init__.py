"""Measurement operators ``A`` as objects with ``forward`` and ``adjoint``."""
from vsdr.operators.linear import Identity, LinearOperator
from vsdr.operators.matrix import MatrixOperator

__all__ = ["LinearOperator", "Identity", "MatrixOperator"]
