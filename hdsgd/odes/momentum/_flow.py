r"""The first-order flow along the manifold (docs/momentum.md, "First-order flow"), for the
separated regime gamma < 2/3:

    dw/dk = -(eta^2 delta^2 / (4 (1-beta)^2)) grad_Gamma tr H,

in closed form on both product models and integrated by diffrax in the ambient coordinates
(`flow_ambient`, the check of the closed forms on any product model).
"""

from __future__ import annotations

import functools
import math

# diffrax is imported inside the functions that solve: `import hdsgd` skips its ~0.4 s
import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import power_of_two_at_least
from ...setups.momentum import (InnerProductMomentum, LabelNoiseMomentum, TwoParameterMomentum,
                                check_model, shown)
from ._inner_product import _grad_f, retract, tangent_projection


def flow_rate(setup: LabelNoiseMomentum) -> float:
    """r = eta^2 delta^2 / (4 (1 - beta)^2), the flow's rate constant."""
    return setup.step_size**2 * setup.noise_var / (4.0 * setup.one_minus_beta**2)


def flow_closed_form(setup: TwoParameterMomentum, steps) -> np.ndarray:
    """s_k of the first-order flow on w_1 w_2 (docs/momentum.md, "First-order flow"):

        sinh 2 s_k = sinh 2 s_0 exp(-eta^2 delta^2 k / (1 - beta)^2).

    ``steps``: the times k >= 0 (finite; a number or an array of any shape, the shape of the
    result). The inner product's flow is `invariants_flow`.

    Raises:
        ValueError: for another model, or a step that is negative, non-finite or not a number.
    """
    check_model(setup, (TwoParameterMomentum,), " (the inner product's flow: invariants_flow)")
    steps = _times("steps", steps)
    rate = 4.0 * flow_rate(setup)
    return 0.5 * np.arcsinh(np.sinh(2.0 * setup.initial_coordinate)
                            * np.exp(-rate * np.asarray(steps, dtype=np.float64)))


def _times(name: str, value) -> np.ndarray:
    """Times in steps, of any shape: finite numbers >= 0 (not booleans: True is no time)."""
    try:
        times = np.asarray(value)
    except (TypeError, ValueError):  # a ragged list
        times = None
    if times is None or times.dtype.kind not in ("i", "u", "f"):
        raise ValueError(f"{name}={shown(value)} is invalid; allowed: numbers of steps >= 0")
    times = times.astype(np.float64)
    if not np.all(np.isfinite(times) & (times >= 0.0)):
        raise ValueError(f"{name}={shown(value)} is invalid; allowed: finite numbers of "
                         "steps >= 0")
    return times


def invariants_flow(setup: InnerProductMomentum, steps):
    """(P, Q, R) of the first-order flow on <u, v>, closed form (docs/momentum.md, "First-order
    flow"): with r = eta^2 delta^2 / (4 (1-beta)^2), dP/dk = -r (4P - 8R^2/(P+Q)),
    dQ/dk = -r (4Q - 8R^2/(P+Q)), dR/dk = 0, solved by (P+Q)^2 - 4R^2 = ((P_0+Q_0)^2 - 4R^2)
    e^{-8rk} and P - Q = (P_0 - Q_0) e^{-4rk}. Three numpy arrays shaped like ``steps``."""
    rate = flow_rate(setup)
    w0 = setup.start()
    p0, q0, r0 = float(w0[0] @ w0[0]), float(w0[1] @ w0[1]), float(w0[0] @ w0[1])
    k = np.asarray(steps, dtype=np.float64)
    total = np.sqrt(4 * r0**2 + ((p0 + q0) ** 2 - 4 * r0**2) * np.exp(-8 * rate * k))
    diff = (p0 - q0) * np.exp(-4 * rate * k)
    return 0.5 * (total + diff), 0.5 * (total - diff), np.full_like(k, r0)


