r"""The P-space form of the reduced dynamics (exact; O(P^3) per step instead of O(P D^2 + D^3)).

docs/grokking.md, "The P-space form". Every GD update of a neuron is a combination of the
training inputs, so each neuron is ``w = w_0 + X^T (V X w_0 + v)`` (X is P x D) with ``V``
(P x P) and ``v`` (P,) common to all neurons, updated by

    V <- V - (c eps/P) diag(Delta)(I + K V),    v <- v - (c/P) Delta (1 + eps K v),   K = X X^T,

and every observable is a trace of P x P products (`sample_observables`).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..._segments import Dynamics
from ...setups.grokking import (GrokkingTwoLayer, initial_weights, kernel_alignment,
                                loss_terms, training_set)
from ._reduced import Params, Problem, solve_flow


class SampleState(NamedTuple):
    """P-space coordinates of the population.

    Every update of a neuron is a combination of the training inputs, so each neuron is
    ``w = w_0 + X^T (V X w_0 + v)`` (X is P x D): ``V`` (P x P) and ``v`` (P,) are common to all
    neurons. The (a, Sigma) of docs/grokking.md are the mean and second moment of the training
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
    w = jnp.asarray(initial_weights(setup, init_key))
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
    terms = loss_terms(alpha, eps, beta2 / d, tr_e / d, s_e / d**2, f_e / d**2, w_e / d)
    a, q = sample_moments(state, init)
    f = alpha * a + 0.5 * alpha * eps * jnp.diagonal(q)
    ntk = k * (1.0 + eps * (a[:, None] + a[None, :]) + eps**2 * q)
    return {
        "train_loss": jnp.mean((f - problem.f0 - problem.y) ** 2),
        **terms,
        "T": tr_m / d,
        "S": s_m / d**2,
        "F": f_m / d**2,
        "ell": wsq / d,
        "weight_norm": jnp.sqrt(tr_m),
        "alignment": kernel_alignment(ntk, problem.y),
    }


def zero_state(init: InitMoments) -> SampleState:
    """(V, v) = (0, 0): every neuron at its initial weights."""
    p = init.gram.shape[0]
    return SampleState(jnp.zeros((p, p), init.gram.dtype), jnp.zeros(p, init.gram.dtype))


class SampleGD(Dynamics):
    """The exact GD map in P-space as a `Dynamics` for `hdsgd._segments.run_segments`; its
    state starts at `zero_state` (V = 0, v = 0: the initial weights)."""

    init: InitMoments
    problem: Problem
    params: Params
    centered: bool = eqx.field(static=True)

    def advance(self, state, first_step, n_steps):
        return jax.lax.fori_loop(first_step, first_step + n_steps,
                                 lambda _, s: sample_gd_step(s, self.init, self.problem,
                                                             self.params), state)

    def observe(self, state):
        return sample_observables(state, self.init, self.problem, self.params, self.centered)


def _samples_flow(init: InitMoments, problem: Problem, params: Params, taus, centered: bool,
                  rtol, max_steps: int):
    ys, ok = solve_flow(sample_flow_field, zero_state(init), (init, problem, params),
                        jnp.asarray(taus), rtol, max_steps)
    obs = jax.vmap(lambda s: sample_observables(s, init, problem, params, centered))(ys)
    return jax.tree_util.tree_map(lambda v: jnp.where(ok, v, jnp.nan), obs), ok


samples_flow = jax.jit(_samples_flow, static_argnames=("centered", "max_steps"))
samples_flow.__doc__ = """Observables at ``taus`` of the P-space gradient flow (diffrax Tsit5);
(observables, success flag)."""


def problem_and_moments(setup: GrokkingTwoLayer, params: Params, init_key=None):
    """(`Problem`, `InitMoments`) of the P-space form: the training set, f_0 on it when centred."""
    x, beta, y = (jnp.asarray(a) for a in training_set(setup))
    init = init_moments(setup, x, beta, init_key)
    f0 = (params.alpha * init.a0 + 0.5 * params.alpha * params.eps * jnp.diagonal(init.q0)
          if setup.centered else jnp.zeros_like(y))
    return Problem(x, beta, y, f0), init
