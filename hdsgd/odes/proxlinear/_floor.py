r"""The map's noise floor (its fixed point) and its local rate at the truth.

docs/proxlinear.md, "Floor and rate". `noise_floor` and `local_rate` run in hdsgd's scoped
64-bit context and return Python floats; `floor_grid` is the vmapped floor for many settings.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..._precision import scoped_x64
from ...setups._validate import real
from ...setups.proxlinear import ProxLinearSensing, error_sq_of_state
from ._checks import check_burn_in, check_grid, check_setup, check_starts
from ._grid import grid_params, grid_records
from ._map import initial_kappa, map_params, one_step, run_map, states_of
from ._quadrature import grid_rule_arrays, rule_arrays

_FLOOR_BATCH = 16

#: the range of ``eps`` of `local_rate`, the squared size of its finite-difference steps:
#: sqrt(eps) must stand out next to 1 in float64 (below ~1e-16 the rate was -inf or wrong),
#: and be small enough for a linearisation (at 1e-2 the rate is off by ~1%)
EPS_RANGE = (1e-16, 1e-2)


@scoped_x64
def local_rate(setup: ProxLinearSensing, *, rule=None, eps: float = 1e-8) -> float:
    r"""The local linear rate of the map at the truth (noiseless linearisation), per step.

    Near the truth E^2 ~ (e1 + e2)^2 + beta1^2 + beta2^2 (e_j = alpha_j - 1). The betas'
    squares evolve linearly, beta'^2 = M beta^2, and e1 + e2 linearly with factor q_par;
    the error contracts per step by q = max(spectral radius of M, q_par^2). Returns
    -log q, so that E_t^2 - floor ~ exp(-rate t). Multiply by d/m for the rate per d samples
    rho(eta_bar) of docs/proxlinear.md, "Floor and rate". Positive at every step size.

    ``eps``: the squared size of the finite-difference steps (the perturbed betas are
    sqrt(eps)), in `EPS_RANGE` [1e-16, 1e-2].

    Raises:
        ValueError: for an ``eps`` out of that range, or a ``rule`` that is not a rule of
            finite nodes and weights (`rule_arrays`).
    """
    check_setup(setup)
    rule = rule_arrays(rule, finite=True)
    if isinstance(eps, str):  # a number, not text that parses as one
        raise ValueError(f"eps={eps!r} is invalid; allowed: a number in {list(EPS_RANGE)}")
    eps = real("eps", eps, low=EPS_RANGE[0], high=EPS_RANGE[1])
    params = map_params(setup, noise_std=0.0)
    return float(_local_rate_jit(jnp.asarray(np.asarray(params, dtype=np.float64)),
                                 rule, jnp.asarray(np.float64(eps))))


def _local_rate(params, rule, eps):
    b = jnp.sqrt(eps)

    def step(s):
        new, _, _ = one_step(s, initial_kappa(s, params), params, rule)
        return new

    one, zero = jnp.ones_like(b), jnp.zeros_like(b)
    n1 = step(jnp.stack([one, b, one, zero]))
    n2 = step(jnp.stack([one, zero, one, b]))
    M = jnp.array([[n1[1] ** 2, n2[1] ** 2], [n1[3] ** 2, n2[3] ** 2]]) / eps
    # spectral radius of a non-negative 2x2 matrix
    tr, det = M[0, 0] + M[1, 1], M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
    q_perp = 0.5 * (tr + jnp.sqrt(jnp.maximum(tr**2 - 4.0 * det, 0.0)))
    n3 = step(jnp.stack([one + b, zero, one, zero]))
    q_par = jnp.abs(n3[0] - 1.0 + n3[2] - 1.0) / b
    return -jnp.log(jnp.maximum(q_perp, q_par**2))


_local_rate_jit = jax.jit(_local_rate)


def _map_squared(y, params, rule):
    """F in the coordinates y = (alpha1, beta1^2, alpha2, beta2^2) (smooth at beta = 0)."""
    s = jnp.stack([y[0], jnp.sqrt(jnp.maximum(y[1], 0.0)), y[2], jnp.sqrt(jnp.maximum(y[3], 0.0))])
    new, _, status = one_step(s, initial_kappa(s, params), params, rule)
    return jnp.stack([new[0], new[1] ** 2, new[2], new[3] ** 2]), status


def fixed_point(params, start, rule, *, iterations: int = 30):
    """The fixed point y* = F(y*) of the map in y = (alpha1, beta1^2, alpha2, beta2^2).

    Newton's method from the state ``start`` = (alpha1, beta1, alpha2, beta2) (best: a state
    the map has already brought near its limit), with the Jacobian by forward-mode autodiff
    through the map. The step is a least-squares solve, because without noise the fixed
    points form the one-parameter family (c mu*, nu*/c), and it is capped at half the size
    of y. The iterate with the smallest residual is kept. Pure JAX, vmappable.
    Returns (y*, residual max |F(y*) - y*|).
    """
    start = jnp.asarray(start, dtype=jnp.float64)
    y0 = jnp.stack([start[0], start[1] ** 2 + 1e-30, start[2], start[3] ** 2 + 1e-30])

    def residual(y):
        return _map_squared(y, params, rule)[0] - y

    def residual_twice(y):
        g = residual(y)
        return g, g

    def body(_, carry):
        y, best, best_r = carry
        jac, g = jax.jacfwd(residual_twice, has_aux=True)(y)  # one pass: F(y) - y and its Jacobian
        r = jnp.where(jnp.all(jnp.isfinite(g)), jnp.max(jnp.abs(g)), jnp.inf)
        best, best_r = jnp.where(r < best_r, y, best), jnp.minimum(r, best_r)
        step = jnp.linalg.lstsq(jac, g)[0]
        size = jnp.max(jnp.abs(step))
        step = step * jnp.minimum(1.0, 0.5 * jnp.max(jnp.abs(y)) / jnp.maximum(size, 1e-300))
        new = y - step
        new = new.at[1].set(jnp.maximum(new[1], 1e-30)).at[3].set(jnp.maximum(new[3], 1e-30))
        new = jnp.where(jnp.all(jnp.isfinite(new)), new, best)
        return new, best, best_r

    y, best, best_r = jax.lax.fori_loop(0, iterations, body, (y0, y0, jnp.inf))
    g = residual(y)
    r = jnp.where(jnp.all(jnp.isfinite(g)), jnp.max(jnp.abs(g)), jnp.inf)
    y = jnp.where(r <= best_r, y, best)
    return y, jnp.minimum(r, best_r)


def floor_from_fixed_point(y, residual):
    """E^2 at a fixed point y = (alpha1, beta1^2, alpha2, beta2^2); inf if Newton failed."""
    e = error_sq_of_state((y[..., 0], jnp.sqrt(y[..., 1]), y[..., 2], jnp.sqrt(y[..., 3])))
    good = jnp.isfinite(e) & (residual < 1e-10 * (1.0 + jnp.abs(e)))
    return jnp.where(good, e, jnp.inf)


@jax.jit
def _floors(params, starts, rule):
    """`floor_from_fixed_point` of `fixed_point`, vmapped over (params, starts) (G, 4)."""
    y, res = jax.vmap(fixed_point, in_axes=(0, 0, None))(params, starts, rule)
    return floor_from_fixed_point(y, res)


@scoped_x64
def noise_floor(setup: ProxLinearSensing, *, rule=None, burn_in: int | None = None,
                polish_rule=None) -> float:
    r"""E_inf^2: the error at the fixed point of the map (the statistical error floor).

    The map is first run from the Setup's start for ``burn_in`` steps (default
    min(5000, max(50, 5/rate))) with ``rule``, then `fixed_point` polishes the state to the
    fixed point with ``polish_rule`` (default `GRID_RULE`, equal to the default rule to ~1e-8).
    The floor depends on the start through the slowly drifting imbalance
    ||mu||^2 - ||nu||^2; this is the one the trajectory reaches. Zero without noise; inf when
    no fixed point was found. In the small-batch limit it is
    sigma^2 eta_bar E[u/(1+u)^2] / rho (docs/proxlinear.md, "Floor and rate").

    Raises:
        ValueError: unless ``burn_in`` is None or an integer in [0, 2^31 - 2]
            (`MAX_MAP_STEP`) and ``rule`` and ``polish_rule`` are rules of finite nodes and
            weights (`rule_arrays`).
    """
    check_setup(setup)
    rule_arr = rule_arrays(rule, finite=True)
    polish = grid_rule_arrays(polish_rule, name="polish_rule", finite=True)
    if burn_in is not None:
        burn_in = check_burn_in(burn_in)
    if setup.noise_std == 0.0:
        return 0.0
    if burn_in is None:
        rate = local_rate(setup, rule=rule)
        burn_in = int(min(5000, max(50, math.ceil(5.0 / max(rate, 1e-9)))))
    records, state = run_map(setup.initial_state, map_params(setup), [burn_in], rule_arr)
    if records["status"][-1] != 0:
        return math.inf
    return float(floor_grid(setup, [setup.batch_size], [setup.step_size], [setup.noise_std],
                            starts=np.asarray(state[0])[None], rule=polish)[0])


@scoped_x64
def floor_grid(setup: ProxLinearSensing, batch_sizes, step_sizes, noise_stds, *, starts=None,
               burn_in: int = 200, rule=None) -> np.ndarray:
    """`noise_floor` for G settings at once: vmapped Newton on the map's fixed point, from
    ``starts`` (G, 4) (e.g. the ends of predicted trajectories) or from ``burn_in`` map steps
    (vmapped, `map_grid`) from the Setup's start. Quadrature: ``rule`` (default `GRID_RULE`).
    Returns numpy (G,): 0 without noise, inf where no fixed point was found (a start that is
    not finite, as after a failed map, gives inf).

    Raises:
        ValueError: unless the settings pass `map_grid`'s checks, ``burn_in`` is an integer in
            [0, 2^31 - 2] (`MAX_MAP_STEP`), ``starts`` is None or of shape (G, 4) and
            ``rule`` is a rule (`rule_arrays`).
    """
    check_setup(setup)
    m, eta, sig = check_grid(batch_sizes, step_sizes, noise_stds)
    burn_in = check_burn_in(burn_in)
    if starts is not None:
        starts = check_starts(starts, m.size)
    rule_arr = grid_rule_arrays(rule)
    params = grid_params(setup, m, eta, sig)
    if starts is None:  # the vmapped map of `map_grid`, its arguments checked here
        starts = states_of(grid_records(setup, params, np.array([burn_in]), rule_arr))[:, -1]
    G = params.shape[0]
    pad = (-G) % _FLOOR_BATCH  # one compilation for every grid
    params = np.concatenate([params, np.repeat(params[-1:], pad, axis=0)])
    starts = np.concatenate([starts, np.repeat(starts[-1:], pad, axis=0)])
    floors = []
    for b in range(0, G + pad, _FLOOR_BATCH):
        floors.append(np.asarray(_floors(jnp.asarray(params[b:b + _FLOOR_BATCH]),
                                         jnp.asarray(starts[b:b + _FLOOR_BATCH]), rule_arr)))
    return np.where(sig == 0.0, 0.0, np.concatenate(floors)[:G])
