r"""The limit ODE's escape time (docs/spiked.md, "Escape time"): the first t at which
|observable| reaches a threshold, located by a diffrax event."""

from __future__ import annotations

import functools
import math

# diffrax is imported inside the functions that solve: `import hdsgd` skips its ~0.4 s
import jax
import jax.numpy as jnp

from ..._precision import scoped_x64
from ...setups import _validate as v
from ...setups.spiked import SpikedSingleIndex, check_escape, check_setup, overlap_statistic
from ._moments import functionals, static_key
from ._ode import blown_event, drift, state0, to_overlaps, traced_args


def _statistic(norm: str, observable: str, y, theta):
    """|observable| from one ODE state (pure JAX)."""
    sq = jnp.sqrt(1.0 + theta)
    if norm == "none":
        m, q = y[0], y[1]
    elif norm == "sphere":
        m, q = y[0], 1.0 - y[0] * y[0]
    else:
        m, q = y[0] / sq, 1.0 - y[0] * y[0]
    return overlap_statistic(observable, m, q, theta)


@functools.lru_cache(maxsize=64)
def _escape_solver(link, student, square, norm, observable):
    fun = functionals(link, student, square)

    def field(t, y, args):
        c, theta, noise_var, kap = args[0]
        return drift(fun, norm, y, c, theta, noise_var, kap)

    def crossing(t, y, args, **kw):
        return _statistic(norm, observable, y, args[0][1]) - args[1]

    def blown(t, y, args, **kw):
        return blown_event(field, t, y, args)

    @jax.jit
    def run(y0, args, threshold, t_max):
        import diffrax
        import optimistix as optx
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=t_max, dt0=None, y0=y0,
            args=(args, threshold),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-11),
            max_steps=1 << 20, throw=False,
            event=diffrax.Event((crossing, blown), root_finder=optx.Newton(rtol=1e-10, atol=1e-12)),
        )
        hit = (sol.result == diffrax.RESULTS.event_occurred) & jnp.asarray(sol.event_mask[0])
        return sol.ts[-1], hit

    return run


@scoped_x64
def escape_time(setup: SpikedSingleIndex, threshold: float = 0.5,
                observable: str = "correlation", horizon: float = 1e4) -> float:
    """The time t = samples/d at which the limit ODE from the Setup's start first reaches
    |observable| >= threshold (docs/spiked.md, "Escape time"); inf if it does not by
    ``horizon`` (or the ODE blows up first).

    Solved with a diffrax event at |observable| = threshold (located by a Newton root find),
    so the cost is that of the path up to the escape, not of the horizon. ``observable`` is one
    of "overlap", "covariance_overlap", "cosine", "correlation". From
    ``initial_overlap="random"`` this uses m0 = 1/sqrt(d) and ignores the stochastic search
    phase: compare `escape_samples` of the chain with it only from a macroscopic start.
    Compiled once per (link, student, loss, normalisation, observable).

    Raises:
        ValueError: ``threshold`` outside (0, top], top the largest value |observable| takes
            (1 for "cosine" and "correlation"; see `hdsgd.setups.spiked.check_escape`);
            ``horizon`` not > 0.
    """
    check_setup(setup)
    threshold = check_escape(setup, observable, threshold)
    horizon = v.positive("horizon", horizon)
    y0 = state0(setup)
    m0, q0 = to_overlaps(setup.normalization, setup.spike, y0[None, :])
    if float(overlap_statistic(observable, m0[0], q0[0], setup.spike)) >= threshold:
        return 0.0
    run = _escape_solver(*static_key(setup), observable)
    t_hit, hit = run(jnp.asarray(y0), traced_args(setup), jnp.float64(threshold),
                     jnp.float64(horizon))
    return float(t_hit) if bool(hit) else math.inf
