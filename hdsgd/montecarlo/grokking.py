r"""Monte Carlo for `GrokkingTwoLayer`: the full network with N neurons, full-batch GD.

Each seed is one initialisation ``W(0) = initial_weights(setup, k_s)`` with
``k_s = jax.random.split(key, seeds)[s]``; the training set and teacher come from the setup's
``data_seed`` unless ``vary_data=True``, which draws a fresh training set and teacher per
seed (from ``fold_in(k_s, 1)``). One GD step, for all neurons at once (W is N x D, X is P x D):

    H = W X^T,  Delta = (alpha/N) sum_i (H + eps H^2/2) - f_0 - y,
    W <- W - (2 eta0 / alpha) (1/P) ((1 + eps H) * Delta) X .

Observables are computed from the weights through N x N (or D x D) Gram matrices only (never
the D x D second moment when N < D); ``test_loss`` is exact (eq. 6), and ``test_loss_sampled``
is the mean squared error on ``n_test`` held-out points per seed (drawn from ``fold_in(k_s, 2)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import __version__
from ..api import check_horizon, check_seeds, check_times, simulate, step_grid
from ..curve import Curve
from ..setups.grokking import (GrokkingTwoLayer, draw_training_set, initial_weights,
                               kernel_alignment, training_set)
from ._loop import run_segments, sticky_divergence


def network(w, x, alpha, eps):
    """(f(x_mu), H) for weights ``w`` (N, D) and inputs ``x`` (P, D)."""
    h = w @ x.T
    f = alpha * jnp.mean(h + 0.5 * eps * h * h, axis=0)
    return f, h


def gd_steps(w, n_steps, x, y, f0, alpha, eps, eta0):
    """``n_steps`` full-batch GD steps of the network (one seed)."""
    p = x.shape[0]
    c = 2.0 * eta0 / alpha

    def body(_, w):
        f, h = network(w, x, alpha, eps)
        delta = f - f0 - y
        return w - (c / p) * ((1.0 + eps * h) * delta) @ x

    return jax.lax.fori_loop(0, n_steps, body, w)


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
        w_bar0 = jnp.mean(w0, axis=0)
        wb0 = w0 @ beta
        w_eff = w_bar - w_bar0
        tr_eff = tr_m - jnp.sum(w0 * w0) / n
        s_eff = (wb @ wb - wb0 @ wb0) / n
        f_eff = (_gram_sq(w, w) + _gram_sq(w0, w0) - 2.0 * _gram_sq(w, w0)) / n**2
        ft0, _ = network(w0, xt, alpha, eps)
    else:
        w_eff, tr_eff, s_eff, f_eff = w_bar, tr_m, s_raw, f_raw
        ft0 = 0.0
    beta2 = beta @ beta
    variance = 0.25 * (beta2 / d - alpha * eps * tr_eff / d) ** 2
    mis = (alpha**2 * eps**2 * f_eff - 2.0 * alpha * eps * s_eff + beta2**2) / (2.0 * d**2)
    lin = alpha**2 * (w_eff @ w_eff) / d
    ft, _ = network(w, xt, alpha, eps)
    # NTK on the training set up to alpha^2/N: (x.x') (1/N) sum_i phi'(h_i) phi'(h_i)'
    dphi = 1.0 + eps * h
    k = (x @ x.T) * (dphi.T @ dphi) / n
    return {
        "train_loss": jnp.mean(delta**2),
        "test_loss": variance + mis + lin,
        "variance_error": variance,
        "misalignment_error": mis,
        "linear_power": lin,
        "T": tr_m / d,
        "S": s_raw / d**2,
        "F": f_raw / d**2,
        "ell": w_bar @ w_bar / d,
        "weight_norm": jnp.sqrt(tr_m),
        "alignment": kernel_alignment(k, y),
        "test_loss_sampled": jnp.mean((ft - ft0 - yt) ** 2),
    }


@simulate.register
def _simulate(setup: GrokkingTwoLayer, horizon: float, *, key, seeds: int = 16, times=None,
              dtype=jnp.float32, progress: bool | None = None, vary_data: bool = False,
              n_test: int = 1000) -> Curve:
    """Train ``seeds`` networks of width N by full-batch GD.

    Args:
        setup: a `GrokkingTwoLayer` with a finite ``width``.
        horizon: final time in GD steps.
        key: ``jax.random`` key (same key, same numbers); seed s uses ``split(key, seeds)[s]``.
        seeds: independent initialisations (and training sets if ``vary_data``), vmapped.
        times: output steps (rounded to whole steps); default as in `predict`.
        dtype: float dtype of weights and data (default float32).
        progress: progress bar (default: on for long runs).
        vary_data: draw a fresh training set and teacher per seed instead of ``data_seed``'s.
        n_test: held-out points per seed for ``test_loss_sampled``.
    """
    if setup.width is None:
        raise ValueError("width=None is invalid for simulate; allowed: a finite integer >= 1")
    horizon = check_horizon(horizon)
    seeds = check_seeds(seeds)
    n_test = int(n_test)
    if n_test < 1:
        raise ValueError(f"n_test={n_test} is invalid; allowed: an integer >= 1")
    if times is None:
        steps = step_grid(max(1, int(round(horizon))))
    else:
        steps = np.round(check_times(times, horizon)).astype(np.int64)
    dtype = jnp.dtype(dtype)
    alpha = jnp.asarray(setup.output_scale, dtype)
    eps = jnp.asarray(setup.quadratic_strength, dtype)
    eta0 = jnp.asarray(setup.learning_rate, dtype)
    centered = setup.centered
    keys = jax.random.split(key, seeds)
    fixed = training_set(setup)

    def init(k):
        if vary_data:
            x, beta, y = draw_training_set(jax.random.fold_in(k, 1), setup.dim, setup.n_samples)
        else:
            x, beta, y = fixed
        xt = jax.random.normal(jax.random.fold_in(k, 2), (n_test, setup.dim)) / jnp.sqrt(setup.dim)
        yt = 0.5 * (xt @ beta) ** 2
        w0 = initial_weights(setup, k).astype(dtype)
        x, beta, y, xt, yt = (a.astype(dtype) for a in (x, beta, y, xt, yt))
        f0 = network(w0, x, alpha, eps)[0] if centered else jnp.zeros_like(y)
        return {"w": w0, "w0": w0, "x": x, "beta": beta, "y": y, "f0": f0, "xt": xt, "yt": yt}

    state0 = jax.vmap(init)(keys)

    def advance(state, first_step, n_steps):
        w = gd_steps(state["w"], n_steps, state["x"], state["y"], state["f0"], alpha, eps, eta0)
        return {**state, "w": w}

    def observe(s):
        return observe_network(s["w"], s["w0"], s["x"], s["beta"], s["y"], s["f0"], s["xt"],
                               s["yt"], alpha, eps, centered)

    n, d, p = setup.width, setup.dim, setup.n_samples
    out, _ = run_segments(advance, observe, state0, steps, progress=progress,
                          work_per_step=seeds * 4 * n * d * p, description="grokking Monte Carlo")
    obs = {k: v.astype(np.float64) for k, v in out.items()}
    loss = obs["train_loss"]
    diverged = sticky_divergence(loss, loss[:, 0])
    for v in obs.values():
        diverged |= np.maximum.accumulate(~np.isfinite(v), axis=-1)
    obs = {k: np.where(diverged, np.inf, v) for k, v in obs.items()}
    obs["tau"] = np.broadcast_to(setup.tau(steps), (seeds, len(steps))).copy()
    return Curve(
        time=steps.astype(np.float64),
        observables=obs,
        time_unit="step",
        samples=np.full(len(steps), float(setup.n_samples)),
        seeds=seeds,
        diverged=diverged,
        meta={**setup.fields(), "method": "monte_carlo", "dtype": str(dtype),
              "vary_data": bool(vary_data), "n_test": n_test, "version": __version__,
              "time_label": "GD steps t (tau = 2 eta0 t / D)"},
    )
