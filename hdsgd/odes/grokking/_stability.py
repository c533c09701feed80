r"""The stability edge of full-batch GD at initialisation (docs/grokking.md, "Stability").

GD on the weights W (N x D) with step eta = eta0 N / alpha^2 on L = (1/P) sum_mu (f_mu - y_mu)^2
is linearly stable at W iff eta lambda_max(Hessian of L) < 2. Linearising one GD step,
delta W <- (I - A) delta W with

    A = 2 eta0 [ (1/P) J^T J + I_N (x) R ],   R = (eps/alpha) (1/P) sum_mu Delta_mu x_mu x_mu^T,

J the P x ND Jacobian with rows (1/sqrt N)(phi'(h_i,mu) x_mu)_i (so J J^T = K, the NTK up to
alpha^2/N) and R the second-derivative (residual) term. Eliminating delta W, lambda > lambda_max(R)
is an eigenvalue of A / (2 eta0) iff 1 is an eigenvalue of the P x P matrix

    K_R(lambda) = (1/P) [ X (lambda - R)^-1 X^T ] o k,
    k_mu,nu = 1 + eps w_bar.(x_mu + x_nu) + eps^2 x_mu^T M x_nu,

which depends on the neurons only through (w_bar, M): the same formula holds at finite N and
for the infinite-width law (w_bar, M) = (0, I). mu(lambda) = lambda_max(K_R(lambda)) is convex and
decreasing on lambda > lambda_max(R), so its root lambda* (the top eigenvalue of A / (2 eta0))
follows from Newton's method started on its left. The edge is

    critical_step_size = 1 / lambda*          (eta0 units: 1 - 2 eta0 lambda* = -1).

Without the residual term (alpha -> inf) lambda* = lambda_max(K0)/P with K0 the initial NTK.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy  # its submodules load on first use (scipy.optimize, ...)

from ..._precision import scoped_x64
from ...setups._validate import prng_key
from ...setups.grokking import (GrokkingTwoLayer, check_finite_width, check_setup,
                                initial_weights, training_set)


def _top(matrix) -> tuple[float, np.ndarray]:
    p = matrix.shape[0]
    vals, vecs = scipy.linalg.eigh(matrix, subset_by_index=[p - 1, p - 1])
    return float(vals[0]), vecs[:, 0]


def hessian_top_eigenvalue(x, delta, w_bar, m, alpha: float, eps: float) -> float:
    """lambda*: the top eigenvalue of A / (2 eta0) (module docstring) at the population
    (w_bar, M) with residuals ``delta`` on the inputs ``x`` (P, D). Numpy, float64."""
    x = np.asarray(x, dtype=np.float64)
    p = x.shape[0]
    r = (eps / alpha) * (x.T * np.asarray(delta)) @ x / p
    r_vals, r_vecs = np.linalg.eigh(0.5 * (r + r.T))
    xv = x @ r_vecs
    xa = x @ np.asarray(w_bar)
    k = 1.0 + eps * (xa[:, None] + xa[None, :]) + eps**2 * (x @ np.asarray(m) @ x.T)

    def mu(lam, power=1):
        return _top(((xv / (lam - r_vals) ** power) @ xv.T / p) * k)

    gauss_newton, _ = _top((x @ x.T) * k / p)
    top_r = float(r_vals[-1])
    lam = gauss_newton + float(r_vals[0])          # lambda* >= lambda_max(GN) + lambda_min(R)
    floor = top_r + 1e-12 * max(abs(gauss_newton), abs(top_r), 1e-300)
    if lam <= floor:
        lam = floor
    value, vec = mu(lam)
    # no root above lambda_max(R); at R -> 0 (eps -> 0) the start is the root itself, where
    # round-off puts mu a few ulps below 1 (eps = 1e-30 returned lambda_max(R) ~ -1e-33: edge inf)
    if value < 1.0 - 1e-10:
        return top_r
    for _ in range(100):                           # Newton from the left: monotone, quadratic
        slope = -float(vec @ ((((xv / (lam - r_vals) ** 2) @ xv.T / p) * k) @ vec))
        step = (value - 1.0) / -slope
        lam += step
        value, vec = mu(lam)
        if step <= 1e-14 * abs(lam):
            return lam
    hi = gauss_newton + max(top_r, 0.0)
    return scipy.optimize.brentq(lambda t: mu(t)[0] - 1.0, floor, hi * (1 + 1e-9) + 1e-300,
                                 xtol=1e-15, rtol=1e-14)


def _initial_population(setup: GrokkingTwoLayer, init_key=None):
    """(x, Delta, w_bar, M) at initialisation: the infinite-width law or one draw."""
    x, _, y = training_set(setup)
    if init_key is None:
        w_bar, m = np.zeros(setup.dim), np.eye(setup.dim)
    else:
        w = initial_weights(setup, init_key)
        w_bar, m = w.mean(axis=0), w.T @ w / w.shape[0]
    alpha, eps = setup.output_scale, setup.quadratic_strength
    f = alpha * (x @ w_bar) + 0.5 * alpha * eps * np.sum((x @ m) * x, axis=1)
    delta = -y if setup.centered else f - y
    return x, delta, w_bar, m


@functools.lru_cache(maxsize=64)
def _edge_of_law(dim, n_samples, output_scale, quadratic_strength, centered, data_seed) -> float:
    setup = GrokkingTwoLayer(dim=dim, n_samples=n_samples, width=None, output_scale=output_scale,
                             quadratic_strength=quadratic_strength, centered=centered,
                             data_seed=data_seed)
    lam = hessian_top_eigenvalue(*_initial_population(setup), output_scale, quadratic_strength)
    return 1.0 / lam if lam > 0 else math.inf


@scoped_x64
def critical_step_size(setup: GrokkingTwoLayer, init_key=None) -> float:
    r"""The largest ``step_size`` eta0 at which full-batch GD is linearly stable at initialisation:
    1 / lambda*, lambda* the top eigenvalue of the Hessian of L in units of 2 / eta (module
    docstring; docs/grokking.md, "Stability").

    Args:
        setup: a `GrokkingTwoLayer` (its ``step_size`` and ``width`` do not enter).
        init_key: None (default) for the infinite-width initial law w_bar = 0, M = I on the
            setup's training set; or the initialisation key of one finite network
            (`initial_weights`), whose exact edge differs by O(1/sqrt(N)).

    inf when lambda* <= 0: the Hessian has no positive eigenvalue at the start (a small
    ``output_scale`` with large residuals), so no step size makes GD oscillate out.

    Above it GD leaves its initial point along the top Hessian mode (the loss grows
    geometrically at first). Whether it then diverges depends on the regime (measured,
    docs/grokking.md, "Stability"): lazy networks catapult back up to ~1.05x (D = 100) to
    ~1.25x (D = 20) the edge; in the rich regime the sharpness grows during training, so GD
    diverges from ~0.9-0.95x the edge on.

    Raises:
        ValueError: ``setup`` is not a `GrokkingTwoLayer` with dim, n_samples <= 46340 (its
            D x D and P x P matrices), or ``init_key`` is neither None nor a single JAX PRNG key
            (for a setup of finite ``width``).
    """
    check_setup(setup, square="critical_step_size")
    if init_key is not None:
        check_finite_width(setup)
        prng_key("init_key", init_key)
        lam = hessian_top_eigenvalue(*_initial_population(setup, init_key), setup.output_scale,
                                     setup.quadratic_strength)
        return 1.0 / lam if lam > 0 else math.inf
    return _edge_of_law(setup.dim, setup.n_samples, setup.output_scale,
                        setup.quadratic_strength, setup.centered, setup.data_seed)


def _edge_lower_bound(setup: GrokkingTwoLayer) -> float:
    """A cheap lower bound of `critical_step_size` (infinite-width law): 1 / (row-sum bounds of
    lambda_max(GN) + max(lambda_max(R), 0)); lets a step far below the edge skip the solve."""
    x, delta, _, _ = _initial_population(setup)
    p = x.shape[0]
    gram = x @ x.T
    gn = np.max(np.sum(np.abs(gram * (1.0 + setup.quadratic_strength**2 * gram)), axis=1)) / p
    r = (setup.quadratic_strength / setup.output_scale) * (x.T * delta) @ x / p
    bound = gn + max(0.0, float(np.max(np.sum(np.abs(r), axis=1))))
    return 1.0 / bound


def stability_warning(setup: GrokkingTwoLayer, init_key=None) -> str | None:
    """``meta["warning"]`` for a ``step_size`` past `critical_step_size`, else None."""
    if init_key is None and setup.step_size < _edge_lower_bound_cached(setup):
        return None
    edge = critical_step_size(setup, init_key)
    if setup.step_size <= edge:
        return None
    return (f"step_size={setup.step_size:.6g} is past the critical step size {edge:.6g} (the "
            "edge of stability of full-batch GD at initialisation, eta lambda_max(Hessian) = 2): "
            "GD leaves its initial point along the top Hessian mode, and diverges unless it "
            "catapults to a flatter region")


@functools.lru_cache(maxsize=64)
def _lower_bound_of_law(dim, n_samples, output_scale, quadratic_strength, centered,
                        data_seed) -> float:
    return _edge_lower_bound(GrokkingTwoLayer(
        dim=dim, n_samples=n_samples, width=None, output_scale=output_scale,
        quadratic_strength=quadratic_strength, centered=centered, data_seed=data_seed))


def _edge_lower_bound_cached(setup: GrokkingTwoLayer) -> float:
    return _lower_bound_of_law(setup.dim, setup.n_samples, setup.output_scale,
                               setup.quadratic_strength, setup.centered, setup.data_seed)
