r"""Deterministic equivalents of grokking in the two-layer quadratic network (spec grokking.md).

Three methods of ``predict`` (plus the onset heuristic `grokking_time`):

* ``"reduced"`` (spec §2.4, exact at any D and N for a given training set): every neuron follows
  the same affine map, so the first-layer mean ``w_bar`` and second moment ``M`` close:

      Delta_mu = alpha w_bar.x_mu + (alpha eps/2) x_mu^T M x_mu - y_mu   (minus f_0 if centred)
      g = (1/P) sum_mu Delta_mu x_mu,   G = (1/P) sum_mu Delta_mu x_mu x_mu^T,   c = 2 eta0/alpha
      B = I - c eps G,  b = -c g
      w_bar <- B w_bar + b,   M <- B M B^T + (B w_bar) b^T + b (B w_bar)^T + b b^T .

  ``solver="scan"`` (default) iterates this GD map with ``lax.scan``; ``solver="ode"`` integrates
  its gradient-flow limit in tau = 2 eta0 t / D with diffrax,

      dw_bar/dtau = -(D/alpha)(g + eps G w_bar),  dM/dtau = -(D/alpha)(g w_bar^T + w_bar g^T + eps(G M + M G)).

  N enters only through the initial condition: ``w_bar_0 = 0, M_0 = I`` (the N = inf law, the
  default) or the statistics of one finite-N draw (``init_key=``: then the prediction is the
  trajectory of that very network, to round-off).

  ``form="P"`` (default when P < D) runs the same exact dynamics in P-space (spec §2.4,
  consequence 2): each neuron is ``w = w_0 + X^T (V X w_0 + v)`` with (V, v) common to all
  neurons, updated by ``V <- V - (c eps/P) diag(Delta)(I + K V)``,
  ``v <- v - (c/P) Delta (1 + eps K v)`` (K = X X^T); every observable is a trace of P x P
  products (`sample_observables`), O(P^3) per step instead of O(P D^2 + D^3).

* ``"dmft"`` (spec §3.3, finite N, D, P -> inf at kappa fixed): `hdsgd.odes._grokking_dmft`.

* ``"lazy"`` (spec §3.1, alpha -> inf, centred, D, P -> inf with kappa = P/D): kernel gradient
  flow with the initial NTK, in closed form from the Marchenko-Pastur law of the Gram matrix
  and the outlier roots of the rank-one (constant-mode) perturbation; see `lazy_curves`.

All theory is float64.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.optimize

from .. import __version__
from ..api import check_horizon, check_times, predict, step_grid
from ..curve import Curve
from ..setups.grokking import GrokkingTwoLayer, initial_weights, kernel_alignment, training_set

METHODS = ("reduced", "lazy", "dmft")
SOLVERS = ("scan", "ode")
FORMS = ("auto", "D", "P")
DIVERGENCE_FACTOR = 1e12


class Params(NamedTuple):
    """Scalar hyperparameters as arrays (so that a sweep is one ``vmap``)."""

    alpha: jnp.ndarray
    eps: jnp.ndarray
    eta0: jnp.ndarray


class Problem(NamedTuple):
    """The training set, teacher and (centred case) the initial predictor on the train set."""

    x: jnp.ndarray      # (P, D)
    beta: jnp.ndarray   # (D,)
    y: jnp.ndarray      # (P,)
    f0: jnp.ndarray     # (P,) subtracted from f (zeros when not centred)


class State(NamedTuple):
    w_bar: jnp.ndarray  # (D,)
    m: jnp.ndarray      # (D, D)


# ----------------------------------------------------------------- small pure pieces
def network_output(state: State, x, params: Params):
    """f(x_mu) = alpha w_bar.x_mu + (alpha eps / 2) x_mu^T M x_mu for the rows of ``x``."""
    quad = jnp.sum((x @ state.m) * x, axis=1)
    return params.alpha * (x @ state.w_bar) + 0.5 * params.alpha * params.eps * quad


def residuals(state: State, problem: Problem, params: Params):
    """Delta_mu = f(x_mu) - f_0(x_mu) [if centred] - y_mu."""
    return network_output(state, problem.x, params) - problem.f0 - problem.y


def gd_step(state: State, problem: Problem, params: Params) -> State:
    """One exact full-batch GD step of the (w_bar, M) map (spec §2.4)."""
    x = problem.x
    p = x.shape[0]
    delta = residuals(state, problem, params)
    c = 2.0 * params.eta0 / params.alpha
    g = x.T @ delta / p
    gm = (x.T * delta) @ x / p
    bmat = jnp.eye(x.shape[1], dtype=x.dtype) - c * params.eps * gm
    b = -c * g
    bw = bmat @ state.w_bar
    m_new = bmat @ state.m @ bmat.T + jnp.outer(bw, b) + jnp.outer(b, bw) + jnp.outer(b, b)
    m_new = 0.5 * (m_new + m_new.T)
    return State(bw + b, m_new)


def flow_field(tau, state: State, args) -> State:
    """d(w_bar, M)/dtau of gradient flow in tau = 2 eta0 t / D (spec §2.4)."""
    problem, params = args
    x = problem.x
    p, d = x.shape
    delta = residuals(state, problem, params)
    g = x.T @ delta / p
    gm = (x.T * delta) @ x / p
    scale = -d / params.alpha
    dw = scale * (g + params.eps * gm @ state.w_bar)
    gmm = gm @ state.m
    dm = scale * (jnp.outer(g, state.w_bar) + jnp.outer(state.w_bar, g)
                  + params.eps * (gmm + gmm.T))
    return State(dw, dm)


def observables(state: State, state0: State, problem: Problem, params: Params,
                centered: bool) -> dict:
    """Every observable of `GrokkingTwoLayer` from (w_bar, M) (spec §2.2; eq. 6)."""
    x, beta, y = problem.x, problem.beta, problem.y
    p, d = x.shape
    alpha, eps = params.alpha, params.eps
    w_eff, m_eff = (state.w_bar - state0.w_bar, state.m - state0.m) if centered else state
    beta2 = beta @ beta
    variance = 0.25 * (beta2 / d - alpha * eps * jnp.trace(m_eff) / d) ** 2
    mis = (alpha**2 * eps**2 * jnp.sum(m_eff * m_eff) - 2.0 * alpha * eps * (beta @ m_eff @ beta)
           + beta2**2) / (2.0 * d**2)
    lin = alpha**2 * (w_eff @ w_eff) / d
    delta = residuals(state, problem, params)
    # kernel-task alignment on the training set
    a = x @ state.w_bar
    gram = x @ x.T
    k = gram * (1.0 + eps * (a[:, None] + a[None, :]) + eps**2 * (x @ state.m @ x.T))
    return {
        "train_loss": jnp.mean(delta**2),
        "test_loss": variance + mis + lin,
        "variance_error": variance,
        "misalignment_error": mis,
        "linear_power": lin,
        "T": jnp.trace(state.m) / d,
        "S": beta @ state.m @ beta / d**2,
        "F": jnp.sum(state.m * state.m) / d**2,
        "ell": state.w_bar @ state.w_bar / d,
        "weight_norm": jnp.sqrt(jnp.trace(state.m)),
        "alignment": kernel_alignment(k, y),
    }


# ----------------------------------------------------------------- the reduced dynamics
def reduced_gd(state0: State, problem: Problem, params: Params, steps, centered: bool) -> dict:
    """Observables at the (sorted, integer) ``steps`` of the exact GD map (pure JAX, jit/vmap-able)."""
    return observed_at_steps(lambda s: gd_step(s, problem, params),
                             lambda s: observables(s, state0, problem, params, centered),
                             state0, steps)


def observed_at_steps(step, observe, state0, steps) -> dict:
    """``observe(state_k)`` for each k in the sorted integer ``steps``, where state_{k+1} =
    ``step(state_k)``: one ``fori_loop`` per gap between output steps, inside a ``scan``."""
    steps = jnp.asarray(steps)
    starts = jnp.concatenate([jnp.zeros(1, steps.dtype), steps[:-1]])

    def segment(state, bounds):
        lo, hi = bounds
        state = jax.lax.fori_loop(lo, hi, lambda _, s: step(s), state)
        return state, observe(state)

    _, obs = jax.lax.scan(segment, state0, (starts, steps))
    return obs


_reduced_gd_jit = jax.jit(reduced_gd, static_argnames=("centered",))


def reduced_flow(state0: State, problem: Problem, params: Params, taus, centered: bool, *,
                 rtol: float = 1e-7, atol: float = 1e-9, max_steps: int = 100_000):
    """Observables at ``taus`` of the gradient flow in tau (diffrax Tsit5, adaptive steps).

    Returns (observables, success flag); after a failure the values are non-finite.
    """
    taus = jnp.asarray(taus)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(flow_field), diffrax.Tsit5(), t0=0.0, t1=taus[-1], dt0=None, y0=state0,
        args=(problem, params), saveat=diffrax.SaveAt(ts=taus),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps, throw=False,
    )
    ok = sol.result == diffrax.RESULTS.successful
    obs = jax.vmap(lambda s: observables(s, state0, problem, params, centered))(sol.ys)
    obs = jax.tree_util.tree_map(lambda v: jnp.where(ok, v, jnp.nan), obs)
    return obs, ok


_reduced_flow_jit = jax.jit(reduced_flow, static_argnames=("centered", "max_steps"))


# ----------------------------------------------------------------- the P-space form (P < D)
class SampleState(NamedTuple):
    """P-space coordinates of the population (spec §2.4, consequence 2).

    Every update of a neuron is a combination of the training inputs, so each neuron is
    ``w = w_0 + X^T (V X w_0 + v)`` (X is P x D): ``V`` (P x P) and ``v`` (P,) are common to all
    neurons. The spec's (a, Sigma) are the mean and second moment of the training
    pre-activations h = X w = (I + K V) h_0 + K v, K = X X^T; carrying (V, v) instead of
    (a, Sigma) also gives the test loss, which needs the D-space statistics.
    """

    v_mat: jnp.ndarray  # (P, P)
    v_vec: jnp.ndarray  # (P,)


class InitMoments(NamedTuple):
    """The P-space statistics of the initial weights that the P-space form needs."""

    gram: jnp.ndarray   # K = X X^T (P, P)
    a0: jnp.ndarray     # X w_bar_0 (P,)
    q0: jnp.ndarray     # X M_0 X^T (P, P)
    r0: jnp.ndarray     # X M_0^2 X^T (P, P)
    p0: jnp.ndarray     # X M_0 beta (P,)
    bx: jnp.ndarray     # X beta (P,)
    tr0: jnp.ndarray    # Tr M_0
    s0: jnp.ndarray     # beta^T M_0 beta
    f0: jnp.ndarray     # ||M_0||_F^2
    wsq0: jnp.ndarray   # |w_bar_0|^2
    pm0: jnp.ndarray    # X M_0 w_bar_0 (P,)
    wb0: jnp.ndarray    # w_bar_0 . beta


def init_moments(setup: GrokkingTwoLayer, x, beta, init_key=None) -> InitMoments:
    """`InitMoments` of the N = inf law (w_bar_0 = 0, M_0 = I) or of one finite-N draw, in
    O(P D N) without forming a D x D matrix."""
    gram = x @ x.T
    bx = x @ beta
    if init_key is None:
        d = x.shape[1]
        return InitMoments(gram, jnp.zeros(x.shape[0]), gram, gram, bx, bx, jnp.asarray(float(d)),
                           beta @ beta, jnp.asarray(float(d)), jnp.asarray(0.0),
                           jnp.zeros(x.shape[0]), jnp.asarray(0.0))
    w = initial_weights(setup, init_key)
    n = w.shape[0]
    xw = x @ w.T                      # (P, N)
    wwt = w @ w.T                     # (N, N)
    wb = w @ beta
    w_bar = jnp.mean(w, axis=0)
    return InitMoments(gram, jnp.mean(xw, axis=1), xw @ xw.T / n, xw @ wwt @ xw.T / n**2,
                       xw @ wb / n, bx, jnp.sum(w * w) / n, wb @ wb / n, jnp.sum(wwt * wwt) / n**2,
                       w_bar @ w_bar, xw @ (w @ w_bar) / n, w_bar @ beta)


def sample_moments(state: SampleState, init: InitMoments):
    """(a, Q): mean and second moment over neurons of the training pre-activations h = X w."""
    u = jnp.eye(init.gram.shape[0], dtype=init.gram.dtype) + init.gram @ state.v_mat
    ua = u @ init.a0
    kv = init.gram @ state.v_vec
    q = u @ init.q0 @ u.T + jnp.outer(ua, kv) + jnp.outer(kv, ua) + jnp.outer(kv, kv)
    return ua + kv, 0.5 * (q + q.T)


def sample_residuals(state: SampleState, init: InitMoments, problem: Problem, params: Params):
    a, q = sample_moments(state, init)
    f = params.alpha * a + 0.5 * params.alpha * params.eps * jnp.diagonal(q)
    return f - problem.f0 - problem.y


def sample_gd_step(state: SampleState, init: InitMoments, problem: Problem,
                   params: Params) -> SampleState:
    """One exact GD step in P-space: each neuron's coefficient update is
    -(c/P) Delta (1 + eps h) with h = (I + K V) h_0 + K v, so
    V <- V - (c eps/P) diag(Delta) (I + K V),  v <- v - (c/P) Delta (1 + eps K v)."""
    p = init.gram.shape[0]
    delta = sample_residuals(state, init, problem, params)
    c = 2.0 * params.eta0 / params.alpha
    u = jnp.eye(p, dtype=init.gram.dtype) + init.gram @ state.v_mat
    v_mat = state.v_mat - (c * params.eps / p) * delta[:, None] * u
    v_vec = state.v_vec - (c / p) * delta * (1.0 + params.eps * (init.gram @ state.v_vec))
    return SampleState(v_mat, v_vec)


def sample_flow_field(tau, state: SampleState, args) -> SampleState:
    """Gradient flow in tau of the P-space form: gamma = 1/(alpha kappa),
    dV/dtau = -gamma eps diag(Delta)(I + K V),  dv/dtau = -gamma Delta (1 + eps K v)."""
    init, problem, params = args
    p = init.gram.shape[0]
    d = problem.x.shape[1]
    gam = d / (params.alpha * p)
    delta = sample_residuals(state, init, problem, params)
    u = jnp.eye(p, dtype=init.gram.dtype) + init.gram @ state.v_mat
    return SampleState(-gam * params.eps * delta[:, None] * u,
                       -gam * delta * (1.0 + params.eps * (init.gram @ state.v_vec)))


def sample_observables(state: SampleState, init: InitMoments, problem: Problem, params: Params,
                       centered: bool) -> dict:
    """Every observable from (V, v) in O(P^3): with L = V X M_0 + v w_bar_0^T (P x D) and
    C = V Q_0 V^T + V a_0 v^T + v a_0^T V^T + v v^T, M - M_0 = X^T L + L^T X + X^T C X and
    w_bar - w_bar_0 = X^T (V a_0 + v); every trace reduces to P x P products."""
    d = problem.x.shape[1]
    alpha, eps = params.alpha, params.eps
    vm, vv, k = state.v_mat, state.v_vec, init.gram
    va = vm @ init.a0
    cmat = vm @ init.q0 @ vm.T + jnp.outer(va, vv) + jnp.outer(vv, va) + jnp.outer(vv, vv)
    ck = cmat @ k
    lx = vm @ init.q0 + jnp.outer(vv, init.a0)                              # L X^T
    vpm = vm @ init.pm0
    ll = (vm @ init.r0 @ vm.T + jnp.outer(vpm, vv) + jnp.outer(vv, vpm)
          + init.wsq0 * jnp.outer(vv, vv))                                  # L L^T
    d_tr = 2.0 * jnp.trace(lx) + jnp.trace(ck)
    d_s = 2.0 * init.bx @ (vm @ init.p0 + vv * init.wb0) + init.bx @ cmat @ init.bx
    cross = 2.0 * (jnp.sum(vm * init.r0) + vv @ init.pm0) + jnp.sum(cmat * init.q0)  # Tr(M_0 dM)
    d_f = (2.0 * jnp.sum(lx * lx.T) + 2.0 * jnp.sum(ll * k) + jnp.sum(ck * ck.T)
           + 4.0 * jnp.sum(lx * ck.T))                                      # ||dM||_F^2
    e = va + vv
    d_w = e @ k @ e                                                          # |w_bar - w_bar_0|^2
    tr_m, s_m = init.tr0 + d_tr, init.s0 + d_s
    f_m = init.f0 + 2.0 * cross + d_f
    wsq = init.wsq0 + 2.0 * init.a0 @ e + d_w
    tr_e, s_e, f_e, w_e = (d_tr, d_s, d_f, d_w) if centered else (tr_m, s_m, f_m, wsq)
    beta2 = problem.beta @ problem.beta
    variance = 0.25 * (beta2 / d - alpha * eps * tr_e / d) ** 2
    mis = (alpha**2 * eps**2 * f_e - 2.0 * alpha * eps * s_e + beta2**2) / (2.0 * d**2)
    lin = alpha**2 * w_e / d
    a, q = sample_moments(state, init)
    f = alpha * a + 0.5 * alpha * eps * jnp.diagonal(q)
    ntk = k * (1.0 + eps * (a[:, None] + a[None, :]) + eps**2 * q)
    return {
        "train_loss": jnp.mean((f - problem.f0 - problem.y) ** 2),
        "test_loss": variance + mis + lin,
        "variance_error": variance,
        "misalignment_error": mis,
        "linear_power": lin,
        "T": tr_m / d,
        "S": s_m / d**2,
        "F": f_m / d**2,
        "ell": wsq / d,
        "weight_norm": jnp.sqrt(tr_m),
        "alignment": kernel_alignment(ntk, problem.y),
    }


def samples_gd(init: InitMoments, problem: Problem, params: Params, steps, centered: bool) -> dict:
    """Observables at the (sorted, integer) ``steps`` of the exact GD map in P-space."""
    p = init.gram.shape[0]
    state0 = SampleState(jnp.zeros((p, p)), jnp.zeros(p))
    return observed_at_steps(lambda s: sample_gd_step(s, init, problem, params),
                             lambda s: sample_observables(s, init, problem, params, centered),
                             state0, steps)


_samples_gd_jit = jax.jit(samples_gd, static_argnames=("centered",))


def samples_flow(init: InitMoments, problem: Problem, params: Params, taus, centered: bool, *,
                 rtol: float = 1e-7, atol: float = 1e-9, max_steps: int = 100_000):
    """Observables at ``taus`` of the P-space gradient flow (diffrax Tsit5); (obs, success)."""
    taus = jnp.asarray(taus)
    p = init.gram.shape[0]
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(sample_flow_field), diffrax.Tsit5(), t0=0.0, t1=taus[-1], dt0=None,
        y0=SampleState(jnp.zeros((p, p)), jnp.zeros(p)), args=(init, problem, params),
        saveat=diffrax.SaveAt(ts=taus),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps, throw=False,
    )
    ok = sol.result == diffrax.RESULTS.successful
    obs = jax.vmap(lambda s: sample_observables(s, init, problem, params, centered))(sol.ys)
    obs = jax.tree_util.tree_map(lambda v: jnp.where(ok, v, jnp.nan), obs)
    return obs, ok


_samples_flow_jit = jax.jit(samples_flow, static_argnames=("centered", "max_steps"))


def initial_state(setup: GrokkingTwoLayer, init_key=None) -> State:
    """(w_bar_0, M_0): the N = inf law (0, I) by default, or one finite-N draw for ``init_key``."""
    if init_key is None:
        return State(jnp.zeros(setup.dim), jnp.eye(setup.dim))
    w = initial_weights(setup, init_key)
    return State(jnp.mean(w, axis=0), w.T @ w / w.shape[0])


def problem_of(setup: GrokkingTwoLayer, state0: State, params: Params) -> Problem:
    x, beta, y = training_set(setup)
    p = Problem(x, beta, y, jnp.zeros_like(y))
    if setup.centered:
        p = p._replace(f0=network_output(state0, x, params))
    return p


def params_of(setup: GrokkingTwoLayer) -> Params:
    return Params(jnp.asarray(setup.output_scale), jnp.asarray(setup.quadratic_strength),
                  jnp.asarray(setup.learning_rate))


# ----------------------------------------------------------------- the lazy limit (spec §3.1)
class LazySpectrum(NamedTuple):
    """The kernel's spectral data in the proportional limit (spec §3.1).

    K0(train, train) -> B + eps^2 kappa u u^T with B = A + eps^2 I, A = X^T X (Gram matrix).
    ``bulk_*``: Gauss-Legendre nodes/weights for the MP density of A's nonzero eigenvalues
    (P-space law, so (1/P) Tr h(A) = sum bulk_w h(bulk_s) + null h(0)); ``nu_*``: the spectral
    measure of K0 at u = 1/sqrt(P), as a bulk density on B's support plus atoms (outliers).
    """

    bulk_s: np.ndarray
    bulk_w: np.ndarray
    null: float
    nu_bulk_lam: np.ndarray
    nu_bulk_w: np.ndarray
    nu_atoms: np.ndarray
    nu_atom_w: np.ndarray


@functools.lru_cache(maxsize=8)
def _leggauss(n: int):
    return np.polynomial.legendre.leggauss(n)


def _mp_edges(kappa: float):
    return (math.sqrt(kappa) - 1.0) ** 2, (math.sqrt(kappa) + 1.0) ** 2


def _mp_density(s, kappa):
    """Density of the nonzero eigenvalues of A = X^T X (P x P, x ~ N(0, I/D), P = kappa D),
    normalised so that its mass is min(1, 1/kappa) (the rest is the atom at 0)."""
    a, b = _mp_edges(kappa)
    inside = np.clip((b - s) * (s - a), 0.0, None)
    return np.sqrt(inside) / (2.0 * np.pi * kappa * s)


def _stieltjes_b(lam, kappa, eps, bulk_s, bulk_w, null):
    """m_B(lam) = (1/P) Tr (lam - A - eps^2)^-1 for real lam outside B's spectrum."""
    return np.sum(bulk_w / (lam - bulk_s - eps**2)) + null / (lam - eps**2)


