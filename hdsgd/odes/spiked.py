r"""High-dimensional limit ODEs of online SGD on a spiked single-index model (spec ``spiked.md`` §4).

Step eta = c/d, time t = samples/d, d -> infinity at fixed theta. With h = a u + b xi
(a = sqrt(1+theta) m, b = sqrt(q)) and the Gaussian functionals

    A1 = E[G u],  A2 = E[G xi],  A3 = E[G^2]      (u, xi, eps ~ N(0, 1) independent),

the summary statistics follow (spec §4; the c^2 terms are the Ito/normalisation correction)

    (P) "none":        dm/dt = c sqrt(1+theta) A1,           dq/dt = 2 c b A2 + c^2 A3
    (S) "sphere":      dm/dt = c [sqrt(1+theta) A1 - m (a A1 + b A2)] - (c^2/2) m A3,  q = 1 - m^2
    (N) "covariance":  da/dt = c [(1+theta)(1 - a^2) A1 - a b A2] - (c^2/2) a A3,   b^2 = 1 - a^2

A1, A2, A3 are computed by 2-D Gauss-Hermite quadrature (exact for the polynomial links used
here, 40 x 40 nodes); the label noise enters A3 in closed form, Delta E[sigma'(h)^2].
Closed forms (spec §4), used in tests against the quadrature: for the correlation loss
A1 = dPhi/da, A2 = dPhi/db with Phi(a, b) = sum_j c_j/sqrt(j!) a^j E[sigma^{(j)}(s g)],
s = sqrt(a^2 + b^2); for the matched normalised He_k link, Phi = a^k, A1 = k a^{k-1}, A2 = 0,
and with s = 1 and k = 2, A3 = 2 + 8 a^2 + 2 Delta.

Derived quantities (spec §5): `critical_step_size` (largest c with an informative fixed
point: sup_x 2 g(x) / (x A3(x)) for drift c g(x) - (c^2/2) x A3(x); k = 2, matched link,
correlation loss, (N): 2 (1+theta)/(1+Delta)), `fixed_points`, `escape_time`.
"""

from __future__ import annotations

import functools
import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import scipy.optimize

from .. import __version__
from ..api import check_horizon, check_times, predict, step_grid
from ..curve import Curve
from ..setups.spiked import (
    SpikedSingleIndex,
    derivative_e,
    gauss_hermite,
    hermite_e_eval,
    observables_from_overlaps,
    to_hermite_e,
)

METHODS = ("ode",)
BLOWUP = 1e12
RATE_BLOWUP = 1e7  # per unit t: beyond it the solve is stopped and flagged as diverged
MAX_STEPS = 1 << 21  # a bound only: the solve stops at the horizon, an event or a blow-up


# ----------------------------------------------------------------- Gaussian functionals
class _Functionals:
    """Static pieces of a Setup needed by the drift: Hermite coefficients and quadrature."""

    def __init__(self, link: tuple, student: tuple, square: bool, n_nodes: int = 40):
        self.link_e = to_hermite_e(link)
        self.student_e = to_hermite_e(student)
        self.dstudent_e = derivative_e(self.student_e)
        self.square = square
        nodes, weights = gauss_hermite(n_nodes)
        self.nodes = nodes
        self.w2 = np.outer(weights, weights)

    def moments(self, a, b, noise):
        """(A1, A2, A3) at (a, b) for label-noise variance ``noise`` (pure JAX)."""
        u = jnp.asarray(self.nodes)[:, None]
        xi = jnp.asarray(self.nodes)[None, :]
        w2 = jnp.asarray(self.w2)
        h = a * u + b * xi
        target = hermite_e_eval(self.link_e, u)
        ds = hermite_e_eval(self.dstudent_e, h)
        resid = target - hermite_e_eval(self.student_e, h) if self.square else target
        g = resid * ds
        a1 = jnp.sum(w2 * g * u)
        a2 = jnp.sum(w2 * g * xi)
        a3 = jnp.sum(w2 * g * g) + noise * jnp.sum(w2 * ds * ds)
        return a1, a2, a3


def _key(setup: SpikedSingleIndex) -> tuple:
    return (tuple(setup.link.tolist()), tuple(setup.student.tolist()), setup.loss == "square",
            setup.normalization)


