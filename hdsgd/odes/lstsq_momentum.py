r"""Deterministic equivalents of one-pass mini-batch SGD with heavy-ball momentum on least squares.

The system is `hdsgd.StreamingLeastSquares` with ``momentum = beta > 0`` (spec ``momentum.md``
§8a; plain SGD, beta = 0, stays in `hdsgd.odes.lstsq`). Heavy ball, with eta = gamma/d the
per-step step, g_k the mini-batch gradient (1/B) sum_b (<w_k, x_b> - y_b) x_b and v_0 = 0:

    v_{k+1} = beta v_k - eta g_k,      w_{k+1} = w_k + v_{k+1}.

(PyTorch ``SGD(lr=eta, momentum=beta, dampening=0)`` is the same with buffer -v/eta.) Time
unit ``t = steps / d``. Observables: ``risk`` R = 1/2 E(y - <w, x>)^2 = sigma^2/2 + 1/2 sum_i
lambda_i E e_i^2 (e = w - w*) and ``excess_risk`` = R - sigma^2/2.

Per eigenmode i of H write a_i = eta lambda_i and, for the error e and velocity v along u_i,
the three second moments Sxx = E e_i^2, Sxv = E e_i v_i, Svv = E v_i^2. The mini-batch
gradient is g_i = lambda_i e_i + xi_i with, for Gaussian data (E[(x^T u)^2 x x^T] =
(u^T H u) H + 2 H u u^T H), E[xi_i^2 | e] = (1/B)(lambda_i^2 e_i^2 + lambda_i psi),
psi = sigma^2 + sum_j lambda_j e_j^2 (= 2R). Hence e' = (1 - a) e + beta v - eta xi,
v' = -a e + beta v - eta xi, and with N_i = (eta^2/B)(lambda_i^2 Sxx_i + lambda_i psi):

    Sxx' = (1-a)^2 Sxx + 2(1-a) beta Sxv + beta^2 Svv + N
    Sxv' = -(1-a) a Sxx + (1-2a) beta Sxv + beta^2 Svv + N
    Svv' = a^2 Sxx - 2 a beta Sxv + beta^2 Svv + N.

* ``method="recursion"`` (default): this recursion. It is **exact in expectation for Gaussian
  data at any finite d** (the spec §3c recursion with the label noise replaced by the full
  least-squares gradient noise, including its per-mode (1/B) lambda^2 Sxx part). beta = 0 gives
  the plain-SGD recursion of `hdsgd.odes.lstsq` (a = 1 - 2 eta lambda + (1 + 1/B) eta^2 lambda^2).
* ``method="volterra"``: the discrete Volterra equation of spec §8a, obtained by dropping the
  per-mode (1/B) lambda_i^2 Sxx_i part of the noise (O(1/d) in total):

      R_k = F_k + sum_{j=0}^{k-1} K(k-1-j) R_j,        K(m) = (eta^2/B) sum_i lambda_i^2 u_m(lambda_i)^2,
      F_k = sigma^2/2 + 1/2 sum_i lambda_i ebar_i(k)^2,
      ebar_i(k+1) = (1+beta-a_i) ebar_i(k) - beta ebar_i(k-1),  ebar_i(-1) = ebar_i(0) = e_i(0),
      u_0 = 1, u_1 = 1+beta-a, u_{m+1} = (1+beta-a) u_m - beta u_{m-1}  (heavy-ball impulse response).

  Solved exactly (it is explicit in R_k) with a scan, O(N^2) for N steps.

Derived quantities (all per step unless stated; spec §8a, exact finite-d forms derived here):

* kernel mass ||K||_1 = sum_i m_i, m_i = (eta lambda_i / B)(1+beta) / ((1-beta)(2(1+beta) - eta lambda_i))
  (uses sum_m u_m^2 = (1+beta)/(a (1-beta)(2(1+beta) - a))); ~ eta_eff tr H / (2B).
* the exact feedback G = sum_i m_i / (1 - m_i) (the kernel mass of the exact recursion: the
  per-mode (1/B) lambda^2 Sxx term turns each m_i into m_i/(1 - m_i)). The recursion converges iff
  eta lambda_max < 2(1+beta), every m_i < 1 and G < 1 (a renewal system with non-negative
  kernels: Perron-Frobenius on the matrix diag(m) + (m/lambda) lambda^T). `critical_step_size`
  solves G = 1 for gamma at fixed beta; at beta = 0 it is the plain-SGD threshold.
* limit risk R_inf = (sigma^2/2) / (1 - G) (exact), (sigma^2/2) / (1 - ||K||_1) (Volterra).
* effective step gamma / (1 - beta): for eta lambda << (1 - beta)^2 (small batch, gamma = O(1),
  d large) SGD+M at (gamma, beta) equals SGD at gamma/(1-beta) up to O(gamma lambda/(d (1-beta)^2)).
* `asymptotic_rate`: the exact per-step contraction factor of the excess risk, the root z of
  G(z) = sum_i m_i(z)/(1 - m_i(z)) = 1 with m_i(z) = (eta^2 lambda_i^2/B) sum_m u_m^2 z^{-m-1}.
* `accelerated_critical_batch_size`: with the full-batch optimal heavy ball for the spectrum
  [mu, L], eta* = 4/(sqrt L + sqrt mu)^2, beta* = ((sqrt L - sqrt mu)/(sqrt L + sqrt mu))^2, one has
  m_i = c_i / B, c_i = lambda_i (L+mu) / (2 sqrt(L mu) (L + mu - lambda_i)). Spec §8a's form is
  B_c = sum_i c_i (||K||_1 < 1); the exact finite-d form is the root of sum_i c_i/(B - c_i) = 1
  (G < 1), larger by the per-mode term, which matters for the modes at the edge lambda ~ L.
  Above B_c the run at (eta*, beta*) converges, and its rate tends to the accelerated beta*
  per step (for the second moments) as B grows; below, it diverges.

References: spec ``momentum.md`` §1, §3c, §8a; Paquette & Paquette (NeurIPS 2021,
arXiv:2106.03696); Lee, Cheng, Paquette & Paquette (NeurIPS 2022, arXiv:2206.01029).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, Float

from ..api import check_horizon
from ..curve import Curve
from ..setups.lstsq import StreamingLeastSquares

METHODS = ("recursion", "volterra")
MAX_VOLTERRA_STEPS = 200_000


# ----------------------------------------------------------------- the exact recursion
def moment_step(moments, eigenvalues, noise_var, eta, batch_size, momentum):
    """One step of the per-mode second-moment recursion; ``moments = (Sxx, Sxv, Svv)``, each (d,)."""
    sxx, sxv, svv = moments
    a = eta * eigenvalues
    psi = noise_var + jnp.dot(eigenvalues, sxx)
    noise = (eta**2 / batch_size) * (eigenvalues**2 * sxx + eigenvalues * psi)
    b = momentum
    common = b * b * svv + noise
    sxx_new = (1 - a) ** 2 * sxx + 2 * (1 - a) * b * sxv + common
    sxv_new = -(1 - a) * a * sxx + (1 - 2 * a) * b * sxv + common
    svv_new = a * a * sxx - 2 * a * b * sxv + common
    return sxx_new, sxv_new, svv_new


def recursion_psi(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
                  n_steps: int) -> Float[Array, " n"]:
    """psi(k) = 2 R(k) for k = 0..n_steps from the exact moment recursion (pure JAX, vmappable).

    Starts from Sxx = rho(0), Sxv = Svv = 0 (v_0 = 0). ``n_steps`` must be a Python int.
    """
    dim = eigenvalues.shape[0]
    eta = step_size / dim
    zero = jnp.zeros_like(initial_error)

    def step(moments, _):
        psi = noise_var + jnp.dot(eigenvalues, moments[0])
        return moment_step(moments, eigenvalues, noise_var, eta, batch_size, momentum), psi

    end, psis = jax.lax.scan(step, (initial_error, zero, zero), None, length=n_steps)
    return jnp.concatenate([psis, (noise_var + jnp.dot(eigenvalues, end[0]))[None]])


# ----------------------------------------------------------------- the Volterra equation
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
    """K(m) = (eta^2/B) sum_i lambda_i^2 u_m(lambda_i)^2, m = 0..n-1 (spec §8a)."""
    eta = step_size / eigenvalues.shape[0]
    us = impulse_response(eigenvalues, eta, momentum, n)
    return (eta**2 / batch_size) * (us**2 @ eigenvalues**2)


def volterra_forcing(eigenvalues, initial_error, noise_var, step_size, momentum, n: int
                     ) -> Float[Array, " n"]:
    """F_k = sigma^2/2 + 1/2 sum_i lambda_i ebar_i(k)^2, k = 0..n-1 (the noiseless heavy-ball risk)."""
    eta = step_size / eigenvalues.shape[0]
    es = deterministic_error(eigenvalues, initial_error, eta, momentum, n)
    return 0.5 * noise_var + 0.5 * (es**2 @ eigenvalues)


def volterra_risk(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
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


# ----------------------------------------------------------------- derived quantities
def _mode_masses(eigenvalues, eta, batch_size, momentum) -> np.ndarray:
    """m_i = (eta^2 lambda_i^2 / B) sum_m u_m(lambda_i)^2 (inf where the heavy ball is unstable)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    b = momentum
    a = eta * lam
    denom = (1.0 - b) * (2.0 * (1.0 + b) - a)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(denom > 0, a * (1.0 + b) / (batch_size * denom), np.inf)
    return m


