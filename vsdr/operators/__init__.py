"""Measurement operators ``A`` as objects with ``forward`` and ``adjoint``."""
from vsdr.operators.linear import Identity, LinearOperator

__all__ = ["LinearOperator", "Identity"]
