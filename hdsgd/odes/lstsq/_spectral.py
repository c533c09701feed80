r"""The exact solution of the expected recursion in closed form (docs/lstsq.md, "Spectral solution").

Plain SGD: rho(k+1) = M rho(k) + b sigma^2 with M = diag(a) + b lambda^T (`_recursion`). The risk
psi(k) = sigma^2 + lambda^T rho(k) = 2R(k) solves the renewal equation
psi(k) = sigma^2 + sum_i lambda_i a_i^k rho_i(0) + sum_{j<k} sum_i lambda_i b_i a_i^{k-1-j} psi(j),
whose generating function is rational. With mu = 1/z,

    sum_k psi(k) mu^{-k-1} = [sigma^2/(mu - 1) + g(mu)] / (1 - f(mu)),
    f(mu) = sum_i w_i/(mu - a_i),  g(mu) = sum_i v_i/(mu - a_i),  w_i = lambda_i b_i,  v_i = lambda_i rho_i(0).

Its poles are mu = 1 and the roots mu_j of the secular equation f(mu) = 1 (the eigenvalues of M:
one between each two consecutive distinct a_i, one above the largest), all simple, with
S_j = -f'(mu_j) > 0. Splitting the residues into the part of the initial error and the part of
the noise, and using sum of all residues of 1/((mu - 1)(1 - f)) = 1 for the latter,

    psi(k) = sum_j (g(mu_j)/S_j) mu_j^k + sigma^2 [1 + sum_j G_j(k)/S_j],
    G_j(k) = (mu_j^k - 1)/(mu_j - 1) = sum_{m<k} mu_j^m   (= expm1(k log mu_j)/(mu_j - 1)),

exactly. The noise part is a sum of positive terms (no cancellation, even at the stability
edge where mu_top -> 1 and the floor sigma^2/(1 - f(1)) blows up), and the initial-error part
decays term by term, so relative accuracy holds at every step. Equal a_i are one pole (their w
and v add). The roots come from `_secular`; mu_j - 1 = t_j - (1 - a_org) from the accurate
1 - a = x (2 - (1+1/B) x), x = eta lambda. Past the stability edge the top root exceeds 1
(f(1) > 1 there: the condition of `critical_step_size`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _secular
from ._secular import Config, Poles, group_poles, secular_roots, split_sums


class Modes(NamedTuple):
    """psi at times tau >= k0 (steps, or t for a continuous-time equation) as

        sum_j init_j exp(rate_j tau) + anchor + noise_var sum_j inv_slope_j exp(rate_j k0) G_j(tau - k0),
        G_j(s) = expm1(rate_j s) / denom_j,

    with rate_j = log mu_j and denom_j = mu_j - 1 for a recursion (G_j(s) = sum_{m<s} mu_j^m), or
    rate_j = denom_j = p_j for a continuous equation (G_j(s) = int_0^s exp(p_j r) dr). Entries
    with zero weights are padding; ``anchor`` is the noise part of psi(k0) (sigma^2 at k0 = 0).
    With diagnostics."""

    init: jax.Array
    inv_slope: jax.Array
    rate: jax.Array
    denom: jax.Array
    noise_var: jax.Array
    k0: jax.Array
    anchor: jax.Array
    top: jax.Array          # the largest root (mu_top: the asymptotic per-step factor; or p_top)
    iterations: jax.Array
    converged: jax.Array
    soe_accuracy: jax.Array


def sums_method(n: int) -> str:
    """``"direct"`` sums up to `_secular.DIRECT_MAX` poles, ``"fast"`` beyond."""
    return "direct" if n <= _secular.DIRECT_MAX else "fast"


def plain_poles(eigenvalues, initial_error, step_size, batch_size) -> Poles:
    """The grouped poles a_i with weights w_i = lambda_i b_i = x_i^2 / B and v_i = lambda_i rho_i(0)."""
    d = eigenvalues.shape[0]
    x = (step_size / d) * eigenvalues
    c = 1.0 + 1.0 / batch_size
    a = 1.0 - 2.0 * x + c * x**2          # as in `_recursion.mode_coefficients`
    one_minus = x * (2.0 - c * x)
    return group_poles(a, one_minus, x * x / batch_size, eigenvalues * initial_error)


class Roots(NamedTuple):
    """Roots mu_j = 1 + mu_minus_1_j with g(mu_j)/S_j and 1/S_j (zero where not valid)."""

    mu_minus_1: jax.Array
    init: jax.Array
    inv_slope: jax.Array
    valid: jax.Array
    top: jax.Array
    iterations: jax.Array
    converged: jax.Array
    soe_accuracy: jax.Array


def roots_and_residues(poles: Poles, method: str, nodes: int = _secular.SOE_NODES, bg=None,
                       top_hi=None, bottom_lo=None, bottom: bool = False,
                       top: bool = True) -> Roots:
    """The roots of f(mu) = 1 for these poles (and background), with g(mu_j)/S_j and 1/S_j,
    S_j = -f'(mu_j) (see `_secular.secular_roots`)."""
    P, om, W, V, count = poles
    if top_hi is None:  # f(P_max + t) <= sum W / t: the top root lies within sum W of P_max
        top_hi = jnp.sum(W) * (1.0 + 1e-12) + jnp.finfo(P.dtype).tiny
    if bottom_lo is None:
        bottom_lo = P[0] - 1.0
    config = Config(method, bottom=bottom, top=top, nodes=nodes)
    fast = _secular.fast_sums(P, W, count, nodes, top_hi) if method == "fast" else None
    org, t, it, valid, done = secular_roots(config, P, W, count, bg, top_hi, bottom_lo, fast)
    sums = split_sums(P, (W, V), count, _secular.Targets(org, t), method, fast)
    _, de, gb = _secular.background_at(bg, P[org] + t)
    slope = jnp.where(valid, sums[0, 1] + sums[0, 3] - de, 1.0)      # S = -f'(mu)
    g = sums[1, 0] + sums[1, 2] + gb
    top_root = P[org[count]] + t[count]
    accuracy = fast.grid.accuracy if fast is not None else jnp.zeros(())
    return Roots(jnp.where(valid, t - om[org], 0.0), jnp.where(valid, g / slope, 0.0),
                 jnp.where(valid, 1.0 / slope, 0.0), valid, top_root, it, jnp.all(done),
                 accuracy)


