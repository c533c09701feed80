r"""Time to target T(eta, beta) from the reduced equations (docs/momentum.md, "Time to target").

Product models: the step from which the mean squared manifold coordinate E[s^2] stays at or
below target^2. Matrix sensing: the step from which the closure's distance
||U U^T - X*||_F / ||X*||_F stays at or below the target. "Stays below" (`settling_time`)
rather than "first below": an under-damped run swings through the flattest point and out
again, and a first crossing would make the smallest friction look best. The Monte Carlo twin
is `hdsgd.montecarlo.momentum.measured_time_to_target` (the same definition on the seed
average).
"""

from __future__ import annotations

import functools
import math

import jax
import numpy as np

from ..._precision import scoped_x64
from ...api import check_key
from ...setups import _validate as v
from ...setups._validate import integer as v_integer, positive as v_positive
from ...setups.momentum import (InnerProductMomentum, LabelNoiseMomentum,
                                MatrixSensingMomentum, TwoParameterMomentum, _settling_time,
                                check_model, shown)
from . import _inner_product as _inner
from ._flow import flow_time_to_target
from ._recursion import recursion_path
from ._sde import default_dt, reduced_paths
from ._sensing import sensing_closure

#: the longest horizon in steps: the product models' default is capped there, matrix
#: sensing's may not start past it, and a caller may give no more (the recursion keeps every
#: step; the SDE's and closures' loops run that long)
MAX_HORIZON = 1e8
#: the most grid intervals on which the observable is read
MAX_POINTS = 10**6
#: the most values of the SDE's sample paths kept at once, paths x (points + 1) (float64, 3
#: per value on the two-parameter model, 9 on the inner product: ~5 GB at most)
MAX_SAVED = 2**26
#: the most Euler steps, horizon / dt: the closure's step cap, 4 x the next power of two, must
#: fit diffrax's int32 step counter
MAX_EULER_STEPS = 2**28
#: the options of `time_to_target`, every model's (`OPTIONS_OF` says which model takes which)
OPTIONS = ("method", "horizon", "key", "paths", "dt", "points")
OPTIONS_OF = {TwoParameterMomentum: OPTIONS, InnerProductMomentum: OPTIONS,
              MatrixSensingMomentum: ("method", "horizon", "points")}


def check_run_size(method: str, n_steps: float, n_times: int, paths: int, dt) -> None:
    """Refuse an SDE whose paths at ``n_times`` output times exceed `MAX_SAVED` values, or an
    Euler run of more than `MAX_EULER_STEPS` steps (``n_steps / dt``; ``dt`` None: the
    default, which stays below it)."""
    if method == "sde" and paths * n_times > MAX_SAVED:
        raise ValueError(f"paths={paths!r} is invalid; allowed: an integer in "
                         f"[1, {MAX_SAVED // n_times}] for {n_times} output times "
                         f"(paths x times <= {MAX_SAVED} values kept)")
    if dt is not None and method in ("sde", "closure") and n_steps / dt > MAX_EULER_STEPS:
        raise ValueError(f"dt={dt!r} is invalid; allowed: >= {n_steps / MAX_EULER_STEPS:.6g} "
                         f"steps for this horizon (at most {MAX_EULER_STEPS} Euler steps)")


def _option(name: str, value):
    """One option of the time to target, checked on its own (None: the default, but for
    ``points``, which has no None)."""
    if value is None and name != "points":
        return None
    if name == "horizon":
        return v.real("horizon", value, low=0.0, low_open=True, high=MAX_HORIZON)  # in steps
    if name == "key":
        return check_key(value)
    if name == "paths":
        return v_integer("paths", value, high=MAX_SAVED)
    if name == "dt":
        return v_positive("dt", value)  # in steps
    if name == "points":
        return v_integer("points", value, high=MAX_POINTS)
    return value  # method: each model knows its own


def check_options(options: dict, allowed: tuple[str, ...] = OPTIONS) -> dict:
    """`time_to_target`'s ``options`` with each name known and each value checked on its own
    (which model and method take which option is checked by the model)."""
    for name, value in options.items():
        if name not in allowed:
            raise ValueError(f"{name}={shown(value)} is invalid; allowed: no option {name!r}; "
                             f"the options are {', '.join(allowed)}")
    return {name: _option(name, value) for name, value in options.items()}


