"""`predict`, `simulate` and `predict_grid`: one generic function each, dispatched on the Setup.

Each system registers its own implementation in ``hdsgd/odes/<system>`` (theory) and
``hdsgd/montecarlo/<system>.py`` (simulation)::

    @hdsgd.api.predict.register
    def _(setup: MySetup, horizon, *, times=None, method=None, **options) -> Curve: ...

so that a new system never edits this file. The public functions check every argument that
is not a Setup field at the boundary (a ``ValueError`` naming the argument, its value and what
is allowed), then run the system's implementation inside hdsgd's scoped 64-bit context
(`hdsgd._precision`).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._precision import scoped_x64
from ._segments import progress_default
from .curve import Curve
from .curve_grid import CurveGrid
from .setups._base import Setup, cast_value
from .setups._validate import MAX_SEEDS, MAX_STEPS, prng_key, real


# ----------------------------------------------------------------- argument checks
def check_setup(setup, what: str) -> Setup:
    if not isinstance(setup, Setup):
        raise ValueError(f"setup={setup!r} is invalid for {what}; allowed: a Setup "
                         "(hdsgd.StreamingLeastSquares, hdsgd.SpikedSingleIndex, ...)")
    return setup


def check_horizon(horizon: float, setup: Setup | None = None) -> float:
    """A finite positive number; with a Setup, long enough to cover at least one step."""
    try:
        value = float(horizon) if not isinstance(horizon, (bool, np.bool_)) else math.nan
    except (TypeError, ValueError):
        raise ValueError(f"horizon={horizon!r} is invalid; allowed: a positive finite number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"horizon={horizon!r} is invalid; allowed: a positive finite number")
    if setup is not None and value * setup.steps_per_unit < 1.0 - 1e-9:
        one = 1.0 / setup.steps_per_unit
        raise ValueError(f"horizon={horizon!r} is shorter than one step; allowed: >= {one:.6g} "
                         f"(one step, in {setup.time_unit!r} units)")
    if setup is not None and value * setup.steps_per_unit > MAX_STEPS:
        most = MAX_STEPS / setup.steps_per_unit
        raise ValueError(f"horizon={horizon!r} is {value * setup.steps_per_unit:.3g} steps; allowed: "
                         f"<= {most:.6g} ({MAX_STEPS} = 2^53 steps, in {setup.time_unit!r} units)")
    return value


def check_seeds(seeds) -> int:
    """An integer >= 1."""
    ok = not isinstance(seeds, bool) and isinstance(seeds, (int, float, np.integer, np.floating))
    if ok:
        ok = (math.isfinite(float(seeds)) and float(seeds) == int(seeds)
              and 1 <= int(seeds) <= MAX_SEEDS)
    if not ok:
        raise ValueError(f"seeds={seeds!r} is invalid; allowed: an integer in [1, {MAX_SEEDS}]")
    return int(seeds)


def check_key(key, name: str = "key"):
    """A JAX PRNG key: a typed key (``jax.random.key(0)``) or a legacy ``uint32[2]`` key."""
    return prng_key(name, key)


def check_tolerance(name: str, value, *, high: float = 1.0) -> float:
    """A solver tolerance: a finite number in (0, high) (a NaN or negative tolerance made
    diffrax stop at once, which read as a diverged curve)."""
    if isinstance(value, str):  # a number, not text that parses as one
        raise ValueError(f"{name}={value!r} is invalid; allowed: a number in (0, {high:g})")
    return real(name, value, low=0.0, high=None if math.isinf(high) else high, low_open=True,
                high_open=True)


def check_dtype(dtype, name: str = "dtype"):
    """A floating-point dtype (float32 or float64), or None for the system's default."""
    if dtype is None:
        return None
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or not jnp.issubdtype(dt, jnp.floating) or dt.itemsize < 4:
        raise ValueError(f"{name}={dtype!r} is invalid; allowed: a float dtype "
                         "(jnp.float32 or jnp.float64)")
    return dt


def check_times(times, horizon: float) -> np.ndarray:
    """An explicit output grid: non-empty, finite, >= 0, non-decreasing, <= horizon."""
    try:
        arr = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"times={times!r} is invalid; allowed: a sorted array of times in "
                         f"[0, horizon={horizon}]") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"times has shape {arr.shape}; allowed: a non-empty one-dimensional array")
    if not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise ValueError("times is invalid; allowed: finite times >= 0")
    if np.any(np.diff(arr) < 0):
        raise ValueError("times is invalid; allowed: times sorted in increasing order")
    if arr.max() > horizon * (1 + 1e-12):
        raise ValueError(f"times reaches {arr.max()}; allowed: times <= horizon={horizon}")
    return arr


