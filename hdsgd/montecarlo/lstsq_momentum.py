r"""Monte Carlo for streaming least-squares SGD with heavy-ball momentum at finite d.

Called by ``hdsgd.simulate`` for a `StreamingLeastSquares` with ``momentum = beta > 0``.
Works in H's eigenbasis on the error e = w - w* and the velocity v: a sample is
x = sqrt(lambda) * z, z ~ N(0, I_d) (no d x d matrix), and one step is

    g = (1/B) sum_b (<e, x_b> - eps_b) x_b,     v <- beta v - (gamma/d) g,     e <- e + v,

from e(0) = sqrt(rho(0)) (deterministic) and v(0) = 0 (``sampler="projected"`` draws the same
batch gradient exactly in distribution in O(B + d), for large batches). Data are drawn inside the loop from
keys folded with the step index; seeds are vmapped by `run_segments`. The population risk is
computed exactly from the weights, R = sigma^2/2 + 1/2 sum_i lambda_i e_i^2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..api import check_horizon, check_seeds
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


def heavy_ball_steps_projected(state, first_step, n_steps, key, sqrt_eigenvalues, noise_std, eta,
                              momentum, batch_size: int):
    """As `heavy_ball_steps`, drawing the batch's gradient exactly in distribution in O(B + d).

    With a = sqrt(lambda) * e and n = a/|a|, split each z_b = n s_b + z_perp_b (s_b ~ N(0, 1)
    independent of z_perp_b ~ N(0, I - n n^T)). With c_b = |a| s_b - eps_b (the residuals),
    sum_b c_b z_b = n sum_b c_b s_b + sqrt(sum_b c_b^2) (I - n n^T) zeta, zeta ~ N(0, I_d), exactly
    in distribution given (s, eps). So a step draws B + B + d normals instead of B d + B.
    """
    d = state[0].shape[0]
    basis = jnp.zeros(d, dtype=state[0].dtype).at[0].set(1.0)

    def body(k, ev):
        e, v = ev
        ks, ke, kz = jax.random.split(jax.random.fold_in(key, k), 3)
        a = sqrt_eigenvalues * e
        norm = jnp.sqrt(jnp.dot(a, a))
        n = jnp.where(norm > 0, a / jnp.where(norm > 0, norm, 1.0), basis)
        s = jax.random.normal(ks, (batch_size,), dtype=e.dtype)
        c = norm * s - noise_std * jax.random.normal(ke, (batch_size,), dtype=e.dtype)
        zeta = jax.random.normal(kz, (d,), dtype=e.dtype)
        total = n * jnp.dot(c, s) + jnp.sqrt(jnp.dot(c, c)) * (zeta - n * jnp.dot(n, zeta))
        v = momentum * v - (eta / batch_size) * (sqrt_eigenvalues * total)
        return e + v, v

    return jax.lax.fori_loop(first_step, first_step + n_steps, body, state)


SAMPLERS = {"data": heavy_ball_steps, "projected": heavy_ball_steps_projected}


def simulate_momentum(setup: StreamingLeastSquares, horizon: float, *, key, seeds: int = 16,
                      times=None, dtype=jnp.float32, progress: bool | None = None,
                      sampler: str = "data") -> Curve:
    """Simulate heavy-ball SGD on streaming least squares with ``seeds`` independent runs.

    Args:
        setup: a `StreamingLeastSquares` (any momentum, including 0).
        horizon: final time t = steps / d.
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output times in t (rounded to whole steps); default as in `predict`.
        dtype: float dtype of the weights and data (default float32).
        progress: progress bar (default: on for long runs).
        sampler: ``"data"`` (default): draw the B x d batch of samples; ``"projected"``: draw
            the batch gradient exactly in distribution from B + B + d normals (the same process,
            O(B + d) per step instead of O(B d); for large batches).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r} is invalid; allowed: {tuple(SAMPLERS)}")
    horizon = check_horizon(horizon)
    seeds = check_seeds(seeds)
    d = setup.dim
    steps = setup.output_steps(horizon, times)
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
        return SAMPLERS[sampler](ev, first_step, n_steps, k, sqrt_lam, noise_std, eta, beta, batch), k

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
        meta={**setup.fields(), "method": "monte_carlo", "sampler": sampler, "dtype": str(dtype),
              "version": __version__,
              "time_label": "t = steps / d"},
    )
