"""hdsgd: predict how SGD-type training behaves in high dimension, without training it.

Every system pairs a low-dimensional deterministic equivalent (`predict`) with the matching
finite-dimensional Monte Carlo (`simulate`); `compare` checks one against the other in units
of the Monte Carlo standard error, and `tune` chooses hyperparameters from predictions alone.

The top level holds the generic API and the Setup classes; each system's derived quantities
live in its namespace: `hdsgd.lstsq`, `hdsgd.proxlinear`, `hdsgd.spiked`, `hdsgd.grokking`,
`hdsgd.momentum`. Importing hdsgd changes no global JAX setting (see ``hdsgd._precision``).
"""

from ._version import __version__
from .api import predict, predict_grid, simulate
from .autotune import (
    LogRange,
    Tuned,
    samples_to_target,
    steps_to_target,
    tune,
    value_at_budget,
)
from .compare import Agreement, compare
from .curve import Curve
from .plot import plot_curves
from .setups import (
    GrokkingTwoLayer,
    InnerProductMomentum,
    LabelNoiseMomentum,
    MatrixSensingMomentum,
    ProxLinearSensing,
    SpikedSingleIndex,
    StreamingLeastSquares,
    TwoParameterMomentum,
    spectra,
)

from . import lstsq  # noqa: E402  (system faces: each registers its theory and Monte Carlo)
from . import momentum  # noqa: E402

# Systems not yet moved to their face: registered by importing their theory and Monte Carlo.
from .odes import grokking as _grokking_theory  # noqa: E402,F401
from .montecarlo import grokking as _grokking_mc  # noqa: E402,F401
from .odes import proxlinear as _proxlinear_theory  # noqa: E402,F401
from .montecarlo import proxlinear as _proxlinear_mc  # noqa: E402,F401
from .odes import spiked as _spiked_theory  # noqa: E402,F401
from .montecarlo import spiked as _spiked_mc  # noqa: E402,F401

__all__ = [
    "Agreement",
    "Curve",
    "GrokkingTwoLayer",
    "InnerProductMomentum",
    "LabelNoiseMomentum",
    "LogRange",
    "MatrixSensingMomentum",
    "ProxLinearSensing",
    "SpikedSingleIndex",
    "StreamingLeastSquares",
    "Tuned",
    "TwoParameterMomentum",
    "__version__",
    "compare",
    "lstsq",
    "momentum",
    "plot_curves",
    "predict",
    "predict_grid",
    "samples_to_target",
    "simulate",
    "spectra",
    "steps_to_target",
    "tune",
    "value_at_budget",
]
