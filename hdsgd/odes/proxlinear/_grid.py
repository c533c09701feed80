"""Grids of settings: the map vmapped over (batch_size, step_size, noise_std).

docs/proxlinear.md, "Grids and tuning". `map_grid` runs G settings as batches of
`ProxLinearMap` states (padded to powers of two, so one compilation serves every grid);
`predict_grid` is registered for `ProxLinearSensing` on top of it, which is what
`hdsgd.tune` calls (one call per batch size when it gives every candidate the same sample
budget).
"""

from __future__ import annotations

import jax
import numpy as np

from ..._numerics import power_of_two_at_least
from ..._precision import scoped_x64
from ..._segments import map_in_threads
from ...api import grid_columns, point_setup, predict_grid, valid_settings
from ...curve import Curve, finished_values
from ...curve_grid import CurveGrid
from ...setups.proxlinear import ProxLinearSensing
from ._checks import check_grid, check_map_horizon, check_setup, check_steps
from ._map import run_map, states_of
from ._predict import METHODS, map_curve, state_observables
from ._quadrature import grid_rule_arrays

GRID_FIELDS = ("batch_size", "step_size", "noise_std")
_GRID_BATCH = 32          # settings a batch on a CPU (1000 settings: 1.76 s at 16 or 32, 2.1 at 64)
_ACCELERATOR_BATCH = 1024  # elsewhere: a 1000-setting grid in one batch (not yet measured)
_GRID_MIN_BATCH = 8


def grid_batch(n_settings: int) -> int:
    """Settings per batch of the vmapped map: up to `_GRID_BATCH` on a CPU (a wider batch is
    slower there), up to `_ACCELERATOR_BATCH` on a GPU or TPU, which runs a batch's settings in
    parallel; padded to a power of two of at least `_GRID_MIN_BATCH`."""
    cap = _GRID_BATCH if jax.default_backend() == "cpu" else _ACCELERATOR_BATCH
    return min(cap, power_of_two_at_least(n_settings, _GRID_MIN_BATCH))


def grid_params(setup: ProxLinearSensing, batch_sizes, step_sizes, noise_stds) -> np.ndarray:
    """(G, 4) map parameters (delta1, delta2, eta, sigma^2) of G settings."""
    m = np.asarray(batch_sizes, dtype=np.float64)
    eta = np.asarray(step_sizes, dtype=np.float64)
    sig = np.asarray(noise_stds, dtype=np.float64)
    return np.stack([m / setup.dim_left, m / setup.dim_right, eta, sig**2], axis=1)


def grid_records(setup: ProxLinearSensing, params: np.ndarray, steps, rule=None) -> dict:
    """The map's records (name -> (G, T)) for G settings ``params`` (G, 4) at whole ``steps``.

    Settings run in batches of `grid_batch` (up to 32 on a CPU), each padded to a power of two
    of at least 8 (so that a few batch shapes serve every grid).
    """
    rule = grid_rule_arrays(rule)
    G = params.shape[0]
    batch = grid_batch(G)
    pad = (-G) % batch
    params = np.concatenate([params, np.repeat(params[-1:], pad, axis=0)])
    # batches are independent: on a CPU one thread per core runs them
    parts = map_in_threads(
        lambda b: run_map(setup.initial_state, params[b:b + batch], steps, rule)[0],
        list(range(0, G + pad, batch)))
    return {k: np.concatenate([p[k] for p in parts])[:G] for k in parts[0]}


@scoped_x64
def map_grid(setup: ProxLinearSensing, batch_sizes, step_sizes, noise_stds, steps, *,
             rule=None) -> tuple[np.ndarray, np.ndarray]:
    """Map trajectories of G settings (m_g, eta_g, sigma_g) from the Setup's start, vmapped.

    ``steps``: an integer n (every step 0..n) or the whole output steps. Returns numpy states
    (G, T, 4) and a per-point good flag (G, T) (False from a failed step of the map on).
    Quadrature: ``rule`` (default `GRID_RULE`).

    Raises:
        ValueError: unless batch_sizes (whole, >= 1), step_sizes (> 0) and noise_stds (>= 0)
            are 1-d arrays of one length G, ``steps`` is an integer >= 0 or non-decreasing
            whole steps >= 0 up to `MAX_MAP_STEP` (2^31 - 2), G x T <= `MAX_RECORDS` (10^7
            recorded points), and ``rule`` is a rule (`rule_arrays`).
    """
    check_setup(setup)
    m, eta, sig = check_grid(batch_sizes, step_sizes, noise_stds)
    steps = check_steps(steps, m.size)
    records = grid_records(setup, grid_params(setup, m, eta, sig), steps, rule)  # checks rule
    return states_of(records), records["status"] == 0


@predict_grid.register
def _predict_grid(setup: ProxLinearSensing, grid, horizon: float, *, executor=None,
                  times=None, method: str | None = None, rule=None, **options) -> list:
    """Every (batch_size, step_size, noise_std) setting of ``grid`` in one vmapped map.

    Grids over other fields, ``method="ode"``, or options other than ``rule`` fall back to one
    `predict` per point. Uses `GRID_RULE` unless ``rule`` is given (``meta["rule"]`` says
    which). A setting that fails validation gives None.
    """
    if set(grid) - set(GRID_FIELDS) or method == "ode" or options:
        return predict_grid.dispatch(object)(setup, grid, horizon, executor=executor,
                                             times=times, method=method, rule=rule, **options)
    if method not in (None, "auto", "map"):
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    valid, columns = grid_columns(setup, grid)  # each grid field has an independent check
    if not valid.any():
        return CurveGrid([None] * valid.size)
    steps = setup.output_steps(horizon, times)
    check_map_horizon(horizon, steps)  # the map counts steps in int32
    settings = valid_settings(setup, valid, columns, GRID_FIELDS)
    params = grid_params(setup, settings["batch_size"], settings["step_size"],
                         settings["noise_std"])
    records = grid_records(setup, params, steps, rule)
    label = "grid" if rule is None else "given"
    obs, blown, failed = state_observables(setup, steps, states_of(records), records["status"])
    observables, diverged = finished_values(steps.astype(np.float64), obs, blown.shape,
                                            blown | failed)
    points = np.flatnonzero(valid)

    def build(v: int) -> Curve:
        return map_curve(point_setup(setup, columns, points[v]), steps, {k: r[v] for k, r in records.items()}, {"rule": label})

    return CurveGrid.stacked(valid, time=steps.astype(np.float64), steps=steps,
                             samples=steps * settings["batch_size"][:, None].astype(np.float64),
                             observables=observables, diverged=diverged, build=build)