def _stieltjes_closed(z, kappa):
    """m_A(z) = (1/P) Tr (z - A)^-1 in closed form (MP, branch with m ~ 1/z at infinity)."""
    a, b = _mp_edges(kappa)
    z = np.asarray(z, dtype=complex)
    root = np.sqrt(z - a) * np.sqrt(z - b)  # principal branches: ~ z at infinity, cut on [a, b]
    return (z + kappa - 1.0 - root) / (2.0 * kappa * z)


def lazy_spectrum(kappa: float, eps: float, n_quad: int = 400) -> LazySpectrum:
    """Quadrature for the MP law of A and for the spectral measure nu of K0 at the constant mode.

    nu has Stieltjes transform G_nu = m_B / (1 - eps^2 kappa m_B) (Sherman-Morrison; u is a
    generic direction for A): a bulk density -Im G_nu(lam + i0)/pi on B's support and atoms at
    the roots lam* of 1 = eps^2 kappa m_B(lam) outside it, of weight -1/(c^2 m_B'(lam*)).
    """
    lo, hi = _mp_edges(kappa)
    c = eps**2 * kappa
    null = max(0.0, 1.0 - 1.0 / kappa)
    # Gauss-Legendre in the angle s = mid - half cos(theta): resolves the square-root edges
    theta, wt = _leggauss(n_quad)
    theta = 0.5 * np.pi * (theta + 1.0)
    wt = 0.5 * np.pi * wt
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    s = mid - half * np.cos(theta)
    ds = half * np.sin(theta)
    bulk_w = _mp_density(s, kappa) * ds * wt
    # nu's bulk: -Im G_nu / pi at lam = s + eps^2 + i0
    m_a = _stieltjes_closed(s + 1e-300j, kappa)
    m_a = np.conj(m_a) if np.mean(m_a.imag) > 0 else m_a  # lam + i0: Im m < 0
    m_b = m_a  # shift by eps^2: m_B(s + eps^2) = m_A(s)
    g_nu = m_b / (1.0 - c * m_b)
    nu_bulk_w = -g_nu.imag / np.pi * ds * wt
    lam_bulk = s + eps**2
    # outliers: roots of 1 = c m_B(lam) above the bulk and between eps^2 (null atom) and the bulk
    atoms, weights = [], []

    def fun(lam):
        return c * np.real(_stieltjes_closed(lam - eps**2, kappa)) - 1.0

    def dfun(lam, h=1e-7):
        return (fun(lam + h) - fun(lam - h)) / (2.0 * h)

    intervals = [(hi + eps**2, hi + eps**2 + 10.0 * (1.0 + c) + 10.0)]
    if kappa > 1.0:
        intervals.append((eps**2, lo + eps**2))
    elif kappa < 1.0:
        intervals.append((eps**2 + 0.0, lo + eps**2))
    for left, right in intervals:
        span = right - left
        a_, b_ = left + 1e-12 * span, right - 1e-12 * span
        fa, fb = fun(a_), fun(b_)
        if np.isfinite(fa) and np.isfinite(fb) and fa * fb < 0:
            root = scipy.optimize.brentq(fun, a_, b_, xtol=1e-14, rtol=1e-14)
            mprime = dfun(root) / c
            atoms.append(root)
            weights.append(-1.0 / (c**2 * mprime))
    return LazySpectrum(s, bulk_w, null, lam_bulk, nu_bulk_w, np.array(atoms), np.array(weights))