def kernel_mass(setup: StreamingLeastSquares) -> float:
    r"""||K||_1 = sum_m K(m) = sum_i (eta lambda_i/B)(1+beta)/((1-beta)(2(1+beta) - eta lambda_i)) (spec §8a).

    The Volterra equation converges iff this is < 1 (and eta lambda_max < 2(1+beta)); it is
    about eta_eff tr H / (2B) = gamma lambda_bar / (2 B (1 - beta)). inf past the curvature limit.
    """
    eta = setup.step_size / setup.dim
    return float(np.sum(_mode_masses(setup.eigenvalues, eta, setup.batch_size, setup.momentum)))


def feedback(setup: StreamingLeastSquares) -> float:
    """G = sum_i m_i/(1 - m_i), the kernel mass of the exact recursion (inf if some m_i >= 1).

    The exact recursion converges iff G < 1; at beta = 0 this is (gamma/(B d)) sum_i lambda_i /
    (2 - (gamma/d)(1 + 1/B) lambda_i), the plain-SGD condition of spec ``lstsq_glm.md`` §2.1.
    """
    m = _mode_masses(setup.eigenvalues, setup.step_size / setup.dim, setup.batch_size, setup.momentum)
    if np.any(m >= 1.0):
        return math.inf
    return float(np.sum(m / (1.0 - m)))


