r"""The momentum that reaches the target fastest, searched by `hdsgd.tune` (docs/momentum.md,
"Optimal momentum").

The search is the generic one (`hdsgd.tune`: a log-spaced scan, then a bounded Brent search in
log scale between the best point's neighbours); the system supplies what is its own:

* `time_objective`: T(setup) = `time_to_target`, the settling time from the reduced equations,
  as a `SetupObjective` (each candidate on a horizon of its own);
* `constant_range`: C along 1 - beta = C eta^gamma, on [C*/8, min(8 C*, eta^-gamma)]
  (the upper end is beta = 0), C* = (delta^2 kappa)^{1/3} the critical-damping estimate;
* `damping_range`: 1 - beta at fixed eta, on [c/8, min(1, 8 c)] with c = C* eta^{2/3}.

    tuned = hdsgd.tune(setup, {"constant": constant_range(setup)}, time_objective(0.1))
    tuned.setup.constant, tuned.objective_value        # C_opt and T(C_opt) in steps

The scan matters: in the under-damped range T(C) is a sawtooth (each tooth one overshoot fewer
through the flattest point), and the optimum sits at the edge of a tooth, slightly under-damped.
"""

from __future__ import annotations

from ...api import LogRange, SetupObjective, setup_objective
from ...setups._validate import positive as v_positive
from ...setups.momentum import LabelNoiseMomentum, MatrixSensingMomentum
from ._scales import CRITICAL_EXPONENT, timescales
from ._sde import default_dt
from ._target import time_to_target

#: scan points: the recursion is cheap and T(C) a sawtooth; the SDE and closure cost more
SCAN_POINTS = {"recursion": 61, "sde": 13, "closure": 13, "flow": 13}


def time_objective(target: float | None = None, *, method: str | None = None,
                   **options) -> SetupObjective:
    """T(setup) = `time_to_target(setup, target, method=method, **options)` (steps from which
    sqrt(E s^2), or matrix sensing's distance to X*, stays at or below ``target``; inf if
    never) as a `SetupObjective` for `hdsgd.tune`.

    ``method``: the reduced equations (default: ``"recursion"`` on the two-parameter model,
    ``"closure"`` on matrix sensing, else `time_to_target`'s default). With ``"sde"`` or
    ``"closure"`` on a product model, give ``dt`` (e.g. `common_dt`) and keep ``key`` fixed so
    that every candidate uses the same Euler step and Brownian increments and T is smooth in
    the tuned field.
    """
    if target is not None:
        target = v_positive("target", target)

    def t(setup) -> float:
        chosen = method
        if chosen is None:
            chosen = "closure" if isinstance(setup, MatrixSensingMomentum) else (
                "recursion" if type(setup).__name__ == "TwoParameterMomentum" else None)
        extra = {} if chosen is None else {"method": chosen}
        return time_to_target(setup, target, **extra, **options)

    shown = "the default target" if target is None else f"{target:g}"
    return setup_objective(t, f"steps until the observable stays <= {shown} "
                              f"(time_to_target, method={method or 'default'})")


def _product(setup, what: str) -> LabelNoiseMomentum:
    if isinstance(setup, MatrixSensingMomentum):
        raise ValueError(f"{what} has no default for MatrixSensingMomentum: the flattest "
                         "interpolant is a singular point of the manifold, so there is no "
                         "closed-form C*; allowed: an explicit hdsgd.LogRange(low, high, num) "
                         "of damping = 1 - beta with 0 < low < high <= 1")
    if not isinstance(setup, LabelNoiseMomentum):
        raise ValueError(f"setup={setup!r} is invalid for {what}; allowed: a "
                         "TwoParameterMomentum or InnerProductMomentum")
    return setup


def constant_range(setup: LabelNoiseMomentum, *, method: str = "recursion",
                   num: int | None = None) -> LogRange:
    """The scan of C along 1 - beta = C eta^gamma: [C*/8, min(8 C*, eta^-gamma)] on ``num``
    log-spaced points (default `SCAN_POINTS[method]`). The Setup needs its ``exponent``."""
    setup = _product(setup, "constant_range")
    if setup.exponent is None:
        raise ValueError("exponent=None is invalid for constant_range; allowed: a Setup given "
                         "by (exponent, constant)")
    c_star = timescales(setup)["optimal_constant"]
    high = min(8.0 * c_star, setup.step_size ** (-setup.exponent))  # beta = 0
    return LogRange(c_star / 8.0, high, SCAN_POINTS.get(method, 13) if num is None else int(num))


def damping_range(setup: LabelNoiseMomentum, *, method: str = "recursion",
                  num: int | None = None) -> LogRange:
    """The scan of 1 - beta at the Setup's eta: [c/8, min(1, 8 c)], c = C* eta^{2/3}, on
    ``num`` log-spaced points (default `SCAN_POINTS[method]`)."""
    setup = _product(setup, "damping_range")
    centre = timescales(setup)["optimal_constant"] * setup.step_size ** CRITICAL_EXPONENT
    return LogRange(centre / 8.0, min(1.0, 8.0 * centre),
                    SCAN_POINTS.get(method, 13) if num is None else int(num))


def common_dt(setup: LabelNoiseMomentum, name: str, space: LogRange,
              method: str = "sde") -> float:
    """One Euler step for the whole scan of ``name`` over ``space``: the smaller `default_dt`
    at its two ends (so the SDE or closure's T is a smooth function of the tuned field)."""
    return min(default_dt(setup.replace(**{name: v}), method) for v in (space.low, space.high))