def reject_options(options: Mapping[str, Any], setup, allowed=()) -> None:
    """Raise ValueError for keyword options a system does not know (naming them)."""
    if options:
        names = ", ".join(sorted(options))
        known = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"unknown option(s) {names} for {type(setup).__name__}; allowed: {known}")


# ----------------------------------------------------------------- time grids
def log_time_grid(horizon: float, points: int = 100, first: float | None = None) -> np.ndarray:
    """``0`` followed by ``points`` log-spaced times from ``first`` to ``horizon``."""
    horizon = check_horizon(horizon)
    first = horizon * 1e-3 if first is None else first
    first = min(first, horizon)
    return np.concatenate([[0.0], np.geomspace(first, horizon, points)])


def step_grid(horizon_steps: int, points: int = 100) -> np.ndarray:
    """Integer steps ``0, 1, ...``, then log-spaced up to ``horizon_steps`` (unique, sorted)."""
    horizon_steps = int(horizon_steps)
    if horizon_steps < 1:
        raise ValueError(f"horizon covers {horizon_steps} steps; allowed: at least one step")
    grid = np.unique(np.round(np.geomspace(1, horizon_steps, points)).astype(np.int64))
    return np.concatenate([[0], grid])


def output_steps(horizon: float, times=None, *, steps_per_unit: float = 1.0) -> np.ndarray:
    """The whole steps at which a curve is reported: ``round(times * steps_per_unit)`` for
    explicit ``times`` (checked against ``horizon``), else `step_grid` up to
    ``round(horizon * steps_per_unit)`` (at least one step). ``steps_per_unit`` is 1 for
    systems timed in steps and d for systems timed in t = steps / d."""
    horizon = check_horizon(horizon)
    if times is None:
        return step_grid(max(1, int(round(horizon * steps_per_unit))))
    return np.round(check_times(times, horizon) * steps_per_unit).astype(np.int64)


# ----------------------------------------------------------------- the generic functions
@functools.singledispatch
def _predict(setup, horizon, **kwargs) -> Curve:
    raise ValueError(f"hdsgd.predict has no theory for {type(setup).__name__}")


@functools.singledispatch
def _simulate(setup, horizon, **kwargs) -> Curve:
    raise ValueError(f"hdsgd.simulate has no Monte Carlo for {type(setup).__name__}")


@functools.singledispatch
def stability_warning(setup) -> str | None:
    """Why a run of this Setup is at or past its stability edge (one sentence), or None.

    Each system's theory registers its own (the edge is theory: its critical step size);
    `predict` puts it into ``meta["warning"]`` with the curve diverged, and `simulate` puts it
    into the Monte Carlo's ``meta["warning"]`` too, so that runs past the edge that have not
    yet overflowed are not read as fine. Systems without an edge keep this default."""
    return None


def _with_edge_warning(setup, curve: Curve) -> Curve:
    """``curve`` with `stability_warning` of ``setup`` in ``meta["warning"]`` (once)."""
    import dataclasses

    warning = stability_warning(setup)
    old = curve.meta.get("warning")
    if warning is None or (old and warning in old):
        return curve
    return dataclasses.replace(curve, meta={**curve.meta,
                                            "warning": f"{old}; {warning}" if old else warning})


@scoped_x64
def predict(setup, horizon: float, *, times=None, method: str | None = None,
            progress: bool | None = None, **options) -> Curve:
    """Integrate the system's deterministic equivalent.

    Args:
        setup: a Setup (``hdsgd.StreamingLeastSquares``, ...).
        horizon: final time, in the system's time unit (``setup.time_unit``); at least one step.
        times: explicit output grid (same unit, sorted, <= horizon); default: step 0, then ~100
            log-spaced steps.
        method: which deterministic equivalent, where a system has several
            (e.g. ``"recursion"``, ``"ode"``, ``"volterra"``); ``None`` picks the default.
        progress: a progress bar for theories that iterate long (grokking's GD map, ...):
            True, False, or None (default: shown when the run is long).
        **options: system-specific solver options (documented by each system).

    Returns:
        A theory `Curve` (no seed axis); ``diverged`` and ``meta["warning"]`` say where and why
        it blew up.
    """
    check_setup(setup, "predict")
    horizon = check_horizon(horizon, setup)
    if times is not None:
        check_times(times, horizon)
    if progress not in (None, True, False):
        raise ValueError(f"progress={progress!r} is invalid; allowed: True, False or None")
    with progress_default(progress):
        return _predict(setup, horizon, times=times, method=method, **options)