def effective_step_size(setup: StreamingLeastSquares) -> float:
    """gamma / (1 - beta): SGD at this step matches SGD+M at (gamma, beta) for small eta lambda / (1-beta)^2."""
    return setup.step_size / (1.0 - setup.momentum)


def critical_step_size(setup: StreamingLeastSquares) -> float:
    r"""The exact finite-d stability threshold gamma_c(beta, B) of the momentum recursion.

    gamma_c solves G(gamma) = sum_i m_i/(1 - m_i) = 1 on (0, gamma_max), where gamma_max =
    2 d B (1 - beta^2) / (lambda_max ((1+beta) + B (1-beta))) is where the top mode's m_i
    reaches 1 (this lies below the heavy ball's curvature limit 2 d (1+beta)/lambda_max).
    Units: gamma (the per-step step is gamma/d). At beta = 0 it equals the plain-SGD threshold.
    """
    lam = setup.eigenvalues
    d, batch, b = setup.dim, setup.batch_size, setup.momentum
    upper = 2.0 * d * batch * (1.0 - b * b) / (lam.max() * ((1.0 + b) + batch * (1.0 - b)))

    def g(gamma):
        m = _mode_masses(lam, gamma / d, batch, b)
        return np.sum(m / (1.0 - m)) - 1.0

    hi = upper * (1.0 - 1e-15)
    if g(hi) <= 0:
        return float(upper)
    return float(scipy.optimize.brentq(g, 0.0, hi, xtol=1e-15 * upper, rtol=4 * np.finfo(float).eps))


def limit_risk(setup: StreamingLeastSquares, form: str = "exact") -> float:
    """lim_k R_k: (sigma^2/2)/(1 - G) (``"exact"``) or (sigma^2/2)/(1 - ||K||_1) (``"volterra"``).

    inf when the corresponding mass is >= 1 (beyond the threshold).
    """
    if form not in ("exact", "volterra"):
        raise ValueError(f"form={form!r} is invalid; allowed: ('exact', 'volterra')")
    mass = feedback(setup) if form == "exact" else kernel_mass(setup)
    if not mass < 1.0:
        return math.inf
    return 0.5 * setup.noise_std**2 / (1.0 - mass)


