"""``predict`` for `StreamingLeastSquares`: pick the equivalent, run it, finish the Curve."""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from ...api import predict, predict_grid, grid_setups, reject_options
from ...curve import Curve, finish_curve
from ...setups.lstsq import StreamingLeastSquares
from . import _ode, _recursion, _volterra
from ._stability import critical_step_size, effective_step_size

METHODS = ("recursion", "ode", "volterra")
MOMENTUM_METHODS = ("recursion", "volterra")
BLOWUP = 1e30


def stability_warning(setup: StreamingLeastSquares) -> str | None:
    """``meta["warning"]`` for a step size at or past the exact threshold gamma_c, else None."""
    gamma_c = critical_step_size(setup)
    if setup.step_size < gamma_c:
        return None
    at_beta = f" at momentum={setup.momentum}" if setup.momentum != 0.0 else ""
    return (f"step_size={setup.step_size} is at or beyond the critical step size {gamma_c:.6g}"
            f"{at_beta} (the exact stability edge of the mean-square recursion): the risk diverges")


def risk_curve(setup: StreamingLeastSquares, steps, risk, method: str, extra: dict) -> Curve:
    """Finish a predicted risk (at whole ``steps``) into a Curve.

    Past gamma_c the risk grows without bound, so every point after t = 0 is flagged diverged
    (inf), with a warning naming the edge; a risk past 10^30 is flagged as blown up.
    """
    steps = np.asarray(steps)
    t_out = steps / setup.dim
    risk = np.asarray(risk, dtype=np.float64)
    warning = stability_warning(setup)
    blown = (risk > BLOWUP) | ((warning is not None) & (steps > 0))
    extra = {**extra, "critical_step_size": critical_step_size(setup)}
    if setup.momentum != 0.0:
        extra["effective_step_size"] = effective_step_size(setup)
    return finish_curve(setup, t_out, {"risk": risk, "excess_risk": risk - 0.5 * setup.noise_var},
                        method=method, samples=np.round(steps) * setup.batch_size, blown=blown,
                        warnings=[warning], extra=extra)


@predict.register
def _predict(setup: StreamingLeastSquares, horizon: float, *, times=None, method: str | None = None,
             exact_steps: int | None = None, n_grid: int | None = None, rtol: float = 1e-8,
             **options) -> Curve:
    """Predict the risk of streaming least-squares SGD (docs/lstsq.md).

    Args:
        setup: a `StreamingLeastSquares`.
        horizon: final time t = steps / d.
        times: output times (in t); default: every step up to the first log-spaced ones, then
            log-spaced (about 100 points). The recursions round times to whole steps.
        method: ``"recursion"`` (default; exact), ``"ode"`` (plain SGD only) or ``"volterra"``.
        exact_steps: ``"ode"`` only: steps taken with the exact recursion before the ODE
            takes over (default max(1000, 4d), capped by the horizon; 0 for the pure ODE).
        n_grid: ``"volterra"``, plain SGD only: uniform grid size (default 2000).
        rtol: ``"ode"`` only: the solver's relative tolerance.
    """
    reject_options(options, setup, ("exact_steps", "n_grid", "rtol"))
    method = "recursion" if method is None else method
    allowed = METHODS if setup.momentum == 0.0 else MOMENTUM_METHODS
    if method not in allowed:
        raise ValueError(f"method={method!r} is invalid for momentum={setup.momentum}; "
                         f"allowed: {allowed}")
    given = {k for k, val in (("exact_steps", exact_steps), ("n_grid", n_grid)) if val is not None}
    given |= {"rtol"} if rtol != 1e-8 else set()
    valid = {("recursion", False): set(), ("ode", False): {"exact_steps", "rtol"},
             ("volterra", False): {"n_grid"}, ("recursion", True): set(),
             ("volterra", True): set()}[(method, setup.momentum != 0.0)]
    if given - valid:
        raise ValueError(f"unknown option(s) {', '.join(sorted(given - valid))} for method={method!r}"
                         f" at momentum={setup.momentum}; allowed: {', '.join(sorted(valid)) or 'none'}")
    if setup.momentum != 0.0:
        return _predict_momentum(setup, horizon, times, method)
    d = setup.dim
    if times is None or method == "recursion":
        steps = setup.output_steps(horizon, times)
        t_out = steps / d
    else:
        t_out = np.asarray(times, dtype=np.float64)
        steps = np.round(t_out * d).astype(np.int64)
    lam = jnp.asarray(setup.eigenvalues)
    rho0 = jnp.asarray(setup.initial_error)
    noise_var = setup.noise_var
    gamma, batch = setup.step_size, setup.batch_size
    extra = {}
    if method == "recursion":
        psi = _recursion.recursion_psi_jit(lam, rho0, noise_var, gamma, batch, int(steps.max()))
        return risk_curve(setup, steps, 0.5 * np.asarray(psi)[steps], method, extra)
    if method == "ode":
        horizon_steps = max(1, int(round(horizon * d)))
        k0 = _ode.default_exact_steps(setup, horizon_steps) if exact_steps is None else int(exact_steps)
        if k0 < 0:
            raise ValueError(f"exact_steps={exact_steps} is invalid; allowed: an integer >= 0")
        k0 = min(k0, int(np.floor(t_out.max() * d)))
        risk = np.empty_like(t_out)
        early = t_out * d <= k0
        if k0 > 0:
            psi = np.asarray(_recursion.recursion_psi_jit(lam, rho0, noise_var, gamma, batch, k0))
            # Times within the exact part are whole steps (a continuous time in between is
            # interpolated linearly between the two exact steps around it).
            risk[early] = 0.5 * np.interp(t_out[early] * d, np.arange(k0 + 1), psi)
            rho_start = _recursion.recursion_state_jit(lam, rho0, noise_var, gamma, batch, k0)
        else:
            rho_start = rho0
        late = ~early
        if late.any() or k0 == 0:
            t_late = t_out[late] if k0 > 0 else t_out
            ys, ok = _ode.ode_psi(lam, jnp.asarray(rho_start), jnp.asarray(noise_var, float),
                                  jnp.asarray(gamma, float), jnp.asarray(batch, float),
                                  jnp.asarray(k0 / d, float), jnp.asarray(t_late, float),
                                  _ode.ode_max_steps(setup, float(t_late[-1]) - k0 / d), rtol=rtol)
            ys = np.where(np.isfinite(np.asarray(ys)), np.asarray(ys), np.inf)
            if k0 > 0:
                risk[late] = 0.5 * ys
            else:
                risk = 0.5 * ys
            extra["solver_ok"] = bool(ok)
        extra["exact_steps"] = k0
        return risk_curve(setup, t_out * d, risk, method, extra)
    n = 2000 if n_grid is None else int(n_grid)
    if n < 2:
        raise ValueError(f"n_grid={n_grid} is invalid; allowed: an integer >= 2")
    grid, r = _volterra.volterra_jit(lam, rho0, noise_var, gamma, batch, float(t_out.max()), n)
    extra["n_grid"] = n
    return risk_curve(setup, t_out * d, np.interp(t_out, np.asarray(grid), np.asarray(r)),
                      method, extra)


