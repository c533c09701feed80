r"""High-dimensional limit ODEs of online SGD on a spiked single-index model (docs/spiked.md).

Step eta = c/d, time t = samples/d, d -> infinity at fixed theta. With h = a u + b xi
(a = sqrt(1+theta) m, b = sqrt(q)) and the Gaussian functionals A1 = E[G u], A2 = E[G xi],
A3 = E[G^2] (`_moments`, by quadrature, with closed forms for the checks), the summary
statistics follow the ODEs (P), (S), (N) of `_ode` (docs/spiked.md, "The limit ODEs").

Derived quantities: `critical_step_size` and `fixed_points` of the normalised variants
(`_stability`), and the ODE's `escape_time` (`_escape`). `predict` is registered by
`_predict` (method ``"ode"``).
"""

from . import _predict  # noqa: F401  (registers predict)
from ._escape import escape_time
from ._moments import correlation_potential, gaussian_moments, matched_moments_closed_form
from ._ode import drift, solve, state0, to_overlaps
from ._predict import METHODS
from ._stability import critical_step_size, fixed_points, stability_warning

__all__ = [
    "METHODS", "correlation_potential", "critical_step_size", "drift", "escape_time",
    "fixed_points", "gaussian_moments", "matched_moments_closed_form", "solve",
    "stability_warning", "state0", "to_overlaps",
]
