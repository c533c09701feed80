"""Shared by the benchmark scripts: time a call, and name the device it ran on."""

from __future__ import annotations

import time

import jax


def timed(fn, repeat=1):
    """(result, first call seconds including compilation, best of ``repeat`` later calls)."""
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, first, best


def device_line() -> str:
    """One line naming the device and jax version (benchmarks print it first)."""
    return f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}"
