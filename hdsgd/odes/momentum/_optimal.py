r"""The momentum that reaches the target fastest, from the reduced equations
(docs/momentum.md, "Optimal momentum").
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize

from ..._precision import scoped_x64
from ...setups.momentum import LabelNoiseMomentum, MatrixSensingMomentum
from ._scales import CRITICAL_EXPONENT, timescales
from ._sde import default_dt
from ._target import time_to_target


def _minimise_log(cost, lo: float, hi: float, grid: int) -> tuple[float, float]:
    """Minimise cost(x) over [lo, hi]: a scan on ``grid`` points, then a bounded Brent search
    between the neighbours of the best point (T(C) need not be unimodal over a wide range)."""
    xs = np.linspace(lo, hi, grid)
    values = np.array([cost(x) for x in xs])
    if not np.isfinite(values).any():
        return float(xs[0]), math.inf
    i = int(np.nanargmin(np.where(np.isfinite(values), values, np.inf)))
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, grid - 1)]
    res = scipy.optimize.minimize_scalar(cost, bounds=(a, b), method="bounded",
                                         options={"xatol": 0.01})
    if res.fun <= values[i]:
        return float(res.x), float(res.fun)
    return float(xs[i]), float(values[i])


@scoped_x64
def optimal_constant(setup: LabelNoiseMomentum, target: float | None = None, *,
                     method: str = "recursion", bounds: tuple[float, float] | None = None,
                     grid: int | None = None, **options) -> tuple[float, float]:
    """The constant C minimising the time to target along 1 - beta = C eta^gamma
    (docs/momentum.md, "Optimal momentum"), found numerically from the reduced equations of a
    product model.

    The critical-damping estimate C* = (delta^2 kappa)^{1/3} only centres the search
    interval (default [C*/8, 8 C*], clipped so that beta >= 0): a scan on ``grid`` points in
    ln C (default 61 for the recursion, 13 otherwise), then a bounded Brent search around the
    best. The scan matters: in the under-damped range T(C) is a sawtooth (each tooth one
    overshoot fewer through the flattest point), and the optimum sits at the edge of a tooth,
    slightly under-damped. ``method``: ``"recursion"`` (default, fast; two-parameter model),
    ``"closure"`` or ``"sde"`` (the right one at gamma >= 2/3 with one normal mode; fixed
    sample paths and one Euler step for the whole search, so T(C) is smooth). ``setup``
    supplies eta, gamma (its ``exponent``, required) and the rest; ``options`` go to
    `time_to_target`.

    Returns:
        (C_opt, T(C_opt) in steps).
    """
    if setup.exponent is None:
        raise ValueError("exponent=None is invalid for optimal_constant; allowed: a Setup given "
                         "by (exponent, constant)")
    c_star = timescales(setup)["optimal_constant"]
    c_max = setup.step_size ** (-setup.exponent)  # beta = 0
    lo, hi = bounds if bounds is not None else (c_star / 8.0, min(8.0 * c_star, c_max))
    if method in ("sde", "closure") and options.get("dt") is None:
        options["dt"] = min(default_dt(setup.replace(constant=c), method) for c in (lo, hi))

    def cost(log_c):
        return time_to_target(setup.replace(constant=math.exp(log_c)), target, method=method,
                              **options)

    grid = (61 if method == "recursion" else 13) if grid is None else int(grid)
    x, t = _minimise_log(cost, math.log(lo), math.log(hi), grid)
    return float(math.exp(x)), t


@scoped_x64
def optimal_momentum(setup: LabelNoiseMomentum, target: float | None = None, *,
                     method: str | None = None, bounds: tuple[float, float] | None = None,
                     grid: int | None = None, **options) -> tuple[float, float]:
    """1 - beta minimising the time to target at the Setup's eta (no scaling assumed), from
    the reduced equations: the same search as `optimal_constant` over ln(1 - beta) in
    ``bounds``. Returns (1 - beta_opt, T).

    Product models: ``method`` ``"recursion"`` by default (two-parameter model; ``"sde"`` or
    ``"closure"`` otherwise), bounds default [eta^{2/3} C*/8, min(1, 8 eta^{2/3} C*)].

    Matrix sensing: ``method="closure"`` only (the moment closure, many normal modes; the
    default), T from `sensing_time_to_target` (``target`` is then the distance
    ||UU^T - X*||_F / ||X*||_F; options: ``points``), and ``bounds`` is required (no
    closed-form C* there: the flattest interpolant U* U*^T = X* is a singular point of the
    manifold, where the rank of the Jacobian drops from n to d r)."""
    eta = setup.step_size

    def trial(gap):
        return setup.replace(exponent=None, constant=None, momentum=1.0 - gap)

    if isinstance(setup, MatrixSensingMomentum):
        method = "closure" if method is None else method
        if method != "closure":
            raise ValueError(f"method={method!r} is invalid for MatrixSensingMomentum; "
                             "allowed: 'closure'")
        if bounds is None:
            raise ValueError("bounds=None is invalid for MatrixSensingMomentum; allowed: "
                             "(low, high) of 1 - beta with 0 < low < high <= 1")
        lo, hi = bounds
        if not 0.0 < lo < hi <= 1.0:
            raise ValueError(f"bounds={bounds!r} is invalid; allowed: 0 < low < high <= 1")
    else:
        method = "recursion" if method is None else method
        centre = timescales(setup)["optimal_constant"] * eta ** CRITICAL_EXPONENT
        lo, hi = bounds if bounds is not None else (centre / 8.0, min(1.0, 8.0 * centre))
        if method in ("sde", "closure") and options.get("dt") is None:
            options["dt"] = min(default_dt(trial(g), method) for g in (lo, hi))

    def cost(log_gap):
        return time_to_target(trial(math.exp(log_gap)), target, method=method, **options)

    grid = (61 if method == "recursion" else 13) if grid is None else int(grid)
    x, t = _minimise_log(cost, math.log(lo), math.log(hi), grid)
    return float(math.exp(x)), t
