r"""Volterra equations for the risk of streaming least-squares SGD (the d -> infinity equivalents).

docs/lstsq.md, "Deterministic equivalents" and "Momentum".

Plain SGD, in continuous time t, psi = 2R:

    psi(t) = sigma^2 + sum_i lambda_i rho_i(0) e^{-alpha_i t} + int_0^t K(t - s) psi(s) ds,
    alpha_i = 2 gamma lambda_i,   K(t) = sum_i w_i e^{-alpha_i t},   w_i = gamma^2 lambda_i^2 / (B d),

(the homogenized ODE's solution). Its Laplace transform is rational,
psi^(p) = [sigma^2/p + g(p)] / (1 - f(p)) with f(p) = sum_i w_i/(p + alpha_i) and
g(p) = sum_i lambda_i rho_i(0)/(p + alpha_i), so it is solved exactly, like the recursion
(`_spectral`): psi(t) = sum_j (g(p_j)/S_j) e^{p_j t} + sigma^2 [1 + sum_j (e^{p_j t} - 1)/(p_j S_j)]
over the roots p_j of f(p) = 1 (one between each two consecutive -alpha_i and one above
-alpha_min; S_j = -f'(p_j)). No grid, no stiffness: the curve is the equation's own solution to
round-off, and what separates it from SGD is the homogenization (O(1/d); reported by `predict`).

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

from . import _secular
from ._secular import Poles, group_poles
from ._spectral import evaluate_modes, solve_modes

MAX_VOLTERRA_STEPS = 200_000


def homogenized_poles(eigenvalues, initial_error, step_size, batch_size) -> Poles:
    """The poles -alpha_i (alpha_i = 2 gamma lambda_i) with weights w_i = gamma^2 lambda_i^2/(B d) and
    lambda_i rho_i(0), grouped (0 - P = alpha_i is kept exact)."""
    d = eigenvalues.shape[0]
    alpha = 2.0 * step_size * eigenvalues
    w = step_size**2 * eigenvalues**2 / (batch_size * d)
    return group_poles(-alpha, alpha, w, eigenvalues * initial_error)


homogenized_poles_jit = jax.jit(homogenized_poles)


def volterra_risk(eigenvalues, initial_error, noise_var, step_size, batch_size, times,
                  method: str = "direct") -> Float[Array, " n"]:
    """R(t) = psi(t)/2 of the homogenized Volterra equation (plain SGD) at ``times``, exactly
    (pure JAX; ``method``: the secular sums, see `_secular`)."""
    poles = homogenized_poles(eigenvalues, initial_error, step_size, batch_size)
    modes = solve_modes(poles, noise_var, method, continuous=True)
    return 0.5 * evaluate_modes(modes, jnp.asarray(times))


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



momentum_volterra_jit = jax.jit(momentum_volterra_risk, static_argnums=(6,))