def lazy_curves(taus, kappa: float, eps: float, n_quad: int = 400) -> dict:
    r"""Train/test loss of kernel gradient flow with K0 in the proportional limit (spec §3.1).

    With g_tau(lam) = (1 - exp(-tau lam / kappa)) / lam,

        L_train = 1/2 (1/P) Tr exp(-2 tau B / kappa) + 1/4 int exp(-2 tau lam/kappa) dnu
        b       = (eps^2 kappa / 2) int g_tau dnu                       (learned constant)
        ell     = 1/2 kappa int s g_tau(s + eps^2)^2 dmu_A(s)
                  + (kappa/4) [int g_tau^2 (lam - eps^2) dnu - eps^2 kappa (int g_tau dnu)^2]
        L_test  = 1/2 + (b - 1/2)^2 + ell

    (``mu_A`` is the law of A's eigenvalues in P-space, i.e. (1/P) Tr; on the nonzero part
    kappa mu_A = mu_D, the spec's law of the eigenvalues of X X^T.) Returns a dict of arrays over ``taus``.
    """
    sp = lazy_spectrum(kappa, eps, n_quad)
    t = np.asarray(taus, dtype=np.float64)[:, None]
    lam_nu = np.concatenate([sp.nu_bulk_lam, sp.nu_atoms])
    w_nu = np.concatenate([sp.nu_bulk_w, sp.nu_atom_w])
    b_s = sp.bulk_s + eps**2

    def g(lam):
        return -np.expm1(-t * lam / kappa) / lam

    train = 0.5 * (np.sum(sp.bulk_w * np.exp(-2 * t * b_s / kappa), axis=1)
                   + sp.null * np.exp(-2 * t[:, 0] * eps**2 / kappa))
    train = train + 0.25 * np.sum(w_nu * np.exp(-2 * t * lam_nu / kappa), axis=1)
    g_nu = g(lam_nu)
    const = 0.5 * eps**2 * kappa * np.sum(w_nu * g_nu, axis=1)
    ell = 0.5 * kappa * np.sum(sp.bulk_w * sp.bulk_s * g(b_s) ** 2, axis=1)
    ell = ell + 0.25 * kappa * (np.sum(w_nu * g_nu**2 * (lam_nu - eps**2), axis=1)
                                - eps**2 * kappa * np.sum(w_nu * g_nu, axis=1) ** 2)
    variance = (const - 0.5) ** 2
    return {
        "train_loss": train,
        "test_loss": 0.5 + variance + ell,
        "variance_error": variance,
        "misalignment_error": np.full_like(train, 0.5),
        "linear_power": ell,
        "constant": const,
    }


