r"""The uniform deterministic recursion of the two-parameter model (docs/momentum.md,
"Uniform recursion"), valid in every regime up to the energy noise of the single normal mode.

Per step (a = eta lambda(s), n^2 = eta^2 delta^2 lambda(s), lambda = g = 2 cosh 2s,
lambda' = g' = 4 sinh 2s, g the metric ||d phi/ds||^2):

    Sxx' = (1-a)^2 Sxx + 2(1-a) beta Sxv + beta^2 Svv + n^2
    Sxv' = -(1-a) a Sxx + (1-2a) beta Sxv + beta^2 Svv + n^2
    Svv' = a^2 Sxx - 2 a beta Sxv + beta^2 Svv + n^2
    p'   = beta p + 1/2 g' sdot^2 - eta 1/2 Sxx lambda',  sdot = p / g,   s' = s + p' / g,

p = g ds/dk the momentum conjugate to s (the 1/2 g' sdot^2 term is the geodesic term), plus
the mean normal offset mx and its velocity (`_observables.normal_offset`, per step).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import power_of_two_at_least


def recursion_step(state, step_size, momentum, noise_var):
    """One step of the uniform recursion for the two-parameter model.

    State (s, p, Sxx, Sxv, Svv, mx, mv): manifold coordinate, conjugate momentum
    p = g ds/dk, the second moments of the normal fluctuation x and its velocity, and the
    mean normal offset mx and its velocity mv.
    """
    s, p, sxx, sxv, svv, mx, mv = state
    eta, beta = step_size, momentum
    lam = 2.0 * jnp.cosh(2.0 * s)
    dlam = 4.0 * jnp.sinh(2.0 * s)
    a = eta * lam
    n2 = eta**2 * noise_var * lam
    b2 = beta * beta
    sxx_new = (1 - a) ** 2 * sxx + 2 * (1 - a) * beta * sxv + b2 * svv + n2
    sxv_new = -(1 - a) * a * sxx + (1 - 2 * a) * beta * sxv + b2 * svv + n2
    svv_new = a * a * sxx - 2 * a * beta * sxv + b2 * svv + n2
    sdot = p / lam
    p_new = beta * p + 0.5 * dlam * sdot**2 - eta * 0.5 * sxx * dlam
    s_new = s + p_new / lam
    sdot_new = p_new / lam
    root = jnp.sqrt(lam)
    mv_new = beta * mv - eta * (lam * mx + 3.0 * sxx / root) - 2.0 * sdot_new**2 / root
    mx_new = mx + mv_new
    return (s_new, p_new, sxx_new, sxv_new, svv_new, mx_new, mv_new)


@functools.partial(jax.jit, static_argnums=(4,))
def _recursion_path(s0, step_size, momentum, noise_var, n_steps: int):
    zero = jnp.zeros((), jnp.float64)
    state0 = (jnp.asarray(s0, jnp.float64),) + (zero,) * 6

    def body(state, _):
        new = recursion_step(state, step_size, momentum, noise_var)
        return new, (new[0], new[5], new[2])

    _, (s, mx, sxx) = jax.lax.scan(body, state0, None, length=n_steps)
    first = lambda a, b: jnp.concatenate([a[None], b])  # noqa: E731
    return first(state0[0], s), first(zero, mx), first(zero, sxx)


def recursion_path(setup, n_steps: int):
    """(s_k, mx_k, Sxx_k) for k = 0..n_steps (numpy arrays of length n_steps + 1) from the
    uniform recursion, started on the manifold at rest with no fluctuation. The scan runs to
    a power of two >= 256 steps (few lengths, few compilations) and is cut."""
    scan = power_of_two_at_least(n_steps, 256)
    s, mx, sxx = _recursion_path(setup.initial_coordinate, setup.step_size, setup.momentum,
                                 setup.noise_var, scan)
    return tuple(np.asarray(a)[: n_steps + 1] for a in (s, mx, sxx))