def default_target_horizon(setup: LabelNoiseMomentum, target: float) -> float:
    """A horizon (steps) in which |s| should settle below ``target`` (product models):
    1.5 x (first-order flow estimate (1-beta)^2/(eta^2 delta^2) ln[sinh 2|s_0| / sinh 2 target]
    + 12 / (1 - beta), the under-damped decay time), at most 1e8. `time_to_target` retries
    with 4 times the horizon when this is too short."""
    s0 = abs(setup.initial_coordinate)
    omb = setup.one_minus_beta
    logs = math.log(max(math.sinh(2 * s0), 1e-300) / math.sinh(2 * target)) if s0 > target else 0.0
    flow = omb**2 / (setup.step_size**2 * max(setup.noise_var, 1e-300)) * max(logs, 0.0)
    return float(min(MAX_HORIZON, 1.5 * (flow + 12.0 / omb)))


@scoped_x64
def time_to_target(setup: LabelNoiseMomentum, target: float | None = None, **options) -> float:
    """T: the step from which the predicted observable stays at or below ``target``
    (docs/momentum.md, "Time to target"), from the reduced equations of the Setup's model;
    inf if not within the horizon, 0 if already there at the start.

    Args:
        setup: a `TwoParameterMomentum`, `InnerProductMomentum` or `MatrixSensingMomentum`.
        target: the threshold on sqrt(E s^2) (product models; default 0.1) or on the distance
            ||U U^T - X*||_F / ||X*||_F (matrix sensing; default 0.5), > 0.
        **options: the model's: ``method``, ``horizon``, ``key``, ``paths``, ``dt``,
            ``points`` (see `product_time_to_target` and `sensing_time_to_target`).

    Returns:
        T in steps (a Python float).

    Raises:
        ValueError: naming ``setup``, ``target``, or the option that is unknown, of a bad
            value, or not taken by the model and method (``horizon`` <= 1e8 steps, ``points``
            <= 10^6, ``paths`` x (``points`` + 1) <= 2^26, ``horizon / dt`` <= 2^28).
    """
    setup = check_model(setup)
    options = check_options(options, next(names for cls, names in OPTIONS_OF.items()
                                          if isinstance(setup, cls)))
    target = setup.default_target if target is None else v_positive("target", target)
    return _time_to_target(setup, target, **options)


@functools.singledispatch
def _time_to_target(setup, target, **options) -> float:
    raise ValueError(f"setup={type(setup).__name__} is invalid for time_to_target")


PRODUCT_TARGET_METHODS = {TwoParameterMomentum: ("sde", "closure", "recursion", "flow"),
                          InnerProductMomentum: ("sde", "closure", "flow")}


