r"""Monte Carlo of mini-batched prox-linear rank-one sensing at finite (d1, d2).

By rotation invariance mu* = e_1 in R^{d1} and nu* = e_1 in R^{d2}; the start is
mu_0 = alpha1 e_1 + beta1 e_2, nu_0 = alpha2 e_1 + beta2 e_2. The iterates are stored as
deviations (dmu, dnu) = (mu - mu*, nu - nu*) so that float32 resolves errors far below
1e-7. Each step draws a fresh batch (A in R^{m x d1}, B in R^{m x d2}, eps in R^m) from a
key folded with the step index, forms x = A mu, z = B nu and the residual
r = y - x z = eps - a1 (B dnu) - b1 (A dmu) - (A dmu)(B dnu) (a1, b1 the first columns), and
takes the prox-linear step (spec §2), with lambda = m/eta:

* kernel form (m < d1 + d2): K = (z z^T) o (A A^T) + (x x^T) o (B B^T) + lambda I,
  c = K^{-1} r, dmu += A^T (c o z), dnu += B^T (c o x);
* primal form (m >= d1 + d2): J = [z o A, x o B], Delta = (J^T J + lambda I)^{-1} J^T r.

Both solves are Cholesky. Only the state (alpha1, beta1, alpha2, beta2) and E^2 are saved.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..api import check_horizon, check_seeds, output_steps, simulate
from ..curve import Curve
from ..setups.proxlinear import ProxLinearSensing
from ._loop import run_segments, sticky_divergence

FORMS = ("auto", "kernel", "primal")


def _draw(key, m, d1, d2, noise_std, dtype):
    ka, kb, ke = jax.random.split(key, 3)
    A = jax.random.normal(ka, (m, d1), dtype=dtype)
    B = jax.random.normal(kb, (m, d2), dtype=dtype)
    eps = noise_std * jax.random.normal(ke, (m,), dtype=dtype)
    return A, B, eps


def prox_linear_step(dmu, dnu, A, B, eps, lam, form: str):
    """One prox-linear step on deviations (dmu, dnu) with batch (A, B, eps); ridge ``lam``."""
    Adm = A @ dmu
    Bdn = B @ dnu
    x = A[:, 0] + Adm
    z = B[:, 0] + Bdn
    r = eps - A[:, 0] * Bdn - B[:, 0] * Adm - Adm * Bdn
    if form == "kernel":
        K = (z[:, None] * z[None, :]) * (A @ A.T) + (x[:, None] * x[None, :]) * (B @ B.T)
        K = K + lam * jnp.eye(K.shape[0], dtype=K.dtype)
        c = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(K), r)
        return dmu + A.T @ (c * z), dnu + B.T @ (c * x)
    J = jnp.concatenate([z[:, None] * A, x[:, None] * B], axis=1)
    G = J.T @ J + lam * jnp.eye(J.shape[1], dtype=J.dtype)
    delta = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(G), J.T @ r)
    d1 = dmu.shape[0]
    return dmu + delta[:d1], dnu + delta[d1:]


def state_of(dmu, dnu):
    """(alpha1, beta1, alpha2, beta2) and E^2 of deviations from mu* = nu* = e_1."""
    a1 = 1.0 + dmu[0]
    a2 = 1.0 + dnu[0]
    b1 = jnp.linalg.norm(dmu[1:])
    b2 = jnp.linalg.norm(dnu[1:])
    e12 = dmu[0] + dnu[0] + dmu[0] * dnu[0]  # a1 a2 - 1
    e2 = e12**2 + a1**2 * b2**2 + b1**2 * a2**2 + b1**2 * b2**2
    return a1, b1, a2, b2, e2


@simulate.register
def _simulate(setup: ProxLinearSensing, horizon: float, *, key, seeds: int = 16, times=None,
              dtype=jnp.float32, progress: bool | None = None, form: str = "auto") -> Curve:
    """Simulate the prox-linear iterations with ``seeds`` independent runs.

    Args:
        setup: a `ProxLinearSensing`.
        horizon: final iteration (steps).
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output iterations (rounded to whole steps); default as in `predict`.
        dtype: float dtype of the iterates and data (default float32).
        progress: progress bar (default: on for long runs).
        form: ``"kernel"`` (m x m solve), ``"primal"`` ((d1+d2) x (d1+d2) solve) or
            ``"auto"``: kernel when m < d1 + d2 (spec §2).
    """
    horizon = check_horizon(horizon)
    seeds = check_seeds(seeds)
    if form not in FORMS:
        raise ValueError(f"form={form!r} is invalid; allowed: {FORMS}")
    d1, d2, m = setup.dim_left, setup.dim_right, setup.batch_size
    if form == "auto":
        form = "kernel" if m < d1 + d2 else "primal"
    steps = output_steps(horizon, times)
    dtype = jnp.dtype(dtype)
    a1, b1, a2, b2 = setup.initial_state
    dmu0 = jnp.zeros(d1, dtype).at[0].set(a1 - 1.0).at[1].set(b1)
    dnu0 = jnp.zeros(d2, dtype).at[0].set(a2 - 1.0).at[1].set(b2)
    lam = jnp.asarray(m / setup.step_size, dtype=dtype)
    noise_std = jnp.asarray(setup.noise_std, dtype=dtype)
    keys = jax.random.split(key, seeds)
    state0 = (jnp.broadcast_to(dmu0, (seeds, d1)), jnp.broadcast_to(dnu0, (seeds, d2)), keys)

    def advance(state, first_step, n_steps):
        dmu, dnu, k = state

        def body(i, carry):
            dm, dn = carry
            A, B, eps = _draw(jax.random.fold_in(k, i), m, d1, d2, noise_std, dtype)
            return prox_linear_step(dm, dn, A, B, eps, lam, form)

        dmu, dnu = jax.lax.fori_loop(first_step, first_step + n_steps, body, (dmu, dnu))
        return dmu, dnu, k

    def observe(state):
        a1, b1, a2, b2, e2 = state_of(state[0], state[1])
        return {"error_sq": e2, "alpha_left": a1, "beta_left": b1, "alpha_right": a2,
                "beta_right": b2}

    work = m * m * (d1 + d2) if form == "kernel" else m * (d1 + d2) ** 2
    out, _ = run_segments(advance, observe, state0, steps, progress=progress,
                          work_per_step=seeds * work, description="proxlinear Monte Carlo")
    out = {k: v.astype(np.float64) for k, v in out.items()}
    e2 = out["error_sq"]
    diverged = sticky_divergence(e2, np.full(seeds, 1.0 + setup.initial_error_sq), factor=1e6)
    for k in out:
        diverged |= np.maximum.accumulate(~np.isfinite(out[k]), axis=-1)
    obs = {k: np.where(diverged, np.inf, out[k]) for k in
           ("error_sq", "alpha_left", "beta_left", "alpha_right", "beta_right")}
    return Curve(
        time=steps.astype(np.float64),
        observables=obs,
        time_unit="step",
        samples=steps * m,
        seeds=seeds,
        diverged=diverged,
        meta={**setup.fields(), "method": "monte_carlo", "form": form, "dtype": str(dtype),
              "version": __version__},
    )