def kernel_flow(setup: GrokkingTwoLayer, taus, *, average_teacher: bool = False) -> dict:
    r"""Kernel gradient flow with the exact infinite-width initial NTK on the setup's training set.

    The finite-D reference for ``"lazy"``: K0(x, x') = (x.x')(1 + eps^2 x.x'), centred,
    df/dtau = -(1/kappa) K0 Delta on the training set, so f = sum_mu c_mu K0(., x_mu) with
    c(tau) = g_tau(K0) y, and the test loss is exact (eq. 6 with w_bar -> X^T c / alpha and
    alpha eps M -> 2 eps^2 X^T diag(c) X). Numpy (an eigendecomposition of the P x P kernel).

    ``average_teacher=True`` returns the exact average over the teacher beta ~ N(0, I) for the
    setup's inputs X: every observable is a polynomial of degree 4 in beta, so only
    E[y] = a/2, E[y y^T] = (a a^T + 2 A o A)/4, E[|beta|^2 y] = (D + 2) a/2 and
    E|beta|^4 = D^2 + 2D enter (a_mu = |x_mu|^2, A = X X^T). This removes the heavy-tailed
    label noise (y = z^2/2), which otherwise dominates the finite-D scatter of the test loss.
    """
    if average_teacher:
        return _kernel_flow_teacher_average(setup, taus)
    x, beta, y = (np.asarray(a) for a in training_set(setup))
    return _kernel_flow_arrays(x, beta, y, setup.ratio, setup.quadratic_strength, taus)