@_time_to_target.register(TwoParameterMomentum)
@_time_to_target.register(InnerProductMomentum)
def product_time_to_target(setup, target: float, *, method: str = "sde",
                           horizon: float | None = None, key=None, paths: int | None = None,
                           dt: float | None = None, points: int = 1000) -> float:
    """T on a product model: the step from which E[s^2] stays at or below ``target**2``.

    Args:
        setup: a `TwoParameterMomentum` or an `InnerProductMomentum` (s = 1/4 ln(P/Q) there;
            E[s^2] includes the normal fluctuation).
        target: the threshold on sqrt(E s^2) (distance to the flattest point along s), > 0.
        method: ``"sde"`` (default; the reduced SDE averaged over ``paths`` sample paths, the
            right equation with one normal mode at gamma >= 2/3), ``"closure"`` (without the
            energy noise), ``"recursion"`` (the uniform recursion, every step; two-parameter
            model only) or ``"flow"`` (the first-order flow's closed form,
            `flow_time_to_target`).
        horizon: steps to search (default `default_target_horizon`, and 4 times it if T is
            not found within it).
        key, paths, dt: ``"sde"``/``"closure"`` only: PRNG key of the paths (default
            ``PRNGKey(0)``; the same key gives the same Brownian increments for every
            setting, so T is a smooth function of C), number of paths (default 1000; ``"sde"``
            only), Euler step in steps (default `default_dt`).
        points: ``"sde"``/``"closure"``: number of grid intervals on which E[s^2] is read.
    """
    allowed = PRODUCT_TARGET_METHODS[type(setup)]
    if method not in allowed:
        raise ValueError(f"method={shown(method)} is invalid; allowed: {allowed} (for "
                         f"{type(setup).__name__})")
    valid = {"sde": ("key", "paths", "dt"), "closure": ("key", "dt")}.get(method, ())
    for name, value in (("key", key), ("paths", paths), ("dt", dt)):
        if value is not None and name not in valid:
            raise ValueError(f"{name}={shown(value)} is invalid; allowed: None with "
                             f"method={method!r} (its options: {', '.join(valid) or 'none'})")
    key, paths, dt, points = (_option(name, value) for name, value in (
        ("key", key), ("paths", paths), ("dt", dt), ("points", points)))
    paths = 1000 if paths is None else paths
    check_run_size(method, 0.0, points + 1, paths, None)
    if horizon is None:
        horizon = default_target_horizon(setup, target)
        found = product_time_to_target(setup, target, method=method, horizon=horizon, key=key,
                                       paths=paths if method == "sde" else None, dt=dt,
                                       points=points)
        if math.isinf(found) and horizon < MAX_HORIZON:
            found = product_time_to_target(setup, target, method=method,
                                           horizon=min(MAX_HORIZON, 4 * horizon), key=key,
                                           paths=paths if method == "sde" else None, dt=dt,
                                           points=points)
        return found
    horizon = _option("horizon", horizon)
    check_run_size(method, horizon, points + 1, paths, dt)
    if abs(setup.initial_coordinate) <= target:
        return 0.0
    if method == "flow":
        return flow_time_to_target(setup, target)
    if method == "recursion":
        n_steps = int(math.ceil(horizon))
        s, _, _ = recursion_path(setup, n_steps)
        return _settling_time(np.arange(n_steps + 1, dtype=float), s**2, target**2)
    key = jax.random.PRNGKey(0) if key is None else key
    steps = np.linspace(0.0, horizon, int(points) + 1)
    step = default_dt(setup, method) if dt is None else dt
    noise = method == "sde"
    if isinstance(setup, InnerProductMomentum):
        obs, _ = _inner.expected_observables(setup, steps, key=key, paths=paths, dt=step,
                                             noise=noise)
        return _settling_time(steps, obs["manifold_coordinate_sq"], target**2)
    ys, _ = reduced_paths(setup, steps, key=key, paths=paths, dt=step, noise=noise)
    return _settling_time(steps, np.mean(ys[..., 0] ** 2, axis=0), target**2)


@_time_to_target.register
def sensing_time_to_target(setup: MatrixSensingMomentum, target: float, *,
                           method: str = "closure", horizon: float | None = None,
                           points: int = 200) -> float:
    """T on matrix sensing: the step from which the closure's distance_to_flattest
    ||U U^T - X*||_F / ||X*||_F stays at or below ``target`` (`settling_time` on a grid of
    ``points`` steps up to ``horizon``); inf if it does not. ``method``: ``"closure"`` only.

    Default horizon: 4 (1-beta)^2 / (eta^2 delta^2) + 8 / (1-beta), doubled (up to five times)
    until the distance has settled at least 4 / (1-beta) steps before the end (two e-folds of
    the under-damped envelope, so a later overshoot above the target is ruled out). inf if
    never, for instance when the noise floor of the distance, ~ sqrt(eta delta^2 / (1-beta))
    per normal mode, is above the target. A default start past `MAX_HORIZON` steps (too little
    label noise: none gives an infinite one) is a ValueError naming ``horizon``."""
    if method != "closure":
        raise ValueError(f"method={shown(method)} is invalid; allowed: ('closure',) (for "
                         "MatrixSensingMomentum)")
    points = _option("points", points)
    omb = setup.one_minus_beta
    tries = 1 if horizon is not None else 6
    if horizon is None:
        horizon = 4.0 * omb**2 / (setup.step_size**2 * max(setup.noise_var, 1e-300)) + 8.0 / omb
        if horizon > MAX_HORIZON:  # ~0.6 ms a step at d = 8: that many would run for a day
            raise ValueError(f"horizon=None is invalid; allowed: a number of steps in (0, "
                             f"{MAX_HORIZON:g}] for this setup, whose default 4 (1-beta)^2 / "
                             f"(eta^2 delta^2) + 8 / (1-beta) = {horizon:.3g} is past it (too "
                             "little label noise)")
    else:
        horizon = _option("horizon", horizon)
    for _ in range(tries):
        steps = np.unique(np.round(np.linspace(0, horizon, int(points) + 1))).astype(np.int64)
        dist = sensing_closure(setup, steps)["distance_to_flattest"]
        found = _settling_time(steps.astype(float), dist, target)
        if tries == 1 or found <= steps[-1] - 4.0 / omb:
            return found
        horizon *= 2.0
    return math.inf
