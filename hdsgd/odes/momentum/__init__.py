r"""Deterministic equivalents of label-noise SGD with heavy-ball momentum near a manifold of
minimisers (docs/momentum.md; Cowsik, Can & Glorioso, arXiv:2210.16400; Li, Wang & Arora 2022
for beta = 0).

Notation: eta = step size, beta = momentum, delta^2 = label_noise^2 / B, lambda = tr H on the
manifold (the normal curvature), kappa = d^2 tr H / dl^2 at the flattest point. Time unit:
steps. One private module per concept:

* `_fluctuation`: the stationary variance of a normal mode and the quadratures over it;
* `_scales`: the two timescales, the regime, the stationary loss;
* `_stability`: the heavy-ball stability edge at the start, `critical_step_size`;
* `_flow`: the first-order flow (closed forms, and diffrax in the ambient coordinates);
* `_recursion`: the two-parameter uniform recursion;
* `_sde`: the two-parameter reduced SDE and its closure, the default Euler step;
* `_observables`: the two-parameter observables over the normal fluctuation;
* `_inner_product`: the inner-product model's reduced SDE / closure in ambient coordinates;
* `_sensing`: the matrix-sensing moment closure;
* `_target`: the time to target; `_optimal`: its objective and scan ranges for `hdsgd.tune`;
* `_predict`: ``predict`` for the three Setup classes.
"""

from . import _predict  # noqa: F401  (registers predict)
from ._fluctuation import GAUSS, PHASE, stationary_variance
from ._flow import (flow_ambient, flow_closed_form, flow_rate, flow_time_to_target,
                    invariants_flow)
from ._inner_product import (expected_observables, fluctuation_average, fluctuation_observables,
                             flow_observables, reduced_start, reduced_step, retract,
                             tangent_projection)
from ._observables import gaussian_observables, normal_offset
from ._optimal import SCAN_POINTS, common_dt, constant_range, damping_range, time_objective
from ._predict import ESCAPE_FRACTION, METHODS, MODEL_METHODS, barrier_fraction
from ._recursion import recursion_path, recursion_step
from ._scales import (CRITICAL_EXPONENT, SLOW_CURVATURE, flattest_curvature, regime,
                      stationary_train_loss, timescales)
from ._sde import default_dt, reduced_paths
from ._sensing import (SensingClosure, sensing_closure, sensing_closure_step,
                       sensing_expected_observables)
from ._stability import critical_step_size, stability_warning
from ._target import (default_target_horizon, product_time_to_target, sensing_time_to_target,
                      time_to_target)

__all__ = [
    "CRITICAL_EXPONENT", "ESCAPE_FRACTION", "GAUSS", "METHODS", "MODEL_METHODS", "PHASE", "SCAN_POINTS",
    "SLOW_CURVATURE", "SensingClosure", "barrier_fraction", "common_dt", "constant_range", "critical_step_size",
    "damping_range", "default_dt", "default_target_horizon",
    "expected_observables", "flattest_curvature", "flow_ambient", "flow_closed_form",
    "flow_observables", "flow_rate", "flow_time_to_target", "fluctuation_average",
    "fluctuation_observables", "gaussian_observables", "invariants_flow", "normal_offset",
    "product_time_to_target", "recursion_path",
    "recursion_step", "reduced_paths", "reduced_start", "reduced_step", "regime", "retract",
    "sensing_closure", "sensing_closure_step", "sensing_expected_observables",
    "sensing_time_to_target", "stability_warning", "stationary_train_loss",
    "stationary_variance", "tangent_projection", "time_objective", "time_to_target",
    "timescales",
]
