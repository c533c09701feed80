r"""Monte Carlo for `GrokkingTwoLayer`: the full network with N neurons, full-batch GD.

Each seed is one initialisation ``W(0) = initial_weights(setup, k_s)`` with
``k_s = jax.random.split(key, seeds)[s]``. Two variants (``simulate(..., method=...)``):

* ``"fixed_data"`` (default): the training set and teacher of the setup's ``data_seed`` (the
  ones the reduced theory uses), so the seeds differ only in their initialisation;
* ``"fresh_data"``: a fresh training set and teacher per seed (from ``fold_in(k_s, 1)``), the
  Monte Carlo twin of the proportional-limit theories (``"dmft"``, ``"lazy"``).

One GD step, for all neurons at once (W is N x D, X is P x D; docs/grokking.md, "The system"):

    H = W X^T,  Delta = (alpha/N) sum_i (H + eps H^2/2) - f_0 - y,
    W <- W - (2 eta0 / alpha) (1/P) ((1 + eps H) * Delta) X .

Observables are computed from the weights through N x N (or D x D) Gram matrices only (never
the D x D second moment when N < D); ``test_loss`` is exact (`loss_decomposition`), and
``test_loss_sampled`` is the mean squared error on ``n_test`` held-out points per seed (drawn
from ``fold_in(k_s, 2)``).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import exceeds
from .._segments import Dynamics, run_segments
from ..api import reject_options, simulate
from ..curve import Curve, finish_curve
from ..setups._validate import integer
from ..setups.grokking import (WEIGHT_STATISTICS, GrokkingTwoLayer, draw_training_set, draw_weights,
                               kernel_alignment, loss_terms)

METHODS = ("fixed_data", "fresh_data")
#: a run whose train loss exceeds this factor times its initial value has diverged
BLOWUP = 1e12


def network(w, x, alpha, eps):
    """(f(x_mu), H) for weights ``w`` (N, D) and inputs ``x`` (P, D)."""
    h = w @ x.T
    f = alpha * jnp.mean(h + 0.5 * eps * h * h, axis=0)
    return f, h


def _gram_sq(a, b):
    """tr((a^T a)(b^T b)) for (N, D) matrices, through the smaller of the N x N or D x D Grams.

    With a = b = W this is N^2 ||M||_F^2; with a = W, b = W_0 it is N^2 tr(M M_0).
    """
    if a.shape[0] <= a.shape[1]:
        return jnp.sum((a @ b.T) ** 2)
    return jnp.sum((a.T @ a) * (b.T @ b))


def observe_network(w, w0, x, beta, y, f0, xt, yt, alpha, eps, centered: bool) -> dict:
    """Every observable of `GrokkingTwoLayer` (and ``test_loss_sampled``) from the weights."""
    n, d = w.shape
    f, h = network(w, x, alpha, eps)
    delta = f - f0 - y
    w_bar = jnp.mean(w, axis=0)
    wb = w @ beta
    tr_m = jnp.sum(w * w) / n
    s_raw = wb @ wb / n
    f_raw = _gram_sq(w, w) / n**2
    if centered:
        wb0 = w0 @ beta
        w_eff = w_bar - jnp.mean(w0, axis=0)
        tr_eff = tr_m - jnp.sum(w0 * w0) / n
        s_eff = (wb @ wb - wb0 @ wb0) / n
        f_eff = (_gram_sq(w, w) + _gram_sq(w0, w0) - 2.0 * _gram_sq(w, w0)) / n**2
        ft0, _ = network(w0, xt, alpha, eps)
    else:
        w_eff, tr_eff, s_eff, f_eff = w_bar, tr_m, s_raw, f_raw
        ft0 = 0.0
    terms = loss_terms(alpha, eps, beta @ beta / d, tr_eff / d, s_eff / d**2,
                       f_eff / d**2, w_eff @ w_eff / d)
    ft, _ = network(w, xt, alpha, eps)
    # NTK on the training set up to alpha^2/N: (x.x') (1/N) sum_i phi'(h_i) phi'(h_i)'
    dphi = 1.0 + eps * h
    k = (x @ x.T) * (dphi.T @ dphi) / n
    return {
        "train_loss": jnp.mean(delta**2),
        **terms,
        "T": tr_m / d,
        "S": s_raw / d**2,
        "F": f_raw / d**2,
        "ell": w_bar @ w_bar / d,
        "weight_norm": jnp.sqrt(tr_m),
        "alignment": kernel_alignment(k, y),
        "test_loss_sampled": jnp.mean((ft - ft0 - yt) ** 2),
    }


class NetworkGD(Dynamics):
    """Full-batch GD of one network; the state is a dict of that seed's weights and data."""

    alpha: jax.Array
    eps: jax.Array
    eta0: jax.Array
    centered: bool = eqx.field(static=True)

    def advance(self, state, first_step, n_steps):
        x, y, f0 = state["x"], state["y"], state["f0"]
        c = 2.0 * self.eta0 / self.alpha / x.shape[0]

        def body(_, w):
            f, h = network(w, x, self.alpha, self.eps)
            return w - c * ((1.0 + self.eps * h) * (f - f0 - y)) @ x

        return {**state, "w": jax.lax.fori_loop(first_step, first_step + n_steps, body, state["w"])}

    def observe(self, state):
        return observe_network(state["w"], state["w0"], state["x"], state["beta"], state["y"],
                               state["f0"], state["xt"], state["yt"], self.alpha, self.eps,
                               self.centered)


