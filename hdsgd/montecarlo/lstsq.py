r"""Monte Carlo for streaming least-squares SGD at finite d.

Works in H's eigenbasis with the error e = w - w*: a sample is x = sqrt(lambda) * z with
z ~ N(0, I_d) (never a d x d matrix), its residual <w, x> - y = <e, x> - eps, and one step is

    e <- e - (gamma / d) (1/B) sum_b (<e, x_b> - eps_b) x_b .

The population risk is computed exactly from the weights, R = sigma^2/2 + 1/2 sum_i
lambda_i e_i^2. The initial error is e_i(0) = sqrt(rho_i(0)), deterministic, so that the
expected recursion is exact for every seed's expectation. Data are drawn inside the loop
from keys folded with the step index.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..api import check_horizon, check_seeds, simulate
from ..curve import Curve
from ..setups.lstsq import StreamingLeastSquares
from ._loop import run_segments, sticky_divergence


def sgd_steps(error, first_step, n_steps, key, sqrt_eigenvalues, noise_std, eta, batch_size: int):
    """Advance one run by ``n_steps`` SGD steps starting at step ``first_step``."""
    d = error.shape[0]

    def body(k, e):
        kz, ke = jax.random.split(jax.random.fold_in(key, k))
        z = jax.random.normal(kz, (batch_size, d), dtype=e.dtype)
        x = z * sqrt_eigenvalues
        eps = noise_std * jax.random.normal(ke, (batch_size,), dtype=e.dtype)
        residual = x @ e - eps
        return e - (eta / batch_size) * (residual @ x)

    return jax.lax.fori_loop(first_step, first_step + n_steps, body, error)


@simulate.register
def _simulate(setup: StreamingLeastSquares, horizon: float, *, key, seeds: int = 16, times=None,
              dtype=jnp.float32, progress: bool | None = None, sampler: str = "data") -> Curve:
    """Simulate streaming least-squares SGD with ``seeds`` independent runs.

    Args:
        setup: a `StreamingLeastSquares`.
        horizon: final time t = steps / d.
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output times in t (rounded to whole steps); default as in `predict`.
        dtype: float dtype of the weights and data (default float32).
        progress: progress bar (default: on for long runs).
        sampler: ``"data"`` (default) or ``"projected"`` (the batch gradient drawn exactly in
            distribution in O(B + d) per step; see `hdsgd.montecarlo.lstsq_momentum`).

    With momentum > 0 or sampler="projected" this is
    `hdsgd.montecarlo.lstsq_momentum.simulate_momentum`.
    """
    if setup.momentum != 0.0 or sampler != "data":
        from .lstsq_momentum import simulate_momentum
        return simulate_momentum(setup, horizon, key=key, seeds=seeds, times=times, dtype=dtype,
                                 progress=progress, sampler=sampler)
    horizon = check_horizon(horizon)
    seeds = check_seeds(seeds)
    d = setup.dim
    steps = setup.output_steps(horizon, times)
    dtype = jnp.dtype(dtype)
    sqrt_lam = jnp.sqrt(jnp.asarray(setup.eigenvalues, dtype=dtype))
    lam = jnp.asarray(setup.eigenvalues, dtype=dtype)
    e0 = jnp.sqrt(jnp.asarray(setup.initial_error, dtype=dtype))
    noise_std = jnp.asarray(setup.noise_std, dtype=dtype)
    eta = jnp.asarray(setup.step_size / d, dtype=dtype)
    batch = setup.batch_size
    keys = jax.random.split(key, seeds)
    state0 = (jnp.broadcast_to(e0, (seeds, d)), keys)

    def advance(state, first_step, n_steps):
        e, k = state
        return sgd_steps(e, first_step, n_steps, k, sqrt_lam, noise_std, eta, batch), k

    def observe(state):
        e, _ = state
        excess = 0.5 * jnp.dot(lam, e * e)
        return {"excess_risk": excess}

    out, _ = run_segments(advance, observe, state0, steps, progress=progress,
                          work_per_step=seeds * batch * d, description="lstsq Monte Carlo")
    excess = out["excess_risk"].astype(np.float64)
    risk = excess + 0.5 * setup.noise_std**2
    diverged = sticky_divergence(risk, risk[:, 0])
    risk = np.where(diverged, np.inf, risk)
    return Curve(
        time=steps / d,
        observables={"risk": risk, "excess_risk": np.where(diverged, np.inf, excess)},
        time_unit="t",
        samples=steps * batch,
        seeds=seeds,
        diverged=diverged,
        meta={**setup.fields(), "method": "monte_carlo", "dtype": str(dtype),
              "version": __version__, "time_label": "t = steps / d"},
    )
