r"""Deterministic equivalents of label-noise SGD with momentum near a manifold of minimisers.

Spec ``momentum.md`` (Cowsik, Can & Glorioso, arXiv:2210.16400; Li, Wang & Arora 2022 for
beta = 0). Notation: eta = step size, beta = momentum, delta^2 = label_noise^2 / B, lambda(s)
= tr H on the manifold, one normal mode for the two-parameter model (lambda = g = 2 cosh 2s,
lambda' = g' = 4 sinh 2s, g the metric ||d phi/ds||^2). Time unit: steps.

Pieces (each a small pure function):

* `stationary_variance` (§2): S(lambda) = eta delta^2 (1+beta) / [(1-beta)(2(1+beta) - eta lambda)],
  the exact stationary variance of one normal mode of the linear recursion.
* `timescales` and `regime` (§2): tau_1 = max{(1-beta)/(eta lambda_min), 2/(1-beta)},
  tau_2 = (1-beta)^2 / (eta^2 delta^2 kappa), kappa = d^2 tr H / d l^2 at the flattest point.
* ``method="flow"`` (§3a): the first-order Riemannian flow
  dw/dk = -(eta^2 delta^2 / (4 (1-beta)^2)) grad_Gamma tr H, integrated with diffrax in the
  ambient coordinates with a Gauss-Newton retraction onto the manifold; its closed form on
  the two-parameter model is `flow_closed_form`: sinh 2s_k = sinh 2s_0 exp(-eta^2 delta^2 k / (1-beta)^2).
* ``method="recursion"`` (§3c, default): the uniform deterministic recursion, per step
  (a = eta lambda(s), n^2 = eta^2 delta^2 lambda(s)):
      Sxx' = (1-a)^2 Sxx + 2(1-a) beta Sxv + beta^2 Svv + n^2
      Sxv' = -(1-a) a Sxx + (1-2a) beta Sxv + beta^2 Svv + n^2
      Svv' = a^2 Sxx - 2 a beta Sxv + beta^2 Svv + n^2
      p'   = beta p + 1/2 g' sdot^2 - eta 1/2 Sxx lambda',  sdot = p / g,   s' = s + p' / g,
  p = g ds/dk the momentum conjugate to s (the 1/2 g' sdot^2 term is the geodesic term).
* ``method="sde"`` (§3b in step units, the spec's §6a step-unit version in continuous time):
      ds = p/g dk,   dp = [1/2 g' (p/g)^2 - (1-beta) p - eta 1/2 S lambda'] dk,
      dS = [-(1-beta)(S - S_eq(lambda)) - 1/2 S (lambda'/lambda) ds/dk] dk + sqrt(eta delta^2 S) dW,
  Euler-Maruyama with diffrax, averaged over ``paths`` sample paths (the energy noise is O(1)
  at the critical scaling with one normal mode, §3b).
* ``method="closure"``: the same equations without the noise (deterministic closure of §3b).

Observables: the theory gives the manifold point s and the normal variance S; each
observable is the Gaussian expectation over the normal fluctuation, E f(phi(s) + x n(s)),
x ~ N(0, S), by Gauss-Hermite quadrature (this puts in the O(S) corrections, e.g.
E tr H = lambda(s) + S).
"""

from __future__ import annotations

import math

import dataclasses
import functools

import diffrax
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import scipy.optimize

from .. import __version__
from ..api import check_horizon, output_steps, predict
from ..curve import Curve
from ..setups._validate import positive as v_positive
from ._momentum_fluctuation import GAUSS, PHASE, stationary_variance
from . import _momentum_inner_product as _inner
from ..setups.momentum import (LabelNoiseMomentum, OBSERVABLES, inner_product_start,
                               matrix_sensing_problem, sensing_observables,
                               observable_names, settling_time,
                               two_parameter_normal, two_parameter_observables,
                               two_parameter_point)

METHODS = ("recursion", "flow", "sde", "closure")
INNER_PRODUCT_METHODS = ("flow", "sde", "closure")
SENSING_METHODS = ("closure",)
CRITICAL_EXPONENT = 2.0 / 3.0


# ----------------------------------------------------------------- section 2: scales
def stationary_train_loss(setup: LabelNoiseMomentum, s: float = 0.0) -> float:
    """E[L] at the manifold point s in the stationary state: 1/2 lambda S(lambda) (spec §6a).

    (The spec's E(w_1 w_2 - 1)^2 = lambda S is twice this.) Leading order in S.
    """
    lam = 2.0 * math.cosh(2.0 * s)
    return 0.5 * lam * float(stationary_variance(setup.step_size, setup.momentum,
                                                 setup.noise_var, lam))


def flattest_curvature(setup: LabelNoiseMomentum) -> tuple[float, float]:
    """(lambda_min, kappa): the normal curvature and d^2 tr H / dl^2 at the flattest minimiser.

    Two-parameter model: lambda = 2 at s = 0 and tr H = 2 cosh 2s = 2 + 2 l^2 + ... with the
    arc length l = sqrt(2) s, so kappa = 4.
    """
    return 2.0, 4.0


def timescales(setup: LabelNoiseMomentum) -> dict:
    """The two timescales of spec §2, in steps, and the stationary transverse variance.

    Returns a dict with ``tau_1`` (transverse relaxation, max{(1-beta)/(eta lambda_min),
    2/(1-beta)}), ``tau_2`` ((1-beta)^2 / (eta^2 delta^2 kappa), the time of an O(1)
    displacement along the manifold), ``ratio`` = tau_2 / tau_1, ``stationary_variance``
    (S at the flattest point), ``overdamped`` (eta lambda_min < (1 - sqrt(beta))^2) and
    ``optimal_constant`` C* = (delta^2 kappa)^{1/3} (the critical-damping estimate of §4).
    """
    eta, omb, d2 = setup.step_size, setup.one_minus_beta, setup.noise_var
    lam, kappa = flattest_curvature(setup)
    tau1 = max(omb / (eta * lam), 2.0 / omb)
    tau2 = omb**2 / (eta**2 * d2 * kappa) if d2 > 0 else math.inf
    return {
        "tau_1": tau1,
        "tau_2": tau2,
        "ratio": tau2 / tau1,
        "stationary_variance": float(stationary_variance(eta, setup.momentum, d2, lam)),
        "overdamped": bool(eta * lam < (1.0 - math.sqrt(setup.momentum)) ** 2),
        "optimal_constant": (d2 * kappa) ** (1.0 / 3.0),
    }