@functools.lru_cache(maxsize=64)
def _functionals(link, student, square, n_nodes=40) -> _Functionals:
    return _Functionals(link, student, square, n_nodes)


def _fun(setup: SpikedSingleIndex) -> _Functionals:
    link, student, square, _ = _key(setup)
    return _functionals(link, student, square)


def gaussian_moments(setup: SpikedSingleIndex, a, b, n_nodes: int = 40):
    """(A1, A2, A3) = (E[G u], E[G xi], E[G^2]) at h = a u + b xi (spec §4), by quadrature."""
    return _functionals(*_key(setup)[:3], n_nodes).moments(jnp.asarray(a, jnp.float64),
                                                jnp.asarray(b, jnp.float64), setup.label_noise)


def correlation_potential(setup: SpikedSingleIndex, a, b, n_nodes: int = 40):
    """Phi(a, b) = E[sigma*(u) sigma(a u + b xi)] in closed form (spec §4, Gaussian IBP):

        Phi = sum_j (c_j / sqrt(j!)) a^j E[sigma^{(j)}(s g)],   s = sqrt(a^2 + b^2),

    with 1-D Gauss-Hermite for E[sigma^{(j)}(s g)]. For the correlation loss A1 = dPhi/da and
    A2 = dPhi/db (use ``jax.grad``).
    """
    nodes, weights = gauss_hermite(n_nodes)
    s = jnp.sqrt(a * a + b * b)
    e_link = to_hermite_e(setup.link)
    deriv = to_hermite_e(setup.student)
    total = 0.0
    for j, coef in enumerate(e_link):
        if j > 0:
            deriv = derivative_e(deriv)
        if coef != 0.0:
            total = total + coef * a**j * jnp.sum(jnp.asarray(weights) * hermite_e_eval(deriv, s * jnp.asarray(nodes)))
    return total


def matched_moments_closed_form(k: int, a, noise: float = 0.0):
    """(A1, A2, A3) for link = student = He_k/sqrt(k!), correlation loss, ||w||_Sigma = 1 (s = 1).

    A1 = k a^{k-1}, A2 = 0; A3 is given in closed form for k = 1, 2 only (spec §4:
    k = 2: A3 = 2 + 8 a^2 + 2 Delta; k = 1: A3 = 1 + Delta), else None.
    """
    a1 = k * a ** (k - 1)
    a3 = {1: 1.0 + noise + 0.0 * a, 2: 2.0 + 8.0 * a * a + 2.0 * noise}.get(k)
    return a1, 0.0 * a, a3


# ----------------------------------------------------------------- the drifts
def _drift(fun: _Functionals, normalization: str, y, c, theta, noise, kappa):
    """d(state)/dt; state (m, q) for "none", m for "sphere", a for "covariance".

    ``kappa`` multiplies the O(c^2) correction (1 in the model; 0 only for checks).
    """
    sq = jnp.sqrt(1.0 + theta)
    if normalization == "none":
        m, q = y[0], y[1]
        a, b = sq * m, jnp.sqrt(jnp.maximum(q, 0.0))
        a1, a2, a3 = fun.moments(a, b, noise)
        return jnp.stack([c * sq * a1, 2.0 * c * b * a2 + kappa * c * c * a3])
    if normalization == "sphere":
        m = y[0]
        a, b = sq * m, jnp.sqrt(jnp.maximum(1.0 - m * m, 0.0))
        a1, a2, a3 = fun.moments(a, b, noise)
        return jnp.stack([c * (sq * a1 - m * (a * a1 + b * a2)) - kappa * 0.5 * c * c * m * a3])
    a = y[0]
    b = jnp.sqrt(jnp.maximum(1.0 - a * a, 0.0))
    a1, a2, a3 = fun.moments(a, b, noise)
    return jnp.stack([c * ((1.0 + theta) * (1.0 - a * a) * a1 - a * b * a2) - kappa * 0.5 * c * c * a * a3])


def _state0(setup: SpikedSingleIndex) -> np.ndarray:
    m0, q0 = setup.start()
    if setup.normalization == "none":
        return np.array([m0, q0])
    if setup.normalization == "sphere":
        return np.array([m0])
    return np.array([math.sqrt(1.0 + setup.spike) * m0])


