"""The library's one precision policy: float64 inside hdsgd's own calls, nothing global.

Deterministic equivalents are integrated over long horizons (10^6 steps and more), where
float32 round-off accumulates visibly, so every public entry point of hdsgd (``predict``,
``simulate``, ``tune``, the derived quantities of each system) runs inside JAX's scoped 64-bit
context, `jax.enable_x64`. Importing hdsgd changes no global JAX setting: a user's own
program keeps whatever ``jax_enable_x64`` it had. What comes back is numpy (Curves) or
Python floats, so nothing float64 leaks into the user's 32-bit computations.

Monte Carlo arrays stay float32 by default (they are large and their statistical error dwarfs
round-off); every ``simulate`` takes ``dtype=`` to change that. Setting the environment
variable ``HDSGD_X64=0`` makes hdsgd leave the precision to JAX's own setting (theory then runs
in float32 unless the user enabled x64 themselves).
"""

from __future__ import annotations

import functools
import os
from typing import Callable, TypeVar

import jax
import jax.numpy as jnp

X64_ENV_VAR = "HDSGD_X64"

F = TypeVar("F", bound=Callable)


def x64_requested() -> bool:
    """True unless the user opted out with ``HDSGD_X64=0`` (or ``false``/``no``/``off``)."""
    return os.environ.get(X64_ENV_VAR, "1").strip().lower() not in {"0", "false", "no", "off"}


def scoped_x64(fn: F) -> F:
    """Run ``fn`` inside JAX's scoped 64-bit context (a no-op when the user opted out).

    Nesting is free; the user's global setting is restored when ``fn`` returns or raises.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not x64_requested():
            return fn(*args, **kwargs)
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def theory_dtype():
    """The float dtype theory computations run in: float64 inside hdsgd's scope."""
    return jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