def regime(setup: LabelNoiseMomentum, *, tolerance: float = 0.02) -> str:
    """``"separated"`` (gamma < 2/3), ``"critical"`` (gamma = 2/3) or ``"ballistic"`` (gamma > 2/3).

    From the exponent when the Setup is given as 1 - beta = C eta^gamma (within
    ``tolerance`` of 2/3 counts as critical); otherwise from the effective exponent
    gamma = ln(1 - beta) / ln(eta).
    """
    gamma = setup.exponent
    if gamma is None:
        gamma = math.log(setup.one_minus_beta) / math.log(setup.step_size) if setup.step_size != 1 else 0.0
    if abs(gamma - CRITICAL_EXPONENT) <= tolerance:
        return "critical"
    return "separated" if gamma < CRITICAL_EXPONENT else "ballistic"


# ----------------------------------------------------------------- section 3a: first-order flow
def flow_closed_form(setup: LabelNoiseMomentum, steps):
    """s_k of the first-order flow on the two-parameter model (spec §6a, exact solution).

    sinh 2 s_k = sinh 2 s_0 exp(-eta^2 delta^2 k / (1 - beta)^2).
    """
    rate = setup.step_size**2 * setup.noise_var / setup.one_minus_beta**2
    return 0.5 * np.arcsinh(np.sinh(2.0 * setup.initial_coordinate) * np.exp(-rate * np.asarray(steps, float)))


def _model_fn(w):
    """f(w) of both product models: w_1 w_2 (w of shape (2,)) or <u, v> (w = (u, v), (2, d))."""
    return jnp.sum(w[0] * w[1])


def _trace_hessian_on_manifold(w):
    jac = jax.grad(_model_fn)(w)
    return jnp.vdot(jac, jac)  # (1/n) ||J||_F^2 with n = 1


def _flow_field(k, w, args):
    """-(c) P_T grad tr H - alpha J^T (J J^T)^{-1} (f - y): the flow plus a retraction term."""
    c, alpha = args
    jac = jax.grad(_model_fn)(w)
    grad_tr = jax.grad(_trace_hessian_on_manifold)(w)
    jj = jnp.vdot(jac, jac)
    tangent = grad_tr - jac * jnp.vdot(jac, grad_tr) / jj
    return -c * tangent - alpha * jac * (_model_fn(w) - 1.0) / jj


def _start(setup: LabelNoiseMomentum):
    if setup.model == "inner_product":
        return inner_product_start(setup)
    return two_parameter_point(jnp.asarray(setup.initial_coordinate, jnp.float64))


def flow_ambient(setup: LabelNoiseMomentum, steps, *, rtol: float = 1e-8):
    """The first-order flow (§3a) integrated by diffrax in the ambient coordinates w.

    Vector field -(eta^2 delta^2 / (4 (1-beta)^2)) P_T grad tr H(w), with P_T the projection
    on ker J, plus a Gauss-Newton retraction term -alpha J^T (J J^T)^{-1} (f(w) - y) that
    pulls the solution back onto the manifold at rate alpha (10 times the flow's rate);
    after each save the point is re-projected by one Gauss-Newton step. Returns
    (w at ``steps``, success flag).
    """
    c = setup.step_size**2 * setup.noise_var / (4.0 * setup.one_minus_beta**2)
    w0 = _start(setup)
    rate = 4.0 * c * float(_trace_hessian_on_manifold(w0))
    alpha = 10.0 * max(rate, 1e-12)
    steps = jnp.asarray(steps, dtype=jnp.float64)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_flow_field), diffrax.Tsit5(), t0=0.0, t1=steps[-1], dt0=None, y0=w0,
        args=(c, alpha), saveat=diffrax.SaveAt(ts=steps),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=1e-12),
        max_steps=int(min(1_000_000, 4096 + 40 * alpha * float(steps[-1]))), throw=False,
    )

    def retract(w):
        jac = jax.grad(_model_fn)(w)
        return w - jac * (_model_fn(w) - 1.0) / jnp.vdot(jac, jac)

    w = jax.vmap(retract)(sol.ys)
    return w, sol.result == diffrax.RESULTS.successful