def _kernel_flow_arrays(x, beta, y, kappa, eps, taus) -> dict:
    """`kernel_flow` for given inputs (P, D), teacher and labels."""
    d = x.shape[1]
    gram = x @ x.T
    k0 = gram * (1.0 + eps**2 * gram)
    evals, evecs = np.linalg.eigh(k0)
    evals = np.clip(evals, 1e-300, None)
    yk = evecs.T @ y
    t = np.asarray(taus, dtype=np.float64)
    beta2 = beta @ beta
    out = {k: np.empty_like(t) for k in ("train_loss", "test_loss", "variance_error",
                                         "misalignment_error", "linear_power")}
    for i, ti in enumerate(t):
        decay = np.exp(-ti * evals / kappa)
        out["train_loss"][i] = np.mean((evecs @ (decay * yk)) ** 2)
        coef = evecs @ (-np.expm1(-ti * evals / kappa) / evals * yk)
        v = x.T @ coef                      # linear coefficient
        q = 2.0 * eps**2 * (x.T * coef) @ x  # quadratic matrix: f = v.x + x^T q x / 2
        var = 0.25 * (beta2 / d - np.trace(q) / d) ** 2
        mis = (np.sum(q * q) - 2.0 * beta @ q @ beta + beta2**2) / (2.0 * d**2)
        lin = v @ v / d
        out["variance_error"][i], out["misalignment_error"][i], out["linear_power"][i] = var, mis, lin
        out["test_loss"][i] = var + mis + lin
    return out


