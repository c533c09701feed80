"""One JAX CPU device per core, for processes hdsgd owns (the ``hdsgd`` command).

JAX gives the CPU one device by default, and XLA then spreads each small operation of a vmapped
Monte Carlo step over all cores with so much synchronisation that two cores do less than one
(benchmarks/README.md: least squares at B = 1, d = 1000, 16 seeds, 1.9x a numpy loop as one
execution, 4.3x with the seeds sharded over two devices, before the Box-Muller normals).
`run_segments` shards the seed axis over the local devices, so a process that asks for one CPU
device per core runs each core's seeds there; on a single device it runs seed groups from one
thread per core instead (`_segments.cpu_threads`), at about the same speed.

The device count is a process-wide JAX setting that must be fixed before JAX's first
computation, so importing hdsgd never changes it: only the ``hdsgd`` command calls
`use_cpu_cores`, first thing. ``HDSGD_CPU_DEVICES=N`` sets the count (``1``: JAX's default);
an explicit ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` or
``JAX_NUM_CPU_DEVICES`` is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: the environment variable that sets the CPU device count of the ``hdsgd`` command
CPU_DEVICES_ENV_VAR = "HDSGD_CPU_DEVICES"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def count_from_environment(name: str, meaning: str,
                           environ: Mapping[str, str] = os.environ) -> int | None:
    """The integer >= 1 in the environment variable ``name``, or None when it is unset or
    empty; ValueError naming the variable, its value and ``meaning`` otherwise."""
    text = environ.get(name) or None
    if text is None:
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{name}={text!r} is invalid; allowed: an integer >= 1 ({meaning})")
    return count


def use_cpu_cores(environ: Mapping[str, str] = os.environ) -> int | None:
    """Give JAX one CPU device per available core, before its first computation.

    Returns the device count set, or None when nothing was changed: the user chose the count
    already (``XLA_FLAGS``, ``JAX_NUM_CPU_DEVICES``), or JAX has already computed something in
    this process (the count can no longer change; the caller then keeps one device, as before).

    Raises:
        ValueError: ``HDSGD_CPU_DEVICES`` is not an integer >= 1.
    """
    import jax

    count = count_from_environment(CPU_DEVICES_ENV_VAR,
                                   "the number of JAX CPU devices; 1 is JAX's default", environ)
    if count is None:
        if ("xla_force_host_platform_device_count" in environ.get("XLA_FLAGS", "")
                or "JAX_NUM_CPU_DEVICES" in environ):
            return None
        count = available_cores()
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # backends already started in this process
        return None
    return count
