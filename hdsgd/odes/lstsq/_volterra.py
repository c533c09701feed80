r"""Volterra equations for the risk of streaming least-squares SGD (the d -> infinity equivalents).

docs/lstsq.md, "Deterministic equivalents" and "Momentum".

Plain SGD, in continuous time t (trapezoidal product integration on a uniform grid, O(N^2)):

    R(t) = F(gamma t) + int_0^t K(t - s) R(s) ds,
    F(s) = sigma^2/2 + 1/2 sum_i lambda_i rho_i(0) exp(-2 s lambda_i),
    K(t) = (gamma^2/B) (1/d) sum_i lambda_i^2 exp(-2 gamma lambda_i t).

Heavy ball, in steps (explicit in R_k, solved exactly with a scan, O(N^2)):

    R_k = F_k + sum_{j=0}^{k-1} K(k-1-j) R_j,        K(m) = (eta^2/B) sum_i lambda_i^2 u_m(lambda_i)^2,
    F_k = sigma^2/2 + 1/2 sum_i lambda_i ebar_i(k)^2,
    ebar_i(k+1) = (1+beta-a_i) ebar_i(k) - beta ebar_i(k-1),  ebar_i(-1) = ebar_i(0) = e_i(0),
    u_0 = 1, u_1 = 1+beta-a, u_{m+1} = (1+beta-a) u_m - beta u_{m-1}  (the heavy-ball impulse response),

obtained from the exact moment recursion by dropping the per-mode (1/B) lambda_i^2 Sxx_i part of
the gradient noise (O(1/d) in total).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

MAX_VOLTERRA_STEPS = 200_000


def volterra_risk(eigenvalues, initial_error, noise_var, step_size, batch_size, horizon: float,
                  n_grid: int) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """R on a uniform grid of ``n_grid + 1`` points on [0, horizon], trapezoidal product integration.

    R_n = (F_n + h (1/2 K_n R_0 + sum_{0<j<n} K_{n-j} R_j)) / (1 - h K_0 / 2).
    """
    d = eigenvalues.shape[0]
    grid = jnp.linspace(0.0, horizon, n_grid + 1)
    h = horizon / n_grid
    decay = jnp.exp(-2.0 * step_size * grid[:, None] * eigenvalues[None, :])  # (N+1, d)
    forcing = 0.5 * noise_var + 0.5 * decay @ (eigenvalues * initial_error)
    kernel = (step_size**2 / batch_size) * (decay @ eigenvalues**2) / d
    n = n_grid + 1
    kext_rev = jnp.concatenate([jnp.zeros(n - 1), kernel])[::-1]

    def body(r, i):
        w = jax.lax.dynamic_slice(kext_rev, (n - 1 - i,), (n,))
        conv = jnp.dot(w, r) - 0.5 * kernel[i] * r[0]
        value = jnp.where(i == 0, forcing[0], (forcing[i] + h * conv) / (1.0 - 0.5 * h * kernel[0]))
        return r.at[i].set(value), None

    r, _ = jax.lax.scan(body, jnp.zeros(n), jnp.arange(n))
    return grid, r


def impulse_response(eigenvalues, eta, momentum, n: int) -> Float[Array, "n d"]:
    """u_m(lambda_i) for m = 0..n-1: u_0 = 1, u_{m+1} = (1+beta-eta lambda) u_m - beta u_{m-1}."""
    c = 1.0 + momentum - eta * eigenvalues

    def step(carry, _):
        u, u_prev = carry
        return (c * u - momentum * u_prev, u), u

    _, us = jax.lax.scan(step, (jnp.ones_like(eigenvalues), jnp.zeros_like(eigenvalues)), None,
                         length=n)
    return us


def deterministic_error(eigenvalues, initial_error, eta, momentum, n: int) -> Float[Array, "n d"]:
    """ebar_i(k) for k = 0..n-1: the noiseless heavy ball from e(0) = sqrt(rho(0)), v_0 = 0."""
    c = 1.0 + momentum - eta * eigenvalues
    e0 = jnp.sqrt(initial_error)

    def step(carry, _):
        e, e_prev = carry
        return (c * e - momentum * e_prev, e), e

    _, es = jax.lax.scan(step, (e0, e0), None, length=n)
    return es


def volterra_kernel(eigenvalues, step_size, batch_size, momentum, n: int) -> Float[Array, " n"]:
    """K(m) = (eta^2/B) sum_i lambda_i^2 u_m(lambda_i)^2, m = 0..n-1 (docs/lstsq.md, "Momentum")."""
    eta = step_size / eigenvalues.shape[0]
    us = impulse_response(eigenvalues, eta, momentum, n)
    return (eta**2 / batch_size) * (us**2 @ eigenvalues**2)


def volterra_forcing(eigenvalues, initial_error, noise_var, step_size, momentum, n: int
                     ) -> Float[Array, " n"]:
    """F_k = sigma^2/2 + 1/2 sum_i lambda_i ebar_i(k)^2, k = 0..n-1 (the noiseless heavy-ball risk)."""
    eta = step_size / eigenvalues.shape[0]
    es = deterministic_error(eigenvalues, initial_error, eta, momentum, n)
    return 0.5 * noise_var + 0.5 * (es**2 @ eigenvalues)


def momentum_volterra_risk(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
                  n_steps: int) -> Float[Array, " n"]:
    """R_k, k = 0..n_steps, from R_k = F_k + sum_{j<k} K(k-1-j) R_j (explicit; O(n_steps^2))."""
    n = n_steps
    forcing = volterra_forcing(eigenvalues, initial_error, noise_var, step_size, momentum, n + 1)
    kernel = volterra_kernel(eigenvalues, step_size, batch_size, momentum, max(n, 1))
    # K(k-1-j) for j = 0..n as one slice of [K(n-1), ..., K(0), 0, ..., 0] starting at n - k.
    padded = jnp.concatenate([kernel[::-1], jnp.zeros(n + 1)])

    def body(r, k):
        weights = jax.lax.dynamic_slice(padded, (n - k,), (n + 1,))
        value = forcing[k] + jnp.dot(weights, r)  # r_j = 0 for j >= k
        return r.at[k].set(value), None

    r, _ = jax.lax.scan(body, jnp.zeros(n + 1), jnp.arange(n + 1))
    return r



volterra_jit = jax.jit(volterra_risk, static_argnums=(5, 6))
momentum_volterra_jit = jax.jit(momentum_volterra_risk, static_argnums=(6,))