@scoped_x64
def simulate(setup, horizon: float, *, key, seeds: int = 16, times=None,
             checkpoint: str | Path | None = None, chunk_seeds: int | None = None,
             **options) -> Curve:
    """Run the system's finite-dimensional Monte Carlo.

    Args:
        setup: a Setup.
        horizon: final time, in the system's time unit; at least one step.
        key: a ``jax.random`` key (``jax.random.key(0)``); the same key gives the same numbers.
        seeds: number of independent runs (batched with ``vmap``), an integer >= 1.
        times: explicit output grid; default: step 0, then ~100 log-spaced steps.
        checkpoint: a folder: the seeds run in chunks of ``chunk_seeds``, each written there as
            it finishes, and a rerun with the same arguments loads the finished chunks and runs
            only the rest (an interrupted run loses at most one chunk). Chunk c uses the key
            ``jax.random.fold_in(key, c)``, so the numbers depend on ``chunk_seeds``.
        chunk_seeds: seeds per chunk with ``checkpoint`` (default: 16).
        **options: system-specific options: ``method=`` (the Monte Carlo variant, where a system
            has several), ``dtype=`` (float32 by default), ``progress=``, ...

    Returns:
        A Monte Carlo `Curve` with a leading seed axis.
    """
    check_setup(setup, "simulate")
    horizon = check_horizon(horizon, setup)
    check_key(key)
    seeds = check_seeds(seeds)
    if times is not None:
        check_times(times, horizon)
    if "dtype" in options:
        options["dtype"] = check_dtype(options["dtype"])
    if options.get("progress") not in (None, True, False):
        raise ValueError(f"progress={options['progress']!r} is invalid; allowed: True, False or "
                         "None")
    if checkpoint is not None and Path(checkpoint).exists() and not Path(checkpoint).is_dir():
        raise ValueError(f"checkpoint={str(checkpoint)!r} is a file; allowed: a folder (new or "
                         "holding this run's chunks)")
    if checkpoint is None:
        if chunk_seeds is not None:
            raise ValueError(f"chunk_seeds={chunk_seeds!r} is given without checkpoint; allowed: "
                             "chunk_seeds together with a checkpoint folder")
        return _with_edge_warning(setup, _simulate(setup, horizon, key=key, seeds=seeds,
                                                   times=times, **options))
    chunk = 16 if chunk_seeds is None else check_seeds(chunk_seeds)
    return _with_edge_warning(setup, _simulate_in_chunks(setup, horizon, key, seeds, times,
                                                         Path(checkpoint), chunk, options))


def _simulate_in_chunks(setup, horizon, key, seeds, times, folder: Path, chunk: int, options):
    """`simulate` in seed chunks written to ``folder`` as they finish (see `simulate`)."""
    import hashlib
    import json

    from .curve import _json_default

    run = {"setup": setup.fields(), "horizon": horizon, "seeds": seeds, "chunk_seeds": chunk,
           "times": None if times is None else np.asarray(times).tolist(),
           "key": np.asarray(jax.random.key_data(key)).tolist(),
           "options": {k: str(v) for k, v in options.items() if k != "progress"}}
    digest = hashlib.sha256(json.dumps(run, sort_keys=True, default=_json_default).encode()
                            ).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "checkpoint.json"
    if manifest.is_file():
        old = json.loads(manifest.read_text()).get("run")
        if old != digest:
            raise ValueError(f"checkpoint={str(folder)!r} holds the chunks of another run; allowed: "
                             "an empty folder, or the folder of this very run")
    else:
        manifest.write_text(json.dumps({"run": digest, "description": run},
                                       default=_json_default, indent=1))
    pieces = []
    for c, start in enumerate(range(0, seeds, chunk)):
        n = min(chunk, seeds - start)
        path = folder / f"seeds-{start:07d}-{start + n:07d}.npz"
        if path.is_file():
            pieces.append(Curve.load(path))
            continue
        piece = _simulate(setup, horizon, key=jax.random.fold_in(key, c), seeds=n, times=times,
                          **options)
        tmp = path.with_name(path.stem + ".partial.npz")
        piece.save(tmp)
        tmp.replace(path)
        pieces.append(piece)
    return Curve.concatenate(pieces)


