"""Argument checks of the prox-linear helpers (`hdsgd.proxlinear`): each raises a ValueError
"name=value is invalid; allowed: ..." before anything is computed (`hdsgd.setups._validate`).

The grid checks run once per call and are vectorised: grids of ~1000 settings pass here.
"""

from __future__ import annotations

import numpy as np

from ...setups import _validate as v
from ...setups.proxlinear import ProxLinearSensing

#: the last step a run of the map may reach: its loop keeps the step of a failure in int32
#: (``failed_at``), so a later step overflowed it (a JAX while_loop type error)
MAX_MAP_STEP = int(np.iinfo(np.int32).max) - 1

#: the most recorded points of a grid, settings x output steps: each is 6 numbers and 4 more
#: for the states, so 10^7 of them are ~1 GB (2^31 of them ended in a MemoryError)
MAX_RECORDS = 10**7


def check_setup(setup) -> ProxLinearSensing:
    return v.instance_of("setup", setup, ProxLinearSensing)


def check_grid(batch_sizes, step_sizes, noise_stds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G settings (m_g, eta_g, sigma_g) as float64 arrays, each checked as the Setup checks
    its field: whole m >= 1, eta > 0, sigma >= 0; three 1-d arrays of one length G."""
    m = v.whole_array("batch_sizes", batch_sizes, note=" (the batch size m of each setting)")
    if m.size > MAX_RECORDS:
        v._fail("batch_sizes", v._short(batch_sizes), f"at most {MAX_RECORDS} settings")
    eta = v.real_array("step_sizes", step_sizes, low=0.0, low_open=True)
    sig = v.real_array("noise_stds", noise_stds, low=0.0)
    for name, value, arr in (("step_sizes", step_sizes, eta), ("noise_stds", noise_stds, sig)):
        if arr.shape != m.shape:
            v._fail(name, v._short(value), f"one entry per setting, {m.size} as in batch_sizes "
                                           f"(got {arr.size})")
    return m, eta, sig


def check_steps(steps, n_settings: int) -> np.ndarray:
    """Whole output steps of a run of the map: an integer n (every step 0..n) or a
    non-decreasing array of steps >= 0, up to `MAX_MAP_STEP`, with at most
    `MAX_RECORDS` / n_settings of them. Returns them as int64."""
    most = MAX_RECORDS // n_settings
    if np.ndim(steps) == 0:
        if isinstance(steps, str):  # a number, not text that parses as one
            v._fail("steps", steps, f"an integer in [0, {most - 1}] or an array of steps")
        n = v.integer("steps", steps, low=0, high=min(most - 1, MAX_MAP_STEP))
        return np.arange(n + 1)
    arr = v.real_array("steps", steps, low=0.0)
    if np.any(arr != np.floor(arr)):
        v._fail("steps", v._short(steps), "whole numbers of steps")
    if np.any(np.diff(arr) < 0):
        v._fail("steps", v._short(steps), "non-decreasing steps")
    if arr[-1] > MAX_MAP_STEP:
        v._fail("steps", v._short(steps), f"steps <= {MAX_MAP_STEP}")
    if arr.size > most:
        v._fail("steps", v._short(steps), f"at most {most} output steps for {n_settings} "
                                          f"setting(s) ({MAX_RECORDS} records in all)")
    return arr.astype(np.int64)


def check_burn_in(burn_in) -> int:
    """A number of map steps in [0, `MAX_MAP_STEP`]."""
    if isinstance(burn_in, str):
        v._fail("burn_in", burn_in, f"an integer in [0, {MAX_MAP_STEP}]")
    return v.integer("burn_in", burn_in, low=0, high=MAX_MAP_STEP)


def check_starts(starts, n_settings: int) -> np.ndarray:
    """States (G, 4) to polish from, one per setting ((4,) for one setting). Non-finite rows
    are kept: they give an inf floor (no fixed point found), as from a failed map."""
    try:
        arr = np.asarray(starts, dtype=np.float64)
    except (TypeError, ValueError):
        v._fail("starts", starts, f"an array of shape ({n_settings}, 4) of numbers")
    if not (arr.shape == (n_settings, 4) or (n_settings == 1 and arr.shape == (4,))):
        v._fail("starts", v._short(starts), f"an array of shape ({n_settings}, 4), one state "
                f"(alpha1, beta1, alpha2, beta2) per setting (got shape {arr.shape})")
    return arr.reshape(-1, 4)


def check_map_horizon(horizon, steps: np.ndarray) -> None:
    """A horizon the map can run to: at most `MAX_MAP_STEP` steps."""
    if steps[-1] > MAX_MAP_STEP:
        raise ValueError(f"horizon={horizon!r} is invalid for method='map': it is "
                         f"{int(steps[-1])} steps; allowed: at most {MAX_MAP_STEP} steps")