def _to_overlaps(setup: SpikedSingleIndex, ys):
    """States (T, n) -> (m, q) arrays (numpy)."""
    ys = np.asarray(ys)
    if setup.normalization == "none":
        return ys[:, 0], ys[:, 1]
    if setup.normalization == "sphere":
        m = ys[:, 0]
        return m, 1.0 - m * m
    a = ys[:, 0]
    return a / math.sqrt(1.0 + setup.spike), 1.0 - a * a


def solve(setup: SpikedSingleIndex, t_out, *, kappa: float = 1.0, rtol: float = 1e-8,
          atol: float = 1e-11, max_steps: int | None = None):
    """Integrate the limit ODE of ``setup`` (diffrax Tsit5) and return (states (T, n), ok).

    States: (m, q) for "none", m for "sphere", a for "covariance". Stops (and flags) when a
    state exceeds 1e12 in magnitude. Pure JAX below this wrapper (``_solver`` is jitted once
    per link/student/loss/normalisation and is vmappable over step size, spike, noise, start).
    """
    t_out = jnp.asarray(t_out, dtype=jnp.float64)
    if max_steps is None:
        max_steps = MAX_STEPS  # one compilation per link/student/loss/normalisation
    run = _solver(*_key(setup), float(rtol), float(atol), max_steps)
    args = (jnp.float64(setup.step_size), jnp.float64(setup.spike), jnp.float64(setup.label_noise),
            jnp.float64(kappa))
    # pad the output grid (repeating its last time) to a power of two >= 128, so grids of
    # different lengths share one compilation
    n = t_out.shape[0]
    padded = jnp.concatenate([t_out, jnp.full(max(128, 1 << (n - 1).bit_length()) - n, t_out[-1])])
    ys, ok = run(jnp.asarray(_state0(setup)), padded, args)
    return ys[:n], ok


@functools.lru_cache(maxsize=64)
def _solver(link, student, square, norm, rtol, atol, max_steps):
    fun = _functionals(link, student, square)

    def field(t, y, args):
        c, theta, noise, kap = args
        return _drift(fun, norm, y, c, theta, noise, kap)

    @jax.jit
    def run(y0, t_out, args):
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
            max_steps=max_steps,
            throw=False,
            event=diffrax.Event(functools.partial(_blown, field)),
        )
        return sol.ys, sol.result == diffrax.RESULTS.successful

    return run


def _blown(field, t, y, args, **kwargs):
    """The divergence event: |state| > BLOWUP, or a relative rate |f| / (1 + |y|) > RATE_BLOWUP
    per unit t. The second catches finite-time blow-ups (e.g. (P) with a cubic student and the
    square loss, where dq/dt ~ c^2 q^5): near the singularity the step size falls below the
    resolution of t long before the state reaches BLOWUP, and the solve would otherwise spin
    until max_steps."""
    rate = jnp.max(jnp.abs(field(t, y, args))) / (1.0 + jnp.max(jnp.abs(y)))
    return (jnp.max(jnp.abs(y)) > BLOWUP) | ~(rate < RATE_BLOWUP)


# ----------------------------------------------------------------- predict
@predict.register
def _predict(setup: SpikedSingleIndex, horizon: float, *, times=None, method: str | None = None,
             rtol: float = 1e-8, correction_scale: float = 1.0, **options) -> Curve:
    """Integrate the limit ODE (P), (S) or (N) of spec §4 for ``setup``.

    Args:
        setup: a `SpikedSingleIndex`.
        horizon: final time t = samples / d.
        times: output times in t; default: the Monte Carlo's grid (every step at first,
            then about 100 log-spaced steps, divided by d).
        method: ``"ode"`` (the only one; default).
        rtol: the solver's relative tolerance.
        correction_scale: multiplies the O(c^2) Ito/normalisation term (1 = the model; other
            values exist only so tests can check that the Monte Carlo rejects them).
    """
    if options:
        raise TypeError(f"unknown option(s) for SpikedSingleIndex: {sorted(options)}")
    method = "ode" if method is None else method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    horizon = check_horizon(horizon)
    d = setup.dim
    if times is None:
        t_out = step_grid(max(1, int(round(horizon * d)))) / d
    else:
        t_out = check_times(times, horizon)
    t_solve = t_out if t_out[-1] > 0 else np.array([0.0, 1e-12])
    ys, ok = solve(setup, t_solve, kappa=correction_scale, rtol=rtol)
    ys = np.asarray(ys)[: len(t_out)]
    blown = ~np.all(np.isfinite(ys) & (np.abs(ys) < BLOWUP), axis=1)
    blown = np.maximum.accumulate(blown)
    m, q = (np.asarray(x) for x in _to_overlaps(setup, np.where(blown[:, None], 0.0, ys)))
    obs = {k: np.asarray(val, dtype=np.float64)
           for k, val in observables_from_overlaps(setup, m, q).items()}
    obs = {k: np.where(blown, np.inf, val) for k, val in obs.items()}
    extra = {"solver_ok": bool(ok)}
    if setup.random_start:
        extra["warning"] = ("initial_overlap='random': the ODE starts from m0 = 1/sqrt(d); the "
                            "escape from a random start is stochastic (use the chain)")
    return Curve(
        time=t_out,
        observables=obs,
        time_unit="t",
        samples=np.round(t_out * d),
        seeds=None,
        diverged=np.broadcast_to(blown, t_out.shape).copy(),
        meta={**setup.fields(), "method": method, "correction_scale": correction_scale,
              "version": __version__, **extra},
    )