def finished_seeds(checkpoint: str | Path) -> int:
    """How many seeds a checkpoint folder of `simulate` holds finished."""
    folder = Path(checkpoint)
    total = 0
    for path in folder.glob("seeds-*-*.npz"):
        if path.name.endswith(".partial.npz"):
            continue
        start, stop = path.stem.split("-")[1:3]
        total += int(stop) - int(start)
    return total


predict.register = _predict.register  # type: ignore[attr-defined]
simulate.register = _simulate.register  # type: ignore[attr-defined]


# ----------------------------------------------------------------- grids of settings
def _grid_size(setup: Setup, grid: Mapping[str, np.ndarray]) -> int:
    """The number of points of a grid, after checking its shape and its field names."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"grid={grid!r} is invalid; allowed: a non-empty dict field -> values")
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or np.ndim(values) != 1:
            raise ValueError(f"grid[{name!r}]={values!r} is invalid; allowed: a 1-d sequence of "
                             "values (one point: [value])")
    sizes = {len(v) for v in grid.values()}
    if len(sizes) != 1:
        raise ValueError(f"grid axes have lengths {sorted(sizes)}; allowed: one common length")
    (n,) = sizes
    unknown = sorted(set(grid) - set(setup.field_names()))
    if unknown:
        raise ValueError(f"{', '.join(map(repr, unknown))} not a field of {type(setup).__name__}; "
                         f"allowed: {', '.join(setup.field_names())}")
    return n


def grid_setups(setup: Setup, grid: Mapping[str, np.ndarray]) -> list:
    """The Setups of a grid: ``grid[field][g]`` replaces ``setup.field`` for point g (validated
    again); None where a setting fails validation."""
    n = _grid_size(setup, grid)
    setups = []
    for g in range(n):
        try:
            setups.append(setup.replace(**{k: v[g] for k, v in grid.items()}))
        except ValueError:
            setups.append(None)
    return setups


def grid_columns(setup: Setup, grid: Mapping[str, np.ndarray]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """A grid validated value by value with the Setup class's ``grid_checks`` (fields whose
    check depends on no other field), as `grid_setups` would validate it but without a Setup per
    point (~60 us each): ``(valid, columns)``, ``valid`` (G,) False where a value fails its
    check, ``columns[field]`` (G,) the validated values (the Setup's own value where invalid).
    None when a field of the grid has no such check (then use `grid_setups`)."""
    n = _grid_size(setup, grid)
    checks = type(setup).grid_checks
    if not set(grid) <= set(checks):
        return None
    valid = np.ones(n, dtype=bool)
    columns = {}
    for name, values in grid.items():
        check, own = checks[name], getattr(setup, name)
        column = []
        for g in range(n):
            try:
                column.append(check(cast_value(own, values[g])))
            except ValueError:
                valid[g] = False
                column.append(own)
        columns[name] = np.array(column)
    return valid, columns


def valid_settings(setup: Setup, valid: np.ndarray, columns: dict, names) -> dict:
    """The valid points of a checked grid (`grid_columns`) as one (V,) array per field of
    ``names``: the grid's values, or the Setup's own where the grid leaves the field alone."""
    count = int(valid.sum())
    return {name: np.asarray(columns[name])[valid] if name in columns
            else np.full(count, getattr(setup, name)) for name in names}


def point_setup(setup: Setup, columns: dict, g: int) -> Setup:
    """The Setup of point g of a checked grid (`grid_columns`), built when a Curve needs it."""
    return setup.replace(**{name: columns[name][g] for name in columns})


@functools.singledispatch
def _predict_grid(setup, grid, horizon, *, executor=None, **options) -> list:
    setups = grid_setups(setup, grid)
    valid = [s for s in setups if s is not None]
    run = functools.partial(_predict_one, horizon=horizon, options=options)
    results = iter(list(executor.map(run, valid)) if executor is not None else [run(s) for s in valid])
    return [None if s is None else next(results) for s in setups]


def _predict_one(setup, *, horizon, options):
    return predict(setup, horizon, **options)


@scoped_x64
def predict_grid(setup, grid: Mapping[str, np.ndarray], horizon: float, *, executor=None,
                 **options) -> CurveGrid:
    """Predict every setting of a grid: ``grid[field][g]`` replaces ``setup.field`` for point g.

    The default loops over `predict`, or maps it over ``executor`` (any
    ``concurrent.futures.Executor``: a process pool, or a Dask/Ray cluster's executor) when
    one is given; a system registers a vectorised version where its theory allows (least
    squares returns it stacked: each point's Curve is built when first read). Returns a
    `CurveGrid`, read like a list of Curves; a setting that fails validation gives ``None``.
    """
    check_setup(setup, "predict_grid")
    horizon = check_horizon(horizon, setup)
    curves = _predict_grid(setup, grid, horizon, executor=executor, **options)
    return curves if isinstance(curves, CurveGrid) else CurveGrid(curves)


predict_grid.register = _predict_grid.register  # type: ignore[attr-defined]
predict_grid.dispatch = _predict_grid.dispatch  # type: ignore[attr-defined]


# ----------------------------------------------------------------- search spaces and objectives
# (the tuner's vocabulary, here so that a system's theory can offer its own ranges and scores)
class LogRange(eqx.Module):
    """A continuous range [low, high] sampled at ``num`` log-spaced points, then refined."""

    low: float
    high: float
    num: int = eqx.field(static=True, default=9)

    def __check_init__(self):
        real = all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
                   for x in (self.low, self.high))
        if not (real and 0 < self.low < self.high and math.isfinite(self.high)):
            raise ValueError(f"LogRange(low={self.low!r}, high={self.high!r}) is invalid; "
                             "allowed: numbers with 0 < low < high < inf")
        if (isinstance(self.num, bool) or not isinstance(self.num, (int, np.integer))
                or not 2 <= self.num <= 10**6):
            raise ValueError(f"LogRange num={self.num!r} is invalid; allowed: an integer in "
                             "[2, 1000000]")

    def values(self) -> np.ndarray:
        return np.geomspace(self.low, self.high, self.num)


class SetupObjective(eqx.Module):
    """A score of a Setup itself, lower is better: ``objective(setup) -> float``.

    For a figure of merit that is not read off one predicted Curve: a system's own time to
    target, say, computed from its reduced equations on a horizon of its own for each
    candidate (the momentum system's settling time, `hdsgd.momentum.time_to_target`). `tune`
    then scores each candidate Setup directly (no `predict`), refines by the bracketing search,
    and its `Tuned` has no curve.

    Attributes:
        fn: ``Setup -> float`` (``inf`` where the target is not met).
        description: what it measures, for tables and figures.
    """

    fn: Any = eqx.field(static=True)
    description: str = eqx.field(static=True, default="score of the setup")

    def __call__(self, setup) -> float:
        return float(self.fn(setup))


def setup_objective(fn, description: str = "score of the setup") -> SetupObjective:
    """``fn(setup) -> float`` (lower is better) as an objective `tune` scores Setups with
    (`SetupObjective`), e.g. ``setup_objective(lambda s: hdsgd.momentum.time_to_target(s, 0.1,
    method="recursion"), "steps until sqrt(E s^2) stays <= 0.1")``."""
    if not callable(fn):
        raise ValueError(f"fn={fn!r} is invalid; allowed: a callable Setup -> float")
    return SetupObjective(fn, str(description))


# ----------------------------------------------------------------- differentiable predictions
class PurePrediction:
    """A prediction as a pure JAX function of some continuous fields, for gradients.

    Attributes:
        names: the fields, in the order of ``theta``.
        fn: ``theta -> values`` (n + 1,): the observable at every whole step 0..n, pure JAX
            (differentiable in ``theta``). A scalar field is one entry of ``theta``; a
            step-size schedule is one entry per piece.
        samples_per_step: ``theta -> scalar``, fresh samples per step (a field may set it).
        n_steps: n.
        upper: per entry of ``theta``, the value it must stay below (a stability edge), or
            inf where there is none; None when the system states none.
    """

    def __init__(self, names, fn, samples_per_step, n_steps: int, upper=None):
        self.names = tuple(names)
        self.fn = fn
        self.samples_per_step = samples_per_step
        self.n_steps = int(n_steps)
        self.upper = None if upper is None else np.asarray(upper, dtype=np.float64)


@functools.singledispatch
def pure_prediction(setup, names, observable: str, n_steps: int, **options) -> PurePrediction | None:
    """The system's prediction of ``observable`` as a pure JAX function of the fields ``names``
    over steps 0..n_steps (`PurePrediction`), or None where the system offers none for these
    fields, method or options (tuning then refines by bracketing instead of gradients)."""
    return None