def solve_modes(poles: Poles, noise_var, method: str, nodes: int = _secular.SOE_NODES,
                continuous=False) -> Modes:
    """All roots of the secular equation, as `Modes` anchored at k0 = 0 (a recursion, or with
    ``continuous`` a linear ODE / Volterra equation whose poles are at -rates). ``continuous``
    may be traced: the two share one compiled program."""
    roots = roots_and_residues(poles, method, nodes)
    zero = jnp.zeros((), roots.mu_minus_1.dtype)
    rate = jnp.where(continuous, roots.mu_minus_1, jnp.log1p(roots.mu_minus_1))
    sigma2 = jnp.asarray(noise_var, zero.dtype)
    return Modes(roots.init, roots.inv_slope, rate, roots.mu_minus_1, sigma2, zero, sigma2,
                 roots.top, roots.iterations, roots.converged, roots.soe_accuracy)


def evaluate_modes(modes: Modes, times, chunk: int = 16):
    """psi at ``times`` >= k0 (steps or t; see `Modes`; memory O(n * chunk))."""
    times = jnp.asarray(times)
    T = times.shape[0]
    pad = (-T) % chunk
    dtype = modes.rate.dtype
    tau = jnp.pad(times, (0, pad), constant_values=times[-1] if T else 0).astype(dtype)
    m = modes.denom
    safe_m = jnp.where(m == 0, 1.0, m)
    start = jnp.exp(modes.k0 * modes.rate) * modes.inv_slope   # mu^k0 / S

    def one(tc):
        power = jnp.exp(tc[:, None] * modes.rate[None, :])
        span = (tc - modes.k0)[:, None]
        geometric = jnp.where(m == 0, span, jnp.expm1(span * modes.rate[None, :]) / safe_m)
        return power @ modes.init + modes.anchor + modes.noise_var * (geometric @ start)

    return jax.lax.map(one, tau.reshape(-1, chunk)).reshape(-1)[:T]


plain_poles_jit = jax.jit(plain_poles)
solve_modes_jit = jax.jit(solve_modes, static_argnames=("method", "nodes"))
evaluate_modes_jit = jax.jit(evaluate_modes)
