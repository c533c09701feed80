"""The Monte Carlo driver shared by the systems: advance a seed-batched state between the
output steps, record summary statistics, show progress.

A system supplies ``advance(state, first_step, n_steps) -> state`` (one seed; it draws its
own data from keys folded with the step index, so the result does not depend on how the
horizon is cut into segments) and ``observe(state) -> dict`` (one seed). The driver vmaps
both over seeds, jit-compiles them once, and calls ``advance`` once per output interval.
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm


def run_segments(advance: Callable, observe: Callable, state0, steps: np.ndarray, *,
                 progress: bool | None = None, work_per_step: float = 1.0,
                 description: str = "Monte Carlo"):
    """Run a seed-batched state through ``steps`` (sorted whole steps) and observe it at each.

    Args:
        advance: ``advance(state, first_step, n_steps) -> state`` for one seed (jit-able,
            ``first_step`` and ``n_steps`` are traced integers).
        observe: ``observe(state) -> dict[str, scalar]`` for one seed.
        state0: the initial state, with a leading seed axis on every leaf.
        steps: output steps (integers, non-decreasing, >= 0).
        progress: show a progress bar; default when the run is long (steps * work > 1e8).
        work_per_step: rough flops per step, used only to decide on a progress bar.

    Returns:
        dict name -> array (S, T) of observations, and the final state.
    """
    steps = np.asarray(steps, dtype=np.int64)
    vadvance = eqx.filter_jit(jax.vmap(advance, in_axes=(0, None, None)))
    vobserve = eqx.filter_jit(jax.vmap(observe))
    if progress is None:
        progress = float(steps[-1]) * work_per_step > 1e8
    records = []
    state = state0
    done = 0
    bar = tqdm(total=int(steps[-1]), desc=description, unit="step", disable=not progress,
               leave=False)
    for target in steps:
        n = int(target) - done
        if n > 0:
            state = vadvance(state, jnp.asarray(done), jnp.asarray(n))
            done = int(target)
            bar.update(n)
        records.append(vobserve(state))
    bar.close()
    out = {k: np.stack([np.asarray(r[k]) for r in records], axis=1) for k in records[0]}
    return out, state


def sticky_divergence(values: np.ndarray, initial: np.ndarray, factor: float = 1e12) -> np.ndarray:
    """Per seed and time: True from the first time ``values`` is non-finite or exceeds
    ``factor`` times the (positive) initial value, onwards."""
    scale = np.maximum(np.abs(initial), np.finfo(np.float64).tiny)[..., None]
    blown = ~np.isfinite(values) | (np.abs(values) > factor * scale)
    return np.maximum.accumulate(blown, axis=-1)