# ----------------------------------------------------------------- section 3c: uniform recursion
def recursion_step(state, step_size, momentum, noise_var):
    """One step of the uniform recursion (§3c) for the two-parameter model.

    State (s, p, Sxx, Sxv, Svv, mx, mv): manifold coordinate, conjugate momentum
    p = g ds/dk, the second moments of the normal fluctuation x and its velocity, and the
    mean normal offset mx and its velocity mv (see `normal_offset`).
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


def recursion_path(s0, step_size, momentum, noise_var, n_steps: int):
    """(s_k, mx_k, Sxx_k) for k = 0..n_steps from the uniform recursion, started on the
    manifold at rest with no fluctuation. ``n_steps`` is a Python int (scan length)."""
    zero = jnp.zeros((), jnp.float64)
    state0 = (jnp.asarray(s0, jnp.float64),) + (zero,) * 6

    def body(state, _):
        new = recursion_step(state, step_size, momentum, noise_var)
        return new, (new[0], new[5], new[2])

    _, (s, mx, sxx) = jax.lax.scan(body, state0, None, length=n_steps)
    first = lambda a, b: jnp.concatenate([a[None], b])  # noqa: E731
    return first(state0[0], s), first(zero, mx), first(zero, sxx)


_recursion_path_jit = jax.jit(recursion_path, static_argnums=(4,))


# ----------------------------------------------------------------- section 3b: reduced SDE
def _reduced_drift(k, y, args):
    """Drift of (s, p, S) of the reduced equations; y has shape (3, ...) (paths batched)."""
    eta, beta, omb, noise_var = args
    s, p, var = y[0], y[1], y[2]
    lam = 2.0 * jnp.cosh(2.0 * s)
    dlam = 4.0 * jnp.sinh(2.0 * s)
    sdot = p / lam
    s_eq = stationary_variance(eta, beta, noise_var, lam)
    var_pos = jnp.maximum(var, 0.0)
    dp = 0.5 * dlam * sdot**2 - omb * p - eta * 0.5 * var_pos * dlam
    dvar = -omb * (var - s_eq) - 0.5 * var_pos * (dlam / lam) * sdot
    return jnp.stack([sdot, dp, dvar])


def _reduced_diffusion(k, y, args):
    """Diagonal diffusion: only S is driven, by sqrt(eta delta^2 S) dW (the energy noise)."""
    eta, beta, omb, noise_var = args
    amp = jnp.sqrt(eta * noise_var * jnp.maximum(y[2], 0.0))
    return lx.DiagonalLinearOperator(jnp.stack([jnp.zeros_like(amp), jnp.zeros_like(amp), amp]))


@functools.partial(jax.jit, static_argnames=("max_steps", "noise"))
def _reduced_solve(y0, args, steps, dt, key, *, max_steps: int, noise: bool):
    drift = diffrax.ODETerm(_reduced_drift)
    if noise:
        bm = diffrax.UnsafeBrownianPath(shape=y0.shape, key=key)
        terms = diffrax.MultiTerm(drift, diffrax.ControlTerm(_reduced_diffusion, bm))
        sol = diffrax.diffeqsolve(terms, diffrax.Euler(), t0=0.0, t1=steps[-1], dt0=dt, y0=y0,
                                  args=args, saveat=diffrax.SaveAt(ts=steps),
                                  max_steps=max_steps, throw=False, adjoint=diffrax.ForwardMode())
    else:
        sol = diffrax.diffeqsolve(
            drift, diffrax.Tsit5(), t0=0.0, t1=steps[-1], dt0=dt, y0=y0, args=args,
            saveat=diffrax.SaveAt(ts=steps),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-12, dtmax=10 * dt),
            max_steps=max_steps, throw=False)
    return sol.ys, sol.result == diffrax.RESULTS.successful


def reduced_paths(setup: LabelNoiseMomentum, steps, *, key, paths: int, dt: float, noise: bool):
    """Sample paths of (s, p, S) of the reduced equations of §3b in step units, shape
    (paths, T, 3): Euler-Maruyama with diffrax at fixed step ``dt`` (in steps), all paths in
    one solve; without noise (``noise=False``) the deterministic closure, one path, Tsit5."""
    args = (setup.step_size, setup.momentum, setup.one_minus_beta, setup.noise_var)
    steps = jnp.asarray(steps, jnp.float64)
    n = paths if noise else 1
    y0 = jnp.broadcast_to(jnp.asarray([setup.initial_coordinate, 0.0, 0.0], jnp.float64)[:, None],
                          (3, n))
    n_max = int(math.ceil(float(steps[-1]) / dt)) + 16
    n_max = 1 << max(8, (n_max - 1).bit_length())  # a few sizes only, to reuse compilations
    ys, ok = _reduced_solve(y0, args, steps, jnp.asarray(dt, jnp.float64), key,
                            max_steps=n_max if noise else 4 * n_max, noise=noise)
    return jnp.transpose(ys, (2, 0, 1)), ok


def default_sde_dt(setup: LabelNoiseMomentum) -> float:
    """Euler step (in steps) for the reduced SDE: 1/20 of its fastest timescale, at least 1."""
    omb = setup.one_minus_beta
    s_eq = float(stationary_variance(setup.step_size, setup.momentum, setup.noise_var, 2.0))
    lam0 = 2.0 * math.cosh(2.0 * setup.initial_coordinate)
    # along-manifold oscillation: s'' ~ -(eta S lambda'' / (2 g)) s, lambda''/g <= 4
    omega = math.sqrt(max(2.0 * setup.step_size * s_eq * lam0 / 2.0, 1e-300))
    return max(1.0, 0.05 * min(1.0 / omb, 1.0 / omega))


def _default_dt(setup: LabelNoiseMomentum, method: str) -> float:
    """The default Euler step (in steps) of the reduced SDE / closure for this Setup's model:
    `default_sde_dt` (two-parameter) or `_momentum_inner_product.default_dt` (inner product)."""
    if setup.model == "inner_product":
        return _inner.default_dt(setup, method)
    return default_sde_dt(setup)


# ----------------------------------------------------------------- observables
def normal_offset(s, var, sdot, step_size):
    """Quasi-static mean normal offset E[x] of the two-parameter model.

    The normal gradient is lambda x + 3 x^2 / sqrt(lambda) + O(x^3) (f = 1 + sqrt(lambda) x
    + x^2 / lambda along the normal), and following the curved manifold at speed sdot needs
    the centripetal acceleration 2 sdot^2 / sqrt(lambda) per step^2; balancing both,
    E[x] = -(3 S + 2 sdot^2 / eta) / lambda^{3/2}. [Derived here; not in the spec. Without it
    E tr H misses -2 sqrt(2) * 1.06 S at s = 0, which the Monte Carlo resolves.]
    """
    lam = 2.0 * jnp.cosh(2.0 * s)
    return -(3.0 * var + 2.0 * sdot**2 / step_size) / lam**1.5


def _gaussian_observables(s, mean, var, *, phase: bool = False):
    """E obs(phi(s) + x n(s)) over the normal fluctuation x of the given mean and variance, by
    quadrature (any shape): x ~ N(mean, var) (``phase=False``: an ensemble, or the recursion
    and closure) or x = mean + sqrt(2 var) cos(phi) with a uniform phase (``phase=True``: one
    path of the reduced SDE, an oscillation of given energy; see `_momentum_fluctuation`)."""
    s = jnp.asarray(s)
    sd = jnp.sqrt(jnp.maximum(var, 0.0))
    phi = two_parameter_point(s)
    nrm = two_parameter_normal(s)
    nodes, weights = PHASE if phase else GAUSS
    x = jnp.asarray(mean)[..., None] + jnp.asarray(nodes)[(None,) * s.ndim + (slice(None),)] * sd[..., None]
    w = phi[..., None, :] + x[..., None] * nrm[..., None, :]  # (..., q, 2)
    obs = two_parameter_observables(w)
    weights = jnp.asarray(weights)
    return {k: jnp.sum(v * weights, axis=-1) for k, v in obs.items()}


# ----------------------------------------------------------------- section 6b: inner product
def invariants_flow(setup: LabelNoiseMomentum, steps):
    """(P, Q, R) of the first-order flow (§3a) on the inner-product model, closed form (§6b).

    With r = eta^2 delta^2 / (4 (1-beta)^2): dP/dk = -r (4P - 8R^2/(P+Q)), dQ/dk = -r (4Q -
    8R^2/(P+Q)), dR/dk = 0, solved by (P+Q)^2 - 4R^2 = ((P_0+Q_0)^2 - 4R^2) e^{-8rk} and
    P - Q = (P_0 - Q_0) e^{-4rk}. Returns three arrays shaped like ``steps``.
    """
    rate = setup.step_size**2 * setup.noise_var / (4.0 * setup.one_minus_beta**2)
    w0 = np.asarray(inner_product_start(setup))
    p0, q0, r0 = float(w0[0] @ w0[0]), float(w0[1] @ w0[1]), float(w0[0] @ w0[1])
    k = np.asarray(steps, dtype=float)
    total = np.sqrt(4 * r0**2 + ((p0 + q0) ** 2 - 4 * r0**2) * np.exp(-8 * rate * k))
    diff = (p0 - q0) * np.exp(-4 * rate * k)
    return 0.5 * (total + diff), 0.5 * (total - diff), np.full_like(k, r0)


def _inner_product_gaussian(p, q, r, var):
    """E obs of (u, v) + x (v, u)/sqrt(lambda), x ~ N(m, var), lambda = P + Q, with the mean
    normal offset at rest m = -3 var / lambda^{3/2} (`_momentum_inner_product.normal_offset`
    with zero velocity); Gauss-Hermite."""
    var = np.maximum(var, 0.0)
    obs = _inner.fluctuation_average(p, q, r, -3.0 * var / (p + q) ** 1.5, var, GAUSS)
    return {k: np.asarray(v) for k, v in obs.items()}


# ----------------------------------------------------------------- section 6c: matrix sensing
def _sensing_pieces(u, a, y):
    """Gradients g_i = 2 A_i U (n, d, d), residuals r_i, and the Gauss-Newton matrix J^T J / n
    (D x D, D = d^2, U raveled row-major: index (row a, column k))."""
    n, d = a.shape[0], a.shape[1]
    grads = 2.0 * jnp.einsum("nab,bk->nak", a, u)
    res = jnp.einsum("nab,ak,bk->n", a, u, u) - y
    jac = grads.reshape(n, d * d)
    return grads, res, jac.T @ jac / n


def _row_trace(cov, d):
    """T[a, b] = sum_k Cov[(a, k), (b, k)] = E[X X^T][a, b] for a (d d x d d) covariance."""
    return jnp.einsum("akbk->ab", cov.reshape(d, d, d, d))


def sensing_closure_step(state, args):
    """One step of the Gaussian moment closure for matrix sensing (§3b deterministic closure /
    §3c with all normal modes, in the ambient coordinates).

    State (u, v, Sxx, Sxv, Svv): mean weights U and velocity (d, d), and the D x D covariances
    (D = d^2) of the fluctuation x = U - u and its velocity. With g_i = grad f_i(u) = 2 A_i u,
    Hf_i = Hess f_i = 2 A_i (x) I (f_i is quadratic), r_i = f_i(u) - y_i and
    delta^2 = delta_0^2 / b:

        E grad L(u + x) = (1/n) sum_i [r_i g_i + Hf_i Sxx g_i + 1/2 tr(Hf_i Sxx) g_i]   (exact),
        H = E Hess L(u + x) = (1/n) sum_i [g_i g_i^T + Hf_i Sxx Hf_i + E(r_i) Hf_i],
            E(r_i) = r_i + 1/2 tr(Hf_i Sxx),
        Xi = delta^2 (1/n) sum_i E[grad f_i grad f_i^T] = delta^2 (1/n) sum_i (g_i g_i^T + Hf_i Sxx Hf_i),
        v' = beta v - eta E grad L,  u' = u + v',   A = I - eta H,
        Sxx' = A Sxx A^T + beta (A Sxv + Svx A^T) + beta^2 Svv + eta^2 Xi,
        Sxv' = -eta A Sxx H + beta A Sxv - eta beta Svx H + beta^2 Svv + eta^2 Xi,
        Svv' = eta^2 H Sxx H - eta beta (H Sxv + Svx H) + beta^2 Svv + eta^2 Xi.

    The tangential part of the mean-gradient correction is the drift (S/2) grad_Gamma tr H of
    §2 summed over the normal modes; its normal part sets the mean normal offset.

    The fluctuation is propagated with the statistical linearisation H = E Hess L(u + x) (by
    Stein's lemma the best linear fit of grad L(u + x) in x under the Gaussian law), not with
    the Hessian at the mean [derived here, checked against the Monte Carlo]:
    * Hess L(u) has the term (1/n) sum_i r_i Hf_i with the mean residual r_i = -O(S), which
      has small negative eigenvalues along the manifold; the tangential covariance then grows
      exponentially and the closure blows up after ~1000 steps at gamma = 2/3. The averaged
      residual E(r_i) is ~0 near the manifold.
    * The Gauss-Newton part alone has no curvature along the manifold: the rotating normal
      space feeds tangential fluctuations that nothing confines, and at small 1 - beta the
      closure drifts away from the Monte Carlo and blows up (for d = 8, r = 1, n = 20,
      delta_0 = 0.02, eta = 0.01, 1 - beta = 7.5e-4 its distance rises from 0.07 to 0.32 by
      step 4000 while the Monte Carlo's stays at 0.06-0.10). The term (1/n) sum_i Hf_i Sxx Hf_i
      is that curvature: the restoring force of the tr H drift on tangential fluctuations.
    * The law is invariant under U -> U O (O orthogonal). A Gaussian fluctuation along the
      orbit directions u Omega (Omega antisymmetric) is undamped, random-walks, and would count
      as spurious growth of ||U||^2 and tr H (second order in x) though it is a rotation; the
      covariances are therefore projected onto the complement of the orbit of the mean after
      every step (`_orbit_projector`; with it the late-time tr H and ||U||^2 at gamma = 2/3,
      delta_0 = 0.5 match the Monte Carlo as well as the Gauss-Newton version did, without it
      they are 10 s.e. high). Sxx and Svv are also re-symmetrised: otherwise round-off
      asymmetry in the undamped directions grows until the closure fails.
    """
    u, v, sxx, sxv, svv = state
    eta, beta, noise_var, a, y = args
    n, d = a.shape[0], a.shape[1]
    grads, res, gn = _sensing_pieces(u, a, y)
    sg = jnp.einsum("pq,nq->np", sxx, grads.reshape(n, d * d)).reshape(n, d, d)
    traces = 2.0 * jnp.einsum("nab,ba->n", a, _row_trace(sxx, d))  # tr(Hf_i Sxx)
    correction = (jnp.einsum("nab,nbk->ak", 2.0 * a, sg)
                  + 0.5 * jnp.einsum("n,nak->ak", traces, grads)) / n
    mean_grad = jnp.einsum("n,nak->ak", res, grads) / n + correction
    # (1/n) sum_i Hf_i Sxx Hf_i with Hf_i [(a, k), (b, l)] = 2 A_i[a, b] delta_kl
    curvature = (4.0 / n) * jnp.einsum("nab,bkel,nec->akcl", a, sxx.reshape(d, d, d, d),
                                       a).reshape(d * d, d * d)
    mean_res = res + 0.5 * traces
    fisher = gn + curvature
    hess = fisher + 2.0 * jnp.kron(jnp.einsum("n,nab->ab", mean_res, a) / n, jnp.eye(d))
    v_new = beta * v - eta * mean_grad
    u_new = u + v_new
    amat = jnp.eye(d * d) - eta * hess
    xi = eta**2 * noise_var * fisher
    svx = sxv.T
    sxx_new = amat @ sxx @ amat.T + beta * (amat @ sxv + svx @ amat.T) + beta**2 * svv + xi
    sxv_new = (-eta * amat @ sxx @ hess + beta * amat @ sxv - eta * beta * svx @ hess
               + beta**2 * svv + xi)
    svv_new = (eta**2 * hess @ sxx @ hess - eta * beta * (hess @ sxv + svx @ hess)
               + beta**2 * svv + xi)
    proj = _orbit_projector(u_new)
    sxx_new, sxv_new, svv_new = (proj @ c @ proj for c in (sxx_new, sxv_new, svv_new))
    sxx_new = 0.5 * (sxx_new + sxx_new.T)
    svv_new = 0.5 * (svv_new + svv_new.T)
    return (u_new, v_new, sxx_new, sxv_new, svv_new)


def _orbit_projector(u, relative_ridge: float = 1e-3):
    """I - B (B^T B + eps I)^{-1} B^T, B = the d(d-1)/2 orbit directions u E_kl (E_kl = e_k e_l^T
    - e_l e_k^T) raveled as columns, eps = relative_ridge x their mean squared norm: the
    projector off the tangent space of {u O : O orthogonal}, smoothed where u is nearly
    rank deficient (there some orbit directions are tiny and only partly removed)."""
    d = u.shape[0]
    rows, cols = np.triu_indices(d, 1)
    m = rows.size
    gen = np.zeros((m, d, d))
    gen[np.arange(m), rows, cols] = 1.0
    gen[np.arange(m), cols, rows] = -1.0
    basis = jnp.einsum("ab,mbc->acm", u, jnp.asarray(gen)).reshape(d * d, m)
    gram = basis.T @ basis
    ridge = relative_ridge * jnp.trace(gram) / m
    return jnp.eye(d * d) - basis @ jnp.linalg.solve(gram + ridge * jnp.eye(m), basis.T)


@jax.jit
def _sensing_advance(state, n_steps, args):
    return jax.lax.fori_loop(0, n_steps, lambda _, s: sensing_closure_step(s, args), state)


def sensing_expected_observables(u, sxx, a, y, x_star) -> dict:
    """Gaussian expectations of the matrix-sensing observables at mean u, covariance Sxx:
    exact for trace_hessian (quadratic in U); train_loss to O(Sxx); the distance as
    sqrt(E ||U U^T - X*||_F^2) / ||X*||_F to O(Sxx); the manifold coordinate as
    ln(E ||U||_F^2 / ||X*||_*)."""
    n, d = a.shape[0], a.shape[1]
    base = sensing_observables(u, a, y, x_star)
    grads, res, _ = _sensing_pieces(u, a, y)
    rows = _row_trace(sxx, d)  # E X X^T
    cols = jnp.einsum("akal->kl", sxx.reshape(d, d, d, d))  # E X^T X
    a_t = jnp.einsum("nab,ba->n", a, rows)
    a2_t = jnp.einsum("nab,nbc,ca->n", a, a, rows)
    trace_h = base["trace_hessian"] + jnp.mean(4.0 * a2_t + 2.0 * d * jnp.trace(a, axis1=1, axis2=2) * a_t)
    flat = grads.reshape(n, d * d)
    loss = base["train_loss"] + 0.5 * jnp.mean(jnp.einsum("np,pq,nq->n", flat, sxx, flat)
                                               + res * 2.0 * a_t)
    gap = u @ u.T - x_star
    cross = jnp.einsum("ak,bl,bkal->", u, u, sxx.reshape(d, d, d, d))
    dist_sq = jnp.sum(gap * gap) + 2.0 * jnp.sum(gap * rows) + 2.0 * jnp.sum((u.T @ u) * cols) + 2.0 * cross
    norm_sq = jnp.sum(u * u) + jnp.trace(sxx)
    return {
        "manifold_coordinate": jnp.log(norm_sq / jnp.trace(x_star)),
        "trace_hessian": trace_h,
        "train_loss": loss,
        "distance_to_flattest": jnp.sqrt(jnp.maximum(dist_sq, 0.0) / jnp.sum(x_star * x_star)),
    }


_sensing_expected_jit = jax.jit(sensing_expected_observables)


def sensing_closure(setup: LabelNoiseMomentum, steps) -> dict:
    """Observables of the matrix-sensing closure at integer ``steps`` (sorted), started at
    the interpolating U_0 at rest with no fluctuation (one jitted segment per output step)."""
    problem = matrix_sensing_problem(setup)
    a, y, x_star = (jnp.asarray(problem[k]) for k in ("a", "y", "x_star"))
    dd = setup.dim**2
    zero = jnp.zeros((dd, dd))
    state = (jnp.asarray(problem["u0"]), jnp.zeros((setup.dim, setup.dim)), zero, zero, zero)
    args = (setup.step_size, setup.momentum, setup.noise_var, a, y)
    out = {k: [] for k in OBSERVABLES}
    done = 0
    for k in np.asarray(steps, dtype=np.int64):
        if k > done:
            state = _sensing_advance(state, int(k - done), args)
            done = int(k)
        values = _sensing_expected_jit(state[0], state[2], a, y, x_star)
        for name in OBSERVABLES:
            out[name].append(float(values[name]))
    return {k: np.asarray(v) for k, v in out.items()}


# ----------------------------------------------------------------- predict
@predict.register
def _predict(setup: LabelNoiseMomentum, horizon: float, *, times=None, method: str | None = None,
             key=None, paths: int = 1000, dt: float | None = None, **options) -> Curve:
    """Predict label-noise SGD with momentum (two-parameter or inner-product model).

    Args:
        setup: a `LabelNoiseMomentum`.
        horizon: final time in steps.
        times: output steps; default: every early step, then log-spaced (about 100 points).
        method: two-parameter model: ``"recursion"`` (default; §3c, any exponent),
            ``"flow"`` (§3a, separated timescales, gamma < 2/3), ``"sde"`` (§3b reduced SDE
            averaged over sample paths; critical and ballistic regimes with one normal mode)
            or ``"closure"`` (§3b without the energy noise). Inner-product model: ``"flow"``
            (default; §6b: the invariants P, Q, R of the first-order flow in closed form, with
            the stationary normal fluctuation S(P + Q) and its mean offset added by
            Gauss-Hermite; separated regime gamma < 2/3), ``"sde"`` (§3b in the ambient
            coordinates of span(u_0, v_0) = R^2 x R^2: manifold point, tangential velocity and
            the normal variance S with its energy noise, Euler-Maruyama with a Gauss-Newton
            retraction, averaged over sample paths; `hdsgd.odes._momentum_inner_product`; the
            right equation at gamma >= 2/3, one normal mode) or ``"closure"`` (the same
            without the energy noise, one path, Euler step dt/4). Matrix sensing:
            ``"closure"`` only (the Gaussian moment closure of `sensing_closure_step`: mean
            weights and velocity plus the full covariance of all normal modes, no energy
            noise; meant for many normal modes).
        key: ``"sde"`` only: PRNG key of the sample paths (default ``PRNGKey(0)``).
        paths: ``"sde"`` only: number of sample paths (default 1000).
        dt: ``"sde"``/``"closure"`` only: Euler step in steps (default `default_sde_dt`;
            inner product: `hdsgd.odes._momentum_inner_product.default_dt`).

    Returns:
        A theory `Curve` (time unit ``"step"``). ``diverged`` is True from the first time the
        transverse mode is unstable (eta tr H >= 2 (1 + beta)) or a value is non-finite.
    """
    if options:
        raise TypeError(f"unknown option(s) for LabelNoiseMomentum: {sorted(options)}")
    allowed = {"two_parameter": METHODS, "inner_product": INNER_PRODUCT_METHODS,
               "matrix_sensing": SENSING_METHODS}[setup.model]
    method = allowed[0] if method is None else method
    if method not in allowed:
        raise ValueError(f"method={method!r} is invalid for model={setup.model!r}; allowed: {allowed}")
    horizon = check_horizon(horizon)
    steps = output_steps(horizon, times)
    if isinstance(paths, bool) or int(paths) != paths or paths < 1:
        raise ValueError(f"paths={paths!r} is invalid; allowed: an integer >= 1")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt={dt!r} is invalid; allowed: a positive number of steps")
    eta, beta, d2 = setup.step_size, setup.momentum, setup.noise_var
    extra = {}

    if setup.model == "matrix_sensing":
        obs = sensing_closure(setup, steps)
    elif setup.model == "inner_product" and method == "flow":
        p, q, r = invariants_flow(setup, steps)
        var = np.asarray(stationary_variance(eta, beta, d2, p + q))
        var = np.where(steps > 0, var, 0.0)  # the run starts with no fluctuation
        obs = _inner_product_gaussian(p, q, r, var)
    elif setup.model == "inner_product":
        step = _default_dt(setup, method) if dt is None else float(dt)
        key = jax.random.PRNGKey(0) if key is None else key
        obs, ok = _inner.expected_observables(setup, steps, key=key, paths=int(paths), dt=step,
                                              noise=(method == "sde"))
        extra.update(solver_ok=ok, dt=step, paths=int(paths) if method == "sde" else 1)
    elif method == "recursion":
        n_scan = 1 << max(8, int(steps.max()).bit_length())  # few lengths, few compilations
        s_all, mx_all, var_all = _recursion_path_jit(setup.initial_coordinate, eta, beta, d2,
                                                     n_scan)
        s, mx, var = (np.asarray(a)[steps] for a in (s_all, mx_all, var_all))
        obs = {k: np.asarray(v) for k, v in _gaussian_observables(s, mx, var).items()}
    elif method == "flow":
        w, ok = flow_ambient(setup, steps)
        s = np.asarray(0.5 * jnp.log(jnp.abs(w[:, 0] / w[:, 1])))
        lam = 2.0 * np.cosh(2.0 * s)
        var = np.asarray(stationary_variance(eta, beta, d2, lam))
        var = np.where(steps > 0, var, 0.0)  # the run starts with no fluctuation
        mx = normal_offset(s, var, 0.0, eta)
        obs = {k: np.asarray(v) for k, v in _gaussian_observables(s, mx, var).items()}
        extra["solver_ok"] = bool(ok)
    else:
        step = _default_dt(setup, method) if dt is None else float(dt)
        key = jax.random.PRNGKey(0) if key is None else key
        ys, ok = reduced_paths(setup, steps, key=key, paths=int(paths), dt=step,
                               noise=(method == "sde"))
        s, var = ys[..., 0], jnp.maximum(ys[..., 2], 0.0)
        mx = normal_offset(s, var, ys[..., 1] / (2.0 * jnp.cosh(2.0 * s)), eta)
        per_path = _gaussian_observables(s, mx, var, phase=(method == "sde"))
        obs = {k: np.asarray(jnp.mean(v, axis=0)) for k, v in per_path.items()}
        extra.update(solver_ok=bool(ok), dt=step, paths=int(paths) if method == "sde" else 1)

    lam_path = np.asarray(obs["trace_hessian"])
    # one normal mode (lambda = tr H): the transverse stability edge eta lambda < 2 (1 + beta);
    # matrix sensing: only a blow-up (non-finite) is flagged
    unstable = (eta * lam_path >= 2.0 * (1.0 + beta)) & (setup.model != "matrix_sensing")
    blown = unstable.copy()
    for v in obs.values():
        blown |= ~np.isfinite(v)
    diverged = np.maximum.accumulate(blown)
    obs = {k: np.where(diverged, np.inf, v) for k, v in obs.items()}
    return Curve(
        time=steps.astype(np.float64),
        observables={k: obs[k] for k in observable_names(setup)},
        time_unit="step",
        samples=steps * setup.batch_size,
        seeds=None,
        diverged=diverged,
        meta={**setup.fields(), "method": method, "regime": regime(setup),
              "version": __version__, **extra},
    )


# ----------------------------------------------------------------- section 4-5: time to target
def default_target_horizon(setup: LabelNoiseMomentum, target: float) -> float:
    """A horizon (steps) in which |s| should settle below ``target``: 1.5 x (first-order flow
    estimate (1-beta)^2/(eta^2 delta^2) ln[sinh 2|s_0| / sinh 2 target] + 12 / (1 - beta),
    the under-damped decay time), at most 1e8. `time_to_target` retries with 4 times
    the horizon when this is too short."""
    s0 = abs(setup.initial_coordinate)
    omb = setup.one_minus_beta
    logs = math.log(max(math.sinh(2 * s0), 1e-300) / math.sinh(2 * target)) if s0 > target else 0.0
    flow = omb**2 / (setup.step_size**2 * max(setup.noise_var, 1e-300)) * max(logs, 0.0)
    return float(min(1e8, 1.5 * (flow + 12.0 / omb)))


def time_to_target(setup: LabelNoiseMomentum, target: float = 0.1, *, method: str = "sde",
                   horizon: float | None = None, key=None, paths: int = 1000,
                   dt: float | None = None, points: int = 1000) -> float:
    """T(eta, beta): the step from which the mean squared manifold coordinate E[s^2] stays
    at or below ``target**2`` (spec §5), from the reduced equations; inf if not within the
    horizon.

    "Stays below" (`settling_time`) rather than "first below": an under-damped run swings
    through the flattest point and out again, and a first crossing would make the smallest
    friction look best. The Monte Carlo twin is
    `hdsgd.montecarlo.momentum.measured_time_to_target` (the same definition on the seed
    average of s^2).

    Args:
        setup: a `LabelNoiseMomentum` on the two-parameter or the inner-product model
            (s = 1/4 ln(P/Q) there; ``"sde"``, ``"closure"`` or ``"flow"``, see
            `hdsgd.odes._momentum_inner_product`; E[s^2] includes the normal fluctuation).
        target: the threshold on sqrt(E s^2) (distance to the flattest point along s), > 0.
        method: ``"sde"`` (default; §3b averaged over ``paths`` sample paths, the right
            reduced equation with one normal mode at gamma >= 2/3), ``"closure"`` (§3b without
            the energy noise), ``"recursion"`` (§3c, every step; two-parameter model only) or
            ``"flow"`` (§3a closed form, T = (1-beta)^2/(eta^2 delta^2) ln[sinh 2|s_0| /
            sinh 2 target]; inner product: `flow_time_to_target`).
        horizon: steps to search (default `default_target_horizon`, and 4 times it if T is
            not found within it).
        key, paths, dt, points: ``"sde"``/``"closure"`` only: PRNG key of the paths (default
            ``PRNGKey(0)``; the same key gives the same Brownian increments for every
            setting, so T is a smooth function of C), number of paths, Euler step in steps,
            number of grid intervals on which E[s^2] is read.

    Returns:
        T in steps (float; 0 if |s_0| <= target, inf if not settled within the horizon).
    """
    target = v_positive("target", target)
    if horizon is None:
        horizon = default_target_horizon(setup, target)
        found = time_to_target(setup, target, method=method, horizon=horizon, key=key,
                               paths=paths, dt=dt, points=points)
        if math.isinf(found) and horizon < 1e8:
            found = time_to_target(setup, target, method=method, horizon=min(1e8, 4 * horizon),
                                   key=key, paths=paths, dt=dt, points=points)
        return found
    if method not in ("sde", "closure", "recursion", "flow"):
        raise ValueError(f"method={method!r} is invalid; allowed: ('sde', 'closure', 'recursion', 'flow')")
    if method not in ("sde", "closure") and (key is not None or dt is not None or paths != 1000):
        raise TypeError(f"key, paths and dt are options of method='sde'/'closure', not {method!r}")
    if setup.model == "inner_product" and method == "recursion":
        raise ValueError("method='recursion' is invalid for model='inner_product'; allowed: "
                         "('sde', 'closure', 'flow')")
    if abs(setup.initial_coordinate) <= target:
        return 0.0
    horizon = check_horizon(horizon)
    if method == "flow" and setup.model == "inner_product":
        return _inner.flow_time_to_target(setup, target)
    if method == "flow":
        rate = setup.step_size**2 * setup.noise_var / setup.one_minus_beta**2
        s0 = abs(setup.initial_coordinate)
        return float(math.log(math.sinh(2 * s0) / math.sinh(2 * target)) / rate) if rate > 0 else math.inf
    if method == "recursion":
        n_steps = int(math.ceil(horizon))
        n_scan = 1 << max(8, n_steps.bit_length())  # few lengths, few compilations
        s_all, _, _ = _recursion_path_jit(setup.initial_coordinate, setup.step_size,
                                          setup.momentum, setup.noise_var, n_scan)
        msq = np.asarray(s_all)[: n_steps + 1] ** 2
        return settling_time(np.arange(n_steps + 1, dtype=float), msq, target**2)
    if isinstance(paths, bool) or int(paths) != paths or paths < 1:
        raise ValueError(f"paths={paths!r} is invalid; allowed: an integer >= 1")
    key = jax.random.PRNGKey(0) if key is None else key
    steps = np.linspace(0.0, horizon, int(points) + 1)
    step = _default_dt(setup, method) if dt is None else v_positive("dt", dt)
    if setup.model == "inner_product":
        obs, _ = _inner.expected_observables(setup, steps, key=key, paths=int(paths), dt=step,
                                             noise=(method == "sde"))
        return settling_time(steps, obs["manifold_coordinate_sq"], target**2)
    ys, _ = reduced_paths(setup, steps, key=key, paths=int(paths), dt=step,
                          noise=(method == "sde"))
    msq = np.asarray(jnp.mean(ys[..., 0] ** 2, axis=0))
    return settling_time(steps, msq, target**2)


def sensing_time_to_target(setup: LabelNoiseMomentum, target: float = 0.5, *,
                           horizon: float | None = None, points: int = 200) -> float:
    """Matrix sensing: the step from which the closure's distance_to_flattest
    ||U U^T - X*||_F / ||X*||_F stays at or below ``target`` (`settling_time` on a grid of
    ``points`` steps up to ``horizon``); inf if it does not.

    Default horizon: 4 (1-beta)^2 / (eta^2 delta^2) + 8 / (1-beta), doubled (up to five times)
    until the distance has settled at least 4 / (1-beta) steps before the end (two e-folds of
    the under-damped envelope, so a later overshoot above the target is ruled out). inf if
    never, for instance when the noise floor of the distance, ~ sqrt(eta delta^2 / (1-beta))
    per normal mode, is above the target."""
    if setup.model != "matrix_sensing":
        raise ValueError(f"model={setup.model!r} is invalid for sensing_time_to_target; "
                         "allowed: 'matrix_sensing' (see time_to_target)")
    target = v_positive("target", target)
    omb = setup.one_minus_beta
    tries = 1 if horizon is not None else 6
    if horizon is None:
        horizon = 4.0 * omb**2 / (setup.step_size**2 * max(setup.noise_var, 1e-300)) + 8.0 / omb
    horizon = check_horizon(horizon)
    for _ in range(tries):
        steps = np.unique(np.round(np.linspace(0, horizon, int(points) + 1))).astype(np.int64)
        dist = sensing_closure(setup, steps)["distance_to_flattest"]
        found = settling_time(steps.astype(float), dist, target)
        if tries == 1 or found <= steps[-1] - 4.0 / omb:
            return found
        horizon *= 2.0
    return math.inf


def _minimise_log(cost, lo: float, hi: float, grid: int) -> tuple[float, float]:
    """Minimise cost(x) over [lo, hi]: a scan on ``grid`` points, then a bounded Brent search
    between the neighbours of the best point (T(C) need not be unimodal over a wide range)."""
    xs = np.linspace(lo, hi, grid)
    values = np.array([cost(x) for x in xs])
    if not np.isfinite(values).any():
        return float(xs[0]), math.inf
    i = int(np.nanargmin(np.where(np.isfinite(values), values, np.inf)))
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, grid - 1)]
    res = scipy.optimize.minimize_scalar(cost, bounds=(a, b), method="bounded",
                                         options={"xatol": 0.01})
    if res.fun <= values[i]:
        return float(res.x), float(res.fun)
    return float(xs[i]), float(values[i])


def optimal_constant(setup: LabelNoiseMomentum, target: float = 0.1, *, method: str = "recursion",
                     bounds: tuple[float, float] | None = None, grid: int | None = None,
                     **options) -> tuple[float, float]:
    """The constant C minimising the time-to-target along 1 - beta = C eta^gamma (§4),
    found numerically from the reduced equations.

    The critical-damping estimate C* = (delta^2 kappa)^{1/3} of §4 only centres the search
    interval (default [C*/8, 8 C*], clipped so that beta >= 0): a scan on ``grid`` points in
    ln C (default 61 for the recursion, 13 otherwise), then a bounded Brent search around the
    best. The scan matters: in the under-damped range T(C) is a sawtooth (each tooth one
    overshoot fewer through the flattest point), and the optimum sits at the edge of a tooth,
    slightly under-damped. ``method``: ``"recursion"`` (default,
    fast), ``"closure"`` or ``"sde"`` (the right one at gamma >= 2/3 with one normal mode;
    fixed sample paths and one Euler step for the whole search, so T(C) is smooth). ``setup``
    supplies eta, gamma (its ``exponent``, required) and the rest.

    Returns:
        (C_opt, T(C_opt) in steps).
    """
    if setup.exponent is None:
        raise ValueError("exponent=None is invalid for optimal_constant; allowed: a Setup given "
                         "by (exponent, constant)")
    c_star = timescales(setup)["optimal_constant"]
    c_max = setup.step_size ** (-setup.exponent)  # beta = 0
    lo, hi = bounds if bounds is not None else (c_star / 8.0, min(8.0 * c_star, c_max))
    if method in ("sde", "closure") and options.get("dt") is None:
        options["dt"] = min(_default_dt(dataclasses.replace(setup, constant=c), method)
                            for c in (lo, hi))

    def cost(log_c):
        return time_to_target(dataclasses.replace(setup, constant=math.exp(log_c)), target,
                              method=method, **options)

    grid = (61 if method == "recursion" else 13) if grid is None else int(grid)
    x, t = _minimise_log(cost, math.log(lo), math.log(hi), grid)
    return float(math.exp(x)), t


def optimal_momentum(setup: LabelNoiseMomentum, target: float = 0.1, *, method: str = "recursion",
                     bounds: tuple[float, float] | None = None, grid: int | None = None,
                     **options) -> tuple[float, float]:
    """1 - beta minimising the time-to-target at the Setup's eta (no scaling assumed), from
    the reduced equations: the same search as `optimal_constant` over ln(1 - beta) in
    ``bounds`` (default [eta^{2/3} C*/8, min(1, 8 eta^{2/3} C*)]). Returns (1 - beta_opt, T).

    Matrix sensing: ``method="closure"`` only (the moment closure, many normal modes), T from
    `sensing_time_to_target` (``target`` is then the distance ||UU^T - X*||_F / ||X*||_F;
    options: ``points``), and ``bounds`` is required (no closed-form C* there: the flattest
    interpolant U* U*^T = X* is a singular point of the manifold, where the rank of the
    Jacobian drops from n to d r)."""
    eta = setup.step_size
    if setup.model == "matrix_sensing":
        if method != "closure":
            raise ValueError(f"method={method!r} is invalid for model='matrix_sensing'; "
                             "allowed: 'closure'")
        if bounds is None:
            raise ValueError("bounds=None is invalid for model='matrix_sensing'; allowed: "
                             "(low, high) of 1 - beta with 0 < low < high <= 1")
        lo, hi = bounds
        if not 0.0 < lo < hi <= 1.0:
            raise ValueError(f"bounds={bounds!r} is invalid; allowed: 0 < low < high <= 1")

        def sensing_cost(log_gap):
            trial = dataclasses.replace(setup, exponent=None, constant=None,
                                        momentum=1.0 - math.exp(log_gap))
            return sensing_time_to_target(trial, target, **options)

        x, t = _minimise_log(sensing_cost, math.log(lo), math.log(hi),
                             13 if grid is None else int(grid))
        return float(math.exp(x)), t
    centre = timescales(setup)["optimal_constant"] * eta ** CRITICAL_EXPONENT
    lo, hi = bounds if bounds is not None else (centre / 8.0, min(1.0, 8.0 * centre))

    def trial(gap):
        return dataclasses.replace(setup, exponent=None, constant=None, momentum=1.0 - gap)

    if method in ("sde", "closure") and options.get("dt") is None:
        options["dt"] = min(_default_dt(trial(g), method) for g in (lo, hi))

    def cost(log_gap):
        return time_to_target(trial(math.exp(log_gap)), target, method=method, **options)

    grid = (61 if method == "recursion" else 13) if grid is None else int(grid)
    x, t = _minimise_log(cost, math.log(lo), math.log(hi), grid)
    return float(math.exp(x)), t


momentum_timescales = timescales
momentum_regime = regime
