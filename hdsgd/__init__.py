"""hdsgd: predict how SGD-type training behaves in high dimension, without training it.

Every system pairs a low-dimensional deterministic equivalent (`predict`) with the matching
finite-dimensional Monte Carlo (`simulate`); `compare` checks one against the other in units
of the Monte Carlo standard error, and `tune` chooses hyperparameters from predictions alone.

The top level holds the generic API and the Setup classes; each system's derived quantities
live in its namespace: `hdsgd.lstsq`, `hdsgd.proxlinear`, `hdsgd.spiked`, `hdsgd.grokking`,
`hdsgd.momentum` (docs/architecture.md). Importing hdsgd changes no global JAX setting: hdsgd
computes in float64 inside its own calls (``hdsgd._precision``).
"""

from ._version import __version__
from ._sweep import Task, sweep
from .api import predict, predict_grid, simulate
from .autotune import (
    LogRange,
    Tradeoff,
    Tuned,
    batch_tradeoff,
    SetupObjective,
    samples_to_target,
    setup_objective,
    steps_to_target,
    tune,
    tune_schedule,
    value_at_budget,
)
from .compare import Agreement, compare
from .curve import Curve
from .curve_grid import CurveGrid
from .plot import plot_curves
from .setups import (
    GrokkingTwoLayer,
    InnerProductMomentum,
    LabelNoiseMomentum,
    MatrixSensingMomentum,
    ProxLinearSensing,
    Schedule,
    SpikedSingleIndex,
    StreamingLeastSquares,
    TwoParameterMomentum,
    spectra,
)

# The systems' public namespaces; importing them registers their theory and Monte Carlo.
from . import grokking, lstsq, momentum, proxlinear, spiked  # noqa: E402

__all__ = [
    "Agreement",
    "Curve",
    "CurveGrid",
    "GrokkingTwoLayer",
    "InnerProductMomentum",
    "LabelNoiseMomentum",
    "LogRange",
    "MatrixSensingMomentum",
    "ProxLinearSensing",
    "Schedule",
    "SetupObjective",
    "SpikedSingleIndex",
    "StreamingLeastSquares",
    "Task",
    "Tradeoff",
    "Tuned",
    "TwoParameterMomentum",
    "__version__",
    "batch_tradeoff",
    "compare",
    "grokking",
    "lstsq",
    "momentum",
    "plot_curves",
    "predict",
    "predict_grid",
    "proxlinear",
    "samples_to_target",
    "setup_objective",
    "simulate",
    "spectra",
    "spiked",
    "steps_to_target",
    "sweep",
    "tune",
    "tune_schedule",
    "value_at_budget",
]
