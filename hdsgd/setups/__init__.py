"""One Setup class per system (one module each)."""

from .grokking import GrokkingTwoLayer
from .lstsq import StreamingLeastSquares
from .proxlinear import ProxLinearSensing

__all__ = ["ProxLinearSensing", "GrokkingTwoLayer", "StreamingLeastSquares"]

from .momentum import LabelNoiseMomentum  # noqa: E402

__all__ += ["LabelNoiseMomentum"]

from .spiked import SpikedSingleIndex  # noqa: E402

__all__ += ["SpikedSingleIndex"]
