r"""The reduced (w_bar, M) dynamics in D-space: exact at any D and N for a given training set.

docs/grokking.md, "The reduced dynamics". Every neuron follows the same affine map, so the
first-layer mean ``w_bar`` and second moment ``M`` close:

    Delta_mu = alpha w_bar.x_mu + (alpha eps/2) x_mu^T M x_mu - y_mu   (minus f_0 if centred)
    g = (1/P) sum_mu Delta_mu x_mu,   G = (1/P) sum_mu Delta_mu x_mu x_mu^T,   c = 2 eta0/alpha
    B = I - c eps G,  b = -c g
    w_bar <- B w_bar + b,   M <- B M B^T + (B w_bar) b^T + b (B w_bar)^T + b b^T .

`ReducedGD` iterates this GD map; `reduced_flow` integrates its gradient-flow limit in
tau = 2 eta0 t / D with diffrax,

    dw_bar/dtau = -(D/alpha)(g + eps G w_bar),  dM/dtau = -(D/alpha)(g w_bar^T + w_bar g^T + eps(G M + M G)).

N enters only through the initial condition (`initial_state`).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
# diffrax is imported inside the functions that solve: `import hdsgd` skips its ~0.4 s
import jax
import jax.numpy as jnp

from ..._segments import Dynamics
from ...setups.grokking import (GrokkingTwoLayer, initial_weights, kernel_alignment,
                                loss_terms, training_set)


class Params(NamedTuple):
    """Scalar hyperparameters as arrays (traced: a new value compiles nothing)."""

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
    """One exact full-batch GD step of the (w_bar, M) map (see the module docstring)."""
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
    """d(w_bar, M)/dtau of gradient flow in tau = 2 eta0 t / D."""
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
    """Every observable of `GrokkingTwoLayer` from (w_bar, M) (docs/grokking.md, "Observables")."""
    x, beta, y = problem.x, problem.beta, problem.y
    d = x.shape[1]
    eps = params.eps
    w_eff, m_eff = (state.w_bar - state0.w_bar, state.m - state0.m) if centered else state
    terms = loss_terms(params.alpha, eps, beta @ beta / d, jnp.trace(m_eff) / d,
                       beta @ m_eff @ beta / d**2, jnp.sum(m_eff * m_eff) / d**2, w_eff @ w_eff / d)
    delta = residuals(state, problem, params)
    a = x @ state.w_bar
    k = (x @ x.T) * (1.0 + eps * (a[:, None] + a[None, :]) + eps**2 * (x @ state.m @ x.T))
    return {
        "train_loss": jnp.mean(delta**2),
        **terms,
        "T": jnp.trace(state.m) / d,
        "S": beta @ state.m @ beta / d**2,
        "F": jnp.sum(state.m * state.m) / d**2,
        "ell": state.w_bar @ state.w_bar / d,
        "weight_norm": jnp.sqrt(jnp.trace(state.m)),
        "alignment": kernel_alignment(k, y),
    }


# ----------------------------------------------------------------- the drivers
class ReducedGD(Dynamics):
    """The exact GD map of (w_bar, M) as a `Dynamics` for `hdsgd._segments.run_segments` (the
    arrays are traced: a new step size, alpha or eps compiles nothing)."""

    state0: State
    problem: Problem
    params: Params
    centered: bool = eqx.field(static=True)

    def advance(self, state, first_step, n_steps):
        return jax.lax.fori_loop(first_step, first_step + n_steps,
                                 lambda _, s: gd_step(s, self.problem, self.params), state)

    def observe(self, state):
        return observables(state, self.state0, self.problem, self.params, self.centered)


def flow_controller(rtol):
    import diffrax
    return diffrax.PIDController(rtol=rtol, atol=rtol * 1e-2)


def solve_flow(field, y0, args, taus, rtol, max_steps: int):
    """diffrax Tsit5 with adaptive steps from tau = 0 to ``taus[-1]``, saved at ``taus``;
    returns (solution states, success flag)."""
    import diffrax
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=taus[-1], dt0=None, y0=y0, args=args,
        saveat=diffrax.SaveAt(ts=taus), stepsize_controller=flow_controller(rtol),
        max_steps=max_steps, throw=False,
    )
    return sol.ys, sol.result == diffrax.RESULTS.successful


def _reduced_flow(state0: State, problem: Problem, params: Params, taus, centered: bool, rtol,
                  max_steps: int):
    ys, ok = solve_flow(flow_field, state0, (problem, params), jnp.asarray(taus), rtol, max_steps)
    obs = jax.vmap(lambda s: observables(s, state0, problem, params, centered))(ys)
    return jax.tree_util.tree_map(lambda v: jnp.where(ok, v, jnp.nan), obs), ok


reduced_flow = jax.jit(_reduced_flow, static_argnames=("centered", "max_steps"))
reduced_flow.__doc__ = """Observables at ``taus`` of the gradient flow in tau (diffrax Tsit5,
adaptive steps); returns (observables, success flag); after a failure the values are NaN.
``max_steps`` is static (bucket it to a power of two)."""


# ----------------------------------------------------------------- the initial condition
def initial_state(setup: GrokkingTwoLayer, init_key=None) -> State:
    """(w_bar_0, M_0): the N = inf law (0, I) by default, or one finite-N draw for ``init_key``."""
    if init_key is None:
        return State(jnp.zeros(setup.dim), jnp.eye(setup.dim))
    w = jnp.asarray(initial_weights(setup, init_key))
    return State(jnp.mean(w, axis=0), w.T @ w / w.shape[0])


def params_of(setup: GrokkingTwoLayer) -> Params:
    return Params(jnp.asarray(setup.output_scale, dtype=float),
                  jnp.asarray(setup.quadratic_strength, dtype=float),
                  jnp.asarray(setup.step_size, dtype=float))


def problem_of(setup: GrokkingTwoLayer, state0: State, params: Params) -> Problem:
    """The training set of ``data_seed`` and, when centred, f_0 of the initial state on it."""
    x, beta, y = (jnp.asarray(a) for a in training_set(setup))
    problem = Problem(x, beta, y, jnp.zeros_like(y))
    if setup.centered:
        problem = problem._replace(f0=network_output(state0, x, params))
    return problem
