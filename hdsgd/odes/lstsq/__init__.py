r"""Deterministic equivalents of one-pass mini-batch SGD (plain or heavy ball) on least squares.

docs/lstsq.md. Equivalents of the risk R = psi/2 (noise included):

* ``"spectral"``: the exact expected recursion in closed form, psi(k) a sum over the roots of a
  secular equation (`_secular`, `_spectral`; heavy ball: `_spectral_momentum`);
* ``"recursion"``: the same recursion step by step, for Gaussian data at any finite d
  (`_recursion`: one d-vector for plain SGD, three for heavy ball; with a step-size
  `Schedule`, the only method, each step at its own step size);
* ``"ode"``: the homogenized ODE in t = k/d by an exponential integrator, with exact early
  steps (`_ode`; plain SGD);
* ``"volterra"``: the Volterra equation for R (`_volterra`: continuous, solved in closed form,
  for plain SGD; discrete in steps for heavy ball).

The default is whichever exact method costs less (`default_method`); the d -> infinity
equivalents agree with it to O(1/d) and report their gap. Stability, batch size and limits
are in `_stability`.
"""

from . import _predict, _pure  # noqa: F401  (register predict, predict_grid, pure_prediction)
from ._predict import (
    METHODS,
    MOMENTUM_METHODS,
    default_method,
    exact_psi,
    risk_curve,
    stability_warning,
)
from ._recursion import (
    mode_coefficients,
    moment_step,
    momentum_recursion_psi,
    recursion_block,
    recursion_psi,
    recursion_state,
    scheduled_recursion_psi,
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
from ._spectral_momentum import spectral_risk
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
    "asymptotic_rate", "critical_batch_size", "critical_step_size", "default_method",
    "deterministic_error", "effective_step_size", "exact_psi", "feedback",
    "homogenized_critical_step_size", "homogenized_kernel_mass", "impulse_response",
    "isotropic_risk", "kernel_mass", "limit_excess_risk", "limit_risk", "mode_coefficients",
    "moment_step", "momentum_recursion_psi", "momentum_volterra_risk", "recursion_matrix",
    "recursion_block", "recursion_psi", "recursion_state", "risk_curve", "scheduled_recursion_psi",
    "spectral_risk", "stability_warning",
    "volterra_forcing", "volterra_kernel", "volterra_risk",
]
