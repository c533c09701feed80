"""Field checks shared by every Setup: each raises ValueError naming the field, its value
and the allowed range, so bad input never reaches JAX."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _fail(name: str, value: Any, allowed: str):
    raise ValueError(f"{name}={value!r} is invalid; allowed: {allowed}")


def real(name: str, value, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """A finite real number in the given (closed unless ``*_open``) range."""
    if isinstance(value, bool):
        _fail(name, value, "a real number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        _fail(name, value, "a real number")
    lo = "-inf" if low is None else low
    hi = "inf" if high is None else high
    allowed = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
    if not math.isfinite(x):
        _fail(name, value, f"a finite number in {allowed}")
    if low is not None and (x < low or (low_open and x == low)):
        _fail(name, value, allowed)
    if high is not None and (x > high or (high_open and x == high)):
        _fail(name, value, allowed)
    return x


def positive(name: str, value) -> float:
    return real(name, value, low=0.0, low_open=True)


def nonnegative(name: str, value) -> float:
    return real(name, value, low=0.0)


def integer(name: str, value, *, low: int = 1, high: int | None = None) -> int:
    """An integer >= low (and <= high when given); floats equal to an integer are accepted."""
    if isinstance(value, bool):
        _fail(name, value, f"an integer >= {low}")
    try:
        ok = float(value) == int(value)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        _fail(name, value, f"an integer >= {low}")
    n = int(value)
    if n < low or (high is not None and n > high):
        _fail(name, value, f"an integer in [{low}, {high if high is not None else 'inf'}]")
    return n


def real_array(name: str, value, *, low=None, low_open=False, ndim=1, nonempty=True) -> np.ndarray:
    """A finite float64 array of the given rank, elementwise >= low (> low if ``low_open``)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(name, value, f"an array of real numbers of rank {ndim}")
    if arr.ndim != ndim:
        _fail(name, _short(value), f"an array of rank {ndim}, got shape {arr.shape}")
    if nonempty and arr.size == 0:
        _fail(name, _short(value), "a non-empty array")
    if not np.all(np.isfinite(arr)):
        _fail(name, _short(value), "finite entries (no NaN or inf)")
    if low is not None:
        bad = arr <= low if low_open else arr < low
        if np.any(bad):
            op = ">" if low_open else ">="
            _fail(name, _short(value), f"entries {op} {low} (found {arr[bad][0]!r})")
    return arr


def choice(name: str, value, allowed) -> str:
    if value not in allowed:
        _fail(name, value, f"one of {tuple(allowed)}")
    return value


def _short(value):
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if getattr(arr, "size", 0) > 6:
        return f"array(shape={arr.shape}, first={arr.ravel()[:3].tolist()}...)"
    return value
