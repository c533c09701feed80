"""Single-index learning under spiked covariance: online SGD on one neuron, plain (P),
spherical (S) or covariance-normalised (N), with its limit ODEs, the exact two-variable chain
and full-dimension Monte Carlo (docs/spiked.md).

    setup = hdsgd.spiked.SpikedSingleIndex(dim=2000, spike=4.0, link="he2", step_size=1.0)
    hdsgd.predict(setup, horizon=2.0)                 # the limit ODE
    hdsgd.simulate(setup, 2.0, key=jax.random.key(0), method="chain")
    hdsgd.spiked.critical_step_size(setup)            # 2 (1 + theta) = 10 here
"""

from .montecarlo.spiked import METHODS as SIMULATE_METHODS
from .montecarlo.spiked import escape_samples
from .odes.spiked import METHODS as PREDICT_METHODS
from .odes.spiked import critical_step_size, escape_time, fixed_points, gaussian_moments
from .setups.spiked import (
    ESCAPE_OBSERVABLES,
    OBSERVABLES,
    SpikedSingleIndex,
    hermite_e_eval,
    information_exponent,
    parse_link,
    series_degree,
    to_hermite_e,
)

__all__ = [
    "ESCAPE_OBSERVABLES",
    "OBSERVABLES",
    "PREDICT_METHODS",
    "SIMULATE_METHODS",
    "SpikedSingleIndex",
    "critical_step_size",
    "escape_samples",
    "escape_time",
    "fixed_points",
    "gaussian_moments",
    "hermite_e_eval",
    "information_exponent",
    "parse_link",
    "series_degree",
    "to_hermite_e",
]
