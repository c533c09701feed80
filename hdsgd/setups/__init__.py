"""One Setup class per system (data only: no theory, no simulation, no command line)."""

from . import spectra
from ._base import Setup
from .grokking import GrokkingTwoLayer
from .lstsq import StreamingLeastSquares
from .momentum import (InnerProductMomentum, LabelNoiseMomentum, MatrixSensingMomentum,
                       TwoParameterMomentum)
from .proxlinear import ProxLinearSensing
from .spiked import SpikedSingleIndex

__all__ = ["GrokkingTwoLayer", "InnerProductMomentum", "LabelNoiseMomentum",
           "MatrixSensingMomentum", "ProxLinearSensing", "Setup", "SpikedSingleIndex",
           "StreamingLeastSquares", "TwoParameterMomentum", "spectra"]
