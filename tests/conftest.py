"""Shared test helpers.

The suite runs without JAX's global 64-bit switch, as a user's program does: hdsgd scopes its
own precision. A test that calls a pure-JAX internal directly wraps it in
``with jax.enable_x64(True):`` and converts the result to numpy inside the block.
"""

import contextlib
import os

# the `hdsgd` command a test starts keeps no compilation cache in the user's ~/.cache
os.environ.setdefault("HDSGD_CACHE_DIR", "off")

import jax.monitoring  # noqa: E402
import pytest

_COMPILES: list[str] = []


def _listener(name, duration, **kwargs):
    if name == "/jax/core/compile/backend_compile_duration":
        _COMPILES.append(name)


jax.monitoring.register_event_duration_secs_listener(_listener)


@contextlib.contextmanager
def _count():
    start = len(_COMPILES)
    yield lambda: len(_COMPILES) - start


@pytest.fixture
def count_compiles():
    """``with count_compiles() as n: ...`` then ``n()`` is the number of XLA compilations."""
    return _count
