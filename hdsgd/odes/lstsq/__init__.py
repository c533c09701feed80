r"""Deterministic equivalents of one-pass mini-batch SGD (plain or heavy ball) on least squares.

docs/lstsq.md. Three equivalents of the risk R = psi/2 (noise included):

* ``"recursion"`` (default): the exact expected recursion for Gaussian data at any finite d
  (`_recursion`: one d-vector for plain SGD, three for heavy ball);
* ``"ode"``: the homogenized ODE in t = k/d, with exact early steps (`_ode`; plain SGD);
* ``"volterra"``: the Volterra equation for R (`_volterra`: continuous for plain SGD, discrete
  in steps for heavy ball).

The three agree to O(1/d). Stability, batch size and limits are in `_stability`.
"""

from . import _predict, _pure  # noqa: F401  (register predict, predict_grid, pure_prediction)
from ._predict import METHODS, MOMENTUM_METHODS, risk_curve, stability_warning
from ._recursion import (
    mode_coefficients,
    moment_step,
    momentum_recursion_psi,
    recursion_psi,
    recursion_state,
)
from ._stability import (
    accelerated_critical_batch_size,
    accelerated_hyperparameters,
    asymptotic_rate,
    critical_batch_size,
    critical_step_size,
    effective_step_size,
    feedback,
    homogenized_critical_step_size,
    homogenized_kernel_mass,
    isotropic_risk,
    kernel_mass,
    limit_excess_risk,
    limit_risk,
    recursion_matrix,
)
from ._volterra import (
    deterministic_error,
    impulse_response,
    momentum_volterra_risk,
    volterra_forcing,
    volterra_kernel,
    volterra_risk,
)

__all__ = [
    "METHODS", "MOMENTUM_METHODS", "accelerated_critical_batch_size", "accelerated_hyperparameters",
    "asymptotic_rate", "critical_batch_size", "critical_step_size", "deterministic_error",
    "effective_step_size", "feedback", "homogenized_critical_step_size", "homogenized_kernel_mass",
    "impulse_response", "isotropic_risk", "kernel_mass", "limit_excess_risk", "limit_risk",
    "mode_coefficients", "moment_step", "momentum_recursion_psi", "momentum_volterra_risk",
    "recursion_matrix", "recursion_psi", "recursion_state", "risk_curve", "stability_warning",
    "volterra_forcing", "volterra_kernel", "volterra_risk",
]