# ----------------------------------------------------------------- fixed points, critical step
def _scalar_variable(setup: SpikedSingleIndex):
    """(name, upper bound) of the 1-D ODE variable: m for "sphere", a for "covariance"."""
    if setup.normalization == "sphere":
        return "overlap", 1.0
    if setup.normalization == "covariance":
        return "covariance_overlap", 1.0
    raise ValueError(f"normalization={setup.normalization!r} is invalid here; allowed: "
                     "('sphere', 'covariance') (the plain variant has no bounded fixed point)")


def _split_drift(setup: SpikedSingleIndex, x):
    """(g(x), x A3(x)) with drift = c g(x) - (c^2/2) x A3(x), vectorised over x."""
    fn = _split_drift_fn(*_key(setup))
    g, xa3 = fn(jnp.asarray(x, dtype=jnp.float64), setup.spike, setup.label_noise)
    return np.asarray(g), np.asarray(xa3)


@functools.lru_cache(maxsize=64)
def _split_drift_fn(link, student, square, norm):
    fun = _functionals(link, student, square)

    def one(xv, theta, noise):
        pop = _drift(fun, norm, jnp.stack([xv]), 1.0, theta, noise, 0.0)[0]
        corr = -2.0 * _drift(fun, norm, jnp.stack([xv]), 1.0, theta, noise, 1.0)[0] + 2.0 * pop
        return pop, corr

    return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def critical_step_size(setup: SpikedSingleIndex, n_grid: int = 4000) -> float:
    """The largest step c for which the limit ODE has a fixed point with x > 0 (spec §5).

    x is m ("sphere") or a ("covariance"). Fixed points solve c = 2 g(x) / (x A3(x)), so
    c_crit = sup_{0 < x < 1} 2 g(x) / (x A3(x)). For k = 2 (matched link, correlation loss,
    "covariance") the sup is the x -> 0 limit, 2 (1+theta)/(1+Delta): the linear instability
    rate 2c(1+theta) - c^2 (1+Delta) of x = 0 changes sign there. For k >= 3 x = 0 is
    always stable and c_crit bounds the step for which any informative fixed point exists.
    Units: c (the per-step step is c/d).
    """
    _scalar_variable(setup)
    x = np.geomspace(1e-7, 1.0 - 1e-9, n_grid)
    g, xa3 = _split_drift(setup, x)
    ratio = 2.0 * g / xa3
    i = int(np.argmax(ratio))
    if 0 < i < n_grid - 1:
        def neg(lx):
            gg, xx = _split_drift(setup, np.array([math.exp(lx)]))
            return -2.0 * gg[0] / xx[0]
        res = scipy.optimize.minimize_scalar(neg, bracket=(math.log(x[i - 1]), math.log(x[i]),
                                                           math.log(x[i + 1])), tol=1e-12)
        return float(max(-res.fun, ratio[i]))
    return float(ratio[i])


