"""``predict`` for `ProxLinearSensing`: pick the equivalent, run it, finish the Curve."""

from __future__ import annotations

import numpy as np

from ..._numerics import exceeds
from ...api import check_tolerance, predict, reject_options
from ...curve import Curve, finish_curve
from ...setups.proxlinear import DIVERGENCE_FACTOR, ProxLinearSensing, error_sq_of_state
from ._checks import check_map_horizon, check_setup
from ._map import FAILURES, map_params, run_map, states_of
from ._ode import ode_failure, ode_trajectory
from ._quadrature import rule_arrays

METHODS = ("auto", "map", "ode")
OBSERVABLES = ("error_sq", "alpha_left", "beta_left", "alpha_right", "beta_right")


def default_method(setup: ProxLinearSensing) -> str:
    """``"ode"`` when m <= d/100 (d = min(d1, d2); there the ODE is faster), else ``"map"``."""
    check_setup(setup)
    return "ode" if setup.batch_size * 100 <= min(setup.dim_left, setup.dim_right) else "map"


def state_curve(setup: ProxLinearSensing, steps, states, method: str, *, status=None,
                failed_at=None, failure: str | None = None, extra: dict | None = None) -> Curve:
    """Finish predicted states (T, 4) at whole ``steps`` into a Curve.

    Diverged (inf from then on, with ``meta["warning"]`` saying why): a failed step of the map
    (``status`` != 0, the reason in `FAILURES`, the step in ``failed_at``), a non-finite value,
    or E^2 past ``setup.blow_up_bound``; ``failure`` is the ODE solver's reason, if it stopped
    early.
    """
    steps = np.asarray(steps)
    obs, blown, failed = state_observables(setup, steps, states, status)
    e2 = obs["error_sq"]
    warnings = []
    if failed.any() or blown.any():
        i_fail = int(np.argmax(failed)) if failed.any() else steps.size
        i_blow = int(np.argmax(blown)) if blown.any() else steps.size
        if i_fail <= i_blow:
            code = int(np.asarray(status)[i_fail])
            warnings.append(f"the map failed at step {int(np.asarray(failed_at)[i_fail])}: "
                            f"{FAILURES[code]}")
        elif failure is None:
            warnings.append(f"E^2 passed the blow-up bound 10^6 (1 + E_0^2) = "
                            f"{setup.blow_up_bound:.4g} by step {int(steps[i_blow])}")
    if failure is not None:
        warnings.append(failure)
    return finish_curve(setup, steps.astype(np.float64), obs, method=method,
                        samples=steps * setup.batch_size, blown=blown | failed,
                        warnings=warnings, extra=extra)


def state_observables(setup: ProxLinearSensing, steps, states, status=None
                      ) -> tuple[dict, np.ndarray, np.ndarray]:
    """The observables of predicted states (..., T, 4) (E^2 and the four overlaps), where E^2
    passes ``setup.blow_up_bound``, and where the map failed (``status`` != 0); any leading
    axes (a grid's settings) are kept."""
    states = np.asarray(states, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        e2 = error_sq_of_state(np.moveaxis(states, -1, 0))
    blown = exceeds(e2, 1.0 + setup.initial_error_sq, DIVERGENCE_FACTOR)
    failed = (np.zeros(e2.shape, bool) if status is None else np.asarray(status) != 0)
    obs = {"error_sq": e2, **{name: states[..., i] for i, name in enumerate(OBSERVABLES[1:])}}
    return obs, blown, failed


def map_curve(setup: ProxLinearSensing, steps, records, extra: dict | None = None) -> Curve:
    """`state_curve` of the map's records (from `run_map`)."""
    return state_curve(setup, steps, states_of(records), "map", status=records["status"],
                       failed_at=records["failed_at"], extra=extra)


@predict.register
def _predict(setup: ProxLinearSensing, horizon: float, *, times=None, method: str | None = None,
             rule=None, rtol: float | None = None, **options) -> Curve:
    """Predict the error and the state of prox-linear rank-one sensing (docs/proxlinear.md).

    Args:
        setup: a `ProxLinearSensing`.
        horizon: final iteration (steps).
        times: output iterations (rounded to whole steps); default: every step up to the
            first log-spaced ones, then log-spaced (about 100 points).
        method: ``"map"`` (the one-step map, any batch size), ``"ode"`` (the small-batch
            limit, m << d), or ``"auto"``/None: `default_method` (the ODE when m <= d/100).
        rule: (g1, g2, w) quadrature for the (g1, g2) expectations; default `polar_rule()`.
        rtol: ``"ode"`` only: the solver's relative tolerance (default 1e-7).
    """
    reject_options(options, setup, ("rule", "rtol"))
    method = "auto" if method is None else method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    if method == "auto":
        method = default_method(setup)
    if rtol is not None and method != "ode":
        raise ValueError(f"rtol={rtol!r} is an option of method='ode' only; allowed for "
                         f"method={method!r}: rule")
    if rtol is not None:
        check_tolerance("rtol", rtol)
    steps = setup.output_steps(horizon, times)
    rule = rule_arrays(rule)
    if method == "map":
        check_map_horizon(horizon, steps)  # the map counts steps in int32
        records, _ = run_map(setup.initial_state, map_params(setup), steps, rule)
        return map_curve(setup, steps, records)
    states, result = ode_trajectory(setup, steps.astype(np.float64), rule,
                                    rtol=1e-7 if rtol is None else float(rtol))
    failure = ode_failure(result)
    return state_curve(setup, steps, states, "ode", failure=failure,
                       extra={"solver_ok": failure is None})
