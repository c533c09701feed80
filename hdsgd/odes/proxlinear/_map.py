r"""The one-step map of prox-linear rank-one sensing, and the driver that iterates it.

docs/proxlinear.md, "The one-step map". State s = (alpha1, beta1, alpha2, beta2). With
x = alpha1 p + beta1 q, z = alpha2 s + beta2 omega, r = p s + eps - x z,
a = (z p, z q, x s, x omega), W = 1 / (1 + kappa1 z^2 + kappa2 x^2) and delta_j = m / d_j:

    (F1)  1/(delta1 kappa1) = E[W z^2] + 1/eta
    (F2)  1/(delta2 kappa2) = E[W x^2] + 1/eta
    (F5)  (E[W a a^T] + I/eta) c = E[W r a]
    (F3)  T1/(delta1 kappa1^2) = E[W^2 z^2 (res^2 + T1 z^2 + T2 x^2)]
    (F4)  T2/(delta2 kappa2^2) = E[W^2 x^2 (res^2 + T1 z^2 + T2 x^2)],  res = r - a^T c,

then alpha1' = alpha1 + c1, beta1' = sqrt((beta1 + c2)^2 + T1) and likewise on the right.

Gaussian expectations: everything depends on (p, q) only through g1 = x/||mu_t|| and an
independent in-plane coordinate h1 (likewise g2, h2). Every integrand is a polynomial of
degree <= 2 in h1 and in h2, so the h-expectations are exact in the orthonormal basis
psi = (1, h2, h1, h1 h2); the (g1, g2) expectations use a rule from `_quadrature`.

`ProxLinearMap` iterates the map under `hdsgd._segments.run_segments` (one compilation for
every horizon and every setting; its parameters travel in its state, so a grid of settings is
a batch of states).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..._segments import Dynamics, run_segments
from ...setups.proxlinear import ProxLinearSensing

#: why a step of the map failed (the status a run carries from its first failed step on).
FAILURES = {
    1: "the (kappa1, kappa2) solve of (F1, F2) did not converge",
    2: "the (F3, F4) system lost positivity (its determinant was not > 0)",
    3: "the (F5) solve or the new state was not finite",
}


def node_terms(state, g1, g2):
    """x, z, the 4x4 coefficient matrix of a in the basis psi, and r's noise-free coefficients.

    a_k = A[k] . psi, r - eps = R . psi with psi = (1, h2, h1, h1 h2). Shapes: x, z (N,),
    A (N, 4, 4), R (N, 4).
    """
    a1, b1, a2, b2 = state[0], state[1], state[2], state[3]
    n1 = jnp.sqrt(a1**2 + b1**2)
    n2 = jnp.sqrt(a2**2 + b2**2)
    x = n1 * g1
    z = n2 * g2
    zero = jnp.zeros_like(g1)
    # p = P0 + P1 h1, q = Q0 + Q1 h1, s = S0 + S1 h2, omega = O0 + O1 h2.
    p0, p1 = a1 * g1 / n1, -b1 / n1 + zero
    q0, q1 = b1 * g1 / n1, a1 / n1 + zero
    s0, s1 = a2 * g2 / n2, -b2 / n2 + zero
    o0, o1 = b2 * g2 / n2, a2 / n2 + zero

    def left(c0, c1):  # c0 + c1 h1 in psi
        return jnp.stack([c0, zero, c1, zero], axis=-1)

    def right(c0, c1):  # c0 + c1 h2 in psi
        return jnp.stack([c0, c1, zero, zero], axis=-1)

    A = jnp.stack([z[:, None] * left(p0, p1), z[:, None] * left(q0, q1),
                   x[:, None] * right(s0, s1), x[:, None] * right(o0, o1)], axis=1)
    R = jnp.stack([p0 * s0 - x * z, p0 * s1, p1 * s0, p1 * s1], axis=-1)
    return x, z, A, R


def solve_kappa(x2, z2, w, delta1, delta2, eta, kappa0, *, max_iter: int = 100,
                tol: float = 1e-13):
    """(kappa1, kappa2) solving (F1, F2) by Newton's method in log kappa, from ``kappa0``.

    In log kappa the system is log(delta1 kappa1) + log(E[W z^2] + 1/eta) = 0 (and the same
    with x); its Jacobian has a positive dominant diagonal, and a step is capped at a
    factor e^2 per iteration. Returns (kappa, converged flag).
    """
    inv_eta = 1.0 / eta

    def residual_and_jac(logk):
        k1, k2 = jnp.exp(logk[0]), jnp.exp(logk[1])
        W = 1.0 / (1.0 + k1 * z2 + k2 * x2)
        W2 = W * W
        phi1 = jnp.sum(w * W * z2) + inv_eta
        phi2 = jnp.sum(w * W * x2) + inv_eta
        zz = jnp.sum(w * W2 * z2 * z2)
        xx = jnp.sum(w * W2 * x2 * x2)
        zx = jnp.sum(w * W2 * z2 * x2)
        f = jnp.stack([jnp.log(delta1 * k1 * phi1), jnp.log(delta2 * k2 * phi2)])
        jac = jnp.array([[1.0 - k1 * zz / phi1, -k2 * zx / phi1],
                         [-k1 * zx / phi2, 1.0 - k2 * xx / phi2]])
        return f, jac

    def cond(carry):
        _, f, i = carry
        return (jnp.max(jnp.abs(f)) > tol) & (i < max_iter)

    def body(carry):
        logk, _, i = carry
        f, jac = residual_and_jac(logk)
        step = jnp.linalg.solve(jac, f)
        step = jnp.clip(step, -2.0, 2.0)
        return logk - step, f, i + 1

    logk0 = jnp.log(kappa0)
    f0, _ = residual_and_jac(logk0)
    logk, _, _ = jax.lax.while_loop(cond, body, (logk0, f0, 0))
    f, _ = residual_and_jac(logk)
    return jnp.exp(logk), jnp.max(jnp.abs(f)) < 1e-8


def one_step(state, kappa, params, rule):
    """The one-step map F: (s_t, kappa warm start) -> (s_{t+1}, kappa, status).

    docs/proxlinear.md, "The one-step map". ``status`` is 0 for a good step, else the key of
    `FAILURES` saying why it failed (the first of: the (F1, F2) solve did not converge, the
    (F3, F4) system lost positivity, a non-finite value).

    Args:
        state: (alpha1, beta1, alpha2, beta2), float64.
        kappa: (kappa1, kappa2) to warm-start the (F1, F2) solve.
        params: (delta1, delta2, eta, noise_var) with delta_j = m / d_j.
        rule: (g1, g2, w) nodes and weights for the (g1, g2) expectations (`polar_rule`).
    """
    delta1, delta2, eta, noise_var = params[0], params[1], params[2], params[3]
    g1, g2, w = rule
    x, z, A, R = node_terms(state, g1, g2)
    x2, z2 = x * x, z * z
    kappa, kappa_ok = solve_kappa(x2, z2, w, delta1, delta2, eta, kappa)
    k1, k2 = kappa[0], kappa[1]
    W = 1.0 / (1.0 + k1 * z2 + k2 * x2)
    ww = w * W
    # (F5): E[W a a^T] = sum w W A A^T, E[W r a] = sum w W A R (eps drops out).
    M = jnp.einsum("n,nkj,nlj->kl", ww, A, A) + jnp.eye(4) / eta
    b = jnp.einsum("n,nkj,nj->k", ww, A, R)
    c = jnp.linalg.solve(M, b)
    res = R - jnp.einsum("nkj,k->nj", A, c)
    res2 = jnp.sum(res * res, axis=-1) + noise_var
    w2 = w * W * W
    # (F3, F4) as a 2x2 linear system in (T1, T2).
    zx = jnp.sum(w2 * z2 * x2)
    lhs = jnp.array([[1.0 / (delta1 * k1**2) - jnp.sum(w2 * z2 * z2), -zx],
                     [-zx, 1.0 / (delta2 * k2**2) - jnp.sum(w2 * x2 * x2)]])
    rhs = jnp.stack([jnp.sum(w2 * z2 * res2), jnp.sum(w2 * x2 * res2)])
    T = jnp.maximum(jnp.linalg.solve(lhs, rhs), 0.0)
    new = jnp.stack([state[0] + c[0], jnp.sqrt((state[1] + c[1]) ** 2 + T[0]),
                     state[2] + c[2], jnp.sqrt((state[3] + c[3]) ** 2 + T[1])])
    status = jnp.where(~kappa_ok, 1, jnp.where(~(jnp.linalg.det(lhs) > 0), 2,
                                                jnp.where(jnp.all(jnp.isfinite(new)), 0, 3)))
    return new, kappa, status.astype(jnp.int32)


def initial_kappa(state, params):
    """A starting point for the (F1, F2) solve: the W = 1 values 1/(delta (||.||^2 + 1/eta))."""
    delta1, delta2, eta = params[0], params[1], params[2]
    n1 = state[0] ** 2 + state[1] ** 2
    n2 = state[2] ** 2 + state[3] ** 2
    return jnp.stack([1.0 / (delta1 * (n2 + 1.0 / eta)), 1.0 / (delta2 * (n1 + 1.0 / eta))])


def map_params(setup: ProxLinearSensing, *, batch_size=None, step_size=None, noise_std=None
               ) -> tuple[float, float, float, float]:
    """(delta1, delta2, eta, sigma^2) of a Setup (optionally overriding m, eta, sigma)."""
    m = setup.batch_size if batch_size is None else batch_size
    eta = setup.step_size if step_size is None else step_size
    sigma = setup.noise_std if noise_std is None else noise_std
    return (m / float(setup.dim_left), m / float(setup.dim_right), eta, sigma**2)


class ProxLinearMap(Dynamics):
    """The map iterated from a state (s, kappa, status, failed_at, params).

    ``params`` = (delta1, delta2, eta, sigma^2) is part of the state, so that a batch of
    states is a grid of settings. From the first failed step on, the state is NaN, ``status``
    says why (`FAILURES`) and ``failed_at`` is that step (-1 while the run is good).
    """

    g1: jax.Array
    g2: jax.Array
    w: jax.Array

    def advance(self, state, first_step, n_steps):
        rule = (self.g1, self.g2, self.w)

        def body(k, carry):
            s, kappa, status, failed_at, params = carry
            new, kappa_new, code = one_step(s, kappa, params, rule)
            fails = (status == 0) & (code != 0)
            status = jnp.where(fails, code, status)
            failed_at = jnp.where(fails, k + 1, failed_at)
            alive = status == 0
            return (jnp.where(alive, new, jnp.nan), jnp.where(alive, kappa_new, kappa), status,
                    failed_at, params)

        return jax.lax.fori_loop(first_step, first_step + n_steps, body, state)

    def observe(self, state):
        s, _, status, failed_at, _ = state
        return {"alpha_left": s[0], "beta_left": s[1], "alpha_right": s[2], "beta_right": s[3],
                "status": status, "failed_at": failed_at}


def initial_map_state(initial_state, params):
    """The driver state of `ProxLinearMap` at t = 0 (params (4,) or a batch (G, 4)), built in
    numpy (no eager JAX operation, so nothing to compile)."""
    params = np.asarray(params, dtype=np.float64)
    s0 = np.broadcast_to(np.asarray(initial_state, dtype=np.float64), params.shape)
    n1 = s0[..., 0] ** 2 + s0[..., 1] ** 2
    n2 = s0[..., 2] ** 2 + s0[..., 3] ** 2
    inv_eta = 1.0 / params[..., 2]
    kappa = np.stack([1.0 / (params[..., 0] * (n2 + inv_eta)),
                      1.0 / (params[..., 1] * (n1 + inv_eta))], axis=-1)  # `initial_kappa`
    shape = params.shape[:-1]
    return (jnp.asarray(s0), jnp.asarray(kappa), jnp.asarray(np.zeros(shape, np.int32)),
            jnp.asarray(np.full(shape, -1, np.int32)), jnp.asarray(params))


def run_map(initial_state, params, steps, rule, *, progress: bool = False):
    """Iterate the map and record it at the whole ``steps``.

    ``params`` is (4,) for one setting or (G, 4) for a batch (vmapped). Returns
    ``(records, final_state)``: name -> numpy (T,) or (G, T) for alpha_left, beta_left,
    alpha_right, beta_right, status and failed_at. No progress bar unless ``progress``.
    """
    params = np.asarray(params, dtype=np.float64)
    batched = params.ndim == 2
    dynamics = ProxLinearMap(*rule)
    return run_segments(dynamics, initial_map_state(initial_state, params), np.asarray(steps),
                        batched=batched, progress=progress,
                        work_per_step=rule[0].shape[0] * 100 * (params.shape[0] if batched else 1),
                        description="prox-linear map")


def states_of(records) -> np.ndarray:
    """The recorded states as one array (..., T, 4)."""
    return np.stack([np.asarray(records[k], dtype=np.float64)
                     for k in ("alpha_left", "beta_left", "alpha_right", "beta_right")], axis=-1)
