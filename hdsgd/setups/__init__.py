"""One Setup class per system (one module each)."""

from .lstsq import StreamingLeastSquares

__all__ = ["StreamingLeastSquares"]
