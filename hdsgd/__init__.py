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
    Tradeoff,
    Tuned,
    batch_tradeoff,
    samples_to_target,
    steps_to_target,
    tune,
    value_at_budget,
)
from .compare import Agreement, compare
from .curve import Curve
from .plot import plot_curves
from ._sweep import Task, sweep
from .setups import (
    GrokkingTwoLayer,
    LabelNoiseMomentum,
    ProxLinearSensing,
    SpikedSingleIndex,
    StreamingLeastSquares,
    spectra,
)

from . import grokking, lstsq, proxlinear, spiked  # noqa: E402  (system faces: each registers its theory and Monte Carlo)

# Systems not yet moved to their face: registered by importing their theory and Monte Carlo.
from .odes import momentum as _momentum_theory  # noqa: E402,F401
from .montecarlo import momentum as _momentum_mc  # noqa: E402,F401

__all__ = [
    "Agreement",
    "Curve",
    "GrokkingTwoLayer",
    "LabelNoiseMomentum",
    "LogRange",
    "ProxLinearSensing",
    "SpikedSingleIndex",
    "StreamingLeastSquares",
    "Task",
    "Tradeoff",
    "Tuned",
    "__version__",
    "batch_tradeoff",
    "compare",
    "grokking",
    "lstsq",
    "plot_curves",
    "predict",
    "predict_grid",
    "proxlinear",
    "samples_to_target",
    "simulate",
    "spectra",
    "spiked",
    "steps_to_target",
    "sweep",
    "tune",
    "value_at_budget",
]