def _kernel_flow_teacher_average(setup: GrokkingTwoLayer, taus) -> dict:
    """`kernel_flow` averaged over beta exactly (see there), with c = g_tau(K0) y."""
    x = np.asarray(training_set(setup)[0])
    p, d = x.shape
    kappa, eps = setup.ratio, setup.quadratic_strength
    gram = x @ x.T
    sq = np.diagonal(gram).copy()
    k0 = gram * (1.0 + eps**2 * gram)
    evals, evecs = np.linalg.eigh(k0)
    evals = np.clip(evals, 1e-300, None)
    yy = 0.25 * (np.outer(sq, sq) + 2.0 * gram**2)           # E[y y^T]
    rot = lambda m: evecs.T @ m @ evecs  # noqa: E731
    yy_k, a_k, gram_k, gram2_k = rot(yy), evecs.T @ sq, rot(gram), rot(gram**2)
    out = {k: np.empty(len(np.atleast_1d(taus))) for k in (
        "train_loss", "test_loss", "variance_error", "misalignment_error", "linear_power")}
    for i, ti in enumerate(np.asarray(taus, dtype=np.float64)):
        decay = np.exp(-ti * evals / kappa)
        g = -np.expm1(-ti * evals / kappa) / evals               # g_tau(K0) in its eigenbasis
        out["train_loss"][i] = np.sum(decay**2 * np.diagonal(yy_k)) / p
        lin = np.sum((g[:, None] * gram_k * g[None, :]) * yy_k) / d
        ga = g * a_k
        var = 0.25 * (1.0 + 2.0 / d - 4.0 * eps**2 * (d + 2.0) / (2.0 * d**2) * (a_k @ ga)
                      + 4.0 * eps**4 / d**2 * (ga @ yy_k @ ga))
        mis = (4.0 * eps**4 * np.sum((g[:, None] * gram2_k * g[None, :]) * yy_k)
               - 8.0 * eps**2 * np.sum(g * np.diagonal(yy_k)) + d**2 + 2.0 * d) / (2.0 * d**2)
        out["linear_power"][i], out["variance_error"][i], out["misalignment_error"][i] = lin, var, mis
        out["test_loss"][i] = var + mis + lin
    return out


# ----------------------------------------------------------------- grokking time (spec §3.2)
class GrokkingTime(NamedTuple):
    """The onset heuristic of spec §3.2 (all times in tau = 2 eta0 t / D unless named ``steps``).

    Attributes:
        tau_onset: Lambda(tau_g) = ln(D/(alpha eps)); inf when the net is too lazy.
        steps_onset: the same in GD steps.
        tau_onset_small_alpha: alpha ln(D/(alpha eps)) / (2 eps (1 - 1/kappa)).
        lambda_inf: Lambda(inf), the total log-growth of the teacher overlap S.
        log_target: ln(D/(alpha eps)).
        too_lazy: lambda_inf < log_target (no generalisation predicted), or alpha eps >= D
            (the heuristic's target is below S(0); the lazy side).
        alpha_threshold: the smallest alpha at which lambda_inf = log_target ("too lazy" above
            it; nan if there is none below D/eps).
    """

    tau_onset: float
    steps_onset: float
    tau_onset_small_alpha: float
    lambda_inf: float
    log_target: float
    too_lazy: bool
    alpha_threshold: float


def _rho_pieces(kappa, eps, n_quad=400):
    sp = lazy_spectrum(kappa, eps, n_quad)
    lam_nu = np.concatenate([sp.nu_bulk_lam, sp.nu_atoms])
    w_nu = np.concatenate([sp.nu_bulk_w, sp.nu_atom_w])
    return sp, lam_nu, w_nu


