r"""The limit ODEs (P), (S), (N) and their solver (docs/spiked.md, "The limit ODEs").

Step eta = c/d, time t = samples/d, d -> infinity at fixed theta. With h = a u + b xi
(a = sqrt(1+theta) m, b = sqrt(q)) and the Gaussian functionals A1, A2, A3 of `_moments`:

    (P) "none":        dm/dt = c sqrt(1+theta) A1,           dq/dt = 2 c b A2 + c^2 A3
    (S) "sphere":      dm/dt = c [sqrt(1+theta) A1 - m (a A1 + b A2)] - (c^2/2) m A3,  q = 1 - m^2
    (N) "covariance":  da/dt = c [(1+theta)(1 - a^2) A1 - a b A2] - (c^2/2) a A3,   b^2 = 1 - a^2

The c^2 terms are the Ito / normalisation correction (the "critical scaling" term).
"""

from __future__ import annotations

import functools
import math

# diffrax is imported inside the functions that solve: `import hdsgd` skips its ~0.4 s
import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import power_of_two_at_least
from ...setups.spiked import SpikedSingleIndex
from ._moments import Functionals, functionals, static_key

BLOWUP = 1e12
RATE_BLOWUP = 1e7  # per unit t: beyond it the solve is stopped and flagged as diverged
MAX_STEPS = 1 << 21  # a bound only: the solve stops at the horizon, an event or a blow-up
#: solver outcomes
FINISHED, BLEW_UP, FAILED = 0, 1, 2


def drift(fun: Functionals, normalization: str, y, c, theta, noise_var, kappa):
    """d(state)/dt; state (m, q) for "none", m for "sphere", a for "covariance".

    ``kappa`` multiplies the O(c^2) correction (1 in the model; other values only for checks).
    """
    sq = jnp.sqrt(1.0 + theta)
    if normalization == "none":
        m, q = y[0], y[1]
        a, b = sq * m, jnp.sqrt(jnp.maximum(q, 0.0))
        a1, a2, a3 = fun.moments(a, b, noise_var)
        return jnp.stack([c * sq * a1, 2.0 * c * b * a2 + kappa * c * c * a3])
    if normalization == "sphere":
        m = y[0]
        a, b = sq * m, jnp.sqrt(jnp.maximum(1.0 - m * m, 0.0))
        a1, a2, a3 = fun.moments(a, b, noise_var)
        return jnp.stack([c * (sq * a1 - m * (a * a1 + b * a2)) - kappa * 0.5 * c * c * m * a3])
    a = y[0]
    b = jnp.sqrt(jnp.maximum(1.0 - a * a, 0.0))
    a1, a2, a3 = fun.moments(a, b, noise_var)
    return jnp.stack([c * ((1.0 + theta) * (1.0 - a * a) * a1 - a * b * a2)
                      - kappa * 0.5 * c * c * a * a3])


def state0(setup: SpikedSingleIndex) -> np.ndarray:
    """The ODE's initial state: (m0, q0), m0 or a0 = sqrt(1+theta) m0 by variant."""
    m0, q0 = setup.start()
    if setup.normalization == "none":
        return np.array([m0, q0])
    if setup.normalization == "sphere":
        return np.array([m0])
    return np.array([math.sqrt(1.0 + setup.spike) * m0])


def to_overlaps(normalization: str, spike: float, ys):
    """States (T, n) -> the overlaps (m, q), numpy."""
    ys = np.asarray(ys)
    if normalization == "none":
        return ys[:, 0], ys[:, 1]
    if normalization == "sphere":
        m = ys[:, 0]
        return m, 1.0 - m * m
    a = ys[:, 0]
    return a / math.sqrt(1.0 + spike), 1.0 - a * a


def traced_args(setup: SpikedSingleIndex, kappa: float = 1.0) -> tuple:
    """The numbers the compiled solvers take as traced arguments: (c, theta, Delta, kappa)."""
    return (jnp.float64(setup.step_size), jnp.float64(setup.spike),
            jnp.float64(setup.label_noise_var), jnp.float64(kappa))


def solve(setup: SpikedSingleIndex, t_out, *, kappa: float = 1.0, rtol: float = 1e-8,
          atol: float = 1e-11):
    """Integrate the limit ODE of ``setup`` (diffrax Tsit5) and return (states (T, n), outcome).

    States: (m, q) for "none", m for "sphere", a for "covariance"; outcome `FINISHED`,
    `BLEW_UP` (a state past 1e12 or a finite-time blow-up: the states after it are inf) or
    `FAILED` (the solver stopped). The output grid is padded to a power of two >= 128 (its
    last time repeated), so grids of nearby lengths share one compilation; step size, spike,
    noise and start are traced, so one compilation serves each (link, student, loss,
    normalisation). Call inside ``jax.enable_x64(True)`` (``predict`` does).
    """
    t_out = np.asarray(t_out, dtype=np.float64)
    n = t_out.shape[0]
    padded = np.concatenate([t_out, np.full(power_of_two_at_least(n, 128) - n, t_out[-1])])
    run = _solver(*static_key(setup), float(rtol), float(atol))
    ys, outcome = run(jnp.asarray(state0(setup)), jnp.asarray(padded), traced_args(setup, kappa))
    return np.asarray(ys)[:n], int(outcome)


def blown_event(field, t, y, args, **kwargs):
    """The divergence event: |state| > BLOWUP, or a relative rate |f| / (1 + |y|) > RATE_BLOWUP
    per unit t. The second catches finite-time blow-ups (e.g. (P) with the square loss, where
    dq/dt grows like a power of q above one): near the singularity the step size falls below
    the resolution of t long before the state reaches BLOWUP, and the solve would otherwise
    spin until its step cap."""
    rate = jnp.max(jnp.abs(field(t, y, args))) / (1.0 + jnp.max(jnp.abs(y)))
    return (jnp.max(jnp.abs(y)) > BLOWUP) | ~(rate < RATE_BLOWUP)


@functools.lru_cache(maxsize=64)
def _solver(link, student, square, norm, rtol, atol):
    fun = functionals(link, student, square)

    def field(t, y, args):
        c, theta, noise_var, kap = args
        return drift(fun, norm, y, c, theta, noise_var, kap)

    @jax.jit
    def run(y0, t_out, args):
        import diffrax
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field),
            diffrax.Tsit5(),
            t0=0.0,
            t1=t_out[-1],
            dt0=None,
            y0=y0,
            args=args,
            saveat=diffrax.SaveAt(ts=t_out),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=MAX_STEPS,
            throw=False,
            event=diffrax.Event(functools.partial(blown_event, field)),
        )
        outcome = jnp.where(sol.result == diffrax.RESULTS.successful, FINISHED,
                            jnp.where(sol.result == diffrax.RESULTS.event_occurred, BLEW_UP,
                                      FAILED))
        return sol.ys, outcome

    return run
