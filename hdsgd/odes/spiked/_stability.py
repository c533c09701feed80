r"""The stability edges and the fixed points of the limit ODEs (docs/spiked.md, "The critical
step size" and "Fixed points").

For (S) (x = m) and (N) (x = a) the ODE is one-dimensional, dx/dt = c g(x) - (c^2/2) x A3(x),
with g the O(c) drift and A3 = E[G^2] > 0. A fixed point x* > 0 solves c = 2 g(x*) / (x* A3(x*)),
so the largest step with an informative fixed point is

    c_crit = sup_{0 < x < 1} 2 g(x) / (x A3(x)),

and for c > c_crit the drift is negative on the whole of (0, 1): the overlap decays to the
uninformative fixed point 0. (P) has an edge only with the square loss and a linear student
sigma(h) = s_0 + s_1 h: there dq/dt = -c s_1^2 (2 - c s_1^2) q + O(1), so q grows without
bound past c = 2 / s_1^2. Otherwise (P) has no step-size edge: with the correlation loss q
grows at every step, and with a polynomial student of degree >= 2 and the square loss the
finite-time blow-up depends on the state as well as on c.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy  # its submodules load on first use (scipy.optimize, ...)

from ..._precision import scoped_x64
from ...setups import _validate as v
from ...setups.spiked import SpikedSingleIndex, check_setup, series_degree
from ._moments import functionals, static_key
from ._ode import drift

N_GRID = 4000
#: the most grid points: each costs a 40 x 40 quadrature, ~60 kB at once (10^5 points took
#: 6 GB and a minute)
MAX_GRID = 20_000
_NO_EDGE = ("the plain variant (P) has a critical step size only with the square loss and a "
            "linear student: docs/spiked.md, \"The critical step size\"")


def _scalar_variable(setup: SpikedSingleIndex) -> str:
    """The observable the 1-D ODE variable is: m for "sphere", a for "covariance"."""
    if setup.normalization == "sphere":
        return "overlap"
    if setup.normalization == "covariance":
        return "covariance_overlap"
    raise ValueError(f"normalization={setup.normalization!r} is invalid here; allowed: "
                     f"('sphere', 'covariance') ({_NO_EDGE})")


def _plain_linear_edge(setup: SpikedSingleIndex) -> float | None:
    """2 / s_1^2 for (P) with the square loss and a linear student s_0 + s_1 h, else None."""
    if setup.loss == "square" and series_degree(setup.student) == 1:
        return 2.0 / float(setup.student[1]) ** 2
    return None


@functools.lru_cache(maxsize=64)
def _split_drift_fn(link, student, square, norm):
    fun = functionals(link, student, square)

    def one(xv, theta, noise_var):
        y = jnp.stack([xv])
        first = drift(fun, norm, y, 1.0, theta, noise_var, 0.0)[0]
        second = -2.0 * drift(fun, norm, y, 1.0, theta, noise_var, 1.0)[0] + 2.0 * first
        return first, second

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def _split_drift(setup: SpikedSingleIndex, x):
    """(g(x), x A3(x)) with drift = c g(x) - (c^2/2) x A3(x), vectorised over x (numpy)."""
    fn = _split_drift_fn(*static_key(setup))
    g, xa3 = fn(jnp.asarray(x, dtype=jnp.float64), jnp.float64(setup.spike),
                jnp.float64(setup.label_noise_var))
    return np.asarray(g), np.asarray(xa3)


def _check_grid(n_grid) -> int:
    return v.integer("n_grid", n_grid, low=2, high=MAX_GRID)


@functools.lru_cache(maxsize=256)
def _critical(key: tuple, spike: float, label_noise: float, n_grid: int) -> float:
    setup = SpikedSingleIndex(link=np.array(key[0]), student=np.array(key[1]),
                              loss="square" if key[2] else "correlation", normalization=key[3],
                              spike=spike, label_noise=label_noise, initial_overlap=0.0)
    x = np.geomspace(1e-7, 1.0 - 1e-9, n_grid)
    g, xa3 = _split_drift(setup, x)
    ratio = 2.0 * g / xa3
    i = int(np.argmax(ratio))
    best = float(ratio[i])
    if 0 < i < n_grid - 1:
        def neg(lx):
            gg, xx = _split_drift(setup, np.array([math.exp(lx)]))
            return -2.0 * gg[0] / xx[0]

        res = scipy.optimize.minimize_scalar(
            neg, bounds=(math.log(x[i - 1]), math.log(x[i + 1])), method="bounded",
            options={"xatol": 1e-12})
        best = max(-float(res.fun), best)
    return max(best, 0.0)


@scoped_x64
def critical_step_size(setup: SpikedSingleIndex, n_grid: int = N_GRID) -> float:
    """The stability edge of the limit ODE in ``step_size`` units (each step uses c/d)
    (docs/spiked.md, "The critical step size").

    (S) and (N): the largest step c for which the ODE has a fixed point x* in (0, 1),

        c_crit = sup_{0 < x < 1} 2 g(x) / (x A3(x)),    drift = c g(x) - (c^2/2) x A3(x),

    x = m ("sphere") or a ("covariance"); the sup is found on a log grid of ``n_grid`` points,
    then refined. For k = 2 (matched link, correlation loss, (N)) it is the x -> 0 limit
    2 (1+theta) / (1+Delta), Delta = label_noise^2: the linear rate 2c(1+theta) - c^2(1+Delta)
    of x = 0 changes sign there. For k >= 3, x = 0 is stable at every step and c_crit bounds
    the steps for which any informative fixed point exists. Past c_crit the overlap decays to
    0. 0.0 when no step has an informative fixed point.

    (P) with the square loss and a linear student s_0 + s_1 h: 2 / s_1^2, past which
    ||P_perp w||^2 grows exponentially. Any other (P) has no step-size edge: ValueError.

    The edge does not depend on ``step_size``, ``dim`` or ``initial_overlap``.

    Raises:
        ValueError: ``n_grid`` not an integer in [2, 20000]; a (P) Setup with no edge.
    """
    check_setup(setup)
    n_grid = _check_grid(n_grid)
    if setup.normalization == "none":
        edge = _plain_linear_edge(setup)
        if edge is None:
            raise ValueError(f"normalization='none' with loss={setup.loss!r} and a student of "
                             f"degree {series_degree(setup.student)} has no critical step size "
                             f"({_NO_EDGE})")
        return edge
    _scalar_variable(setup)
    return _critical(static_key(setup), float(setup.spike), float(setup.label_noise), n_grid)


def has_edge(setup: SpikedSingleIndex) -> bool:
    """Whether `critical_step_size` is defined for ``setup`` ((S), (N), or (P) with the square
    loss and a linear student)."""
    return setup.normalization != "none" or _plain_linear_edge(setup) is not None


def stability_warning(setup: SpikedSingleIndex) -> str | None:
    """``meta["warning"]`` for a step past the critical step size, else None."""
    if not has_edge(setup):
        return None
    c_crit = critical_step_size(setup)
    if setup.step_size <= c_crit:
        return None
    if setup.normalization == "none":
        return (f"step_size={setup.step_size} is beyond the critical step size {c_crit:.6g} "
                "(2 / s_1^2 for the plain variant with the square loss and a linear student): "
                "||P_perp w||^2 grows exponentially")
    return (f"step_size={setup.step_size} is beyond the critical step size {c_crit:.6g} (the "
            "largest step at which the limit ODE has an informative fixed point, x > 0): the "
            "overlap decays to the uninformative fixed point 0")


@scoped_x64
def fixed_points(setup: SpikedSingleIndex, n_grid: int = N_GRID) -> list[dict]:
    """The fixed points x* in (0, 1) of the 1-D limit ODE ("sphere": x = m, "covariance": x = a)
    at the Setup's step size (docs/spiked.md, "Fixed points"): the roots of
    c g(x) - (c^2/2) x A3(x), bracketed on a grid of ``n_grid`` points and refined by Brent's
    method.

    Returns a list of dicts ``{"overlap": m*, "covariance_overlap": a*, "stable": bool}``
    (x = 0 is always a fixed point and is not listed).

    Raises:
        ValueError: for "none" (P); ``n_grid`` not an integer in [2, 20000].
    """
    check_setup(setup)
    n_grid = _check_grid(n_grid)
    name = _scalar_variable(setup)
    c = setup.step_size
    x = np.linspace(1e-9, 1.0 - 1e-12, n_grid)
    g, xa3 = _split_drift(setup, x)
    f = c * g - 0.5 * c * c * xa3
    out = []
    sq = math.sqrt(1.0 + setup.spike)
    for i in np.flatnonzero(np.sign(f[:-1]) * np.sign(f[1:]) < 0):
        def h(xv):
            gg, xx = _split_drift(setup, np.array([xv]))
            return c * gg[0] - 0.5 * c * c * xx[0]

        root = scipy.optimize.brentq(h, x[i], x[i + 1], xtol=1e-14)
        stable = f[i] > 0 > f[i + 1]
        m = root if name == "overlap" else root / sq
        out.append({"overlap": float(m), "covariance_overlap": float(sq * m),
                    "stable": bool(stable)})
    return out
