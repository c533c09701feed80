"""The one "advance to the next output step, then observe" driver, for theory and Monte Carlo.

A system describes one run as a `Dynamics` module: its arrays are traced leaves, its
configuration static fields, and it implements

    advance(state, first_step, n_steps) -> state     (whole steps; jit-able, traced integers)
    observe(state) -> dict[str, scalar]

`run_segments` calls ``advance`` once per output interval and ``observe`` at every output
step: all in one compiled scan over the intervals, or (with a progress bar, on long runs) one
call per interval from Python so that the bar moves and Ctrl-C stops between intervals. Its
jitted kernels are module-level functions of (dynamics, state, ...), so the cache is keyed on
the dynamics' class, static fields and array shapes: a repeated call with the same shapes
never traces or compiles again (`trace_count` counts traces, for the tests).

Monte Carlo states carry a leading seed axis (``batched=True``): the kernels ``vmap`` over it,
and when JAX sees several devices the seed axis is sharded across them (`shard_seeds`), with
the same numbers as on one device. On a single CPU device the seeds are split into one group
per core, each run from its own thread (`seed_threads`, `map_in_threads`): XLA spreads each
small operation of one execution over all cores at a loss, while concurrent executions keep
each core busy. A
Monte Carlo ``advance`` draws its data from keys folded with the step index, so the result does
not depend on how the horizon is cut into segments.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ._devices import available_cores, count_from_environment
from ._numerics import power_of_two_at_least

_TRACES: collections.Counter = collections.Counter()
#: what `run_segments` does when its own ``progress`` is None: None decides by the work
_PROGRESS: contextvars.ContextVar = contextvars.ContextVar("hdsgd_progress", default=None)
#: held while a batched run of a `Dynamics` with ``lapack_batches`` executes on the CPU
_LAPACK_LOCK = threading.Lock()


@contextlib.contextmanager
def progress_default(progress: bool | None):
    """Within the block, `run_segments` calls with ``progress=None`` use ``progress`` (how
    ``predict(..., progress=...)`` reaches a theory's inner loops; None: decide by the work)."""
    token = _PROGRESS.set(progress)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def trace_count(name: str | None = None) -> int:
    """How many times the driver's kernels have been traced (all, or one Dynamics class)."""
    return sum(_TRACES.values()) if name is None else _TRACES[name]


class Dynamics(eqx.Module):
    """One run of a discrete-time system (see the module docstring)."""

    #: True when a step calls jaxlib's LAPACK kernels on a batch (a Cholesky per seed under
    #: vmap). On the CPU those split the batch over XLA's thread pool and block until it is
    #: done, so two such executions at once (seeds sharded over two CPU devices, or two threads
    #: of one process) can hold every pool thread while each waits for the other: a deadlock,
    #: measured with the prox-linear Monte Carlo. Such runs are not sharded over CPU devices,
    #: and a process runs one of them at a time.
    lapack_batches: ClassVar[bool] = False

    @abc.abstractmethod
    def advance(self, state, first_step, n_steps):
        """The state after ``n_steps`` more whole steps, starting at step ``first_step``."""

    @abc.abstractmethod
    def observe(self, state) -> dict:
        """Named scalar summaries of one state."""


def _advance(dynamics: Dynamics, state, first_step, n_steps, batched: bool):
    _TRACES[type(dynamics).__name__] += 1
    if batched:
        return jax.vmap(dynamics.advance, in_axes=(0, None, None))(state, first_step, n_steps)
    return dynamics.advance(state, first_step, n_steps)


def _observe(dynamics: Dynamics, state, batched: bool):
    _TRACES[type(dynamics).__name__] += 1
    return jax.vmap(dynamics.observe)(state) if batched else dynamics.observe(state)


def _advance_and_observe_all(dynamics: Dynamics, state, firsts, lengths, batched: bool):
    """Every segment in one compiled call: a scan over (first step, length) pairs, observing
    after each (padding segments have length 0)."""
    _TRACES[type(dynamics).__name__] += 1
    advance = jax.vmap(dynamics.advance, in_axes=(0, None, None)) if batched else dynamics.advance
    observe = jax.vmap(dynamics.observe) if batched else dynamics.observe

    def segment(state, first_and_length):
        first, length = first_and_length
        state = advance(state, first, length)
        return state, observe(state)

    return jax.lax.scan(segment, state, (firsts, lengths))


#: XLA options of the Monte Carlo kernels on a CPU: 512-bit vectors where the CPU has them
#: (LLVM prefers 256 by default; a least-squares step at B = 1 runs 17-18 % faster with 512 on
#: this project's AVX-512 test machine; ignored by CPUs without AVX-512)
CPU_MONTE_CARLO_OPTIONS = {"xla_cpu_prefer_vector_width": 512}


def _jitted(compiler_options: dict | None) -> tuple:
    return tuple(eqx.filter_jit(f, compiler_options=compiler_options)
                 for f in (_advance, _observe, _advance_and_observe_all))


# (advance, observe, advance_and_observe_all) with JAX's default options and with the CPU
# Monte Carlo ones
_DEFAULT_KERNELS = _jitted(None)
_CPU_MONTE_CARLO_KERNELS = _jitted(CPU_MONTE_CARLO_OPTIONS)


def _kernels(batched: bool) -> tuple:
    """The jitted kernels of this run: `CPU_MONTE_CARLO_OPTIONS` for a Monte Carlo on the CPU."""
    if batched and jax.default_backend() == "cpu":
        return _CPU_MONTE_CARLO_KERNELS
    return _DEFAULT_KERNELS


def _most_dividing(seeds: int, limit: int) -> int:
    """The largest n <= ``limit`` that divides ``seeds`` (equal groups of seeds)."""
    return max(n for n in range(1, min(limit, seeds) + 1) if seeds % n == 0)


def shard_seeds(state):
    """Place a seed-batched state across all local devices along its leading axis.

    It uses the most devices whose number divides the seed count (16 seeds on 12 devices: 8),
    and returns the state as is when that is one. XLA then runs each device's seeds there;
    every seed's numbers are the same as on one device (up to float32 summation order), since
    each seed draws from its own key.
    """
    devices = jax.local_devices()
    leaves = jax.tree_util.tree_leaves(state)
    if len(devices) < 2 or not leaves:
        return state
    seeds = leaves[0].shape[0]
    devices = devices[:_most_dividing(seeds, len(devices))]
    if len(devices) < 2:
        return state
    mesh = jax.sharding.Mesh(np.array(devices), ("seeds",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
    return jax.device_put(state, sharding)


#: True inside a `map_in_threads` worker (its context is a copy, so the caller is unaffected)
_IN_WORKER: contextvars.ContextVar = contextvars.ContextVar("hdsgd_in_worker", default=False)
#: the environment variable that caps `cpu_threads` (1: no threads)
CPU_THREADS_ENV_VAR = "HDSGD_CPU_THREADS"


def cpu_threads() -> int:
    """Threads hdsgd may run independent executions from: one per available core (or
    ``HDSGD_CPU_THREADS``) on a single CPU device; 1 off the CPU or with several devices (there
    `shard_seeds` places the work). Why: on one CPU device XLA spreads each small vmapped
    operation over all cores with so much synchronisation that two cores do about what one
    does, while concurrent executions keep each core busy (least squares Monte Carlo at B = 1,
    d = 1000, 16 seeds: 310 M samples x dim a second as one execution, 607 as two groups of 8
    seeds; a 1000-point heavy-ball grid 1.97 -> 0.88 s; benchmarks/README.md).

    Raises:
        ValueError: ``HDSGD_CPU_THREADS`` is not an integer >= 1.
    """
    if _IN_WORKER.get() or jax.default_backend() != "cpu" or len(jax.local_devices()) > 1:
        return 1
    limit = count_from_environment(CPU_THREADS_ENV_VAR,
                                   "threads of independent executions on one CPU device; 1: none")
    return available_cores() if limit is None else limit


def seed_threads(seeds: int) -> int:
    """Equal seed groups a batched Monte Carlo runs in: the most groups, at most `cpu_threads`,
    whose number divides ``seeds``."""
    return _most_dividing(seeds, cpu_threads())


def map_in_threads(fn, items: list, stop: threading.Event | None = None) -> list:
    """``[fn(item) for item in items]``, from up to `cpu_threads` threads, each call in the
    caller's JAX precision (`jax.enable_x64` is per thread, and hdsgd's entry points are 64-bit:
    a 32-bit worker would compile other, slower, kernels) and context variables. ``stop`` is
    set when the caller is interrupted or a call raises, for calls that poll it."""
    threads = min(cpu_threads(), len(items))
    if threads < 2:
        return [fn(item) for item in items]
    x64 = bool(jax.config.jax_enable_x64)

    def call(item):
        _IN_WORKER.set(True)  # work started by a worker stays in its thread (no nesting)
        with jax.enable_x64(x64):
            return fn(item)

    with ThreadPoolExecutor(threads, thread_name_prefix="hdsgd") as pool:
        futures = [pool.submit(contextvars.copy_context().run, call, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            if stop is not None:
                stop.set()
            raise


def run_segments(dynamics: Dynamics, state0, steps, *, batched: bool = True,
                 progress: bool | None = None, work_per_step: float = 1.0,
                 description: str = "Monte Carlo"):
    """Run ``state0`` through the sorted whole ``steps`` and observe it at each.

    Args:
        dynamics: the run's `Dynamics`.
        state0: the initial state (with a leading seed axis on every leaf when ``batched``).
        steps: output steps (integers, non-decreasing, >= 0).
        batched: vmap over a leading seed axis (Monte Carlo) or not (theory).
        progress: show a progress bar; default when the run is long (steps * work > 1e8).
        work_per_step: rough flops per step, used only to decide on a progress bar.
        description: the progress bar's label.

    Returns:
        ``(records, state)``: name -> numpy array ``(S, T)`` (or ``(T,)`` unbatched), and the
        final state.
    """
    steps = np.asarray(steps, dtype=np.int64)
    if progress is None:
        progress = _PROGRESS.get()
    if progress is None:
        progress = float(steps[-1]) * work_per_step > 1e8
    exclusive = batched and dynamics.lapack_batches and jax.default_backend() == "cpu"
    if exclusive:
        with _LAPACK_LOCK:
            return _run(dynamics, state0, steps, batched, progress, description)
    if not batched:
        return _run(dynamics, state0, steps, batched, progress, description)
    leaves = jax.tree_util.tree_leaves(state0)
    groups = seed_threads(leaves[0].shape[0]) if leaves else 1
    if groups > 1:
        return _run_in_threads(dynamics, state0, steps, groups, progress, description)
    return _run(dynamics, shard_seeds(state0), steps, batched, progress, description)


def _run_in_threads(dynamics: Dynamics, state, steps, groups: int, progress: bool,
                    description: str):
    """`_run` on ``groups`` equal slices of the seed axis, one thread each (`map_in_threads`),
    joined in seed order (the same numbers as one execution: each seed draws from its own key).
    The first group's bar stands for all; an interrupt stops every group at its next output
    step."""
    size = jax.tree_util.tree_leaves(state)[0].shape[0] // groups
    parts = [jax.tree_util.tree_map(lambda x, i=i: x[i * size:(i + 1) * size], state)
             for i in range(groups)]
    stop = threading.Event()
    results = map_in_threads(
        lambda i: _run(dynamics, parts[i], steps, True, progress and i == 0, description, stop),
        list(range(groups)), stop)
    records = {k: np.concatenate([r[k] for r, _ in results]) for k in results[0][0]}
    return records, jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs),
                                           *[final for _, final in results])


class _Stopped(Exception):
    """A threaded group left its loop because another group (or the caller) stopped."""


def _run(dynamics: Dynamics, state, steps, batched: bool, progress: bool, description: str,
         stop: threading.Event | None = None):
    """`run_segments` once the state is placed and the progress bar decided (``stop``: leave
    the per-output-step loop when set)."""
    advance, observe, advance_and_observe_all = _kernels(batched)
    if not progress:
        # One compiled call for all segments (no Python round trip per output step); the
        # segment count is padded to a power of two so that similar grids share a compilation.
        lengths = np.diff(np.concatenate([[0], steps]))
        size = power_of_two_at_least(steps.size, 8)
        firsts = np.concatenate([steps - lengths, np.full(size - steps.size, steps[-1])])
        lengths = np.concatenate([lengths, np.zeros(size - steps.size, dtype=np.int64)])
        # int32 step counters where they fit, as a Python int would give (a Dynamics may keep
        # an int32 step index in its state)
        index = np.int32 if steps[-1] < np.iinfo(np.int32).max else np.int64
        state, records = advance_and_observe_all(dynamics, state, jnp.asarray(firsts, index),
                                                 jnp.asarray(lengths, index), batched)
        axis = 1 if batched else 0
        out = {k: np.moveaxis(np.asarray(v), 0, axis)[..., :steps.size] if batched
               else np.asarray(v)[:steps.size] for k, v in records.items()}
        return out, state
    records = []
    done = 0
    bar = tqdm(total=int(steps[-1]), desc=description, unit="step", leave=False)
    try:
        for target in steps:
            if stop is not None and stop.is_set():
                raise _Stopped
            n = int(target) - done
            if n > 0:
                state = advance(dynamics, state, jnp.asarray(done), jnp.asarray(n), batched)
                done = int(target)
                bar.update(n)
            records.append(observe(dynamics, state, batched))
    finally:
        bar.close()
    axis = 1 if batched else 0
    out = {k: np.stack([np.asarray(r[k]) for r in records], axis=axis) for k in records[0]}
    return out, state