def limit_excess_risk(setup: StreamingLeastSquares, form: str = "exact") -> float:
    """lim_k R_k - sigma^2/2 (see `limit_risk`)."""
    return limit_risk(setup, form) - 0.5 * setup.noise_std**2


def _noiseless_maps(lam, eta, b) -> np.ndarray:
    """(d, 3, 3) noiseless moment maps acting on (Sxx, Sxv, Svv)."""
    a = eta * np.asarray(lam, dtype=np.float64)
    one = np.ones_like(a)
    rows = [[(1 - a) ** 2, 2 * (1 - a) * b, b * b * one],
            [-(1 - a) * a, (1 - 2 * a) * b, b * b * one],
            [a * a, -2 * a * b, b * b * one]]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def _heavy_ball_radius(lam, eta, b) -> float:
    """max_i |r_i|^2 over the roots of r^2 - (1+beta-eta lambda_i) r + beta (the noiseless rate)."""
    c = 1.0 + b - eta * np.asarray(lam, dtype=np.float64)
    disc = c * c - 4.0 * b
    real_roots = np.abs(c) / 2.0 + np.sqrt(np.maximum(disc, 0.0)) / 2.0
    radius = np.where(disc >= 0, real_roots, np.sqrt(b))
    return float(np.max(radius) ** 2)


def asymptotic_rate(setup: StreamingLeastSquares) -> float:
    r"""The per-step contraction factor of the excess risk of the exact recursion (>= 1: diverges).

    The largest z with G(z) = sum_i m_i(z)/(1 - m_i(z)) = 1, m_i(z) = (eta^2 lambda_i^2/B) H_i(z),
    H_i(z) = sum_m u_m(lambda_i)^2 z^{-m-1} = e_1^T (z - A_i)^{-1} (1, 1, 1)^T (A_i the noiseless
    3 x 3 moment map), or the noiseless heavy-ball rate max_i |r_i|^2 if that is larger. Rate per
    unit t: -d log z. At beta = 0 it is the spectral radius of the plain-SGD recursion matrix.
    """
    lam = np.asarray(setup.eigenvalues, dtype=np.float64)
    d, batch, b = setup.dim, setup.batch_size, setup.momentum
    eta = setup.step_size / d
    base = _heavy_ball_radius(lam, eta, b)
    maps = _noiseless_maps(lam, eta, b)
    ones = np.ones((lam.size, 3, 1))

    def gain(z):
        try:
            h = np.linalg.solve(z * np.eye(3)[None] - maps, ones)[:, 0, 0]
        except np.linalg.LinAlgError:  # z on a noiseless eigenvalue: the transfer function's pole
            return math.inf
        m = eta**2 * lam**2 / batch * h
        if np.any(m >= 1.0) or np.any(m < 0):
            return math.inf
        return float(np.sum(m / (1.0 - m)))

    lo = base * (1.0 + 1e-12) + 1e-15
    if gain(lo) <= 1.0:
        return base
    hi = max(1.0, lo) * 2.0
    while gain(hi) > 1.0:
        hi *= 2.0
    return float(scipy.optimize.brentq(lambda z: gain(z) - 1.0, lo, hi, xtol=1e-15, rtol=1e-14))