@functools.partial(jax.jit, static_argnames=("width", "dim", "n_samples", "n_test", "fresh",
                                             "centered", "dtype"))
def _initial_states(keys, fixed, alpha, eps, *, width, dim, n_samples, n_test, fresh, centered,
                    dtype):
    """The seed-batched initial states: weights, training set (fixed or fresh), held-out set."""

    def one(k):
        if fresh:
            x, beta, y = draw_training_set(jax.random.fold_in(k, 1), dim, n_samples)
        else:
            x, beta, y = fixed
        xt = jax.random.normal(jax.random.fold_in(k, 2), (n_test, dim), dtype=x.dtype) / np.sqrt(dim)
        yt = 0.5 * (xt @ beta) ** 2
        w0 = draw_weights(k, width, dim, dtype)
        x, beta, y, xt, yt = (a.astype(dtype) for a in (x, beta, y, xt, yt))
        f0 = network(w0, x, alpha, eps)[0] if centered else jnp.zeros_like(y)
        return {"w": w0, "w0": w0, "x": x, "beta": beta, "y": y, "f0": f0, "xt": xt, "yt": yt}

    return jax.vmap(one)(keys)


@simulate.register
def _simulate(setup: GrokkingTwoLayer, horizon: float, *, key, seeds: int = 16, times=None,
              method: str = "fixed_data", dtype=None, progress: bool | None = None,
              n_test: int = 1000, **options) -> Curve:
    """Train ``seeds`` networks of width N by full-batch GD.

    Args:
        setup: a `GrokkingTwoLayer` with a finite ``width``.
        horizon: final time in GD steps.
        key: ``jax.random`` key (same key, same numbers); seed s uses ``split(key, seeds)[s]``.
        seeds: independent initialisations (and training sets for ``"fresh_data"``), vmapped.
        times: output steps (rounded to whole steps); default as in `predict`.
        method: ``"fixed_data"`` (default: the setup's training set) or ``"fresh_data"`` (a
            fresh training set and teacher per seed).
        dtype: float dtype of weights and data (default float32).
        progress: progress bar (default: on for long runs).
        n_test: held-out points per seed for ``test_loss_sampled``.
    """
    reject_options(options, setup, ("method", "dtype", "progress", "n_test"))
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    if setup.width is None:
        raise ValueError("width=None is invalid for simulate; allowed: a finite integer >= 1")
    n_test = integer("n_test", n_test)
    steps = setup.output_steps(horizon, times)
    dtype = jnp.dtype(jnp.float32 if dtype is None else dtype)
    alpha, eps, eta0 = (jnp.asarray(v, dtype) for v in (
        setup.output_scale, setup.quadratic_strength, setup.step_size))
    fresh = method == "fresh_data"
    fixed = draw_training_set(jax.random.key(setup.data_seed), setup.dim, setup.n_samples)
    state0 = _initial_states(jax.random.split(key, seeds), fixed, alpha, eps, width=setup.width,
                             dim=setup.dim, n_samples=setup.n_samples, n_test=int(n_test),
                             fresh=fresh, centered=setup.centered, dtype=dtype)
    dynamics = NetworkGD(alpha=alpha, eps=eps, eta0=eta0, centered=setup.centered)
    n, d, p = setup.width, setup.dim, setup.n_samples
    out, _ = run_segments(dynamics, state0, steps, progress=progress,
                          work_per_step=seeds * 4 * n * d * p,
                          description="grokking Monte Carlo")
    obs = {k: v.astype(np.float64) for k, v in out.items()}
    loss = obs["train_loss"]
    obs["tau"] = np.broadcast_to(setup.tau(steps), loss.shape)
    return finish_curve(setup, steps, obs, method=method,
                        samples=np.full(len(steps), float(setup.n_samples)), seeds=seeds,
                        blown=exceeds(loss, loss[:, 0], BLOWUP),
                        extra={"dtype": str(dtype), "n_test": int(n_test)}, clocks=("tau",),
                        auxiliary=WEIGHT_STATISTICS)
