r"""Stability, batch size and limits of streaming least-squares SGD (plain and heavy ball).

docs/lstsq.md, "Stability and batch size" and "Momentum". Everything here is exact at finite d
for Gaussian data unless its docstring says "homogenized" (the d -> infinity limit).

* `critical_step_size`: the exact threshold gamma_c. Plain SGD: the root of
  (gamma/(B d)) sum_i lambda_i / (2 - (gamma/d)(1 + 1/B) lambda_i) = 1. Heavy ball: the root of the
  feedback G(gamma) = sum_i m_i/(1 - m_i) = 1 with
  m_i = (eta lambda_i / B)(1+beta) / ((1-beta)(2(1+beta) - eta lambda_i)) (one formula: at beta = 0
  it is the plain threshold).
* `critical_batch_size` = tr H / lambda_max; `accelerated_critical_batch_size` for the optimal heavy
  ball.
* `limit_excess_risk`, `kernel_mass`, `feedback`, `asymptotic_rate`, `effective_step_size`.

A function of a setup raises ValueError ("setup=... is invalid; allowed: ...") for anything
but a `StreamingLeastSquares`, and one of a single step size (`kernel_mass`, `feedback`,
`limit_risk`, `asymptotic_rate`, `recursion_matrix`, ...) for a step-size `Schedule`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy  # its submodules load on first use (scipy.optimize, ...)

from ...setups import _validate as v
from ...setups.lstsq import StreamingLeastSquares
from ._recursion import mode_coefficients

#: the largest d of `recursion_matrix`: its dense d x d matrices (three at once) stay below
#: ~400 MiB
MAX_MATRIX_DIM = 4096


def _mode_masses(eigenvalues, eta, batch_size, momentum) -> np.ndarray:
    """m_i = (eta lambda_i / B)(1+beta) / ((1-beta)(2(1+beta) - eta lambda_i)): the mass of mode i's
    kernel, (eta^2 lambda_i^2 / B) sum_m u_m(lambda_i)^2 (inf where the noiseless heavy ball is
    unstable)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    b = momentum
    a = eta * lam
    denom = (1.0 - b) * (2.0 * (1.0 + b) - a)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, a * (1.0 + b) / (batch_size * denom), np.inf)


def _least_squares(setup, what: str) -> StreamingLeastSquares:
    """``setup`` itself; ValueError unless it is a `StreamingLeastSquares`."""
    return v.instance_of("setup", setup, StreamingLeastSquares,
                         f" ({what} is a quantity of streaming least squares)")


def _constant_step(setup: StreamingLeastSquares, what: str) -> float:
    """The constant step size gamma; ValueError for a `Schedule` (``what`` is one number of a
    constant step) or for anything but a `StreamingLeastSquares`."""
    _least_squares(setup, what)
    if setup.scheduled:
        raise ValueError(f"step_size={setup.step_size!r} is invalid; allowed: a number (this "
                         f"step_size is a Schedule; {what} is defined for a constant step size: "
                         "e.g. one piece's step size, setup.replace(step_size=gamma))")
    return setup.step_size


def _form(form, allowed: tuple) -> str:
    """``form`` itself; ValueError unless it is one of the strings ``allowed``."""
    if not isinstance(form, str) or form not in allowed:  # (an array has no single truth value)
        v._fail("form", form, f"one of {allowed}")
    return form


def _spectrum(eigenvalues) -> np.ndarray:
    """The eigenvalues as a float64 array: one-dimensional, non-empty, finite and > 0."""
    return v.real_array("eigenvalues", eigenvalues, low=0.0, low_open=True)


def kernel_mass(setup: StreamingLeastSquares) -> float:
    r"""||K||_1 = sum_i m_i, the mass of the discrete Volterra kernel (docs/lstsq.md, "Momentum").

    The Volterra equation converges iff this is < 1 (and eta lambda_max < 2(1+beta)); it is about
    gamma lambda_bar / (2 B (1 - beta)). inf past the curvature limit.
    """
    _constant_step(setup, "kernel_mass")
    eta = setup.step_size / setup.dim
    return float(np.sum(_mode_masses(setup.eigenvalues, eta, setup.batch_size, setup.momentum)))


