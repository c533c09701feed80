r"""Reduced dynamics of the inner-product model f = <u, v> (docs/momentum.md, "The
inner-product model"): the reduced SDE and its closure in the ambient coordinates, and the
observables of the first-order flow with its stationary fluctuation.

The reduced space. Label-noise SGD with momentum on f = <u, v>, u, v in R^d, y = 1, started at
(u_0, v_0) with both in span(e_1, e_2) (`InnerProductMomentum.start`), never leaves that span: every
gradient (f - y - delta zeta)(v, u) lies in it. So the law is exactly that of (u, v) in
R^2 x R^2, and the reduced equations live there: w = (u, v) of shape (2, 2), the manifold
Gamma = {<u, v> = 1} (3-dimensional), one datum hence ONE normal mode, normal direction
n = (v, u)/sqrt(lambda) with curvature lambda = tr H = ||u||^2 + ||v||^2 = ||w||^2.

Equations (the reduced SDE of docs/momentum.md, "Reduced SDE", in step units, written in the
ambient coordinates of R^4; they reproduce the two-parameter equations exactly when u || v,
c = 1):

    dw/dk = q                        (q in T_w Gamma: the tangential velocity, per step)
    dq/dk = -(1 - beta) q - eta (S/2) grad_Gamma lambda + (normal constraint force)
    dS    = [-(1 - beta)(S - S_eq(lambda)) - 1/2 S d(ln lambda)/dk] dk + sqrt(eta delta^2 S) dW

with grad_Gamma lambda = P_T (2 w), d ln lambda/dk = 2 <w, q>/lambda, P_T v = v - n <n, v>,
S_eq(lambda) = eta delta^2 (1 + beta) / [(1 - beta)(2(1 + beta) - eta lambda)] (the exact
stationary variance of the mode) and dW the energy noise of the single normal mode (O(1) at
gamma = 2/3). ``"closure"`` drops dW (the deterministic closure).

Discretisation (`reduced_step`): Euler-Maruyama for (q, S), then w <- Retract(w + h q) by
Gauss-Newton steps w <- w - grad f (f(w) - 1)/||grad f||^2, then q is re-projected onto the new
tangent space with its length kept (the constraint force does no work). For a manifold
embedded in R^4 this is the constrained Newton law to first order in h. A ``lax.scan`` over
the output intervals (a ``fori_loop`` of Euler steps inside each) is used rather than
diffrax: the retraction and the velocity re-projection are maps applied after each step, not
terms of a vector field, and diffrax's solvers have no such hook (a Baumgarte-stabilised
vector field would put a stiff artificial rate into an explicit Euler scheme).

Observables (`fluctuation_observables`): per path, the expectation over the normal
fluctuation w + x n with x = m + sqrt(2 S) cos(phi), phi a uniform phase (an oscillation of
energy ~ S: S is the phase-averaged variance of the path, not a Gaussian's; the closure, one
mean-field path, uses x ~ N(m, S)), by quadrature, with the mean normal offset

    m = -(3 S - 2 <q_u, q_v>/eta) / lambda^{3/2}

(docs/momentum.md, "The inner-product model"): along the normal f = 1 + sqrt(lambda) x
+ x^2/lambda, so the mean normal gradient is lambda m + 3 S/sqrt(lambda); the path's normal
acceleration is <d^2 w/dk^2, n> = -2 <q_u, q_v>/sqrt(lambda) (from d^2 f/dk^2 = 0); balancing
-eta (lambda m + 3S/sqrt(lambda)) against it gives m. For u || v this is the two-parameter
offset -(3S + 2 sdot^2/eta)/lambda^{3/2} (<q_u, q_v> = -sdot^2 there).

Slowest curvature of tr H at the flattest points (u = v = m, ||m|| = 1): the
Riemannian Hessian of tr H = ||w||^2 on Gamma there is, for a tangent t = (a, b),
2 ||t||^2 - <grad tr H, grad f>/||grad f||^2 * 2 <a, b> = 2 ||a - b||^2. On unit tangents it is
kappa = 4 along both the balance direction (m, -m)/sqrt(2) (the two-parameter direction) and
the opening direction (m_perp, -m_perp)/sqrt(2), and 0 along the rotation (m_perp, m_perp)/sqrt(2)
(a symmetry: the flattest points form a circle, and no observable moves along it). So
kappa = 4 as for the two-parameter model (`_scales.SLOW_CURVATURE`), and C* = (4 delta^2)^{1/3}.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import power_of_two_at_least
from ...setups.momentum import InnerProductMomentum, invariant_observables
from ._fluctuation import GAUSS, PHASE, stationary_variance
from ._sde import default_dt


def reduced_start(setup: InnerProductMomentum) -> np.ndarray:
    """(u_0, v_0) in the coordinates (e_1, e_2) of their span, shape (2, 2) (float64)."""
    return setup.replace(dim=2).start()


def _grad_f(w):
    """grad <u, v> = (v, u) for w = (u, v) of shape (..., 2, k)."""
    return w[..., ::-1, :]


def _dot(a, b):
    return jnp.sum(a * b, axis=(-2, -1))


def tangent_projection(w, vec):
    """P_T vec = vec - grad f <grad f, vec>/||grad f||^2 at w (the tangent space is ker grad f)."""
    g = _grad_f(w)
    return vec - g * (_dot(g, vec) / _dot(g, g))[..., None, None]


def retract(w, iterations: int = 2):
    """Gauss-Newton projection onto <u, v> = 1: w <- w - grad f (f(w) - 1)/||grad f||^2
    (quadratic convergence; two iterations from a point O(h^2) off the manifold)."""
    for _ in range(iterations):
        g = _grad_f(w)
        w = w - g * ((_dot(w[..., :1, :], w[..., 1:, :]) - 1.0) / _dot(g, g))[..., None, None]
    return w


def reduced_step(state, h, z, args):
    """One Euler-Maruyama step of length ``h`` (steps) of the reduced equations (module
    docstring). ``state`` = (w (..., 2, 2), q (..., 2, 2), S (...)); ``z`` standard normals
    shaped like S (zero for the closure); ``args`` = (eta, beta, 1 - beta, delta^2)."""
    w, q, var = state
    eta, beta, omb, noise_var = args
    lam = _dot(w, w)
    var_pos = jnp.maximum(var, 0.0)
    dlnlam = 2.0 * _dot(w, q) / lam
    s_eq = stationary_variance(eta, beta, noise_var, lam)
    var_new = (var + h * (-omb * (var - s_eq) - 0.5 * var_pos * dlnlam)
               + jnp.sqrt(eta * noise_var * var_pos * h) * z)
    force = -eta * var_pos[..., None, None] * tangent_projection(w, w)  # -eta (S/2) P_T (2w)
    q_new = q + h * (-omb * q + force)
    w_new = retract(w + h * q_new)
    speed = jnp.sqrt(_dot(q_new, q_new))
    q_new = tangent_projection(w_new, q_new)
    new_speed = jnp.sqrt(_dot(q_new, q_new))
    q_new = q_new * jnp.where(new_speed > 0, speed / jnp.where(new_speed > 0, new_speed, 1.0),
                              1.0)[..., None, None]
    return w_new, q_new, var_new


@functools.partial(jax.jit, static_argnames=("noise",))
def _solve(state0, counts, sizes, key, args, *, noise: bool):
    """Advance ``state0`` through the output intervals: ``counts[i]`` Euler steps of size
    ``sizes[i]`` each; the normals of Euler step j come from ``fold_in(key, j)``."""

    def interval(carry, xs):
        n, h = xs

        def body(_, c):
            state, j = c
            z = (jax.random.normal(jax.random.fold_in(key, j), state[2].shape, state[2].dtype)
                 if noise else jnp.zeros_like(state[2]))
            return reduced_step(state, h, z, args), j + 1

        state, j = jax.lax.fori_loop(0, n, body, carry)
        return (state, j), state

    (_, _), states = jax.lax.scan(interval, (state0, jnp.zeros((), jnp.int32)), (counts, sizes))
    return states


@default_dt.register
def _(setup: InnerProductMomentum, method: str = "sde") -> float:
    """Euler step in steps: 1/20 of the fastest reduced timescale (1/(1 - beta), or the
    along-manifold oscillation 1/sqrt(eta S_eq lambda_0)), at least 1 (as for the
    two-parameter model, with lambda_0 = P_0 + Q_0 of the inner-product start); a quarter of
    that for ``method="closure"`` (one path: a finer step costs little)."""
    lam0 = float(np.sum(reduced_start(setup) ** 2))
    s_eq = float(stationary_variance(setup.step_size, setup.momentum, setup.noise_var, 2.0))
    omega = math.sqrt(max(setup.step_size * s_eq * lam0, 1e-300))
    step = max(1.0, 0.05 * min(1.0 / setup.one_minus_beta, 1.0 / omega))
    return step / 4.0 if method == "closure" else step


def reduced_paths(setup: InnerProductMomentum, steps, *, key, paths: int, dt: float,
                  noise: bool):
    """Sample paths of the reduced equations at the output ``steps`` (sorted, >= 0): returns
    (w, q, S) (JAX arrays) with shapes (paths, T, 2, 2), (paths, T, 2, 2), (paths, T); one
    path when ``noise`` is False (the deterministic closure). Started on the manifold at
    (u_0, v_0) at rest with no fluctuation (S = 0), as the Monte Carlo."""
    steps = np.asarray(steps, dtype=np.float64)
    n = int(paths) if noise else 1
    widths = np.diff(np.concatenate([[0.0], steps]))
    counts = np.ceil(widths / dt - 1e-9).astype(np.int32)
    sizes = widths / np.maximum(counts, 1)
    # pad the grid with empty intervals to a power of two: few lengths, few compilations
    padded = power_of_two_at_least(steps.size, 16)
    counts = np.concatenate([counts, np.zeros(padded - steps.size, np.int32)])
    sizes = np.concatenate([sizes, np.zeros(padded - steps.size)])
    w0 = jnp.broadcast_to(jnp.asarray(reduced_start(setup)), (n, 2, 2))
    state0 = (w0, jnp.zeros((n, 2, 2), w0.dtype), jnp.zeros((n,), w0.dtype))
    args = tuple(jnp.asarray(a, jnp.float64) for a in (
        setup.step_size, setup.momentum, setup.one_minus_beta, setup.noise_var))
    w, q, var = _solve(state0, jnp.asarray(counts), jnp.asarray(sizes), key, args, noise=noise)
    return tuple(jnp.swapaxes(a[: steps.size], 0, 1) for a in (w, q, var))


def normal_offset(w, q, var, step_size):
    """Mean normal offset m = -(3 S - 2 <q_u, q_v>/eta)/lambda^{3/2} (module docstring)."""
    lam = _dot(w, w)
    return -(3.0 * var - 2.0 * jnp.sum(q[..., 0, :] * q[..., 1, :], -1) / step_size) / lam**1.5


def fluctuation_observables(w, q, var, step_size, *, phase: bool) -> dict:
    """E obs(w + x n), n = (v, u)/sqrt(lambda), over the normal fluctuation x of mean m
    (`normal_offset`) and variance S, for each path and time (any leading shape): the
    observables of `InnerProductMomentum` plus ``manifold_coordinate_sq`` (E s^2, for the
    time-to-target).

    ``phase=True`` (the SDE's sample paths): x = m + sqrt(2 S) cos(phi) with a uniform phase
    phi, the law of an oscillation of given energy (the reduced SDE averages over the fast
    phase; the energy, i.e. S, is what varies from path to path), 12 Gauss-Chebyshev phases.
    ``phase=False`` (the deterministic closure, and the ensemble): x ~ N(m, S), 12-point
    Gauss-Hermite. Both have the same E x^2, so tr H and the loss (quadratic in x) agree;
    observables with a kink at the flattest point do not: over paths with exponentially
    distributed energies (the stationary law of the energy SDE) the random-phase law mixes into
    the Gaussian, while Gaussians of exponentially distributed variance do not (they put too
    much mass near x = 0). [Derived here; with Gaussians per path the SDE's distance to the
    flattest minimisers is ~10% low near the fluctuation floor, E|x| = sqrt(2/pi) sqrt(S)
    instead of (2 sqrt 2/pi) sqrt(S) per path.]"""
    var = jnp.maximum(var, 0.0)
    u, v = w[..., 0, :], w[..., 1, :]
    invariants = (jnp.sum(u * u, -1), jnp.sum(v * v, -1), jnp.sum(u * v, -1))
    return fluctuation_average(*invariants, normal_offset(w, q, var, step_size), var,
                               PHASE if phase else GAUSS)


def fluctuation_average(p, q, r, mean, var, quadrature) -> dict:
    """E obs((u, v) + x (v, u)/sqrt(lambda)), lambda = P + Q, for x = mean + sqrt(var) X with X
    from ``quadrature`` = (nodes, weights) (`GAUSS` or `PHASE`), from the invariants P, Q, R of
    (u, v) alone: along the normal P -> P + 2xR/sqrt(lambda) + x^2 Q/lambda, Q likewise with
    P <-> Q, R -> R + x sqrt(lambda) + x^2 R/lambda. Returns the observables of
    `invariant_observables` plus ``manifold_coordinate_sq`` (E s^2)."""
    nodes, weights = quadrature
    x = jnp.asarray(mean)[..., None] + jnp.asarray(nodes) * jnp.sqrt(var)[..., None]
    p_, q_, r_ = (jnp.asarray(a)[..., None] for a in (p, q, r))
    l_ = p_ + q_
    root = jnp.sqrt(l_)
    obs = invariant_observables(p_ + 2 * x * r_ / root + x * x * q_ / l_,
                                q_ + 2 * x * r_ / root + x * x * p_ / l_,
                                r_ + x * root + x * x * r_ / l_)
    obs["manifold_coordinate_sq"] = obs["manifold_coordinate"] ** 2
    weights = jnp.asarray(weights)
    return {k: jnp.sum(val * weights, axis=-1) for k, val in obs.items()}


@functools.partial(jax.jit, static_argnames=("phase",))
def _path_means(w, q, var, step_size, *, phase: bool):
    """Path averages of `fluctuation_observables`, one time at a time (memory: paths x nodes)."""
    per_time = jax.lax.map(lambda a: jax.tree_util.tree_map(
        lambda o: jnp.mean(o, axis=0),
        fluctuation_observables(a[0], a[1], a[2], step_size, phase=phase)),
        (jnp.swapaxes(w, 0, 1), jnp.swapaxes(q, 0, 1), jnp.swapaxes(var, 0, 1)))
    return per_time


def expected_observables(setup: InnerProductMomentum, steps, *, key, paths: int, dt: float,
                         noise: bool) -> tuple[dict, bool]:
    """Observables of the reduced equations at ``steps`` (numpy, shape (T,)): the path average
    of `fluctuation_observables` (random-phase law for the SDE's paths, Gaussian for the
    closure); and whether every path stayed finite."""
    w, q, var = reduced_paths(setup, steps, key=key, paths=paths, dt=dt, noise=noise)
    size = np.asarray(steps).size
    padded = power_of_two_at_least(size, 16)  # as in reduced_paths: few compilations
    pad = lambda a: jnp.concatenate(  # noqa: E731
        [a, jnp.broadcast_to(a[:, -1:], (a.shape[0], padded - size) + a.shape[2:])], axis=1)
    means = _path_means(pad(w), pad(q), pad(var), setup.step_size, phase=noise)
    out = {k: np.asarray(val)[:size] for k, val in means.items()}
    finite = bool(np.all(np.isfinite(np.asarray(var))) and np.all(np.isfinite(np.asarray(w))))
    return out, finite


def flow_observables(p, q, r, var) -> dict:
    """E obs of (u, v) + x (v, u)/sqrt(lambda), x ~ N(m, var), lambda = P + Q, with the mean
    normal offset at rest m = -3 var / lambda^{3/2} (`normal_offset` with zero velocity),
    by Gauss-Hermite: the observables of the first-order flow's invariants with the
    stationary normal fluctuation (numpy arrays of shape (T,); compiled once per padded
    length)."""
    size = np.shape(p)[-1]
    width = (0, power_of_two_at_least(size, 16) - size)
    padded = (np.pad(np.asarray(a, dtype=np.float64), width, mode="edge") for a in (p, q, r, var))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite past the edge: flagged
        obs = _flow_observables(*padded)
    return {k: np.asarray(val)[:size] for k, val in obs.items()}


@jax.jit
def _flow_observables(p, q, r, var):
    var = jnp.maximum(var, 0.0)
    return fluctuation_average(p, q, r, -3.0 * var / (p + q) ** 1.5, var, GAUSS)
