r"""Deterministic trajectory predictions for mini-batched prox-linear rank-one sensing.

Spec ``proxlinear.md`` §3 (derived by Gaussian conditioning and a blockwise Gordon
scalarisation; Lou, Verchand, Pananjady, arXiv:2402.01599 predict the same quantity).

State s = (alpha1, beta1, alpha2, beta2) (spec §3.1). Two deterministic equivalents:

* ``"map"``: the one-step map F(s; delta1, delta2, eta, sigma) of spec §3.2, for any batch
  size. With x = alpha1 p + beta1 q, z = alpha2 s + beta2 omega, r = p s + eps - x z,
  a = (z p, z q, x s, x omega) and W = 1 / (1 + kappa1 z^2 + kappa2 x^2):

      (F1)  1/(delta1 kappa1) = E[W z^2] + 1/eta
      (F2)  1/(delta2 kappa2) = E[W x^2] + 1/eta
      (F5)  (E[W a a^T] + I/eta) c = E[W r a]
      (F3)  T1/(delta1 kappa1^2) = E[W^2 z^2 (res^2 + T1 z^2 + T2 x^2)]
      (F4)  T2/(delta2 kappa2^2) = E[W^2 x^2 (res^2 + T1 z^2 + T2 x^2)],  res = r - a^T c,

  then alpha1' = alpha1 + c1, beta1' = sqrt((beta1 + c2)^2 + T1) and likewise on the right,
  with delta_j = m / d_j (this reproduces the spec §6 reference values to 4 digits; the
  variant m / (d_j - 2), counting only the bulk dimensions, fits the Monte Carlo worse at
  d = 16: one-step E^2 0.4637 vs 0.4784 with m/d, MC 0.4816 +- 0.0012).

* ``"ode"``: the small-batch / streaming limit (spec §3.3, m << d), per step
  (m samples, lambda = m/eta, W = lambda / (lambda + d1 z^2 + d2 x^2)):

      d alpha1/dt    = eta E[W r z p]
      d(beta1^2)/dt  = 2 beta1 eta E[W r z q] + (eta^2 d1 / m) E[W^2 z^2 r^2]

  and the same on the right with (x, d2, s, omega). Integrated with diffrax (Tsit5).

Gaussian expectations: everything depends on (p, q) only through g1 = x/||mu_t|| and an
independent in-plane coordinate h1 (likewise g2, h2). Every integrand is a polynomial of
degree <= 2 in h1 and in h2, so the h-expectations are done exactly by writing each
quantity in the orthonormal basis psi = (1, h2, h1, h1 h2) (E[psi psi^T] = I). The (g1, g2)
expectations use the polar rule of spec §3.2: g = R (cos theta, sin theta), R^2 = 2 e^u,
trapezoid in u on [-22, 3.6] and equally spaced angles. Plain Gauss-Hermite in (g1, g2)
misses the peak of W at g = 0 when kappa is large (eta/delta >~ 10); see
`gauss_hermite_rule`, kept for the test that shows it.

Also here: `noise_floor` (the map's fixed point), `local_rate`, their vmapped grid
versions (`map_grid`, `floor_grid`, the registered `hdsgd.autotune.predict_grid`), and
`tune` (spec §5: (m, eta) from the map alone).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .. import __version__
from ..api import check_horizon, output_steps, predict, step_grid
from ..curve import Curve
from ..setups import _validate as v
from ..setups.proxlinear import ProxLinearSensing

METHODS = ("auto", "map", "ode")
OBSERVABLES = ("error_sq", "alpha_left", "beta_left", "alpha_right", "beta_right")
#: the prediction is marked diverged past this multiple of (1 + initial error).
DIVERGENCE_FACTOR = 1e6


# ----------------------------------------------------------------- quadrature
def polar_rule(n_radial: int = 172, n_angles: int = 48, u_min: float = -22.0,
               u_max: float = 3.6, quadrant: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes (g1, g2) and weights of the polar rule for E[f(g1, g2)], g ~ N(0, I_2).

    g = R (cos theta, sin theta) with R^2/2 = v ~ Exp(1); v = e^u, trapezoid in u on
    [u_min, u_max] (default step 0.15 as in spec §3.2) and ``n_angles`` equally spaced
    (midpoint) angles on the circle. The weights are normalised to sum to one.

    With ``quadrant=True`` only the angles in (0, pi/2) are kept (n_angles/4 of them, each
    with four times the weight). This is exact for the map: after the exact h-expectations
    every integrand is even in g1 and in g2 separately ((g1, h1) -> (-g1, -h1) flips p, q and
    x together), and the midpoint angles are symmetric under both reflections.
    """
    u = np.linspace(u_min, u_max, n_radial)
    h = u[1] - u[0]
    wu = h * np.exp(u - np.exp(u))
    wu[[0, -1]] *= 0.5
    theta = (np.arange(n_angles) + 0.5) * (2.0 * np.pi / n_angles)
    if quadrant:
        if n_angles % 4:
            raise ValueError(f"n_angles={n_angles} is invalid with quadrant=True; allowed: a "
                             "multiple of 4")
        theta = theta[: n_angles // 4]
    radius = np.sqrt(2.0 * np.exp(u))
    g1 = (radius[:, None] * np.cos(theta)[None, :]).ravel()
    g2 = (radius[:, None] * np.sin(theta)[None, :]).ravel()
    w = np.repeat(wu / len(theta), len(theta))
    return g1, g2, w / w.sum()


def gauss_hermite_rule(n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite nodes and weights in (g1, g2) (``numpy.polynomial.hermite_e``).

    Accurate for smooth integrands, but not when W = 1/(1 + kappa1 z^2 + kappa2 x^2) is
    sharply peaked at the origin (large eta/delta): kept to show that (tests), not used.
    """
    x, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    g1, g2 = np.meshgrid(x, x, indexing="ij")
    return g1.ravel(), g2.ravel(), np.outer(w, w).ravel()


# ----------------------------------------------------------------- per-node quantities
def _node_terms(state, g1, g2):
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
    """The one-step map F of spec §3.2: (s_t, kappa warm start) -> (s_{t+1}, kappa, ok).

    Args:
        state: (alpha1, beta1, alpha2, beta2), float64.
        kappa: (kappa1, kappa2) to warm-start the (F1, F2) solve.
        params: (delta1, delta2, eta, noise_var) with delta_j = m / d_j.
        rule: (g1, g2, w) nodes and weights for the (g1, g2) expectations (`polar_rule`).
    """
    delta1, delta2, eta, noise_var = params
    g1, g2, w = rule
    x, z, A, R = _node_terms(state, g1, g2)
    x2, z2 = x * x, z * z
    kappa, ok = solve_kappa(x2, z2, w, delta1, delta2, eta, kappa)
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
    ok = ok & jnp.all(jnp.isfinite(new)) & (jnp.linalg.det(lhs) > 0)
    return new, kappa, ok


def error_sq(state):
    """E^2 of a state (array, last axis = (alpha1, beta1, alpha2, beta2)), without cancellation."""
    a1, b1, a2, b2 = state[..., 0], state[..., 1], state[..., 2], state[..., 3]
    return (a1 * a2 - 1.0) ** 2 + a1**2 * b2**2 + b1**2 * a2**2 + b1**2 * b2**2


def initial_kappa(state, params):
    """A starting point for the (F1, F2) solve: the W = 1 values 1/(delta (||.||^2 + 1/eta))."""
    delta1, delta2, eta, _ = params
    n1 = state[0] ** 2 + state[1] ** 2
    n2 = state[2] ** 2 + state[3] ** 2
    return jnp.stack([1.0 / (delta1 * (n2 + 1.0 / eta)), 1.0 / (delta2 * (n1 + 1.0 / eta))])


def map_trajectory(state0, params, n_steps: int, rule):
    """States s_0..s_n of the map (shape (n+1, 4)) and a per-step ok flag (shape (n+1,)).

    Pure JAX (``lax.scan``); vmap over ``params`` for hyperparameter grids. A step that
    fails (non-finite, or the (F3, F4) system loses positivity) freezes the state at NaN.
    """
    state0 = jnp.asarray(state0, dtype=jnp.float64)

    def step(carry, _):
        s, k, alive = carry
        new, k_new, ok = one_step(s, k, params, rule)
        alive = alive & ok
        new = jnp.where(alive, new, jnp.nan)
        k_new = jnp.where(alive, k_new, k)
        return (new, k_new, alive), (new, alive)

    carry0 = (state0, initial_kappa(state0, params), jnp.asarray(True))
    _, (states, alive) = jax.lax.scan(step, carry0, None, length=n_steps)
    states = jnp.concatenate([state0[None], states])
    alive = jnp.concatenate([jnp.ones((1,), bool), alive])
    return states, alive


def map_params(setup: ProxLinearSensing, *, batch_size=None, step_size=None, noise_std=None):
    """(delta1, delta2, eta, sigma^2) of a Setup (optionally overriding m, eta, sigma)."""
    m = setup.batch_size if batch_size is None else batch_size
    eta = setup.step_size if step_size is None else step_size
    sigma = setup.noise_std if noise_std is None else noise_std
    return (m / float(setup.dim_left), m / float(setup.dim_right), eta, sigma**2)


# ----------------------------------------------------------------- the small-batch ODE
def _ode_field(t, y, args):
    """Vector field in steps of the state y = (alpha1, beta1^2, alpha2, beta2^2)."""
    rule, m, d1, d2, eta, noise_var = args
    g1, g2, w = rule
    state = jnp.stack([y[0], jnp.sqrt(jnp.maximum(y[1], 0.0)), y[2],
                       jnp.sqrt(jnp.maximum(y[3], 0.0))])
    x, z, A, R = _node_terms(state, g1, g2)
    W = 1.0 / (1.0 + (eta / m) * (d1 * z * z + d2 * x * x))
    ww = w * W
    drift = jnp.einsum("n,nkj,nj->k", ww, A, R)  # E[W r a] = E[W r (zp, zq, xs, x omega)]
    r2 = jnp.sum(R * R, axis=-1) + noise_var
    w2 = w * W * W
    jump1 = jnp.sum(w2 * z * z * r2)
    jump2 = jnp.sum(w2 * x * x * r2)
    return jnp.stack([
        eta * drift[0],
        2.0 * state[1] * eta * drift[1] + eta**2 * d1 / m * jump1,
        eta * drift[2],
        2.0 * state[3] * eta * drift[3] + eta**2 * d2 / m * jump2,
    ])


def ode_trajectory(setup: ProxLinearSensing, t_out, rule, *, rtol: float = 1e-7,
                   atol: float = 1e-12, max_steps: int | None = None):
    """States (len(t_out), 4) of the small-batch ODE at times ``t_out`` (steps), and ok flag."""
    t_out = jnp.asarray(t_out, dtype=jnp.float64)
    s0 = setup.initial_state
    y0 = jnp.array([s0[0], s0[1] ** 2, s0[2], s0[3] ** 2])
    args = (rule, *(jnp.asarray(a, dtype=jnp.float64) for a in (
        setup.batch_size, setup.dim_left, setup.dim_right, setup.step_size, setup.noise_std**2)))
    if max_steps is None:
        # The fastest rate is O(m/d) per step, so the number of solver steps grows like the
        # horizon in samples/d; generous cap.
        span = float(t_out[-1]) * setup.batch_size / min(setup.dim_left, setup.dim_right)
        max_steps = int(min(1_000_000, 4096 + 64 * span))
    max_steps = 1 << int(np.ceil(np.log2(max_steps)))  # share compilations
    e0 = error_sq(jnp.asarray(s0))
    return _ode_solve(t_out, y0, args, e0, rtol, atol, max_steps)


@eqx.filter_jit
def _ode_solve(t_out, y0, args, e0, rtol, atol, max_steps):
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_ode_field), diffrax.Tsit5(), t0=0.0, t1=t_out[-1], dt0=None, y0=y0,
        args=args, saveat=diffrax.SaveAt(ts=t_out),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps, throw=False,
        event=diffrax.Event(lambda t, y, a, **kw: jnp.abs(y[0]) + y[1] + jnp.abs(y[2]) + y[3]
                            > DIVERGENCE_FACTOR * (1.0 + e0)),
    )
    ys = sol.ys
    states = jnp.stack([ys[:, 0], jnp.sqrt(jnp.maximum(ys[:, 1], 0.0)), ys[:, 2],
                        jnp.sqrt(jnp.maximum(ys[:, 3], 0.0))], axis=1)
    return states, sol.result == diffrax.RESULTS.successful


# ----------------------------------------------------------------- floor and rate
def _rule_arrays(rule=None):
    g1, g2, w = polar_rule() if rule is None else rule
    return jnp.asarray(g1), jnp.asarray(g2), jnp.asarray(w)


def local_rate(setup: ProxLinearSensing, *, rule=None, eps: float = 1e-8) -> float:
    r"""The local linear rate of the map at the truth (noiseless linearisation), per step.

    Near the truth E^2 ~ (e1 + e2)^2 + beta1^2 + beta2^2 (e_j = alpha_j - 1). The betas'
    squares evolve linearly, beta'^2 = M beta^2, and e1 + e2 linearly with factor q_par;
    the error contracts per step by q = max(spectral radius of M, q_par^2). Returns
    -log q, so that E_t^2 - floor ~ exp(-rate t). Multiply by d/m for the rate per d samples
    of spec §4 (rho(eta_bar) there; checked against its table in the tests).
    """
    rule = _rule_arrays(rule)
    params = map_params(setup, noise_std=0.0)
    return float(_local_rate_jit(jnp.asarray(params), rule, eps))


def _local_rate(params, rule, eps):
    b = jnp.sqrt(eps)

    def step(s):
        s = jnp.asarray(s, dtype=jnp.float64)
        new, _, _ = one_step(s, initial_kappa(s, params), params, rule)
        return new

    one, zero = jnp.ones_like(b), jnp.zeros_like(b)
    n1 = step(jnp.stack([one, b, one, zero]))
    n2 = step(jnp.stack([one, zero, one, b]))
    M = jnp.array([[n1[1] ** 2, n2[1] ** 2], [n1[3] ** 2, n2[3] ** 2]]) / eps
    # spectral radius of a non-negative 2x2 matrix
    tr, det = M[0, 0] + M[1, 1], M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
    q_perp = 0.5 * (tr + jnp.sqrt(jnp.maximum(tr**2 - 4.0 * det, 0.0)))
    n3 = step(jnp.stack([one + b, zero, one, zero]))
    q_par = jnp.abs(n3[0] - 1.0 + n3[2] - 1.0) / b
    return -jnp.log(jnp.maximum(q_perp, q_par**2))


_local_rate_jit = jax.jit(_local_rate)


def _map_squared(y, params, rule):
    """F in the coordinates y = (alpha1, beta1^2, alpha2, beta2^2) (smooth at beta = 0)."""
    s = jnp.stack([y[0], jnp.sqrt(jnp.maximum(y[1], 0.0)), y[2], jnp.sqrt(jnp.maximum(y[3], 0.0))])
    new, _, ok = one_step(s, initial_kappa(s, params), params, rule)
    return jnp.stack([new[0], new[1] ** 2, new[2], new[3] ** 2]), ok


def fixed_point(params, start, rule, *, iterations: int = 30):
    """The fixed point y* = F(y*) of the map in y = (alpha1, beta1^2, alpha2, beta2^2).

    Newton's method from the state ``start`` = (alpha1, beta1, alpha2, beta2) (best: a state
    the map has already brought near its limit), with the Jacobian by forward-mode autodiff
    through the map. The step is a least-squares solve, because without noise the fixed
    points form the one-parameter family (c mu*, nu*/c) (spec §2), and it is capped at half
    the size of y. The iterate with the smallest residual is kept. Pure JAX, vmappable.
    Returns (y*, residual max |F(y*) - y*|).
    """
    start = jnp.asarray(start, dtype=jnp.float64)
    y0 = jnp.stack([start[0], start[1] ** 2 + 1e-30, start[2], start[3] ** 2 + 1e-30])

    def residual(y):
        return _map_squared(y, params, rule)[0] - y

    def body(_, carry):
        y, best, best_r = carry
        g = residual(y)
        r = jnp.where(jnp.all(jnp.isfinite(g)), jnp.max(jnp.abs(g)), jnp.inf)
        best, best_r = jnp.where(r < best_r, y, best), jnp.minimum(r, best_r)
        jac = jax.jacfwd(residual)(y)
        step = jnp.linalg.lstsq(jac, g)[0]
        size = jnp.max(jnp.abs(step))
        step = step * jnp.minimum(1.0, 0.5 * jnp.max(jnp.abs(y)) / jnp.maximum(size, 1e-300))
        new = y - step
        new = new.at[1].set(jnp.maximum(new[1], 1e-30)).at[3].set(jnp.maximum(new[3], 1e-30))
        new = jnp.where(jnp.all(jnp.isfinite(new)), new, best)
        return new, best, best_r

    y, best, best_r = jax.lax.fori_loop(0, iterations, body, (y0, y0, jnp.inf))
    g = residual(y)
    r = jnp.where(jnp.all(jnp.isfinite(g)), jnp.max(jnp.abs(g)), jnp.inf)
    y = jnp.where(r <= best_r, y, best)
    return y, jnp.minimum(r, best_r)




def floor_from_fixed_point(y, residual):
    """E^2 at a fixed point y = (alpha1, beta1^2, alpha2, beta2^2); inf if Newton failed."""
    s = jnp.stack([y[..., 0], jnp.sqrt(y[..., 1]), y[..., 2], jnp.sqrt(y[..., 3])], axis=-1)
    e = error_sq(s)
    good = jnp.isfinite(e) & (residual < 1e-10 * (1.0 + jnp.abs(e)))
    return jnp.where(good, e, jnp.inf)


def noise_floor(setup: ProxLinearSensing, *, rule=None, burn_in: int | None = None,
                polish_rule=None) -> float:
    r"""E_inf^2: the error at the fixed point of the map (the statistical error floor).

    The map is first run from the Setup's start for ``burn_in`` steps (default
    min(5000, max(50, 5/rate))) with ``rule``, then `fixed_point` polishes the state to the
    fixed point with ``polish_rule`` (default `GRID_RULE`, equal to the default rule to ~1e-8).
    The floor depends on the start through the slowly drifting imbalance
    ||mu||^2 - ||nu||^2 (spec §2); this is the one the trajectory reaches. Zero without
    noise; inf when no fixed point was found. In the small-batch limit it is
    sigma^2 eta_bar E[u/(1+u)^2] / rho (spec §4; checked in the tests).
    """
    if setup.noise_std == 0.0:
        return 0.0
    rule = _rule_arrays(rule)
    if burn_in is None:
        rate = local_rate(setup, rule=rule)
        burn_in = int(min(5000, max(50, math.ceil(5.0 / max(rate, 1e-9)))))
    states, ok = _map_states(setup, int(burn_in), rule)
    if not ok[-1]:
        return math.inf
    return float(floor_grid(setup, [setup.batch_size], [setup.step_size], [setup.noise_std],
                            starts=states[-1:], rule=polish_rule)[0])


# ----------------------------------------------------------------- predict
_CHUNK = 32


@jax.jit
def _map_chunk(state, kappa, alive, params, rule):
    """``_CHUNK`` steps of the map from (state, kappa); one compilation serves every horizon."""

    def step(carry, _):
        s, k, live = carry
        new, k_new, ok = one_step(s, k, params, rule)
        live = live & ok
        new = jnp.where(live, new, jnp.nan)
        return (new, jnp.where(live, k_new, k), live), (new, live)

    return jax.lax.scan(step, (state, kappa, alive), None, length=_CHUNK)


def _map_states(setup, n_steps: int, rule):
    """States s_0..s_n (numpy, (n+1, 4)) and ok flags of the map, in jitted chunks."""
    params = jnp.asarray(map_params(setup))
    s = jnp.asarray(setup.initial_state, dtype=jnp.float64)
    carry = (s, initial_kappa(s, params), jnp.asarray(True))
    states, alive = [np.asarray(s)[None]], [np.ones(1, bool)]
    for _ in range(-(-n_steps // _CHUNK)):
        carry, (st, ok) = _map_chunk(*carry, params, rule)
        states.append(np.asarray(st))
        alive.append(np.asarray(ok))
    return np.concatenate(states)[: n_steps + 1], np.concatenate(alive)[: n_steps + 1]


def default_method(setup: ProxLinearSensing) -> str:
    """``"ode"`` when m <= d/100 (d = min(d1, d2)) and the ODE is faster, else ``"map"``."""
    return "ode" if setup.batch_size * 100 <= min(setup.dim_left, setup.dim_right) else "map"


def _finish(setup, steps, states, ok, method, extra) -> Curve:
    states = np.asarray(states, dtype=np.float64)
    e2 = error_sq(states)
    bad = ~np.asarray(ok, dtype=bool) | ~np.all(np.isfinite(states), axis=1) | ~np.isfinite(e2)
    bad |= e2 > DIVERGENCE_FACTOR * (1.0 + setup.initial_error_sq)
    diverged = np.maximum.accumulate(bad)
    obs = {"error_sq": e2}
    for i, name in enumerate(OBSERVABLES[1:]):
        obs[name] = states[:, i]
    obs = {k: np.where(diverged, np.inf, v) for k, v in obs.items()}
    if diverged.any():
        extra["warning"] = (f"the prediction diverged or failed at step {int(steps[diverged][0])} "
                            f"(step_size={setup.step_size}, batch_size={setup.batch_size})")
    return Curve(time=steps.astype(np.float64), observables=obs, time_unit="step",
                 samples=steps * setup.batch_size, seeds=None,
                 diverged=np.broadcast_to(diverged, e2.shape).copy(),
                 meta={**setup.fields(), "method": method, "version": __version__, **extra})


def _steps(setup, horizon, times):
    return output_steps(check_horizon(horizon), times)


@predict.register
def _predict(setup: ProxLinearSensing, horizon: float, *, times=None, method: str | None = None,
             rule=None, rtol: float = 1e-7, **options) -> Curve:
    """Predict the error and the state of prox-linear rank-one sensing.

    Args:
        setup: a `ProxLinearSensing`.
        horizon: final iteration (steps).
        times: output iterations (rounded to whole steps); default: every step up to the
            first log-spaced ones, then log-spaced (about 100 points).
        method: ``"map"`` (spec §3.2, any batch size), ``"ode"`` (spec §3.3, m << d), or
            ``"auto"``/None: `default_method` (the ODE when m <= d/100).
        rule: (g1, g2, w) quadrature for the (g1, g2) expectations; default `polar_rule()`.
        rtol: ``"ode"`` only: the solver's relative tolerance.
    """
    if options:
        raise TypeError(f"unknown option(s) for ProxLinearSensing: {sorted(options)}")
    method = "auto" if method is None else method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    if method == "auto":
        method = default_method(setup)
    steps = _steps(setup, horizon, times)
    rule = _rule_arrays(rule)
    extra = {}
    if method == "map":
        states, ok = _map_states(setup, int(steps.max()), rule)
        states, ok = states[steps], ok[steps]
    else:
        states, solver_ok = ode_trajectory(setup, steps.astype(np.float64), rule, rtol=rtol)
        states = np.asarray(states)
        ok = np.all(np.isfinite(states), axis=1)
        extra["solver_ok"] = bool(solver_ok)
    return _finish(setup, steps, states, ok, method, extra)


# ----------------------------------------------------------------- hyperparameter grids
#: the polar rule used for grids: 86 radial x 24 angles (6 per quadrant); it agrees with the
#: default rule to ~1e-8 relative on the map (tests), at a quarter of the cost.
GRID_RULE = dict(n_radial=86, n_angles=24)
_GRID_FIELDS = ("batch_size", "step_size", "noise_std")
_GRID_BATCH = 32
_FLOOR_BATCH = 16


@jax.jit
def _grid_chunk(states, kappas, alive, params, rule):
    """``_CHUNK`` map steps for a batch of settings (vmapped over the leading axis)."""
    return jax.vmap(_map_chunk, in_axes=(0, 0, 0, 0, None))(states, kappas, alive, params, rule)


def map_grid(setup: ProxLinearSensing, batch_sizes, step_sizes, noise_stds, n_steps: int,
             *, rule=None) -> tuple[np.ndarray, np.ndarray]:
    """Map trajectories for G settings (m_g, eta_g, sigma_g), vmapped: states (G, n+1, 4), ok.

    Settings go through the map in batches of up to 32 (padded to a power of two), ``_CHUNK`` steps per jitted call,
    so that one compilation serves every grid and horizon.
    """
    rule = _rule_arrays(polar_rule(**GRID_RULE) if rule is None else rule)
    m = np.asarray(batch_sizes, dtype=np.float64)
    eta = np.asarray(step_sizes, dtype=np.float64)
    sig = np.asarray(noise_stds, dtype=np.float64)
    params = np.stack([m / setup.dim_left, m / setup.dim_right, eta, sig**2], axis=1)
    G = params.shape[0]
    batch = min(_GRID_BATCH, 1 << int(np.ceil(np.log2(G))))  # powers of two share compilations
    pad = (-G) % batch
    params = np.concatenate([params, np.repeat(params[-1:], pad, axis=0)])
    s0 = jnp.asarray(setup.initial_state, dtype=jnp.float64)
    out_s, out_ok = [], []
    for b in range(0, G + pad, batch):
        p = jnp.asarray(params[b:b + batch])
        states = jnp.broadcast_to(s0, (batch, 4))
        kappas = jax.vmap(initial_kappa, in_axes=(None, 0))(s0, p)
        carry = (states, kappas, jnp.ones(batch, bool))
        chunks_s, chunks_ok = [np.broadcast_to(np.asarray(s0), (batch, 1, 4))], [
            np.ones((batch, 1), bool)]
        for _ in range(-(-n_steps // _CHUNK)):
            carry, (st, ok) = _grid_chunk(*carry, p, rule)
            chunks_s.append(np.asarray(st))
            chunks_ok.append(np.asarray(ok))
        out_s.append(np.concatenate(chunks_s, axis=1)[:, : n_steps + 1])
        out_ok.append(np.concatenate(chunks_ok, axis=1)[:, : n_steps + 1])
    return np.concatenate(out_s)[:G], np.concatenate(out_ok)[:G]


def floor_grid(setup: ProxLinearSensing, batch_sizes, step_sizes, noise_stds, *, starts=None,
               burn_in: int = 200, rule=None) -> np.ndarray:
    """`noise_floor` for G settings at once: vmapped Newton on the map's fixed point, from
    ``starts`` (G, 4) (e.g. the ends of predicted trajectories) or from ``burn_in`` map steps."""
    rule_arr = _rule_arrays(polar_rule(**GRID_RULE) if rule is None else rule)
    m = np.asarray(batch_sizes, dtype=np.float64)
    sig = np.asarray(noise_stds, dtype=np.float64)
    if starts is None:
        states, _ = map_grid(setup, m, step_sizes, sig, burn_in, rule=rule)
        starts = states[:, -1]
    params = np.stack([m / setup.dim_left, m / setup.dim_right,
                       np.asarray(step_sizes, dtype=np.float64), sig**2], axis=1)
    starts = np.asarray(starts, dtype=np.float64).reshape(-1, 4)
    G = params.shape[0]
    pad = (-G) % _FLOOR_BATCH  # one compilation for every grid
    params = np.concatenate([params, np.repeat(params[-1:], pad, axis=0)])
    starts = np.concatenate([starts, np.repeat(starts[-1:], pad, axis=0)])
    floors = []
    for b in range(0, G + pad, _FLOOR_BATCH):
        y, res = _fixed_point_grid(jnp.asarray(params[b:b + _FLOOR_BATCH]),
                                   jnp.asarray(starts[b:b + _FLOOR_BATCH]), rule_arr)
        floors.append(np.asarray(floor_from_fixed_point(y, res)))
    return np.where(sig == 0.0, 0.0, np.concatenate(floors)[:G])


_fixed_point_grid = jax.jit(jax.vmap(fixed_point, in_axes=(0, 0, None)))


def _register_grid():
    from ..autotune import grid_setups, predict_grid

    @predict_grid.register
    def _predict_grid(setup: ProxLinearSensing, grid, horizon: float, *, executor=None,
                      times=None, method: str | None = None, rule=None, **options):
        """Every (batch_size, step_size, noise_std) setting of ``grid`` in one vmapped map.

        Grids over other fields, or ``method="ode"``, fall back to one `predict` per point.
        Uses `GRID_RULE` unless ``rule`` is given. Invalid settings give None.
        """
        if set(grid) - set(_GRID_FIELDS) or method == "ode" or options:
            return predict_grid.dispatch(object)(setup, grid, horizon, executor=executor,
                                                 times=times, method=method, rule=rule,
                                                 **options)
        if method not in (None, "auto", "map"):
            raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
        setups = grid_setups(setup, grid)
        valid = [s for s in setups if s is not None]
        if not valid:
            return setups
        steps = _steps(setup, horizon, times)
        states, ok = map_grid(setup, [s.batch_size for s in valid], [s.step_size for s in valid],
                              [s.noise_std for s in valid], int(steps.max()), rule=rule)
        curves = iter(_finish(s, steps, st[steps], k[steps], "map", {"rule": "grid"})
                      for s, st, k in zip(valid, states, ok))
        return [None if s is None else next(curves) for s in setups]

    return _predict_grid


_register_grid()


# ----------------------------------------------------------------- tuning from the map alone
class ProxLinearTuning(eqx.Module):
    """The result of `tune`: the general `hdsgd.Tuned` plus the floor and rate.

    Attributes:
        tuned: `hdsgd.autotune.Tuned` (chosen setup, predicted score and curve, table).
        floor: the predicted noise floor E_inf^2 at the chosen (m, eta).
        rate: the local rate per step at the chosen point (`local_rate`).
        batch_sizes, step_sizes, eta_bars, scores, floors: the grid, flattened (G,).
    """

    tuned: Any
    floor: float
    rate: float
    batch_sizes: np.ndarray
    step_sizes: np.ndarray
    eta_bars: np.ndarray
    scores: np.ndarray
    floors: np.ndarray

    @property
    def setup(self) -> ProxLinearSensing:
        return self.tuned.setup

    def verify(self, key, seeds: int = 16, **simulate_options):
        """Monte Carlo of the chosen setting, scored with the same objective (`Tuned.verify`)."""
        return self.tuned.verify(key, seeds, **simulate_options)

    def report(self) -> str:
        s = self.tuned.setup
        return (f"chosen batch_size={s.batch_size} step_size={s.step_size:.4g} "
                f"(eta_bar={s.eta_bar:.4g}): {self.tuned.objective.description} = "
                f"{self.tuned.objective_value:.6g} (predicted); noise floor E_inf^2 = "
                f"{self.floor:.4g}; local rate {self.rate:.4g} per step "
                f"({self.rate * min(s.dim_left, s.dim_right) / s.batch_size:.4g} per d samples)")


def tune(setup: ProxLinearSensing, *, batch_sizes, objective, step_sizes=None, eta_bars=None,
         max_samples: float | None = None, horizon: int | None = None, rule=None
         ) -> ProxLinearTuning:
    r"""Choose (m, eta) from the map alone (spec §5), over a vmapped grid.

    The grid is batch_sizes x step_sizes, or batch_sizes x eta_bars with
    eta = eta_bar m / sqrt(d1 d2) (eta_bar = eta d / m when d1 = d2, the small-batch
    coordinate in which the optimum sits still, spec §3.3). Each batch size m is run for
    ceil(max_samples / m) steps (so every setting gets the same sample budget) or for
    ``horizon`` steps; all step sizes of one m go through one vmapped map.

    Args:
        setup: the Setup (dimensions, noise, start are kept).
        batch_sizes: candidate m.
        objective: `hdsgd.samples_to_target(eps, "error_sq")`, `hdsgd.steps_to_target`, or
            `hdsgd.value_at_budget(samples=..., observable="error_sq")`.
        step_sizes / eta_bars: candidate eta, or eta_bar (exactly one).
        max_samples: the sample budget per setting (default: the objective's budget, else
            required unless ``horizon`` is given).
        horizon: steps per setting, instead of ``max_samples``.
        rule: quadrature for the grid (default `GRID_RULE`).

    Returns:
        `ProxLinearTuning`; its ``tuned.verify(key, seeds)`` checks the choice by Monte Carlo.
    """
    from ..autotune import Objective, Tuned

    if not isinstance(objective, Objective):
        raise ValueError("objective must come from hdsgd.samples_to_target, steps_to_target or "
                         "value_at_budget")
    if (step_sizes is None) == (eta_bars is None):
        raise ValueError("give exactly one of step_sizes and eta_bars")
    ms = np.array([v.integer("batch_sizes", b, low=1) for b in np.atleast_1d(batch_sizes)])
    rel = eta_bars is not None
    axis = np.atleast_1d(np.asarray(eta_bars if rel else step_sizes, dtype=np.float64))
    name = "eta_bars" if rel else "step_sizes"
    if axis.size == 0 or not np.all(np.isfinite(axis) & (axis > 0)):
        raise ValueError(f"{name}={axis!r} is invalid; allowed: positive finite values")
    if max_samples is None and objective.budget is not None:
        max_samples = objective.budget
    if max_samples is None and horizon is None:
        raise ValueError("give max_samples (a sample budget per setting) or horizon (steps)")
    scale = np.sqrt(setup.dim_left * setup.dim_right)
    curves, all_m, all_eta, ends = [], [], [], []
    for m in ms:
        etas = axis * m / scale if rel else axis
        n = int(horizon) if horizon is not None else int(np.ceil(float(max_samples) / m))
        base = dataclasses.replace(setup, batch_size=int(m))
        steps = step_grid(max(n, 1), points=200)
        states, ok = map_grid(base, np.full(len(etas), m), etas,
                              np.full(len(etas), setup.noise_std), int(steps.max()), rule=rule)
        for eta, st, k in zip(etas, states, ok):
            s = dataclasses.replace(base, step_size=float(eta))
            curves.append(_finish(s, steps, st[steps], k[steps], "map", {"rule": "grid"}))
            ends.append(np.where(np.isfinite(st[-1]), st[-1], np.asarray(setup.initial_state)))
            all_m.append(int(m))
            all_eta.append(float(eta))
    scores = np.array([objective(c) for c in curves])
    best = int(np.argmin(scores))
    floors = floor_grid(setup, all_m, all_eta, np.full(len(all_m), setup.noise_std),
                        starts=np.array(ends), rule=rule)
    eta_bars_all = np.array(all_eta) * scale / np.array(all_m)
    table = [{"batch_size": m_, "step_size": e_, "eta_bar": eb, "score": float(sc),
              "floor": float(f)} for m_, e_, eb, sc, f in
             zip(all_m, all_eta, eta_bars_all, scores, floors)]
    chosen = curves[best]
    chosen_setup = dataclasses.replace(setup, batch_size=all_m[best], step_size=all_eta[best])
    tuned = Tuned(setup=chosen_setup, objective_value=float(scores[best]), curve=chosen,
                  table=table, objective=objective, horizon=float(chosen.time[-1]),
                  options={"method": "map"})
    return ProxLinearTuning(
        tuned=tuned, floor=float(floors[best]), rate=local_rate(chosen_setup),
        batch_sizes=np.array(all_m), step_sizes=np.array(all_eta), eta_bars=eta_bars_all,
        scores=scores, floors=floors)