def flow_time_to_target(setup: LabelNoiseMomentum, target: float) -> float:
    """The step at which |s| reaches ``target`` under the first-order flow (s decreases
    monotonically there); 0 if |s_0| <= target, inf without noise.

    Two-parameter: T = (1-beta)^2/(eta^2 delta^2) ln[sinh 2|s_0| / sinh 2 target]. Inner
    product (s = 1/4 ln(P/Q)): with T = P + Q, D = P - Q, R = 1, D = D_0 e^{-4rk},
    T^2 - 4 = (T_0^2 - 4) e^{-8rk}, and P/Q = e^{4s} means D/T = tanh 2s, so
    e^{8rk} = [D_0^2 / tanh^2(2 target) - T_0^2 + 4] / 4 (for u || v, T_0^2 - 4 = D_0^2 and
    this is the two-parameter T)."""
    w0 = setup.start()
    p0, q0 = float(np.sum(w0[0] ** 2)), float(np.sum(w0[1] ** 2))
    if abs(0.25 * math.log(p0 / q0)) <= target:
        return 0.0
    rate = flow_rate(setup)
    if rate <= 0:
        return math.inf
    grow = ((p0 - q0) ** 2 / math.tanh(2.0 * target) ** 2 - (p0 + q0) ** 2 + 4.0) / 4.0
    return float(math.log(grow) / (8.0 * rate))


# ----------------------------------------------------------------- ambient integration
def _flow_field(k, w, args):
    """-c P_T grad tr H - alpha grad f (f - 1)/||grad f||^2 for w = (u, v) of shape (2, k): the
    flow (grad tr H = grad ||w||^2 = 2w on both product models) plus a retraction term."""
    c, alpha = args
    g = _grad_f(w)
    f = jnp.sum(w[0] * w[1])
    return -c * tangent_projection(w, 2.0 * w) - alpha * g * (f - 1.0) / jnp.sum(g * g)


@functools.partial(jax.jit, static_argnames=("max_steps", "rtol"))
def _flow_solve(w0, c, alpha, steps, *, max_steps: int, rtol: float):
    import diffrax
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_flow_field), diffrax.Tsit5(), t0=0.0, t1=steps[-1], dt0=None, y0=w0,
        args=(c, alpha), saveat=diffrax.SaveAt(ts=steps),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=1e-12),
        max_steps=max_steps, throw=False,
    )
    return retract(sol.ys, iterations=1), sol.result == diffrax.RESULTS.successful


def flow_ambient(setup: LabelNoiseMomentum, steps, *, rtol: float = 1e-8):
    """The first-order flow integrated by diffrax (Tsit5) in the ambient coordinates w of a
    product model.

    Vector field -(eta^2 delta^2 / (4 (1-beta)^2)) P_T grad tr H(w), with P_T the projection
    on ker J, plus a Gauss-Newton retraction term -alpha J^T (J J^T)^{-1} (f(w) - y) that
    pulls the solution back onto the manifold at rate alpha (10 times the flow's rate);
    after each save the point is re-projected by one Gauss-Newton step. Returns
    (w at ``steps`` as numpy, success flag). One compilation per weight shape: the output
    grid is padded to a power of two and the step cap rounded up to one.
    """
    c = flow_rate(setup)
    shape = setup.start().shape
    w0 = setup.start().reshape(2, -1)  # (w_1, w_2) as (2, 1): one code for both models
    rate = 4.0 * c * float(np.sum(w0**2))
    alpha = 10.0 * max(rate, 1e-12)
    steps = np.asarray(steps, dtype=np.float64)
    size = steps.size
    padded = np.concatenate([steps, np.full(power_of_two_at_least(size, 16) - size, steps[-1])])
    cap = power_of_two_at_least(min(1_000_000, 4096 + 40 * alpha * float(steps[-1])))
    w, ok = _flow_solve(jnp.asarray(w0), jnp.asarray(c), jnp.asarray(alpha), jnp.asarray(padded),
                        max_steps=cap, rtol=float(rtol))
    return np.asarray(w)[:size].reshape((size,) + shape), bool(ok)