def _predict_momentum(setup: StreamingLeastSquares, horizon: float, times, method: str) -> Curve:
    """The heavy-ball moment recursion, or its discrete Volterra equation (<= 200000 steps)."""
    steps = setup.output_steps(horizon, times)
    n = int(steps.max())
    args = (jnp.asarray(setup.eigenvalues), jnp.asarray(setup.initial_error), setup.noise_var,
            setup.step_size, float(setup.batch_size), setup.momentum)
    if method == "recursion":
        risk = 0.5 * np.asarray(_recursion.momentum_recursion_psi_jit(*args, n))[steps]
    else:
        if n > _volterra.MAX_VOLTERRA_STEPS:
            raise ValueError(f"horizon={horizon} is {n} steps; method='volterra' is O(steps^2) and "
                             f"allows at most {_volterra.MAX_VOLTERRA_STEPS} steps "
                             "(use method='recursion')")
        risk = np.asarray(_volterra.momentum_volterra_jit(*args, n))[steps]
    return risk_curve(setup, steps, risk, method, {})


_GRID_FIELDS = ("step_size", "batch_size", "noise_std")


@predict_grid.register
def _predict_grid(setup: StreamingLeastSquares, grid, horizon: float, *, times=None,
                  method: str | None = None, executor=None, **options) -> list:
    """A grid over (step_size, batch_size, noise_std) as one vmapped exact recursion.

    Other fields, methods, momentum or options fall back to a loop over `predict`.
    """
    if (not set(grid) <= set(_GRID_FIELDS) or method not in (None, "recursion") or options
            or setup.momentum != 0.0):
        return predict_grid.dispatch(object)(setup, grid, horizon, times=times, method=method,
                                             executor=executor, **options)
    steps = setup.output_steps(horizon, times)
    setups = grid_setups(setup, grid)
    valid = [s for s in setups if s is not None]
    if not valid:
        return setups
    psi = _recursion.recursion_psi_grid(
        jnp.asarray(setup.eigenvalues), jnp.asarray(setup.initial_error),
        jnp.asarray([s.noise_var for s in valid]), jnp.asarray([s.step_size for s in valid]),
        jnp.asarray([float(s.batch_size) for s in valid]), int(steps.max()))
    risks = iter(0.5 * np.asarray(psi)[:, steps])
    return [None if s is None else risk_curve(s, steps, next(risks), "recursion", {})
            for s in setups]