def grokking_time(setup: GrokkingTwoLayer, n_quad: int = 400) -> GrokkingTime:
    r"""Feature-learning onset and the "too lazy" threshold (spec §3.2; a scaling law, not a fit).

    Along the lazy trajectory the teacher overlap grows as S ~ S(0) exp(Lambda(tau)) with
    Lambda(tau) = (2 eps/alpha) int_0^tau rho, rho(tau) = (1/P) Tr exp(-tau B/kappa)
    + c0 int exp(-tau lam/kappa) dnu, c0 = 1/2 (centred) or 1/2 - alpha eps/2 (uncentred,
    the constant f_0 = alpha eps/2 at N = inf). Onset: Lambda(tau_g) = ln(D/(alpha eps)).
    The spec reports measured onsets (L_test < 0.3) 1.7-2.8x later than tau_g.
    """
    d, kappa = setup.dim, setup.ratio
    eps, alpha = setup.quadratic_strength, setup.output_scale
    sp, lam_nu, w_nu = _rho_pieces(kappa, eps, n_quad)
    b_s = sp.bulk_s + eps**2

    def c0(a):
        return 0.5 if setup.centered else 0.5 - 0.5 * a * eps

    def integral(tau, a):  # int_0^tau rho
        def part(lams, w):
            return np.sum(w * kappa * (-np.expm1(-tau * lams / kappa)) / lams)
        null = sp.null * kappa * (-math.expm1(-tau * eps**2 / kappa)) / eps**2
        return part(b_s, sp.bulk_w) + null + c0(a) * part(lam_nu, w_nu)

    def lam_total(a, tau=np.inf):
        return 2.0 * eps / a * integral(tau, a)

    target = math.log(d / (alpha * eps)) if d > alpha * eps else 0.0
    lam_inf = lam_total(alpha)
    # alpha eps >= D: the target overlap 1/(alpha eps) is below S(0) = 1/D, where the
    # heuristic has no onset to predict; this is the lazy side (Lambda(inf) ~ 1/alpha -> 0)
    too_lazy = not (lam_inf > target and d > alpha * eps)
    if too_lazy:
        tau_g = math.inf
    else:
        hi = 1.0
        while lam_total(alpha, hi) < target:
            hi *= 2.0
        tau_g = scipy.optimize.brentq(lambda t: lam_total(alpha, t) - target, 0.0, hi, rtol=1e-12)
    small = (alpha * target / (2.0 * eps * (1.0 - 1.0 / kappa))) if kappa > 1 else math.inf

    def excess(log_a):
        a = math.exp(log_a)
        return lam_total(a) - math.log(max(d / (a * eps), 1.0 + 1e-300))

    # the first alpha (scanning upwards) at which Lambda(inf) drops below ln(D/(alpha eps))
    grid = np.linspace(math.log(1e-6), math.log(d / eps), 120)
    vals = np.array([excess(g) for g in grid])
    below = np.nonzero(vals < 0)[0]
    if below.size == 0 or below[0] == 0:
        a_star = math.nan
    else:
        i = int(below[0])
        a_star = math.exp(scipy.optimize.brentq(excess, grid[i - 1], grid[i], xtol=1e-12))
    return GrokkingTime(float(tau_g), float(setup.steps(tau_g)), float(small), float(lam_inf),
                        float(target), bool(too_lazy), float(a_star))


