r"""The small-batch / streaming limit of the map (m << d): an ODE in iterations.

docs/proxlinear.md, "The small-batch ODE". Per step (m samples, lambda = m/eta,
W = lambda / (lambda + d1 z^2 + d2 x^2)):

    d alpha1/dt    = eta E[W r z p]
    d(beta1^2)/dt  = 2 beta1 eta E[W r z q] + (eta^2 d1 / m) E[W^2 z^2 r^2]

and the same on the right with (x, d2, s, omega). Integrated with diffrax (Tsit5, adaptive),
stopped by an event when E^2 passes the blow-up bound 10^6 (1 + E_0^2).
"""

from __future__ import annotations

import equinox as eqx
# diffrax is imported inside the functions that solve: `import hdsgd` skips its ~0.4 s
import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import power_of_two_at_least
from ...setups.proxlinear import ProxLinearSensing, error_sq_of_state
from ._map import node_terms


def _state(y):
    """(alpha1, beta1, alpha2, beta2) of the ODE's y = (alpha1, beta1^2, alpha2, beta2^2)."""
    return y[0], jnp.sqrt(jnp.maximum(y[1], 0.0)), y[2], jnp.sqrt(jnp.maximum(y[3], 0.0))


def _ode_field(t, y, args):
    """Vector field in steps of the state y = (alpha1, beta1^2, alpha2, beta2^2)."""
    rule, m, d1, d2, eta, noise_var = args
    g1, g2, w = rule
    state = jnp.stack(_state(y))
    x, z, A, R = node_terms(state, g1, g2)
    W = 1.0 / (1.0 + (eta / m) * (d1 * z * z + d2 * x * x))
    ww = w * W
    drift = jnp.einsum("n,nkj,nj->k", ww, A, R)  # E[W r a] = E[W r (zp, zq, xs, x omega)]
    r2 = jnp.sum(R * R, axis=-1) + noise_var
    w2 = w * W * W
    jump1 = jnp.sum(w2 * z * z * r2)
    jump2 = jnp.sum(w2 * x * x * r2)
    return jnp.stack([
        eta * drift[0],
        2.0 * state[1] * eta * drift[1] + eta**2 * d1 / m * jump1,
        eta * drift[2],
        2.0 * state[3] * eta * drift[3] + eta**2 * d2 / m * jump2,
    ])


def ode_max_steps(setup: ProxLinearSensing, horizon_steps: float) -> int:
    """The solver's step cap: the fastest rate is O(m/d) per step, so the number of solver
    steps grows like the horizon in samples/d; generous, and a power of two (shared
    compilations)."""
    span = float(horizon_steps) * setup.batch_size / min(setup.dim_left, setup.dim_right)
    return power_of_two_at_least(int(min(1_000_000, 4096 + 64 * span)))


def ode_trajectory(setup: ProxLinearSensing, t_out, rule, *, rtol: float = 1e-7,
                   atol: float = 1e-12, max_steps: int | None = None):
    """States (len(t_out), 4) of the small-batch ODE at the times ``t_out`` (steps), and the
    solver's `diffrax.RESULTS`.

    The output grid is padded with its last time to a power of two, at least 128 (one
    compilation serves every grid of up to 128 points, such as the default output grid);
    after the blow-up event or a solver failure the states are inf.
    """
    t_out = np.asarray(t_out, dtype=np.float64)
    n = t_out.size
    padded = np.concatenate([t_out, np.full(power_of_two_at_least(n, 128) - n, t_out[-1])])
    s0 = setup.initial_state
    y0 = jnp.asarray(np.array([s0[0], s0[1] ** 2, s0[2], s0[3] ** 2], dtype=np.float64))
    args = (rule, *(jnp.asarray(np.float64(a)) for a in (
        setup.batch_size, setup.dim_left, setup.dim_right, setup.step_size, setup.noise_std**2)))
    if max_steps is None:
        max_steps = ode_max_steps(setup, t_out[-1])
    bound = jnp.asarray(np.float64(setup.blow_up_bound))
    states, result = _ode_solve(jnp.asarray(padded), y0, args, bound, rtol, atol, int(max_steps))
    return np.asarray(states)[:n], result


@eqx.filter_jit
def _ode_solve(t_out, y0, args, bound, rtol, atol, max_steps):
    import diffrax
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_ode_field), diffrax.Tsit5(), t0=0.0, t1=t_out[-1], dt0=None, y0=y0,
        args=args, saveat=diffrax.SaveAt(ts=t_out),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps, throw=False,
        event=diffrax.Event(lambda t, y, a, **kw: error_sq_of_state(_state(y)) > bound),
    )
    return jax.vmap(lambda y: jnp.stack(_state(y)))(sol.ys), sol.result


def ode_failure(result) -> str | None:
    """Why the ODE solve stopped early (None when it reached the horizon)."""
    import diffrax
    if result == diffrax.RESULTS.successful:
        return None
    if result == diffrax.RESULTS.event_occurred:
        return ("E^2 of the small-batch ODE passed the blow-up bound 10^6 (1 + E_0^2) and the "
                "solve stopped there (its event)")
    if result == diffrax.RESULTS.max_steps_reached:
        return "the ODE solver reached its step cap before the horizon"
    return f"the ODE solver failed ({result})"