def accelerated_hyperparameters(eigenvalues) -> tuple[float, float]:
    """(gamma*, beta*) of the full-batch optimal heavy ball for the spectrum [mu, L] (spec §8a).

    eta* = 4/(sqrt L + sqrt mu)^2 per step (gamma* = d eta*), beta* = ((sqrt L - sqrt mu)/(sqrt L +
    sqrt mu))^2; the full-batch error then contracts by sqrt(beta*) ~ 1 - 2/sqrt(kappa) per step.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    big, small = math.sqrt(lam.max()), math.sqrt(lam.min())
    return lam.size * 4.0 / (big + small) ** 2, ((big - small) / (big + small)) ** 2


def accelerated_critical_batch_size(eigenvalues, form: str = "exact") -> float:
    r"""The batch above which SGD+M at the full-batch optimal (gamma*, beta*) converges (spec §8a).

    With c_i = lambda_i (L + mu) / (2 sqrt(L mu) (L + mu - lambda_i)) (so m_i = c_i / B):

    * ``"exact"`` (default): the exact finite-d form, the root B > max c_i of
      sum_i c_i / (B - c_i) = 1 (G < 1 for Gaussian data at this d);
    * ``"homogenized"``: spec §8a's identity B_c = sum_i c_i (||K||_1 < 1, Volterra equation);
    * ``"bulk"``: the approximation tr H / (2 sqrt(L mu)), good only when the spectrum's bulk is
      well below L.

    Below B_c the accelerated pair diverges and one must shrink the step (momentum then only
    rescales SGD through gamma/(1-beta)).
    """
    allowed = ("exact", "homogenized", "bulk")
    if form not in allowed:
        raise ValueError(f"form={form!r} is invalid; allowed: {allowed}")
    lam = np.asarray(eigenvalues, dtype=np.float64)
    big, small = lam.max(), lam.min()
    if form == "bulk":
        return float(lam.sum() / (2.0 * math.sqrt(big * small)))
    if big == small:  # one distinct eigenvalue: beta* = 0, eta* lambda = 1, exact for any B
        c = np.full_like(lam, 0.5)
    else:
        c = lam * (big + small) / (2.0 * math.sqrt(big * small) * (big + small - lam))
    if form == "homogenized":
        return float(c.sum())
    lo = c.max() * (1.0 + 1e-15)
    f = lambda b: float(np.sum(c / (b - c))) - 1.0  # noqa: E731
    hi = c.sum() + c.max() + 1.0
    while f(hi) > 0:
        hi *= 2.0
    return float(scipy.optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-14))


# ----------------------------------------------------------------- predict
_recursion_psi_jit = jax.jit(recursion_psi, static_argnums=(6,))
_volterra_jit = jax.jit(volterra_risk, static_argnums=(6,))


def predict_momentum(setup: StreamingLeastSquares, horizon: float, *, times=None,
                     method: str | None = None, **options) -> Curve:
    """Predict the risk of streaming least-squares SGD with heavy-ball momentum (beta > 0).

    Called by ``hdsgd.predict`` for a `StreamingLeastSquares` with ``momentum > 0``.

    Args:
        setup: a `StreamingLeastSquares` (any momentum, including 0).
        horizon: final time t = steps / d.
        times: output times in t, rounded to whole steps; default: every early step, then
            log-spaced (about 100 points).
        method: ``"recursion"`` (default; exact for Gaussian data) or ``"volterra"`` (spec §8a;
            drops an O(1/d) term; O(N^2) in the number of steps N, at most 200000 steps).
    """
    if options:
        raise TypeError(f"unknown option(s) for StreamingLeastSquares with momentum: {sorted(options)}")
    method = "recursion" if method is None else method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid with momentum={setup.momentum}; allowed: {METHODS}")
    horizon = check_horizon(horizon)
    d = setup.dim
    steps = setup.output_steps(horizon, times)
    n = int(steps.max())
    lam = jnp.asarray(setup.eigenvalues)
    rho0 = jnp.asarray(setup.initial_error)
    noise_var = setup.noise_std**2
    args = (lam, rho0, noise_var, setup.step_size, float(setup.batch_size), setup.momentum)
    if method == "recursion":
        risk = 0.5 * np.asarray(_recursion_psi_jit(*args, n))[steps]
    else:
        if n > MAX_VOLTERRA_STEPS:
            raise ValueError(f"horizon={horizon} is {n} steps; method='volterra' is O(steps^2) and "
                             f"allows at most {MAX_VOLTERRA_STEPS} steps (use method='recursion')")
        risk = np.asarray(_volterra_jit(*args, n))[steps]
    return momentum_risk_curve(setup, steps / d, risk, method)


def momentum_risk_curve(setup: StreamingLeastSquares, t_out, risk, method: str) -> Curve:
    """Wrap a predicted risk into a Curve, flagging divergence (at or past gamma_c(beta), or
    blown up); ``meta`` also records the effective step gamma / (1 - beta)."""
    from .lstsq import _risk_curve  # odes.lstsq hands off to this module, so import late

    return _risk_curve(setup, t_out, risk, method,
                       {"effective_step_size": effective_step_size(setup)})
