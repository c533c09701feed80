"""The library's one precision policy.

Deterministic equivalents are integrated over long horizons (10^6 steps and more), where
float32 round-off accumulates visibly, so hdsgd turns on JAX's 64-bit mode when it is
imported. JAX only has a global switch; set the environment variable ``HDSGD_X64=0``
before importing hdsgd to leave JAX's setting untouched. Monte Carlo arrays stay float32
by default (they are large and their statistical error dwarfs round-off); every
``simulate`` takes ``dtype=`` to change that.
"""

import os

import jax

X64_ENV_VAR = "HDSGD_X64"


def x64_requested() -> bool:
    """True unless the user opted out with ``HDSGD_X64=0`` (or ``false``/``no``/``off``)."""
    return os.environ.get(X64_ENV_VAR, "1").strip().lower() not in {"0", "false", "no", "off"}


def apply_policy() -> None:
    if x64_requested():
        jax.config.update("jax_enable_x64", True)


def theory_dtype():
    """The float dtype theory computations run in: float64 when x64 is on."""
    return jax.numpy.float64 if jax.config.read("jax_enable_x64") else jax.numpy.float32
