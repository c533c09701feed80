"""``predict`` for `SpikedSingleIndex`: integrate the limit ODE, finish the Curve."""

from __future__ import annotations

import numpy as np

from ...api import (check_tolerance, predict, reject_options,
                   stability_warning as edge_warning)
from ...curve import Curve, finish_curve
from ...setups import _validate as _v
from ...setups.spiked import SpikedSingleIndex, observables_from_overlaps
from ._ode import BLOWUP, FAILED, solve, state0, to_overlaps
from ._stability import critical_step_size, has_edge, stability_warning

METHODS = ("ode",)


edge_warning.register(SpikedSingleIndex, stability_warning)  # `simulate` reports it too


@predict.register
def _predict(setup: SpikedSingleIndex, horizon: float, *, times=None, method: str | None = None,
             rtol: float = 1e-8, correction_scale: float = 1.0, **options) -> Curve:
    """Integrate the limit ODE (P), (S) or (N) of ``setup`` (docs/spiked.md, "The limit ODEs").

    Args:
        setup: a `SpikedSingleIndex`.
        horizon: final time t = samples / d.
        times: output times in t; default: the Monte Carlo's grid (every step at first, then
            about 100 log-spaced steps, divided by d).
        method: ``"ode"`` (the only one; default).
        rtol: the solver's relative tolerance.
        correction_scale: multiplies the O(c^2) Ito / normalisation term (1 = the model; other
            values exist only so tests can check that the Monte Carlo rejects them).

    Returns:
        A Curve of every observable. Past the critical step size (where the Setup has one),
        ``meta["warning"]`` names it; a blow-up (possible for (P)) gives ``inf`` from the first
        diverged time on, with the initial state kept at t = 0.
    """
    reject_options(options, setup, ("rtol", "correction_scale"))
    check_tolerance("rtol", rtol)
    if isinstance(correction_scale, str):
        raise ValueError(f"correction_scale={correction_scale!r} is invalid; allowed: a finite "
                         "number (1: the model)")
    correction_scale = _v.real("correction_scale", correction_scale)
    method = "ode" if method is None else method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    d = setup.dim
    if times is None:
        t_out = setup.output_steps(horizon) / d
    else:
        t_out = np.asarray(times, dtype=np.float64)
    t_solve = t_out if t_out[-1] > 0 else np.array([0.0, 1e-12])
    ys, outcome = solve(setup, t_solve, kappa=correction_scale, rtol=rtol)
    ys = ys[: len(t_out)].copy()
    ys[t_out == 0] = state0(setup)  # the known initial state
    blown = ~np.all(np.isfinite(ys) & (np.abs(ys) < BLOWUP), axis=1)
    safe = np.where(blown[:, None], 0.0, ys)
    m, q = to_overlaps(setup.normalization, setup.spike, safe)
    warnings = [stability_warning(setup)]
    if outcome == FAILED:
        warnings.append("the ODE solver stopped before the horizon (step cap or a stiff "
                        "stretch): the values after it are unknown and reported as inf")
    if setup.random_start:
        warnings.append("initial_overlap='random': the ODE starts from m0 = 1/sqrt(d); the "
                        "escape from a random start is stochastic (use the chain)")
    extra = {"correction_scale": correction_scale, "solver_outcome": int(outcome)}
    if has_edge(setup):
        extra["critical_step_size"] = critical_step_size(setup)
    return finish_curve(setup, t_out, observables_from_overlaps(setup, m, q), method=method,
                        samples=np.round(t_out * d), blown=blown, warnings=warnings, extra=extra)
