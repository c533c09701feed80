"""Prox-linear rank-one matrix sensing: mini-batched prox-linear (damped Gauss-Newton)
iterations, their one-step map for any batch size, its small-batch ODE, the noise floor and
the local rate (docs/proxlinear.md).

    setup = hdsgd.proxlinear.ProxLinearSensing(dim_left=200, dim_right=200, batch_size=100)
    hdsgd.predict(setup, 20)                        # the one-step map (m > d/100)
    hdsgd.proxlinear.noise_floor(setup)             # E_inf^2, the map's fixed point
    hdsgd.tune(setup, {"batch_size": [10, 50], "eta_bar": [0.5, 1, 2]},
               hdsgd.samples_to_target(0.05, "error_sq"), budget=4000)

There is no critical step size: the local rate at the truth is positive for every step size
(docs/proxlinear.md, "Stability").
"""

from .montecarlo.proxlinear import METHODS as SIMULATE_METHODS
from .odes.proxlinear import GRID_RULE
from .odes.proxlinear import METHODS as PREDICT_METHODS
from .odes.proxlinear import (
    default_method,
    floor_grid,
    gauss_hermite_rule,
    local_rate,
    map_grid,
    noise_floor,
    polar_rule,
)
from .setups.proxlinear import ProxLinearSensing, error_sq_of_state, random_initial_state

__all__ = [
    "GRID_RULE",
    "PREDICT_METHODS",
    "ProxLinearSensing",
    "SIMULATE_METHODS",
    "default_method",
    "error_sq_of_state",
    "floor_grid",
    "gauss_hermite_rule",
    "local_rate",
    "map_grid",
    "noise_floor",
    "polar_rule",
    "random_initial_state",
]
