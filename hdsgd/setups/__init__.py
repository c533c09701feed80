"""One Setup class per system (one module each)."""

from .grokking import GrokkingTwoLayer
from .lstsq import StreamingLeastSquares

__all__ = ["GrokkingTwoLayer", "StreamingLeastSquares"]

from .momentum import LabelNoiseMomentum  # noqa: E402

__all__ += ["LabelNoiseMomentum"]
