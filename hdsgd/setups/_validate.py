"""Field checks shared by every Setup: each raises ValueError naming the field, its value
and the allowed range, so bad input never reaches JAX."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


#: the most steps a run may take: step counts beyond 2^53 are not exact in float64 time grids
#: (and a horizon past it overflowed int64 deep inside JAX, aborting the process)
MAX_STEPS = 2**53

#: the largest magnitude of a real field: far past any physical value, and small enough that
#: its squares and fourth powers stay finite (1e200 overflowed Python's float in 0.5 * x**2)
MAX_MAGNITUDE = 1e30

#: the largest size or count (a dimension, a batch, a number of samples): an array extent,
#: which must fit a 32-bit index
MAX_INDEX = 2**31 - 1

#: the most Monte Carlo runs one call takes (a seed axis must fit a 32-bit index)
MAX_SEEDS = 2**31 - 1

#: the largest integer seed: JAX's 32-bit keys wrap past it (2^32 would give seed 0's numbers)
MAX_SEED = 2**32 - 1


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
    if abs(x) > MAX_MAGNITUDE:
        _fail(name, value, f"a number in {allowed} of magnitude <= {MAX_MAGNITUDE:g}")
    if low is not None and (x < low or (low_open and x == low)):
        _fail(name, value, allowed)
    if high is not None and (x > high or (high_open and x == high)):
        _fail(name, value, allowed)
    return x


def positive(name: str, value) -> float:
    return real(name, value, low=0.0, low_open=True)


def nonnegative(name: str, value) -> float:
    return real(name, value, low=0.0)


def integer(name: str, value, *, low: int = 1, high: int | None = MAX_INDEX) -> int:
    """An integer in [low, high] (default high: `MAX_INDEX`, an array extent); floats equal to
    an integer are accepted. Every failure names the same range."""
    allowed = f"an integer in [{low}, {high if high is not None else 'inf'}]"
    if isinstance(value, bool):
        _fail(name, value, allowed)
    if isinstance(value, (int, np.integer)):
        ok = True  # exact: a float comparison misjudges integers past 2^53
    else:
        try:
            ok = float(value) == int(value)
        except (TypeError, ValueError, OverflowError):
            ok = False
    if not ok:
        _fail(name, value, allowed)
    n = int(value)
    if n < low or (high is not None and n > high):
        _fail(name, value, allowed)
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
    if np.any(np.abs(arr) > MAX_MAGNITUDE):
        _fail(name, _short(value), f"entries of magnitude <= {MAX_MAGNITUDE:g}")
    if low is not None:
        bad = arr <= low if low_open else arr < low
        if np.any(bad):
            op = ">" if low_open else ">="
            _fail(name, _short(value), f"entries {op} {low} (found {arr[bad][0]!r})")
    return arr


def whole_array(name: str, value, *, low: int = 1, high: int = MAX_INDEX, nonempty=True,
                note: str = "") -> np.ndarray:
    """A 1-d float64 array of whole numbers in [low, high] (batch sizes, steps; ``note``: what
    they are, appended to the message)."""
    arr = real_array(name, value, low=low, nonempty=nonempty)
    bad = (arr != np.round(arr)) | (arr > high)
    if np.any(bad):
        _fail(name, _short(value),
              f"whole numbers in [{low}, {high}]{note} (found {arr[bad][0]!r})")
    return arr


def choice(name: str, value, allowed) -> str:
    if value not in allowed:
        _fail(name, value, f"one of {tuple(allowed)}")
    return value


def flag(name: str, value) -> bool:
    """True or False (numpy's too); not a truthy stand-in such as 1 or "yes"."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(name, value, "True or False")
    return bool(value)


def sequence_of(name: str, value, kind, allowed: str, *, single: bool = True) -> list:
    """``value`` as a list of ``kind`` instances: a sequence of them or, with ``single``, one;
    else ``name=... is invalid; allowed: <allowed>``."""
    if isinstance(value, kind):
        if single:
            return [value]
    else:
        try:
            out = list(value)
        except TypeError:
            out = None
        if out is not None and all(isinstance(x, kind) for x in out):
            return out
    raise ValueError(f"{name}={shown(value)} is invalid; allowed: {allowed}")


def names(name: str, value, *, single: bool = True) -> list[str]:
    """A list of strings, from a sequence of them (or, with ``single``, one string)."""
    return sequence_of(name, value, str, "a string or a sequence of strings" if single else
                       "a sequence of strings (a list, not one string)", single=single)


def shown(value) -> str:
    """``value`` for an error message: its repr if short, else its type (and shape); a Setup
    as ``Name(...)``."""
    from ._base import Setup

    text = f"{type(value).__name__}(...)" if isinstance(value, Setup) else repr(value)
    if len(text) > 60 or "\n" in text:
        shape = getattr(value, "shape", None)
        text = f"<{type(value).__name__}{'' if shape is None else f' of shape {shape}'}>"
    return text


def instance_of(name: str, value, classes, note: str = ""):
    """``value`` if it is an instance of ``classes`` (a class or a tuple of them), else
    ``name=... is invalid; allowed: a A, B or C`` (``note``: why, appended)."""
    classes = classes if isinstance(classes, tuple) else (classes,)
    if not isinstance(value, classes):
        names = [cls.__name__ for cls in classes]
        names = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise ValueError(f"{name}={shown(value)} is invalid; allowed: a {names}{note}")
    return value


def _short(value):
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if getattr(arr, "size", 0) > 6:
        return f"array(shape={arr.shape}, first={arr.ravel()[:3].tolist()}...)"
    return value


def seed(name: str, value) -> int:
    """An integer seed in [0, `MAX_SEED`]."""
    return integer(name, value, low=0, high=MAX_SEED)


def prng_key(name: str, key):
    """A JAX PRNG key: a typed key (``jax.random.key(0)``) or a legacy ``uint32[2]`` key."""
    import jax
    import jax.numpy as jnp

    ok = False
    if isinstance(key, jax.Array):
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            ok = key.shape == ()
        else:
            ok = key.dtype == jnp.uint32 and key.shape == (2,)
    if not ok:
        shown = repr(key) if len(repr(key)) < 40 and "\n" not in repr(key) else (
            f"<{type(key).__name__} of shape {getattr(key, 'shape', '?')}>")
        raise ValueError(f"{name}={shown} is invalid; allowed: a single JAX PRNG key, made with "
                         "jax.random.key(0) (or jax.random.PRNGKey(0))")
    return key
