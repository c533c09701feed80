"""hdsgd: predict how SGD-type training behaves in high dimension, without training it.

Every system pairs a low-dimensional deterministic equivalent (`predict`) with the matching
finite-dimensional Monte Carlo (`simulate`); `compare` checks one against the other in units
of the Monte Carlo standard error.

Importing hdsgd turns on JAX's 64-bit mode (see ``hdsgd._precision``; opt out with the
environment variable ``HDSGD_X64=0``).
"""

__version__ = "0.1.0"

from . import _precision

_precision.apply_policy()

from . import spectra  # noqa: E402
from .api import predict, simulate  # noqa: E402
from .autotune import (  # noqa: E402
    LogRange,
    Tuned,
    samples_to_target,
    steps_to_target,
    tune,
    value_at_budget,
)
from .compare import Agreement, compare  # noqa: E402
from .curve import Curve  # noqa: E402
from .plot import plot_curves  # noqa: E402
from .registry import SYSTEMS  # noqa: E402
from .setups import StreamingLeastSquares  # noqa: E402
from .setups import ProxLinearSensing  # noqa: E402
from .setups import GrokkingTwoLayer  # noqa: E402

# Systems register their theory and Monte Carlo on predict/simulate when imported.
from .odes import lstsq as _lstsq_theory  # noqa: E402,F401
from .montecarlo import lstsq as _lstsq_mc  # noqa: E402,F401
from .odes import grokking as _grokking_theory  # noqa: E402,F401
from .montecarlo import grokking as _grokking_mc  # noqa: E402,F401
from .odes.grokking import grokking_time  # noqa: E402
from .odes.lstsq import critical_batch_size, critical_step_size  # noqa: E402
from .odes import proxlinear as _proxlinear_theory  # noqa: E402,F401
from .montecarlo import proxlinear as _proxlinear_mc  # noqa: E402,F401
from .odes import proxlinear  # noqa: E402

__all__ = [
    "ProxLinearSensing",
    "proxlinear",
    "GrokkingTwoLayer",
    "grokking_time",
    "Agreement",
    "Curve",
    "LogRange",
    "Tuned",
    "SYSTEMS",
    "StreamingLeastSquares",
    "compare",
    "critical_batch_size",
    "critical_step_size",
    "plot_curves",
    "predict",
    "samples_to_target",
    "simulate",
    "spectra",
    "steps_to_target",
    "tune",
    "value_at_budget",
]

# label-noise SGD with momentum near a manifold of minimisers (issue 6)
from .setups import LabelNoiseMomentum  # noqa: E402
from .odes import momentum as _momentum_theory  # noqa: E402,F401
from .montecarlo import momentum as _momentum_mc  # noqa: E402,F401
from .odes.momentum import momentum_timescales, momentum_regime  # noqa: E402
from .odes.momentum import optimal_constant as momentum_optimal_constant  # noqa: E402
from .odes.momentum import optimal_momentum as momentum_optimal_momentum  # noqa: E402
from .odes.momentum import time_to_target as momentum_time_to_target  # noqa: E402
from .odes.momentum import sensing_time_to_target as momentum_sensing_time_to_target  # noqa: E402
from .montecarlo.momentum import measured_time_to_target as momentum_measured_time_to_target  # noqa: E402

__all__ += ["LabelNoiseMomentum", "momentum_timescales", "momentum_regime",  # noqa: E402
            "momentum_optimal_constant", "momentum_optimal_momentum", "momentum_time_to_target",
            "momentum_sensing_time_to_target", "momentum_measured_time_to_target"]

# spiked single-index model (issue 4)
from .setups import SpikedSingleIndex  # noqa: E402
from .odes import spiked as _spiked_theory  # noqa: E402,F401
from .montecarlo import spiked as _spiked_mc  # noqa: E402,F401
from .odes.spiked import critical_step_size as spiked_critical_step_size  # noqa: E402
from .odes.spiked import escape_time as spiked_escape_time  # noqa: E402
from .odes.spiked import fixed_points as spiked_fixed_points  # noqa: E402
from .montecarlo.spiked import escape_samples as spiked_escape_samples  # noqa: E402

__all__ += ["SpikedSingleIndex", "spiked_critical_step_size", "spiked_escape_time",  # noqa: E402
            "spiked_fixed_points", "spiked_escape_samples"]

# SGD + heavy-ball momentum on streaming least squares (issue 6, last section): a momentum field
# on StreamingLeastSquares; derived quantities in hdsgd.lstsq_momentum
from .odes import lstsq_momentum  # noqa: E402

__all__ += ["lstsq_momentum"]  # noqa: E402
