"""``predict`` for `StreamingLeastSquares`: pick the equivalent, run it, finish the Curve."""

from __future__ import annotations

import math

import jax
import numpy as np
import jax.numpy as jnp

from ..._numerics import power_of_two_at_least
from ..._segments import map_in_threads
from ...api import (check_tolerance, grid_columns, point_setup, predict, predict_grid,
                    reject_options, stability_warning as edge_warning, valid_settings)
from ...curve import Curve, finish_curve, finished_values
from ...curve_grid import CurveGrid
from ...setups import _validate as _v
from ...setups.lstsq import StreamingLeastSquares
from . import _ode, _recursion, _secular, _spectral, _spectral_momentum, _volterra
from ._stability import critical_step_size, effective_step_size

METHODS = ("spectral", "recursion", "ode", "volterra")
MOMENTUM_METHODS = ("spectral", "recursion", "volterra")
BLOWUP = 1e30
TOLERANCE = 1e-2       # default tolerance of "ode" / "volterra" against the exact solution
CHECK_STEPS = 64       # steps on which the spectral solution is checked against the recursion
CHECK_TOLERANCE = 1e-8  # beyond this the spectral solution is not used (the recursion is)
_OPTIONS = ("exact_steps", "n_grid", "tolerance")


def unstable_from(setup: StreamingLeastSquares, n_steps: int | None = None,
                  gamma_c: float | None = None) -> int | None:
    """The first step of the first piece at or past the exact threshold gamma_c (0 for a constant
    step past it), among the pieces that start before ``n_steps``; None when every step is
    stable. On such a piece the risk grows geometrically for its whole length. ``gamma_c``:
    `critical_step_size(setup)`, when already known."""
    gamma_c = critical_step_size(setup) if gamma_c is None else gamma_c
    if not setup.scheduled:
        return 0 if setup.step_size >= gamma_c else None
    sched = setup.step_size
    live = sched.starts < (np.inf if n_steps is None else max(int(n_steps), 1))
    bad = np.flatnonzero(live & (sched.step_sizes >= gamma_c))
    return int(sched.starts[bad[0]]) if bad.size else None


def stability_warning(setup: StreamingLeastSquares, n_steps: int | None = None,
                      gamma_c: float | None = None) -> str | None:
    """``meta["warning"]`` for a step size at or past the exact threshold gamma_c, else None
    (a schedule: its first such piece starting before ``n_steps``)."""
    gamma_c = critical_step_size(setup) if gamma_c is None else gamma_c
    start = unstable_from(setup, n_steps, gamma_c)
    if start is None:
        return None
    at_beta = f" at momentum={setup.momentum}" if setup.momentum != 0.0 else ""
    if setup.scheduled:
        p = int(np.searchsorted(setup.step_size.starts, start))
        return (f"step_size piece {p} (from step {start}) = {setup.step_size.step_sizes[p]:.6g} is "
                f"at or beyond the critical step size {gamma_c:.6g}{at_beta} (the exact stability "
                "edge of the mean-square recursion): the risk grows geometrically from that step")
    return (f"step_size={setup.step_size} is at or beyond the critical step size {gamma_c:.6g}"
            f"{at_beta} (the exact stability edge of the mean-square recursion): the risk diverges")


def risk_curve(setup: StreamingLeastSquares, steps, risk, method: str, extra: dict,
               warnings=(), gamma_c: float | None = None) -> Curve:
    """Finish a predicted risk (at whole ``steps``) into a Curve.

    Past gamma_c the risk grows without bound, so every point after t = 0 is flagged diverged
    (inf), with a warning naming the edge (a schedule: every point after the first step of its
    first piece past gamma_c); a risk past 10^30 is flagged as blown up. ``gamma_c``:
    `critical_step_size(setup)`, when already known (a grid shares it).
    """
    steps = np.asarray(steps)
    risk = np.asarray(risk, dtype=np.float64)
    n = int(steps.max()) if steps.size else 0
    gamma_c = critical_step_size(setup) if gamma_c is None else gamma_c
    warning = stability_warning(setup, n, gamma_c)
    start = unstable_from(setup, n, gamma_c)
    extra = {**extra, "critical_step_size": gamma_c}
    if setup.momentum != 0.0 and not setup.scheduled:
        extra["effective_step_size"] = effective_step_size(setup)
    return finish_curve(setup, steps / setup.dim, risk_observables(risk, setup.noise_var),
                        method=method, samples=np.round(steps) * setup.batch_size,
                        blown=risk_blown(risk, steps, np.inf if start is None else start),
                        warnings=[warning, *warnings], extra=extra)