# ----------------------------------------------------------------- finite-N DMFT (spec §3.3)
def _predict_dmft(setup: GrokkingTwoLayer, steps, *, dt, paths, response_paths, z_nodes,
                  iterations, damping, key, initial_overlap):
    from . import _grokking_dmft as dm

    if setup.width is None:
        raise ValueError("method='dmft' is the finite-width DMFT; got width=None (allowed: an "
                         "integer >= 1; the infinite-width proportional closure is not derived)")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt={dt!r} is invalid; allowed: a number > 0")
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping={damping!r} is invalid; allowed: [0, 1)")
    for name, value, low in (("paths", paths, 2), ("response_paths", response_paths, 1),
                             ("z_nodes", z_nodes, 1), ("iterations", iterations, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"{name}={value!r} is invalid; allowed: an integer >= {low}")
    n = setup.width
    taus = setup.tau(steps)
    n_steps = max(1, int(np.ceil(taus[-1] / dt - 1e-9)))
    chunk = 512
    paths = int(np.ceil(int(paths) / 2.0)) * 2
    while (paths * z_nodes) % chunk:
        chunk //= 2
    cfg = dm.DmftConfig(alpha=setup.output_scale, eps=setup.quadratic_strength, kappa=setup.ratio,
                        width=n, centered=setup.centered, dt=float(dt), n_steps=n_steps,
                        paths=paths, iterations=int(iterations), damping=float(damping),
                        z_nodes=int(z_nodes), response_paths=int(response_paths), chunk=chunk)
    if initial_overlap is None:
        m0 = np.zeros(n)
        m0[0] = np.sqrt(n / setup.dim)
    else:
        m0 = np.asarray(initial_overlap, dtype=np.float64)
        if m0.shape != (n,) or not np.all(np.isfinite(m0)):
            raise ValueError(f"initial_overlap has shape {m0.shape}; allowed: {n} finite numbers")
    key = jax.random.key(0) if key is None else key
    c, m, train, res = dm.solve_jit(cfg, jnp.asarray(m0), jnp.eye(n), key)
    obs = {k: np.asarray(v) for k, v in dm.observables(cfg, c, m, train).items()}
    grid = np.arange(n_steps + 1) * dt
    obs = {k: np.interp(taus, grid, v) for k, v in obs.items()}
    res = np.asarray(res)
    return obs, {"dt": float(dt), "paths": paths * int(z_nodes), "fixed_point_residual": float(res[-1])}


# ----------------------------------------------------------------- predict
@predict.register
def _predict(setup: GrokkingTwoLayer, horizon: float, *, times=None, method: str | None = None,
             solver: str = "scan", form: str = "auto", init_key=None, rtol: float = 1e-7,
             n_quad: int = 400,
             dt: float = 0.05, paths: int = 16384, response_paths: int = 256, z_nodes: int = 8,
             iterations: int = 25, damping: float = 0.5, dmft_key=None, initial_overlap=None,
             **options) -> Curve:
    """Predict the training dynamics of `GrokkingTwoLayer`.

    Args:
        setup: a `GrokkingTwoLayer`.
        horizon: final time in GD steps (tau = 2 eta0 steps / D).
        times: output times in steps; default: 0, then ~100 log-spaced whole steps.
        method: ``"reduced"`` (default; exact (w_bar, M) dynamics), ``"lazy"`` (alpha -> inf
            closed form in the proportional limit; requires ``centered=True``) or ``"dmft"``
            (finite-width DMFT in the proportional limit).
        solver: ``"reduced"`` only: ``"scan"`` (the exact GD map, whole steps) or ``"ode"``
            (gradient flow in tau, diffrax).
        form: ``"reduced"`` only: ``"D"`` (the (w_bar, M) map, O(P D^2 + D^3) per step),
            ``"P"`` (the P-space form of spec §2.4: per-neuron coefficients on the training
            inputs, O(P^3) per step, exact as well) or ``"auto"`` (``"P"`` when P < D).
        init_key: ``"reduced"`` only, finite width: start from the statistics of the weights
            ``initial_weights(setup, init_key)`` (exactly the network `simulate` runs for that
            key); default: the N = inf law w_bar = 0, M = I.
        rtol: ``solver="ode"`` relative tolerance.
        n_quad: ``"lazy"`` quadrature nodes on the Marchenko-Pastur bulk.
        dt, paths, response_paths, z_nodes, iterations, damping, dmft_key: ``"dmft"`` (finite
            width, proportional limit; see `hdsgd.odes._grokking_dmft`): Euler step in tau,
            chi sample paths (antithetic), paths used for the response R_F, Gauss-Hermite nodes
            in z, fixed-point iterations, damping, and the key of the path noise
            (default ``jax.random.key(0)``).
        initial_overlap: ``"dmft"``: m(0) (length N); default sqrt(N/D) e_1 (see the module).
    """
    if options:
        raise TypeError(f"unknown option(s) for GrokkingTwoLayer: {sorted(options)}")
    method = "reduced" if method is None else method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is invalid; allowed: {SOLVERS}")
    if form not in FORMS:
        raise ValueError(f"form={form!r} is invalid; allowed: {FORMS}")
    horizon = check_horizon(horizon)
    if times is None:
        steps = step_grid(max(1, int(round(horizon))))
    else:
        steps = check_times(times, horizon)
    extra = {}
    if method == "reduced":
        if init_key is not None and setup.width is None:
            raise ValueError("init_key needs a finite width; got width=None")
        params = params_of(setup)
        if form == "auto":
            form = "P" if setup.n_samples < setup.dim else "D"
        if form == "P":
            x, beta, y = training_set(setup)
            init = init_moments(setup, x, beta, init_key)
            f0 = (params.alpha * init.a0 + 0.5 * params.alpha * params.eps
                  * jnp.diagonal(init.q0)) if setup.centered else jnp.zeros_like(y)
            problem = Problem(x, beta, y, f0)
            gd_args = flow_args = (init, problem, params)
            gd_fn, flow_fn = _samples_gd_jit, _samples_flow_jit
        else:
            state0 = initial_state(setup, init_key)
            problem = problem_of(setup, state0, params)
            gd_args = flow_args = (state0, problem, params)
            gd_fn, flow_fn = _reduced_gd_jit, _reduced_flow_jit
        if solver == "scan":
            steps = np.round(steps).astype(np.int64)
            obs = gd_fn(*gd_args, jnp.asarray(steps), setup.centered)
        else:
            taus = setup.tau(steps)
            span = float(taus[-1]) * 50.0
            obs, ok = flow_fn(*flow_args, jnp.asarray(taus), setup.centered,
                              rtol=rtol, atol=rtol * 1e-2,
                              max_steps=int(min(10_000_000, 10_000 + 10 * span)))
            extra["solver_ok"] = bool(ok)
        extra["form"] = form
        obs = {k: np.asarray(v, dtype=np.float64) for k, v in obs.items()}
        extra["initial_condition"] = "infinite-width law" if init_key is None else "init_key draw"
        extra["solver"] = solver
    elif method == "dmft":
        obs, info = _predict_dmft(setup, steps, dt=dt, paths=paths, response_paths=response_paths,
                                  z_nodes=z_nodes, iterations=iterations, damping=damping,
                                  key=dmft_key, initial_overlap=initial_overlap)
        extra.update(info)
    else:
        if not setup.centered:
            raise ValueError("method='lazy' is the alpha -> inf limit of the centred network; "
                             "got centered=False (allowed: centered=True)")
        n_quad = int(n_quad)
        if n_quad < 16:
            raise ValueError(f"n_quad={n_quad} is invalid; allowed: an integer >= 16")
        obs = lazy_curves(setup.tau(steps), setup.ratio, setup.quadratic_strength, n_quad)
        extra["limit"] = "alpha -> inf, D, P -> inf at kappa = P/D"
    loss = obs["train_loss"]
    blown = ~np.isfinite(loss) | (np.abs(loss) > DIVERGENCE_FACTOR * max(abs(loss[0]), 1e-300))
    for name in list(obs):
        blown = blown | ~np.isfinite(obs[name])
    diverged = np.maximum.accumulate(blown)
    obs = {k: np.where(diverged, np.inf, v) for k, v in obs.items()}
    obs["tau"] = setup.tau(steps)
    return Curve(
        time=np.asarray(steps, dtype=np.float64),
        observables=obs,
        time_unit="step",
        samples=np.full(len(steps), float(setup.n_samples)),
        seeds=None,
        diverged=diverged,
        meta={**setup.fields(), "method": method, "version": __version__,
              "time_label": "GD steps t (tau = 2 eta0 t / D)", **extra},
    )