def homogenized_kernel_mass(setup: StreamingLeastSquares) -> float:
    """int_0^inf K(t) dt = gamma lambda_bar / (2 B (1 - beta)) of the homogenized (d -> inf) kernel."""
    _constant_step(setup, "homogenized_kernel_mass")
    return float(setup.step_size * setup.eigenvalues.mean()
                 / (2.0 * setup.batch_size * (1.0 - setup.momentum)))


def feedback(setup: StreamingLeastSquares) -> float:
    """G = sum_i m_i/(1 - m_i), the kernel mass of the exact recursion (inf if some m_i >= 1).

    The exact recursion converges iff G < 1; at beta = 0 this is (gamma/(B d)) sum_i lambda_i /
    (2 - (gamma/d)(1 + 1/B) lambda_i).
    """
    _constant_step(setup, "feedback")
    m = _mode_masses(setup.eigenvalues, setup.step_size / setup.dim, setup.batch_size,
                     setup.momentum)
    if np.any(m >= 1.0):
        return math.inf
    return float(np.sum(m / (1.0 - m)))


def critical_step_size(setup: StreamingLeastSquares) -> float:
    r"""The exact finite-d stability threshold gamma_c(beta, B) of the expected recursion.

    gamma_c solves G(gamma) = sum_i m_i/(1 - m_i) = 1 (`feedback`) on (0, gamma_max), where
    gamma_max = 2 d B (1 - beta^2) / (lambda_max ((1+beta) + B (1-beta))) is where the top mode's
    m_i reaches 1. At beta = 0 this is the root of (gamma/(B d)) sum_i lambda_i /
    (2 - (gamma/d)(1 + 1/B) lambda_i) = 1 below 2d / ((1 + 1/B) lambda_max): exactly where the
    spectral radius of the plain recursion's matrix diag(a) + b lambda^T crosses 1. It
    interpolates between 2B / lambda_bar (small B) and 2d / lambda_max (large B).
    Units: gamma (the per-step step is gamma / d).
    """
    lam = _least_squares(setup, "critical_step_size").eigenvalues
    d, batch, b = setup.dim, setup.batch_size, setup.momentum
    upper = 2.0 * d * batch * (1.0 - b * b) / (lam.max() * ((1.0 + b) + batch * (1.0 - b)))

    def g(gamma):
        m = _mode_masses(lam, gamma / d, batch, b)
        return np.sum(m / (1.0 - m)) - 1.0

    hi = upper * (1.0 - 1e-15)
    if g(hi) <= 0:
        return float(upper)
    return float(scipy.optimize.brentq(g, 0.0, hi, xtol=1e-15 * upper, rtol=4 * np.finfo(float).eps))


def homogenized_critical_step_size(setup: StreamingLeastSquares) -> float:
    """gamma_c of the homogenized plain-SGD limit: min(2B / lambda_bar, 2d / lambda_max)."""
    lam = _least_squares(setup, "homogenized_critical_step_size").eigenvalues
    return float(min(2.0 * setup.batch_size / lam.mean(), 2.0 * setup.dim / lam.max()))


def critical_batch_size(setup: StreamingLeastSquares) -> float:
    """B_crit = tr H / lambda_max: above it the curvature limit binds and extra batch is wasted."""
    _least_squares(setup, "critical_batch_size")
    return float(setup.eigenvalues.sum() / setup.eigenvalues.max())


