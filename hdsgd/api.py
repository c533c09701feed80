"""`predict` and `simulate`: one generic function each, dispatched on the Setup's type.

Each system registers its own implementation in ``hdsgd/odes/<system>.py`` (theory) and
``hdsgd/montecarlo/<system>.py`` (simulation)::

    @hdsgd.api.predict.register
    def _(setup: MySetup, horizon, *, times=None, method=None, **options) -> Curve: ...

so that a new system never edits this file.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .curve import Curve


@functools.singledispatch
def predict(setup, horizon: float, *, times=None, method: str | None = None, **options) -> Curve:
    """Integrate the system's deterministic equivalent.

    Args:
        setup: a Setup (``hdsgd.StreamingLeastSquares``, ...).
        horizon: final time, in the system's time unit (``Curve.time_unit``).
        times: explicit output grid (same unit); default: log-spaced up to ``horizon``.
        method: which deterministic equivalent, where a system has several
            (e.g. ``"recursion"``, ``"ode"``, ``"volterra"``); ``None`` picks the default.
        **options: system-specific solver options (documented by each system).

    Returns:
        A theory `Curve` (no seed axis).
    """
    raise TypeError(f"hdsgd.predict has no implementation for {type(setup).__name__}")


@functools.singledispatch
def simulate(setup, horizon: float, *, key, seeds: int = 16, times=None, **options) -> Curve:
    """Run the system's finite-dimensional Monte Carlo.

    Args:
        setup: a Setup.
        horizon: final time, in the system's time unit.
        key: a ``jax.random`` key; the same key gives the same numbers.
        seeds: number of independent runs (batched with ``vmap``).
        times: explicit output grid; default: log-spaced up to ``horizon``.
        **options: system-specific options (``dtype=``, ``progress=``, ...).

    Returns:
        A Monte Carlo `Curve` with a leading seed axis.
    """
    raise TypeError(f"hdsgd.simulate has no implementation for {type(setup).__name__}")


def check_horizon(horizon: float) -> float:
    """Validate a horizon: a finite positive number."""
    try:
        value = float(horizon)
    except (TypeError, ValueError):
        raise ValueError(f"horizon={horizon!r} must be a positive finite number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"horizon={horizon!r} must be a positive finite number")
    return value


def check_seeds(seeds: int) -> int:
    if isinstance(seeds, bool) or int(seeds) != seeds or seeds < 1:
        raise ValueError(f"seeds={seeds!r} must be an integer >= 1")
    return int(seeds)


def log_time_grid(horizon: float, points: int = 100, first: float | None = None) -> np.ndarray:
    """``0`` followed by ``points`` log-spaced times from ``first`` to ``horizon``."""
    horizon = check_horizon(horizon)
    first = horizon * 1e-3 if first is None else first
    first = min(first, horizon)
    return np.concatenate([[0.0], np.geomspace(first, horizon, points)])


def step_grid(horizon_steps: int, points: int = 100) -> np.ndarray:
    """Integer steps ``0, 1, ..., `` then log-spaced up to ``horizon_steps`` (unique, sorted)."""
    horizon_steps = int(horizon_steps)
    if horizon_steps < 1:
        raise ValueError(f"horizon must cover at least one step; got {horizon_steps} steps")
    grid = np.unique(np.round(np.geomspace(1, horizon_steps, points)).astype(np.int64))
    return np.concatenate([[0], grid])


def output_steps(horizon: float, times=None, *, steps_per_unit: float = 1.0) -> np.ndarray:
    """The whole steps at which a curve is reported: ``round(times * steps_per_unit)`` for
    explicit ``times`` (checked against ``horizon``), else `step_grid` up to
    ``round(horizon * steps_per_unit)`` (at least one step). ``steps_per_unit`` is 1 for
    systems timed in steps and d for systems timed in t = steps / d."""
    if times is None:
        return step_grid(max(1, int(round(horizon * steps_per_unit))))
    return np.round(check_times(times, horizon) * steps_per_unit).astype(np.int64)


def check_times(times, horizon: float) -> np.ndarray:
    """Validate an explicit output grid: finite, non-negative, non-decreasing, <= horizon."""
    arr = np.asarray(times, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"times must be a non-empty one-dimensional array; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise ValueError("times must be finite and >= 0")
    if np.any(np.diff(arr) < 0):
        raise ValueError("times must be sorted in increasing order")
    if arr.max() > horizon * (1 + 1e-12):
        raise ValueError(f"times must not exceed horizon={horizon}; got max {arr.max()}")
    return arr