def fixed_points(setup: SpikedSingleIndex, n_grid: int = 4000) -> list[dict]:
    """The fixed points x* in (0, 1) of the 1-D limit ODE ("sphere": x = m, "covariance": x = a).

    Returns a list of dicts ``{"overlap": m*, "covariance_overlap": a*, "stable": bool}``
    (x = 0 is always a fixed point and is not listed).
    """
    name, _ = _scalar_variable(setup)
    c = setup.step_size
    x = np.linspace(1e-9, 1.0 - 1e-12, n_grid)
    g, xa3 = _split_drift(setup, x)
    f = c * g - 0.5 * c * c * xa3
    out = []
    for i in np.flatnonzero(np.sign(f[:-1]) * np.sign(f[1:]) < 0):
        def h(xv):
            gg, xx = _split_drift(setup, np.array([xv]))
            return c * gg[0] - 0.5 * c * c * xx[0]
        root = scipy.optimize.brentq(h, x[i], x[i + 1], xtol=1e-14)
        stable = f[i] > 0 > f[i + 1]
        sq = math.sqrt(1.0 + setup.spike)
        m = root if name == "overlap" else root / sq
        out.append({"overlap": m, "covariance_overlap": sq * m, "stable": bool(stable)})
    return out


def escape_time(setup: SpikedSingleIndex, threshold: float = 0.5, observable: str = "correlation",
                horizon: float = 1e4) -> float:
    """Time t = samples/d at which the limit ODE from the Setup's start first reaches
    |observable| >= threshold (inf if it does not by ``horizon``).

    Solved with a diffrax event at |observable| = threshold (located by a Newton root find),
    so the cost is that of the path up to the escape, not of the horizon. From
    ``initial_overlap="random"`` this uses m0 = 1/sqrt(d) and ignores the stochastic search
    phase (spec §5: compare with the chain in distribution, not with this).
    """
    if observable not in _ESCAPE_OBSERVABLES:
        raise ValueError(f"observable={observable!r} is invalid; allowed: {_ESCAPE_OBSERVABLES}")
    if not 0.0 < float(threshold):
        raise ValueError(f"threshold={threshold!r} is invalid; allowed: (0, inf)")
    y0 = jnp.asarray(_state0(setup))
    theta = jnp.float64(setup.spike)
    if float(_escape_stat(setup.normalization, observable, y0, theta)) >= threshold:
        return 0.0
    run = _escape_solver(*_key(setup), observable)
    args = (jnp.float64(setup.step_size), theta, jnp.float64(setup.label_noise), jnp.float64(1.0))
    t_hit, hit = run(y0, args, jnp.float64(threshold), jnp.float64(horizon))
    return float(t_hit) if bool(hit) else math.inf


_ESCAPE_OBSERVABLES = ("overlap", "covariance_overlap", "cosine", "correlation")


def _escape_stat(norm: str, observable: str, y, theta):
    """|observable| from the ODE state (pure JAX)."""
    sq = jnp.sqrt(1.0 + theta)
    if norm == "none":
        m, q = y[0], jnp.maximum(y[1], 0.0)
    elif norm == "sphere":
        m = y[0]
        q = jnp.maximum(1.0 - m * m, 0.0)
    else:
        m = y[0] / sq
        q = jnp.maximum(1.0 - y[0] * y[0], 0.0)
    a = sq * m
    value = {"overlap": m, "covariance_overlap": a, "cosine": m / jnp.sqrt(m * m + q),
             "correlation": a / jnp.sqrt(a * a + q)}[observable]
    return jnp.abs(value)


@functools.lru_cache(maxsize=64)
def _escape_solver(link, student, square, norm, observable):
    fun = _functionals(link, student, square)

    def field(t, y, args):
        c, theta, noise, kap = args[0]
        return _drift(fun, norm, y, c, theta, noise, kap)

    def crossing(t, y, args, **kw):
        return _escape_stat(norm, observable, y, args[0][1]) - args[1]

    def blown(t, y, args, **kw):
        return _blown(field, t, y, args)

    @jax.jit
    def run(y0, args, threshold, t_max):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=t_max, dt0=None, y0=y0,
            args=(args, threshold),
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-11),
            max_steps=1 << 20, throw=False,
            event=diffrax.Event((crossing, blown), root_finder=optx.Newton(rtol=1e-10, atol=1e-12)),
        )
        t_end = sol.ts[-1]
        hit = (sol.result == diffrax.RESULTS.event_occurred) & jnp.asarray(sol.event_mask[0])
        return t_end, hit

    return run