def recursion_matrix(setup: StreamingLeastSquares) -> np.ndarray:
    """The d x d matrix M = diag(a) + b lambda^T of plain SGD's rho(k+1) = M rho(k) + b sigma^2
    (small d only: d <= `MAX_MATRIX_DIM` = 4096; beta = 0).

    Raises:
        ValueError: for a Schedule, momentum != 0 (heavy ball has three moments per mode, not
            this matrix) or d > 4096.
    """
    _constant_step(setup, "recursion_matrix")
    if setup.momentum != 0.0:
        raise ValueError(f"momentum={setup.momentum!r} is invalid; allowed: 0.0 (recursion_matrix "
                         "is plain SGD's matrix; heavy ball's moment recursion has another)")
    v.integer("dim", setup.dim, high=MAX_MATRIX_DIM)
    a, b = mode_coefficients(setup.eigenvalues, setup.step_size, setup.batch_size, setup.dim)
    return np.diag(np.asarray(a)) + np.outer(np.asarray(b), setup.eigenvalues)


def limit_risk(setup: StreamingLeastSquares, form: str = "exact") -> float:
    """lim_k R_k: (sigma^2/2)/(1 - G) (``"exact"``) or (sigma^2/2)/(1 - ||K||_1) (``"volterra"``).

    inf when the corresponding mass is >= 1 (at or beyond the threshold).
    """
    _form(form, ("exact", "volterra"))
    mass = feedback(setup) if form == "exact" else kernel_mass(setup)
    if not mass < 1.0:
        return math.inf
    return 0.5 * setup.noise_std**2 / (1.0 - mass)


def limit_excess_risk(setup: StreamingLeastSquares, form: str = "exact") -> float:
    r"""lim_k R_k - sigma^2/2 (see `limit_risk`); inf at or beyond gamma_c.

    Plain SGD: rho_i = b_i psi / (1 - a_i), psi = sigma^2 / (1 - sum_i lambda_i b_i/(1 - a_i)); in
    the homogenized limit gamma lambda_bar sigma^2 / (2 (2B - gamma lambda_bar)).
    """
    return limit_risk(setup, form) - 0.5 * setup.noise_std**2


def effective_step_size(setup: StreamingLeastSquares) -> float:
    """gamma / (1 - beta): SGD at this step matches SGD+M at (gamma, beta) for small
    eta lambda / (1-beta)^2."""
    _constant_step(setup, "effective_step_size")
    return setup.step_size / (1.0 - setup.momentum)


def isotropic_risk(t, *, step_size, batch_size, noise_std, initial_risk):
    r"""Closed form for H = I (homogenized plain-SGD ODE): R solves
    dR/dt = -2 gamma (R - sigma^2/2) + (gamma^2/B) R, so

        R(t) = R_inf + (R_0 - R_inf) exp(-(2 gamma - gamma^2/B) t),   R_inf = B sigma^2 / (2B - gamma).

    At the homogenized edge gamma = 2B, R(t) = R_0 + gamma sigma^2 t; past it R grows
    exponentially (inf once it overflows float64).

    Args:
        t: times >= 0 (a number or an array of any shape).
        step_size: gamma > 0.
        batch_size: B >= 1 (a real number).
        noise_std: sigma >= 0.
        initial_risk: R_0 = R(0) >= sigma^2 / 2 (the risk includes the noise floor).

    Raises:
        ValueError: for any other value.
    """
    t = _times("t", t)
    g = v.positive("step_size", step_size)
    b2 = v.real("batch_size", batch_size, low=1.0)
    noise_std = v.nonnegative("noise_std", noise_std)
    initial_risk = v.real("initial_risk", initial_risk, low=0.5 * noise_std**2)
    if 2 * b2 == g:  # R_inf = B sigma^2 / 0: the linear growth of dR/dt = gamma sigma^2
        return initial_risk + g * noise_std**2 * t
    r_inf = b2 * noise_std**2 / (2 * b2 - g)
    with np.errstate(over="ignore"):  # past the edge the exponential overflows to inf
        growth = np.exp(-(2 * g - g**2 / b2) * t)
    if initial_risk == r_inf:  # R(t) = R_inf (0 * inf would be NaN past the edge)
        return r_inf + np.zeros_like(growth)
    return r_inf + (initial_risk - r_inf) * growth


