r"""Monte Carlo of mini-batched prox-linear rank-one sensing at finite (d1, d2).

By rotation invariance mu* = e_1 in R^{d1} and nu* = e_1 in R^{d2}; the start is
mu_0 = alpha1 e_1 + beta1 e_2, nu_0 = alpha2 e_1 + beta2 e_2. The iterates are stored as
deviations (dmu, dnu) = (mu - mu*, nu - nu*) so that float32 resolves errors far below
1e-7. Each step draws a fresh batch (A in R^{m x d1}, B in R^{m x d2}, eps in R^m) from the
run's key folded with the step index, forms x = A mu, z = B nu and the residual
r = y - x z = eps - a1 (B dnu) - b1 (A dmu) - (A dmu)(B dnu) (a1, b1 the first columns), and
takes the prox-linear step with lambda = m/eta (docs/proxlinear.md, "Monte Carlo"). Two
solves of the same step (``simulate(..., method=...)``):

* ``"kernel"`` (m x m): K = (z z^T) o (A A^T) + (x x^T) o (B B^T) + lambda I,
  c = K^{-1} r, dmu += A^T (c o z), dnu += B^T (c o x);
* ``"primal"`` ((d1 + d2) x (d1 + d2)): J = [z o A, x o B], Delta = (J^T J + lambda I)^{-1} J^T r;
* ``"auto"`` (default): kernel when m < d1 + d2, else primal.

Both solves are Cholesky. Only the state (alpha1, beta1, alpha2, beta2) and E^2 are saved.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import exceeds
from .._segments import Dynamics, run_segments
from ..api import reject_options, simulate
from ..curve import Curve, finish_curve
from ..setups.proxlinear import DIVERGENCE_FACTOR, ProxLinearSensing

METHODS = ("auto", "kernel", "primal")


def draw_batch(key, m: int, d1: int, d2: int, noise_std, dtype):
    """One fresh batch: A (m, d1), B (m, d2) standard normal, eps (m,) ~ N(0, noise_std^2)."""
    ka, kb, ke = jax.random.split(key, 3)
    A = jax.random.normal(ka, (m, d1), dtype=dtype)
    B = jax.random.normal(kb, (m, d2), dtype=dtype)
    eps = noise_std * jax.random.normal(ke, (m,), dtype=dtype)
    return A, B, eps


def prox_linear_step(dmu, dnu, A, B, eps, lam, method: str):
    """One prox-linear step on deviations (dmu, dnu) with batch (A, B, eps); ridge ``lam``."""
    Adm = A @ dmu
    Bdn = B @ dnu
    x = A[:, 0] + Adm
    z = B[:, 0] + Bdn
    r = eps - A[:, 0] * Bdn - B[:, 0] * Adm - Adm * Bdn
    if method == "kernel":
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


class ProxLinearIterations(Dynamics):
    """One run of the prox-linear iterations; state ((dmu, dnu), key)."""

    lapack_batches: ClassVar[bool] = True  # a Cholesky per seed each step (see `Dynamics`)
    noise_std: jax.Array
    ridge: jax.Array
    batch_size: int = eqx.field(static=True)
    method: str = eqx.field(static=True)

    def advance(self, state, first_step, n_steps):
        (dmu, dnu), key = state

        def body(i, carry):
            dm, dn = carry
            A, B, eps = draw_batch(jax.random.fold_in(key, i), self.batch_size, dm.shape[0],
                                   dn.shape[0], self.noise_std, dm.dtype)
            return prox_linear_step(dm, dn, A, B, eps, self.ridge, self.method)

        return jax.lax.fori_loop(first_step, first_step + n_steps, body, (dmu, dnu)), key

    def observe(self, state):
        (dmu, dnu), _ = state
        a1, b1, a2, b2, e2 = state_of(dmu, dnu)
        return {"error_sq": e2, "alpha_left": a1, "beta_left": b1, "alpha_right": a2,
                "beta_right": b2}


def resolve_method(setup: ProxLinearSensing, method: str) -> str:
    """``"auto"`` -> ``"kernel"`` when m < d1 + d2, else ``"primal"``."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    if method != "auto":
        return method
    return "kernel" if setup.batch_size < setup.dim_left + setup.dim_right else "primal"


@simulate.register
def _simulate(setup: ProxLinearSensing, horizon: float, *, key, seeds: int = 16, times=None,
              method: str = "auto", dtype=None, progress: bool | None = None,
              **options) -> Curve:
    """Simulate the prox-linear iterations with ``seeds`` independent runs.

    Args:
        setup: a `ProxLinearSensing`.
        horizon: final iteration (steps).
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output iterations (rounded to whole steps); default as in `predict`.
        method: ``"kernel"`` (m x m solve), ``"primal"`` ((d1+d2) x (d1+d2) solve) or
            ``"auto"`` (default): kernel when m < d1 + d2.
        dtype: float dtype of the iterates and data (default float32).
        progress: progress bar (default: on for long runs).
    """
    reject_options(options, setup, ("method", "dtype", "progress"))
    method = resolve_method(setup, method)
    d1, d2, m = setup.dim_left, setup.dim_right, setup.batch_size
    steps = setup.output_steps(horizon, times)
    dtype = jnp.dtype(jnp.float32 if dtype is None else dtype)
    a1, b1, a2, b2 = setup.initial_state
    dmu0 = np.zeros((seeds, d1))
    dmu0[:, 0], dmu0[:, 1] = a1 - 1.0, b1
    dnu0 = np.zeros((seeds, d2))
    dnu0[:, 0], dnu0[:, 1] = a2 - 1.0, b2
    dynamics = ProxLinearIterations(noise_std=jnp.asarray(np.asarray(setup.noise_std, dtype)),
                                    ridge=jnp.asarray(np.asarray(m / setup.step_size, dtype)),
                                    batch_size=m, method=method)
    state0 = ((jnp.asarray(dmu0.astype(dtype)), jnp.asarray(dnu0.astype(dtype))),
              jax.random.split(key, seeds))
    work = m * m * (d1 + d2) if method == "kernel" else m * (d1 + d2) ** 2
    out, _ = run_segments(dynamics, state0, steps, progress=progress, work_per_step=seeds * work,
                          description="proxlinear Monte Carlo")
    out = {k: v.astype(np.float64) for k, v in out.items()}
    blown = exceeds(out["error_sq"], 1.0 + setup.initial_error_sq, DIVERGENCE_FACTOR)
    warnings = []
    if np.any(blown) and dtype == jnp.float32:
        warnings.append(f"a run blew up in float32 with the ridge m/step_size = "
                        f"{m / setup.step_size:.3g}: a small ridge leaves the solve "
                        "ill-conditioned (J^T J has the null direction (mu, -nu); J J^T is "
                        "near-singular for m near d1 + d2), and float32 round-off can blow up "
                        "where exact arithmetic does not; dtype=float64 tells the two apart")
    return finish_curve(setup, steps.astype(np.float64), out, method=method,
                        samples=steps * m, seeds=seeds, blown=blown, warnings=warnings,
                        extra={"dtype": str(dtype)})
