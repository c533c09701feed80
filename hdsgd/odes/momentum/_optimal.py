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
from ...setups import _validate as v
from ...setups.momentum import (PRODUCT_MODELS, LabelNoiseMomentum, MatrixSensingMomentum,
                                check_model, shown)
from ._scales import CRITICAL_EXPONENT, timescales
from ._sde import default_dt
from ._target import PRODUCT_TARGET_METHODS, check_options, time_to_target

#: scan points: the recursion is cheap and T(C) a sawtooth; the SDE and closure cost more
SCAN_POINTS = {"recursion": 61, "sde": 13, "closure": 13, "flow": 13}
#: the most scan points (`LogRange`'s bound)
MAX_SCAN_POINTS = 10**6
#: every model's time-to-target methods (each model checks its own when scored)
TARGET_METHODS = tuple(dict.fromkeys(m for ms in PRODUCT_TARGET_METHODS.values() for m in ms))


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

    Raises:
        ValueError: at construction, for a ``target`` that is not a number > 0, a ``method``
            that is none of `TARGET_METHODS`, or an option `time_to_target` does not take or
            of a bad value; a method or option the candidate's model does not take is named
            when it is scored.
    """
    if target is not None:
        target = v.positive("target", target)
    if method is not None:
        v.choice("method", method, TARGET_METHODS)
    options = check_options(options)

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
    note = ""
    if isinstance(setup, MatrixSensingMomentum):
        note = (f" ({what} has no default for MatrixSensingMomentum: the flattest interpolant "
                "is a singular point of the manifold, so there is no closed-form C*; give an "
                "explicit hdsgd.LogRange(low, high, num) of damping = 1 - beta with "
                "0 < low < high <= 1)")
    return check_model(setup, PRODUCT_MODELS, note)


def _scan(method, num) -> int:
    """The scan's number of points: ``num``, or `SCAN_POINTS` of a checked ``method``."""
    v.choice("method", method, tuple(SCAN_POINTS))
    return SCAN_POINTS[method] if num is None else v.integer("num", num, low=2,
                                                               high=MAX_SCAN_POINTS)


def constant_range(setup: LabelNoiseMomentum, *, method: str = "recursion",
                   num: int | None = None) -> LogRange:
    """The scan of C along 1 - beta = C eta^gamma: [C*/8, min(8 C*, eta^-gamma)] on ``num``
    log-spaced points (default `SCAN_POINTS[method]`). The Setup needs its ``exponent``.

    Raises:
        ValueError: for a setup that is not a product model given by (exponent, constant), a
            ``method`` not in `SCAN_POINTS`, or a ``num`` that is not an integer in
            [2, 10^6].
    """
    setup = _product(setup, "constant_range")
    if setup.exponent is None:
        raise ValueError(f"setup={shown(setup)} is invalid; allowed: a Setup given by "
                         "(exponent, constant) (its exponent is None; for a momentum given "
                         "directly, scan damping_range)")
    num = _scan(method, num)
    c_star = timescales(setup)["optimal_constant"]
    high = min(8.0 * c_star, setup.step_size ** (-setup.exponent))  # beta = 0
    return LogRange(c_star / 8.0, high, num)


def damping_range(setup: LabelNoiseMomentum, *, method: str = "recursion",
                  num: int | None = None) -> LogRange:
    """The scan of 1 - beta at the Setup's eta: [c/8, min(1, 8 c)], c = C* eta^{2/3}, on
    ``num`` log-spaced points (default `SCAN_POINTS[method]`).

    Raises:
        ValueError: for a setup that is not a product model, a ``method`` not in
            `SCAN_POINTS`, or a ``num`` that is not an integer in [2, 10^6].
    """
    setup = _product(setup, "damping_range")
    num = _scan(method, num)
    centre = timescales(setup)["optimal_constant"] * setup.step_size ** CRITICAL_EXPONENT
    return LogRange(centre / 8.0, min(1.0, 8.0 * centre), num)


def common_dt(setup: LabelNoiseMomentum, name: str, space: LogRange,
              method: str = "sde") -> float:
    """One Euler step for the whole scan of ``name`` over ``space``: the smaller `default_dt`
    at its two ends (so the SDE or closure's T is a smooth function of the tuned field).

    Raises:
        ValueError: for a setup that is not a product model, a ``name`` that is not a field or
            coordinate of it, a ``space`` that is not a `LogRange`, or a ``method`` other than
            ``"sde"`` and ``"closure"`` (the two that take an Euler step); the Setup names a
            field whose value at an end of ``space`` is out of its range.
    """
    setup = check_model(setup, PRODUCT_MODELS)
    v.choice("name", name, setup.field_names() + setup.coordinates)
    if not isinstance(space, LogRange):
        raise ValueError(f"space={shown(space)} is invalid; allowed: a hdsgd.LogRange(low, "
                         "high, num)")
    v.choice("method", method, ("sde", "closure"))
    return min(default_dt(setup.replace(**{name: end}), method)
               for end in (space.low, space.high))