def risk_observables(risk, noise_var) -> dict:
    """The observables of a predicted risk: ``risk`` and ``excess_risk = risk - sigma^2 / 2``
    (``noise_var`` broadcast against the leading axes of ``risk``)."""
    return {"risk": risk, "excess_risk": risk - 0.5 * np.asarray(noise_var)}


def risk_blown(risk, steps, unstable_start) -> np.ndarray:
    """Where a predicted risk counts as blown up: past `BLOWUP`, or after ``unstable_start``
    (`unstable_from`, inf when stable; broadcast against the leading axes of ``risk``)."""
    return (risk > BLOWUP) | (np.asarray(steps) > np.asarray(unstable_start))


RECURSION_WORK = 1 << 27  # mode-steps of the recursion below which it is the default

#: the most steps the recursion takes: it keeps psi at every step (8 bytes each: 2^28 steps
#: are 2 GiB). Past ~2^31 the allocation failed inside XLA and aborted the process.
RECURSION_MAX_STEPS = 1 << 28


def check_recursion_steps(setup: StreamingLeastSquares, n_steps: int, method: str) -> None:
    """Refuse a recursion of more than `RECURSION_MAX_STEPS` steps, naming the horizon."""
    if n_steps > RECURSION_MAX_STEPS:
        raise ValueError(
            f"horizon={n_steps / setup.dim:.6g} is invalid for {method}: it is {n_steps} steps, "
            f"and the exact recursion keeps psi at every step; allowed: at most "
            f"{RECURSION_MAX_STEPS} steps (horizon <= {RECURSION_MAX_STEPS / setup.dim:.6g}); "
            "method='spectral' (the default for long horizons) has no such limit")


def default_method(setup: StreamingLeastSquares, n_steps: int) -> str:
    """The exact method that costs less: ``"spectral"`` once the recursion would take longer
    than it, else ``"recursion"``. Measured once compiled on a 2-core CPU: the spectral
    solution costs about as much as 160 min(d, 4096) steps of the plain recursion (k steps a
    pass, ~0.15 ns a mode-step) or 24 min(d, 4096) steps of the heavy-ball moment recursion
    (three d-vectors, 8 steps a pass; equal cost measured between 16 d and 32 d steps at d = 500
    and 2000), plus the exact heavy-ball steps before its slow roots; and below n_steps d = 2^27
    mode-steps the recursion always wins. A step-size `Schedule` has only the recursion."""
    if setup.scheduled:
        return "recursion"
    poles = min(setup.dim, _secular.DIRECT_MAX)
    if setup.momentum != 0.0:
        beta = setup.momentum
        work = 24 * poles + _spectral_momentum.exact_steps(beta + 0.25 * (1.0 - beta))
    else:
        work = 160 * poles
    cheaper = n_steps > work and n_steps * setup.dim * (3 if setup.momentum else 1) > RECURSION_WORK
    return "spectral" if cheaper else "recursion"


def _args(setup):
    return (jnp.asarray(setup.eigenvalues), jnp.asarray(setup.initial_error), setup.noise_var,
            setup.step_size, float(setup.batch_size))


def _padded(steps: np.ndarray) -> np.ndarray:
    size = power_of_two_at_least(steps.size, 8)
    return np.concatenate([steps, np.full(size - steps.size, steps[-1])])