def _times(name: str, t) -> np.ndarray:
    """``t`` as a float64 array of any shape (a number: 0-d) of finite times >= 0."""
    try:
        ndim, boolean = np.ndim(t), np.asarray(t).dtype == bool
    except ValueError:  # a ragged nesting of lists
        v._fail(name, t, "a time >= 0 or an array of them")
    if boolean:
        v._fail(name, t, "a time >= 0 or an array of them (not booleans)")
    return v.real_array(name, t, low=0.0, ndim=ndim, nonempty=False)


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
    gamma = _constant_step(setup, "asymptotic_rate")
    lam = np.asarray(setup.eigenvalues, dtype=np.float64)
    d, batch, b = setup.dim, setup.batch_size, setup.momentum
    eta = gamma / d
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
    """(gamma*, beta*) of the full-batch optimal heavy ball for the spectrum [mu, L] (docs/lstsq.md, "Momentum").

    eta* = 4/(sqrt L + sqrt mu)^2 per step (gamma* = d eta*), beta* = ((sqrt L - sqrt mu)/(sqrt L +
    sqrt mu))^2; the full-batch error then contracts by sqrt(beta*) ~ 1 - 2/sqrt(kappa) per step.

    Raises:
        ValueError: unless ``eigenvalues`` is a non-empty one-dimensional array of finite
            numbers > 0.
    """
    lam = _spectrum(eigenvalues)
    big, small = math.sqrt(lam.max()), math.sqrt(lam.min())
    return lam.size * 4.0 / (big + small) ** 2, ((big - small) / (big + small)) ** 2


def accelerated_critical_batch_size(eigenvalues, form: str = "exact") -> float:
    r"""The batch above which SGD+M at the full-batch optimal (gamma*, beta*) converges (docs/lstsq.md, "Momentum").

    With c_i = lambda_i (L + mu) / (2 sqrt(L mu) (L + mu - lambda_i)) (so m_i = c_i / B):

    * ``"exact"`` (default): the exact finite-d form, the root B > max c_i of
      sum_i c_i / (B - c_i) = 1 (G < 1 for Gaussian data at this d);
    * ``"homogenized"``: the homogenized identity B_c = sum_i c_i (||K||_1 < 1, Volterra equation);
    * ``"bulk"``: the approximation tr H / (2 sqrt(L mu)), good only when the spectrum's bulk is
      well below L.

    Below B_c the accelerated pair diverges and one must shrink the step (momentum then only
    rescales SGD through gamma/(1-beta)).

    Raises:
        ValueError: for another ``form``, or unless ``eigenvalues`` is a non-empty
            one-dimensional array of finite numbers > 0.
    """
    _form(form, ("exact", "homogenized", "bulk"))
    lam = _spectrum(eigenvalues)
    big, small = lam.max(), lam.min()
    if form == "bulk":
        return float(lam.sum() / (2.0 * math.sqrt(big * small)))
    if big == small:  # one distinct eigenvalue: beta* = 0, eta* lambda = 1, exact for any B
        c = np.full_like(lam, 0.5)
    else:
        # L - lambda_i + mu, not L + mu - lambda_i: at lambda_i = L the latter is 0 (and c_i
        # inf) once mu / L is below the rounding of L + mu (a condition number past ~1e16)
        c = lam * (big + small) / (2.0 * math.sqrt(big * small) * ((big - lam) + small))
    if form == "homogenized":
        return float(c.sum())
    lo = c.max() * (1.0 + 1e-15)
    f = lambda b: float(np.sum(c / (b - c))) - 1.0  # noqa: E731
    hi = c.sum() + c.max() + 1.0
    while f(hi) > 0:
        hi *= 2.0
    return float(scipy.optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-14))


