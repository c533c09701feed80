r"""Monte Carlo for streaming least-squares SGD with heavy-ball momentum at finite d.

Called by ``hdsgd.simulate`` for a `StreamingLeastSquares` with ``momentum = beta > 0``.
Works in H's eigenbasis on the error e = w - w* and the velocity v: a sample is
x = sqrt(lambda) * z, z ~ N(0, I_d) (no d x d matrix), and one step is

    g = (1/B) sum_b (<e, x_b> - eps_b) x_b,     v <- beta v - (gamma/d) g,     e <- e + v,

from e(0) = sqrt(rho(0)) (deterministic) and v(0) = 0. Data are drawn inside the loop from
keys folded with the step index; seeds are vmapped by `run_segments`. The population risk is
computed exactly from the weights, R = sigma^2/2 + 1/2 sum_i lambda_i e_i^2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..api import check_horizon, check_seeds, check_times, step_grid
from ..curve import Curve
from ..setups.lstsq import StreamingLeastSquares
from ._loop import run_segments, sticky_divergence


def heavy_ball_steps(state, first_step, n_steps, key, sqrt_eigenvalues, noise_std, eta, momentum,
                     batch_size: int):
    """Advance one run's ``(e, v)`` by ``n_steps`` heavy-ball SGD steps starting at ``first_step``."""
    d = state[0].shape[0]

    def body(k, ev):
        e, v = ev
        kz, ke = jax.random.split(jax.random.fold_in(key, k))
        z = jax.random.normal(kz, (batch_size, d), dtype=e.dtype)
        x = z * sqrt_eigenvalues
        eps = noise_std * jax.random.normal(ke, (batch_size,), dtype=e.dtype)
        residual = x @ e - eps
        v = momentum * v - (eta / batch_size) * (residual @ x)
        return e + v, v

    return jax.lax.fori_loop(first_step, first_step + n_steps, body, state)


def simulate_momentum(setup: StreamingLeastSquares, horizon: float, *, key, seeds: int = 16,
                      times=None, dtype=jnp.float32, progress: bool | None = None) -> Curve:
    """Simulate heavy-ball SGD on streaming least squares with ``seeds`` independent runs.

    Args:
        setup: a `StreamingLeastSquares` (any momentum, including 0).
        horizon: final time t = steps / d.
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output times in t (rounded to whole steps); default as in `predict`.
        dtype: float dtype of the weights and data (default float32).
        progress: progress bar (default: on for long runs).
    """
    horizon = check_horizon(horizon)
    seeds = check_seeds(seeds)
    d = setup.dim
    horizon_steps = max(1, int(round(horizon * d)))
    if times is None:
        steps = step_grid(horizon_steps)
    else:
        steps = np.round(check_times(times, horizon) * d).astype(np.int64)
    dtype = jnp.dtype(dtype)
    lam = jnp.asarray(setup.eigenvalues, dtype=dtype)
    sqrt_lam = jnp.sqrt(lam)
    e0 = jnp.sqrt(jnp.asarray(setup.initial_error, dtype=dtype))
    noise_std = jnp.asarray(setup.noise_std, dtype=dtype)
    eta = jnp.asarray(setup.step_size / d, dtype=dtype)
    beta = jnp.asarray(setup.momentum, dtype=dtype)
    batch = setup.batch_size
    keys = jax.random.split(key, seeds)
    e_all = jnp.broadcast_to(e0, (seeds, d))
    state0 = ((e_all, jnp.zeros_like(e_all)), keys)

    def advance(state, first_step, n_steps):
        ev, k = state
        return heavy_ball_steps(ev, first_step, n_steps, k, sqrt_lam, noise_std, eta, beta, batch), k

    def observe(state):
        (e, _), _ = state
        return {"excess_risk": 0.5 * jnp.dot(lam, e * e)}

    out, _ = run_segments(advance, observe, state0, steps, progress=progress,
                          work_per_step=seeds * batch * d, description="lstsq momentum Monte Carlo")
    excess = out["excess_risk"].astype(np.float64)
    risk = excess + 0.5 * setup.noise_std**2
    diverged = sticky_divergence(risk, risk[:, 0])
    return Curve(
        time=steps / d,
        observables={"risk": np.where(diverged, np.inf, risk),
                     "excess_risk": np.where(diverged, np.inf, excess)},
        time_unit="t",
        samples=steps * batch,
        seeds=seeds,
        diverged=diverged,
        meta={**setup.fields(), "method": "monte_carlo", "dtype": str(dtype), "version": __version__,
              "time_label": "t = steps / d"},
    )
