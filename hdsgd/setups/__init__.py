"""One Setup class per system (one module each)."""

from .lstsq import StreamingLeastSquares

__all__ = ["StreamingLeastSquares"]

from .momentum import LabelNoiseMomentum  # noqa: E402

__all__ += ["LabelNoiseMomentum"]
