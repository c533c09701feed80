r"""Monte Carlo for label-noise SGD with heavy-ball momentum (spec ``momentum.md`` §1, §6a).

Direct simulation of the algorithm of `LabelNoiseMomentum`, one independent run per seed
(vmapped), the label noise drawn inside the loop from keys folded with the step index:

    g = (f(w) - y - delta zeta) grad f(w),  zeta ~ N(0, 1),  delta = label_noise / sqrt(B),
    v <- beta v - eta g,   w <- w + v.

The momentum update is written v <- v - (1 - beta) v - eta g so that 1 - beta keeps its
digits in float32 when beta is close to 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..api import check_horizon, check_seeds, output_steps, simulate
from ..curve import Curve
from ..setups.momentum import (LabelNoiseMomentum, inner_product_observables,
                               inner_product_start, matrix_sensing_problem, sensing_observables,
                               sensing_values, settling_time, two_parameter_observables,
                               two_parameter_point)
from ._loop import run_segments, sticky_divergence


NOISE_BLOCK = 256


def _noise(key, block, dtype):
    """The label-noise draws zeta of steps block*NOISE_BLOCK .. (block+1)*NOISE_BLOCK - 1."""
    return jax.random.normal(jax.random.fold_in(key, block), (NOISE_BLOCK,), dtype=dtype)


def two_parameter_steps(state, first_step, n_steps, key, eta, one_minus_beta, delta):
    """Advance one run of a product model by ``n_steps`` steps: the two-parameter model
    (w = (w_1, w_2), f = w_1 w_2) or the inner-product model (w = (u, v) of shape (2, d),
    f = <u, v>); y = 1 in both, and grad f = (w_2, w_1) = w[::-1].

    The noise of step k is entry k % NOISE_BLOCK of a block of normals drawn from the key
    folded with k // NOISE_BLOCK, so the result does not depend on how the run is cut.
    """
    last = first_step + n_steps

    def one_step(k, wv, zeta):
        w, vel = wv
        residual = jnp.sum(w[0] * w[1]) - 1.0 - delta * zeta[k % NOISE_BLOCK]
        grad = residual * w[::-1]
        vel = vel - one_minus_beta * vel - eta * grad
        return w + vel, vel

    def block(b, wv):
        zeta = _noise(key, b, wv[0].dtype)
        lo = jnp.maximum(first_step, b * NOISE_BLOCK)
        hi = jnp.minimum(last, (b + 1) * NOISE_BLOCK)
        return jax.lax.fori_loop(lo, hi, lambda k, s: one_step(k, s, zeta), wv)

    b_first = first_step // NOISE_BLOCK
    b_last = (last + NOISE_BLOCK - 1) // NOISE_BLOCK
    return jax.lax.fori_loop(b_first, b_last, block, state)


def sensing_steps(state, first_step, n_steps, key, eta, one_minus_beta, delta0, a, y,
                  batch: int):
    """Advance one matrix-sensing run (U, velocity) by ``n_steps`` steps of label-noise SGD
    with momentum; the noise and the batch of step k come from ``fold_in(key, k)``."""
    n = a.shape[0]

    def one_step(k, uv):
        u, vel = uv
        kz, kb = jax.random.split(jax.random.fold_in(key, k))
        res = sensing_values(u, a) - y - delta0 * jax.random.normal(kz, (n,), u.dtype)
        if batch < n:
            chosen = jax.random.permutation(kb, n)[:batch]
            weights = jnp.zeros((n,), u.dtype).at[chosen].set(1.0 / batch)
        else:
            weights = jnp.full((n,), 1.0 / n, u.dtype)
        grad = 2.0 * jnp.einsum("n,nab,bk->ak", weights * res, a, u)
        vel = vel - one_minus_beta * vel - eta * grad
        return u + vel, vel

    return jax.lax.fori_loop(first_step, first_step + n_steps, one_step, state)


@simulate.register
def _simulate(setup: LabelNoiseMomentum, horizon: float, *, key, seeds: int = 16, times=None,
              dtype=jnp.float32, progress: bool | None = None) -> Curve:
    """Simulate label-noise SGD with momentum with ``seeds`` independent runs.

    Args:
        setup: a `LabelNoiseMomentum`.
        horizon: final time in steps.
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output steps (rounded to whole steps); default: every early step, then
            log-spaced.
        dtype: float dtype of the weights (default float32).
        progress: progress bar (default: on for long runs).

    Returns:
        A Monte Carlo `Curve` (time unit ``"step"``) with the observables of
        `LabelNoiseMomentum`; a run is marked diverged from the first step where a weight is
        non-finite or its train loss exceeds 1e12 times max(1, initial tr H).
    """
    horizon = check_horizon(horizon)
    seeds = check_seeds(seeds)
    steps = output_steps(horizon, times)
    dtype = jnp.dtype(dtype)
    eta = jnp.asarray(setup.step_size, dtype=dtype)
    omb = jnp.asarray(setup.one_minus_beta, dtype=dtype)
    delta = jnp.asarray(np.sqrt(setup.noise_var), dtype=dtype)
    if setup.model == "two_parameter":
        w0 = two_parameter_point(jnp.asarray(setup.initial_coordinate, dtype=jnp.float64))
        observables_of = two_parameter_observables
    elif setup.model == "matrix_sensing":
        problem = matrix_sensing_problem(setup)
        a, y, x_star = (jnp.asarray(problem[k], dtype) for k in ("a", "y", "x_star"))
        w0 = jnp.asarray(problem["u0"])
        delta0 = jnp.asarray(setup.label_noise, dtype=dtype)

        def observables_of(w):
            return sensing_observables(w, a.astype(w.dtype), y.astype(w.dtype),
                                       x_star.astype(w.dtype))
    else:
        w0 = inner_product_start(setup)
        observables_of = inner_product_observables
    w0 = w0.astype(dtype)
    keys = jax.random.split(key, seeds)
    state0 = ((jnp.broadcast_to(w0, (seeds,) + w0.shape), jnp.zeros((seeds,) + w0.shape, dtype)),
              keys)

    def advance(state, first_step, n_steps):
        wv, k = state
        if setup.model == "matrix_sensing":
            return sensing_steps(wv, first_step, n_steps, k, eta, omb, delta0, a, y,
                                 setup.batch_size), k
        return two_parameter_steps(wv, first_step, n_steps, k, eta, omb, delta), k

    def observe(state):
        (w, _), _ = state
        return observables_of(w)

    out, _ = run_segments(advance, observe, state0, steps, progress=progress,
                          work_per_step=seeds * 20 * setup.dim * (setup.n_samples or 1),
                          description="momentum Monte Carlo")
    out = {k: np.asarray(val, dtype=np.float64) for k, val in out.items()}
    scale = max(1.0, float(observables_of(w0.astype(jnp.float64))["trace_hessian"]))
    blown = np.zeros_like(out["train_loss"], dtype=bool)
    for val in out.values():
        blown |= ~np.isfinite(val)
    diverged = sticky_divergence(np.where(blown, np.inf, out["train_loss"]),
                                 np.full(seeds, scale))
    observables = {k: np.where(diverged, np.inf, val) for k, val in out.items()}
    return Curve(
        time=steps.astype(np.float64),
        observables=observables,
        time_unit="step",
        samples=steps * setup.batch_size,
        seeds=seeds,
        diverged=diverged,
        meta={**setup.fields(), "method": "monte_carlo", "dtype": str(dtype),
              "version": __version__},
    )


def measured_time_to_target(curve: Curve, target: float = 0.1, *, resamples: int = 200,
                            seed: int = 0) -> tuple[float, float]:
    """Time-to-target measured from a Monte Carlo `Curve`: the step from which the seed
    average of s^2 (``manifold_coordinate``) stays at or below ``target**2`` (linear
    interpolation on the curve's grid; the same definition as the theory's `time_to_target`),
    and its standard error from a bootstrap over seeds (``resamples`` draws, numpy seed
    ``seed``). On matrix sensing (``curve.meta["model"]``) the seed average of
    ``distance_to_flattest`` against ``target``, as the theory's `sensing_time_to_target`.
    Returns (T, standard error) in steps; T is inf if not settled on the grid."""
    if not target > 0:
        raise ValueError(f"target={target!r} is invalid; allowed: > 0")
    if curve.meta.get("model") == "matrix_sensing":
        values, level = np.asarray(curve["distance_to_flattest"], dtype=float), target
    else:
        values, level = np.asarray(curve["manifold_coordinate"], dtype=float) ** 2, target**2
    if values.ndim != 2 or values.shape[0] < 2:
        raise ValueError("curve is invalid; allowed: a Monte Carlo Curve with at least 2 seeds")
    value = settling_time(curve.time, values.mean(axis=0), level)
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    boots = np.array([settling_time(curve.time, values[rng.integers(0, n, n)].mean(axis=0), level)
                      for _ in range(resamples)])
    finite = boots[np.isfinite(boots)]
    error = float(finite.std(ddof=1)) if finite.size == boots.size else math.inf
    return value, error