def pole_bucket(count: int) -> int:
    """The static size for ``count`` grouped poles: a multiple of 1/16 of the power of two at or
    below it (at most ~6 % padding; 16 sizes per octave share compilations)."""
    if count <= 64:
        return 64
    step = 1 << (count.bit_length() - 5)
    return -(-count // step) * step


def _resized(poles: _secular.Poles, n: int) -> _secular.Poles:
    """The first n entries of grouped poles (n >= count), padded like the padding past count."""
    arrays = [np.asarray(x) for x in poles[:4]]
    d = arrays[0].size
    if n <= d:
        arrays = [x[:n] for x in arrays]
    else:
        arrays = [np.concatenate([x, np.full(n - d, x[-1] if i < 2 else 0.0)])
                  for i, x in enumerate(arrays)]
    return _secular.Poles(*(jnp.asarray(x) for x in arrays), poles.count)


def _sums_for(positions: np.ndarray, span: float) -> tuple[str, int]:
    """The sums (direct or fast) and the SOE nodes for these poles."""
    method = _spectral.sums_method(positions.size)
    nodes = _secular.soe_nodes_for(positions, span) if method == "fast" else _secular.SOE_NODES
    return method, nodes


def _plain_spectral(setup, steps: np.ndarray) -> tuple[np.ndarray, dict]:
    """psi at ``steps`` from the closed form, its diagnostics, and its check against the
    recursion on the first CHECK_STEPS steps."""
    args = _args(setup)
    poles = _spectral.plain_poles_jit(args[0], args[1], args[3], args[4])
    count = int(poles.count)
    n = pole_bucket(count)
    positions = np.asarray(poles.position[:count])
    method, nodes = _sums_for(positions, float(np.sum(np.asarray(poles.weight))))
    modes = _spectral.solve_modes_jit(_resized(poles, n), args[2], method, nodes)
    n_check = min(CHECK_STEPS, int(steps.max()))
    both = np.concatenate([steps, np.arange(n_check + 1)])
    psi = np.asarray(_spectral.evaluate_modes_jit(modes, jnp.asarray(_padded(both))))[:both.size]
    rec = np.asarray(_recursion.recursion_psi_jit(*args, n_check))
    check = float(np.max(np.abs(psi[steps.size:] / rec - 1.0)))
    extra = {"spectral_groups": count, "spectral_sums": method,
             "spectral_iterations": int(modes.iterations),
             "spectral_check_error": check, "asymptotic_factor": float(modes.top)}
    if method == "fast":
        extra["spectral_soe_nodes"] = nodes
    return psi[:steps.size], extra


def _momentum_spectral(setup, steps: np.ndarray) -> tuple[np.ndarray, dict]:
    """psi at ``steps``: the moment recursion up to K0 (plus CHECK_STEPS to check), the slow
    roots after."""
    args = _args(setup)
    beta = setup.momentum
    method = _spectral.sums_method(setup.dim)
    hb = _spectral_momentum.heavy_ball_modes_jit(*args, beta, method, _secular.SOE_NODES)
    k0 = _spectral_momentum.exact_steps(float(hb.rho_c))
    n_rec = power_of_two_at_least(k0 + CHECK_STEPS)
    k0 = n_rec - CHECK_STEPS
    n = int(steps.max())
    if n <= n_rec:
        psi = np.asarray(_recursion.momentum_recursion_psi_jit(*args, beta, n_rec))
        return psi[steps], {"exact_steps": n_rec}
    total, noise = _spectral_momentum.recursion_parts_jit(*args, beta, n_rec)
    modes = hb.modes._replace(k0=jnp.asarray(float(k0)), anchor=noise[k0])
    late = steps > k0
    both = np.concatenate([steps[late], np.arange(k0, n_rec + 1)])
    formula = np.asarray(_spectral.evaluate_modes_jit(modes, jnp.asarray(_padded(both))))
    total = np.asarray(total)
    psi = np.where(late, 0.0, total[np.minimum(steps, n_rec)])
    psi[late] = formula[:late.sum()]
    check = float(np.max(np.abs(formula[late.sum():both.size] / total[k0:] - 1.0)))
    extra = {"exact_steps": k0, "spectral_sums": method,
             "spectral_secular_poles": int(hb.secular_count),
             "spectral_iterations": int(hb.modes.iterations), "spectral_check_error": check,
             "spectral_background_error": float(hb.background_error),
             "asymptotic_factor": float(hb.modes.top)}
    return psi, extra


def _spectral_or_recursion(setup, steps: np.ndarray) -> tuple[np.ndarray, dict]:
    """The spectral solution, or the recursion where the spectral solution fails its check
    (then ``meta["spectral_fallback"]`` says so)."""
    run = _plain_spectral if setup.momentum == 0.0 else _momentum_spectral
    psi, extra = run(setup, steps)
    check = extra.get("spectral_check_error", 0.0)
    if check <= CHECK_TOLERANCE and not np.any(np.isnan(psi)):
        return psi, extra
    extra["spectral_fallback"] = (f"the closed form missed the recursion by {check:.3g} on its "
                                  f"check steps; the curve is the recursion's")
    return _recursion_psi(setup, steps), extra


def _recursion_psi(setup, steps: np.ndarray) -> np.ndarray:
    n = int(steps.max())
    check_recursion_steps(setup, n, "method='recursion'")
    if setup.momentum == 0.0:
        return np.asarray(_recursion.recursion_psi_jit(*_args(setup), n))[steps]
    return np.asarray(_recursion.momentum_recursion_psi_jit(*_args(setup), setup.momentum, n))[steps]


def exact_psi(setup: StreamingLeastSquares, steps) -> np.ndarray:
    """psi = 2R at whole ``steps`` from the exact method that costs less (`default_method`)."""
    steps = np.asarray(steps, dtype=np.int64)
    if default_method(setup, int(steps.max())) == "spectral":
        return _spectral_or_recursion(setup, steps)[0]
    return _recursion_psi(setup, steps)


def _gap_to_exact(setup, t_out, psi, tolerance: float, method: str) -> tuple[dict, list]:
    """The largest relative gap of an approximate psi to the exact one (at the nearest whole
    steps), and a warning past ``tolerance``."""
    steps = np.round(np.asarray(t_out) * setup.dim).astype(np.int64)
    if stability_warning(setup) is not None:
        return {}, []
    exact = exact_psi(setup, np.maximum(steps, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(np.asarray(psi) / exact - 1.0)
    rel = np.where(np.isfinite(rel), rel, np.inf)
    worst = int(np.argmax(rel))
    gap = float(rel[worst])
    extra = {"gap_to_exact": gap, "tolerance": tolerance}
    if not gap <= tolerance:
        return extra, [f"method={method!r} (the d -> infinity equivalent) is {gap:.3g} off the exact "
                       f"finite-d solution at t = {t_out[worst]:.6g} (tolerance {tolerance:g}); "
                       f"method='spectral' is exact"]
    return extra, []


def _error_warning(method: str, error: float, tolerance: float) -> list:
    if error <= tolerance:
        return []
    return [f"method={method!r}: its own numerical error is about {error:.3g} (tolerance "
            f"{tolerance:g}); raise n_grid"]


edge_warning.register(StreamingLeastSquares, stability_warning)  # `simulate` reports it too


@predict.register
def _predict(setup: StreamingLeastSquares, horizon: float, *, times=None, method: str | None = None,
             exact_steps: int | None = None, n_grid: int | None = None,
             tolerance: float | None = None, **options) -> Curve:
    """Predict the risk of streaming least-squares SGD (docs/lstsq.md).

    Args:
        setup: a `StreamingLeastSquares`.
        horizon: final time t = steps / d.
        times: output times (in t); default: every step up to the first log-spaced ones, then
            log-spaced (about 100 points). The exact methods round times to whole steps.
        method: ``"spectral"`` (exact, in closed form), ``"recursion"`` (exact, step by step),
            ``"ode"`` (plain SGD only) or ``"volterra"`` (the d -> infinity equivalents). Default:
            the exact method that costs less (`default_method`).
        exact_steps: ``"ode"`` / ``"volterra"``, plain SGD: steps taken with the exact recursion
            before the equivalent takes over (default max(1000, 4d) for ``"ode"``, 0 for
            ``"volterra"``; capped by the horizon).
        n_grid: ``"ode"``: points of its log-spaced grid, in [4, 2^20] (default 2048; each step
            is also taken as two half steps, for the curve and the step-doubling error
            estimate).
        tolerance: ``"ode"`` / ``"volterra"``: the largest relative gap to the exact solution
            (and own numerical error) accepted without ``meta["warning"]`` (default 1e-2).
    """
    reject_options(options, setup, _OPTIONS)
    n_steps = max(1, int(round(horizon * setup.dim)))
    if setup.scheduled:
        return _predict_scheduled(setup, horizon, times, method,
                                  exact_steps=exact_steps, n_grid=n_grid, tolerance=tolerance)
    method = default_method(setup, n_steps) if method is None else method
    allowed = METHODS if setup.momentum == 0.0 else MOMENTUM_METHODS
    if method not in allowed:
        raise ValueError(f"method={method!r} is invalid; allowed: {allowed} (at "
                         f"momentum={setup.momentum})")
    given = {k for k, val in (("exact_steps", exact_steps), ("n_grid", n_grid),
                              ("tolerance", tolerance)) if val is not None}
    plain = setup.momentum == 0.0
    valid = {"ode": {"exact_steps", "n_grid", "tolerance"},
             "volterra": {"exact_steps", "tolerance"} if plain else {"tolerance"}}.get(method, set())
    if given - valid:
        raise ValueError(f"unknown option(s) {', '.join(sorted(given - valid))} for method={method!r}"
                         f" at momentum={setup.momentum}; allowed: {', '.join(sorted(valid)) or 'none'}")
    tol = TOLERANCE if tolerance is None else check_tolerance("tolerance", tolerance,
                                                              high=math.inf)
    if method in ("spectral", "recursion") or not plain:
        steps = setup.output_steps(horizon, times)
        if method == "spectral":
            psi, extra = _spectral_or_recursion(setup, steps)
            return risk_curve(setup, steps, 0.5 * psi, method, extra)
        if method == "recursion":
            return risk_curve(setup, steps, 0.5 * _recursion_psi(setup, steps), method, {})
        return _predict_momentum_volterra(setup, horizon, steps, tol)
    t_out = (setup.output_steps(horizon, None) / setup.dim if times is None
             else np.asarray(times, dtype=np.float64))
    if method == "ode":
        return _predict_ode(setup, horizon, t_out, exact_steps, n_grid, tol)
    return _predict_volterra(setup, horizon, t_out, exact_steps, tol)


def _predict_scheduled(setup, horizon, times, method, **given) -> Curve:
    """A step-size `Schedule`: the exact recursion with gamma(k) at step k (docs/lstsq.md,
    "Schedules"), the per-step sizes padded to a power of two so nearby horizons share a
    compilation."""
    if method not in (None, "recursion"):
        raise ValueError(f"method={method!r} is invalid for a step-size Schedule; allowed: "
                         "'recursion' (or None), the one equivalent with a step size per step")
    extra = sorted(k for k, val in given.items() if val is not None)
    if extra:
        raise ValueError(f"unknown option(s) {', '.join(extra)} for a step-size Schedule; "
                         "allowed: none")
    steps = setup.output_steps(horizon, times)
    n = int(steps.max())
    check_recursion_steps(setup, n, "a step-size Schedule (only the recursion takes one)")
    gammas = setup.step_sizes(power_of_two_at_least(max(n, 1), 8))
    psi = _recursion.scheduled_recursion_psi_jit(
        jnp.asarray(setup.eigenvalues), jnp.asarray(setup.initial_error), setup.noise_var,
        jnp.asarray(gammas), float(setup.batch_size),
        None if setup.momentum == 0.0 else setup.momentum)
    return risk_curve(setup, steps, 0.5 * np.asarray(psi)[steps], "recursion",
                      {"schedule": setup.step_size.fields()})


def _exact_start(setup, t_out, k0):
    """The exact recursion on the first k0 steps: psi at the output times inside them
    (interpolated linearly between whole steps) and the state rho(k0)."""
    d = setup.dim
    args = _args(setup)
    early = t_out * d <= k0
    risk = np.full(t_out.shape, np.nan)
    if k0 == 0:
        return early & (t_out == 0), np.where(t_out == 0, 0.5 * (setup.noise_var + np.dot(
            setup.eigenvalues, setup.initial_error)), np.nan), args[1]
    psi = np.asarray(_recursion.recursion_psi_jit(*args, k0))
    risk[early] = 0.5 * np.interp(t_out[early] * d, np.arange(k0 + 1), psi)
    return early, risk, _recursion.recursion_state_jit(*args, k0)


def _exact_steps_option(exact_steps, default: int, n_steps: int, t_out, d) -> int:
    k0 = default if exact_steps is None else _v.integer("exact_steps", exact_steps, low=0,
                                                        high=RECURSION_MAX_STEPS)
    return int(min(k0, n_steps, np.floor(t_out.max() * d)))


def _predict_ode(setup, horizon, t_out, exact_steps, n_grid, tol) -> Curve:
    """The homogenized ODE by the exponential integrator, after exact first steps."""
    d = setup.dim
    n_steps = max(1, int(round(horizon * d)))
    k0 = _exact_steps_option(exact_steps, _ode.default_exact_steps(setup, n_steps), n_steps,
                             t_out, d)
    grid_points = (_ode.N_GRID if n_grid is None
                   else _v.integer("n_grid", n_grid, low=4, high=_ode.MAX_N_GRID))
    early, risk, rho_start = _exact_start(setup, t_out, k0)
    late = ~early
    error = 0.0
    if late.any():
        tau = t_out[late] - k0 / d
        fastest = 2.0 * setup.step_size * float(setup.eigenvalues.max())
        (fine, at_fine), (coarse, at_coarse) = _ode.time_grids(float(tau.max()), fastest, tau,
                                                               int(grid_points))
        args = (jnp.asarray(setup.eigenvalues), jnp.asarray(rho_start), setup.noise_var,
                setup.step_size, float(setup.batch_size))
        psi = np.asarray(_ode.exponential_psi_jit(*args, jnp.asarray(fine)))[at_fine]
        psi2 = np.asarray(_ode.exponential_psi_jit(*args, jnp.asarray(coarse)))[at_coarse]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(psi - psi2) / (3.0 * np.abs(psi))
        error = float(np.max(np.where(np.isfinite(rel), rel, np.inf)))
        risk[late] = 0.5 * np.where(np.isfinite(psi), psi, np.inf)
    extra = {"exact_steps": k0, "n_grid": int(grid_points), "error_estimate": error}
    gap, warnings = _gap_to_exact(setup, t_out, 2.0 * risk, tol, "ode")
    return risk_curve(setup, t_out * d, risk, "ode", {**extra, **gap},
                      warnings + _error_warning("ode", error, tol))


def _predict_volterra(setup, horizon, t_out, exact_steps, tol) -> Curve:
    """The homogenized Volterra equation in closed form (after optional exact first steps)."""
    d = setup.dim
    n_steps = max(1, int(round(horizon * d)))
    k0 = _exact_steps_option(exact_steps, 0, n_steps, t_out, d)
    early, risk, rho_start = _exact_start(setup, t_out, k0)
    late = ~early
    args = (jnp.asarray(setup.eigenvalues), jnp.asarray(rho_start), setup.noise_var,
            setup.step_size, float(setup.batch_size))
    poles = _volterra.homogenized_poles_jit(*args[:2], args[3], args[4])
    count = int(poles.count)
    method, nodes = _sums_for(np.asarray(poles.position[:count]),
                              float(np.sum(np.asarray(poles.weight))))
    modes = _spectral.solve_modes_jit(_resized(poles, pole_bucket(count)), setup.noise_var,
                                      method, nodes, True)
    tau = np.concatenate([[0.0], t_out[late] - k0 / d])
    psi = np.asarray(_spectral.evaluate_modes_jit(modes, jnp.asarray(_padded(tau))))[:tau.size]
    start = setup.noise_var + float(np.dot(setup.eigenvalues, np.asarray(rho_start)))
    error = float(abs(psi[0] / start - 1.0))   # the residues must sum to the start
    risk[late] = 0.5 * psi[1:]
    extra = {"exact_steps": k0, "error_estimate": error, "spectral_sums": method}
    gap, warnings = _gap_to_exact(setup, t_out, 2.0 * risk, tol, "volterra")
    return risk_curve(setup, t_out * d, risk, "volterra", {**extra, **gap},
                      warnings + _error_warning("volterra", error, tol))


def _predict_momentum_volterra(setup, horizon, steps, tol) -> Curve:
    """The heavy ball's discrete Volterra equation (explicit scan, <= 200000 steps)."""
    n = int(steps.max())
    if n > _volterra.MAX_VOLTERRA_STEPS:
        most = _volterra.MAX_VOLTERRA_STEPS
        raise ValueError(f"horizon={horizon!r} is invalid; allowed: <= {most / setup.dim:.6g} "
                         f"({most} steps; it is {n}): method='volterra' with momentum is "
                         "O(steps^2) (method='spectral' has no such limit)")
    risk = np.asarray(_volterra.momentum_volterra_jit(*_args(setup), setup.momentum, n))[steps]
    gap, warnings = _gap_to_exact(setup, steps / setup.dim, 2.0 * risk, tol, "volterra")
    return risk_curve(setup, steps, risk, "volterra", gap, warnings)


_GRID_FIELDS = ("step_size", "batch_size", "noise_std", "momentum")
GRID_MEMORY = 1 << 25  # float64 values a vmapped grid chunk may hold (256 MiB)
CPU_GRID_CHUNK = 8     # settings per chunk on a CPU: their states stay in cache (8 was fastest
                       # of 8..256 at d = 500 and 4000, plain and heavy ball)
CPU_HEAVY_GRID_CHUNK = 4  # heavy ball since its pass holds the (k, 3d) fed vectors as well:
                          # 1000 settings at d = 500, 2000 steps 0.40-0.45 s at 4 against
                          # 0.50-0.55 s at 8 (0.44-0.49 at 2; plain: 4 and 8 alike)


def grid_chunk(n_points: int, n_steps: int, dim: int, heavy: bool,
               cap: int | None = None) -> int:
    """Settings per vmapped chunk: a power of two (so chunks share a compilation) whose
    per-step outputs (n_steps + 1 each) and states (d, or 3d for heavy ball) fit `GRID_MEMORY`
    float64 values, at most ``cap`` (a power of two) and at most the grid's own size rounded
    up to a power of two."""
    per_point = (n_steps + 1) + (3 if heavy else 1) * dim
    fit = max(1, GRID_MEMORY // per_point)
    chunk = 1 << (fit.bit_length() - 1)  # the largest power of two <= fit
    if cap is not None:
        chunk = min(chunk, cap)
    return max(1, min(chunk, power_of_two_at_least(n_points)))


def grid_settings(setup: StreamingLeastSquares, valid: np.ndarray, columns: dict) -> dict:
    """The G valid settings of a grid (`api.grid_columns`) as arrays: ``noise_var``,
    ``step_size``, ``batch_size``, ``momentum``, each (G,) (a field the grid leaves alone: the
    Setup's own value). sigma^2 is squared as `StreamingLeastSquares.noise_var` squares it."""
    column = valid_settings(setup, valid, columns, _GRID_FIELDS)
    return {"noise_var": np.array([float(x) ** 2 for x in column["noise_std"]]),
            "step_size": column["step_size"].astype(np.float64),
            "batch_size": column["batch_size"].astype(np.int64),
            "momentum": column["momentum"].astype(np.float64)}


def grid_psi(setup: StreamingLeastSquares, settings: dict, n_steps: int, steps: np.ndarray
             ) -> np.ndarray:
    """psi(k) at ``steps`` (G, T) for G settings (`grid_settings`) differing from ``setup`` in
    step size, batch size, label noise or momentum: the exact recursion vmapped over them, in
    chunks of `grid_chunk` (the last one padded with its final setting; on a CPU at most
    `CPU_GRID_CHUNK` settings, `CPU_HEAVY_GRID_CHUNK` for heavy ball, whose states stay in
    cache: a wider vmap is memory-bound there)."""
    heavy = bool(np.any(settings["momentum"] != 0.0))
    check_recursion_steps(setup, n_steps, "a grid's recursion")
    lam, rho0 = jnp.asarray(setup.eigenvalues), jnp.asarray(setup.initial_error)
    columns = [settings["noise_var"], settings["step_size"],
               settings["batch_size"].astype(np.float64)]
    if heavy:
        columns.append(settings["momentum"])
    g = columns[0].size
    cap = ((CPU_HEAVY_GRID_CHUNK if heavy else CPU_GRID_CHUNK) if jax.default_backend() == "cpu"
           else None)
    chunk = grid_chunk(g, n_steps, setup.dim, heavy, cap)
    run = _recursion.momentum_recursion_psi_grid if heavy else _recursion.recursion_psi_grid

    def chunk_psi(start: int) -> np.ndarray:
        part = [c[start:start + chunk] for c in columns]
        pad = chunk - part[0].size
        part = [jnp.asarray(np.concatenate([c, np.repeat(c[-1:], pad)])) for c in part]
        return np.asarray(run(lam, rho0, *part, n_steps))[:chunk - pad, steps]

    # chunks are independent: on a CPU one thread per core runs them (1.5x plain, 2.2x heavy
    # ball at 1000 settings on 2 cores; the same numbers)
    return np.concatenate(map_in_threads(chunk_psi, list(range(0, g, chunk))))


def _spectral_cheaper(setup: StreamingLeastSquares, grid, n_steps: int) -> bool:
    """Whether `default_method` picks the spectral solution for some momentum of the grid."""
    try:
        momenta = {float(m) for m in np.asarray(grid.get("momentum", [setup.momentum]),
                                                dtype=object).ravel()}
    except (TypeError, ValueError):
        return False  # invalid values: the grid's own checks mark those points
    return any(default_method(setup.replace(momentum=m) if m != setup.momentum else setup,
                              n_steps) == "spectral"
               for m in momenta if 0.0 <= m < 1.0)


@predict_grid.register
def _predict_grid(setup: StreamingLeastSquares, grid, horizon: float, *, times=None,
                  method: str | None = None, executor=None, **options) -> list:
    """A grid over (step_size, batch_size, noise_std, momentum) as the exact recursion vmapped
    over the settings (plain SGD, or heavy ball where a setting has momentum), in chunks that
    fit `GRID_MEMORY` (`grid_psi`); the stability edge gamma_c is computed once per distinct
    (batch size, momentum).

    Other fields, other methods, step-size schedules or options fall back to a loop over
    `predict` (or ``executor``), and so does a horizon at which `default_method` takes the
    spectral solution (long horizons, where the recursion costs more than the closed form).
    """
    if (not set(grid) <= set(_GRID_FIELDS) or method not in (None, "recursion") or options
            or setup.scheduled
            or any(not np.isscalar(x) for x in np.asarray(grid.get("step_size", []),
                                                              dtype=object).ravel())):
        return predict_grid.dispatch(object)(setup, grid, horizon, times=times, method=method,
                                             executor=executor, **options)
    steps = setup.output_steps(horizon, times)
    n = int(steps.max())
    if method is None and _spectral_cheaper(setup, grid, n):
        # long horizons: per point, the closed form costs less than the recursion (and does
        # not keep psi at every step), as `predict` chooses
        return predict_grid.dispatch(object)(setup, grid, horizon, times=times,
                                             executor=executor)
    valid, columns = grid_columns(setup, grid)  # every grid field has an independent check
    if not valid.any():
        return CurveGrid([None] * valid.size)
    settings = grid_settings(setup, valid, columns)
    risk = 0.5 * grid_psi(setup, settings, n, steps)
    # gamma_c depends on (B, beta) only: once per distinct pair
    pairs = list(zip(settings["batch_size"].tolist(), settings["momentum"].tolist()))
    own = (setup.batch_size, setup.momentum)
    edges = {pair: critical_step_size(setup if pair == own else
                                      setup.replace(batch_size=pair[0], momentum=pair[1]))
             for pair in dict.fromkeys(pairs)}
    gamma_c = np.array([edges[pair] for pair in pairs])
    # a constant step at or past gamma_c is unstable from step 0 (`unstable_from`)
    start = np.where(settings["step_size"] >= gamma_c, 0.0, np.inf)
    time = steps / setup.dim
    observables, diverged = finished_values(
        time, risk_observables(risk, settings["noise_var"][:, None]), risk.shape,
        risk_blown(risk, steps, start[:, None]))
    points = np.flatnonzero(valid)

    def build(v: int) -> Curve:
        return risk_curve(point_setup(setup, columns, points[v]), steps, risk[v], "recursion", {}, gamma_c=float(gamma_c[v]))

    return CurveGrid.stacked(valid, time=time, steps=steps,
                             samples=np.round(steps) * settings["batch_size"][:, None].astype(
                                 np.float64),
                             observables=observables, diverged=diverged, build=build)
