r"""Deterministic equivalents of one-pass mini-batch SGD on least squares.

Notation (spec ``lstsq_glm.md`` §2.1): eigenvalues lambda_i of H, per-mode error
rho_i = E<w - w*, u_i>^2, per-step step eta = gamma/d, batch B, label-noise variance sigma^2,
psi = 2R = sigma^2 + sum_i lambda_i rho_i (twice the risk, used internally only).

Three equivalents, all returning the risk R = psi/2 (noise included):

* ``"recursion"``: the exact expected recursion for Gaussian data at any finite d,

      rho_i(k+1) = a_i rho_i(k) + b_i psi(k),
      a_i = 1 - 2 eta lambda_i + (1 + 1/B) eta^2 lambda_i^2,   b_i = eta^2 lambda_i / B.

* ``"ode"``: the homogenized ODE in t = k/d,

      d rho_i/dt = -2 gamma lambda_i rho_i + (gamma^2/(B d)) lambda_i psi(t),

  which drops the O(1/d) term of the recursion. A continuous-time solver is wrong at the
  first steps (where the drop matters most and the fast modes move), so by default the first
  ``exact_steps`` steps are taken with the exact recursion and the ODE (diffrax, Tsit5 with
  adaptive steps) takes over from there.

* ``"volterra"``: the convolution Volterra equation for R,

      R(t) = F(gamma t) + int_0^t K(t - s) R(s) ds,
      F(s) = sigma^2/2 + 1/2 sum_i lambda_i rho_i(0) exp(-2 s lambda_i),
      K(t) = (gamma^2/B) (1/d) sum_i lambda_i^2 exp(-2 gamma lambda_i t),

  solved by trapezoidal product integration on a uniform grid (O(N^2)).

The three agree to O(1/d).
"""

from __future__ import annotations

import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, Float

from .. import __version__
from ..api import check_horizon, check_times, predict, step_grid
from ..autotune import grid_setups, predict_grid
from ..curve import Curve
from ..setups.lstsq import StreamingLeastSquares

METHODS = ("recursion", "ode", "volterra")


# ----------------------------------------------------------------- the one-step map
def mode_coefficients(eigenvalues: Float[Array, " d"], step_size, batch_size, dim
                      ) -> tuple[Float[Array, " d"], Float[Array, " d"]]:
    """(a_i, b_i) of the exact recursion rho_i(k+1) = a_i rho_i(k) + b_i psi(k).

    a_i = 1 - 2 eta lambda_i + (1 + 1/B) eta^2 lambda_i^2 and b_i = eta^2 lambda_i / B, with
    eta = step_size / dim. Both dimensionless (per step).
    """
    eta = step_size / dim
    x = eta * eigenvalues
    a = 1.0 - 2.0 * x + (1.0 + 1.0 / batch_size) * x**2
    b = eta * x / batch_size
    return a, b


def recursion_psi(eigenvalues, initial_error, noise_var, step_size, batch_size, n_steps: int
                  ) -> Float[Array, " n"]:
    """psi(k) = 2 R(k) for k = 0..n_steps from the exact recursion (pure JAX, vmappable).

    ``n_steps`` must be a Python int (the scan length).
    """
    dim = eigenvalues.shape[0]
    a, b = mode_coefficients(eigenvalues, step_size, batch_size, dim)

    def step(rho, _):
        psi = noise_var + jnp.dot(eigenvalues, rho)
        return a * rho + b * psi, psi

    rho_end, psis = jax.lax.scan(step, initial_error, None, length=n_steps)
    psi_end = noise_var + jnp.dot(eigenvalues, rho_end)
    return jnp.concatenate([psis, psi_end[None]])


def recursion_state(eigenvalues, initial_error, noise_var, step_size, batch_size, n_steps: int
                    ) -> Float[Array, " d"]:
    """rho(n_steps), the per-mode error after ``n_steps`` exact steps."""
    dim = eigenvalues.shape[0]
    a, b = mode_coefficients(eigenvalues, step_size, batch_size, dim)

    def step(rho, _):
        psi = noise_var + jnp.dot(eigenvalues, rho)
        return a * rho + b * psi, None

    rho, _ = jax.lax.scan(step, initial_error, None, length=n_steps)
    return rho


# ----------------------------------------------------------------- stability
def critical_step_size(setup: StreamingLeastSquares) -> float:
    r"""The exact finite-d stability threshold gamma_c of the recursion (spec §2.1).

    gamma_c solves (gamma/(B d)) sum_i lambda_i / (2 - (gamma/d)(1 + 1/B) lambda_i) = 1 on
    (0, 2d / ((1 + 1/B) lambda_max)): the step size at which the spectral radius of the
    recursion's matrix diag(a) + b lambda^T crosses 1. It interpolates between the
    homogenized threshold 2B/lambda_bar (small B) and the curvature limit 2d/lambda_max
    (large B). Units: gamma (the per-step step is gamma/d). With momentum > 0: the heavy-ball
    threshold of `hdsgd.odes.lstsq_momentum.critical_step_size`.
    """
    if setup.momentum != 0.0:
        from .lstsq_momentum import critical_step_size as momentum_critical_step_size
        return momentum_critical_step_size(setup)
    lam = setup.eigenvalues
    d, batch = setup.dim, setup.batch_size
    upper = 2.0 * d / ((1.0 + 1.0 / batch) * lam.max())

    def g(gamma):
        return gamma / (batch * d) * np.sum(lam / (2.0 - gamma / d * (1.0 + 1.0 / batch) * lam)) - 1.0

    hi = upper * (1.0 - 1e-15)
    if g(hi) <= 0:  # numerically never crosses before the curvature limit
        return float(upper)
    return float(scipy.optimize.brentq(g, 0.0, hi, xtol=1e-15 * upper, rtol=4 * np.finfo(float).eps))


def homogenized_critical_step_size(setup: StreamingLeastSquares) -> float:
    """gamma_c of the homogenized limit: min(2B / lambda_bar, 2d / lambda_max)."""
    lam = setup.eigenvalues
    return float(min(2.0 * setup.batch_size / lam.mean(), 2.0 * setup.dim / lam.max()))


def critical_batch_size(setup: StreamingLeastSquares) -> float:
    """B_crit = tr H / lambda_max: above it the curvature limit binds and extra batch is wasted."""
    return float(setup.eigenvalues.sum() / setup.eigenvalues.max())


def recursion_matrix(setup: StreamingLeastSquares) -> np.ndarray:
    """The d x d matrix M = diag(a) + b lambda^T of rho(k+1) = M rho(k) + b sigma^2 (small d only)."""
    a, b = mode_coefficients(setup.eigenvalues, setup.step_size, setup.batch_size, setup.dim)
    a, b = np.asarray(a), np.asarray(b)
    return np.diag(a) + np.outer(b, setup.eigenvalues)


def limit_excess_risk(setup: StreamingLeastSquares) -> float:
    r"""lim_{k->inf} R(k) - sigma^2/2 of the exact recursion (inf when gamma >= gamma_c).

    Fixed point: rho_i = b_i psi / (1 - a_i), psi = sigma^2 / (1 - sum_i lambda_i b_i/(1 - a_i)).
    In the homogenized limit this is gamma lambda_bar sigma^2 / (2 (2B - gamma lambda_bar)).
    With momentum > 0: `hdsgd.odes.lstsq_momentum.limit_excess_risk`.
    """
    if setup.momentum != 0.0:
        from .lstsq_momentum import limit_excess_risk as momentum_limit_excess_risk
        return momentum_limit_excess_risk(setup)
    if setup.step_size >= critical_step_size(setup):
        return math.inf
    a, b = mode_coefficients(setup.eigenvalues, setup.step_size, setup.batch_size, setup.dim)
    mass = float(np.sum(setup.eigenvalues * np.asarray(b) / (1.0 - np.asarray(a))))
    psi = setup.noise_std**2 / (1.0 - mass)
    return 0.5 * psi - 0.5 * setup.noise_std**2


def kernel_mass(setup: StreamingLeastSquares) -> float:
    """int_0^inf K(t) dt = gamma lambda_bar / (2B) (homogenized); < 1 iff below threshold.

    With momentum > 0: the discrete kernel mass of `hdsgd.odes.lstsq_momentum.kernel_mass`."""
    if setup.momentum != 0.0:
        from .lstsq_momentum import kernel_mass as momentum_kernel_mass
        return momentum_kernel_mass(setup)
    return float(setup.step_size * setup.eigenvalues.mean() / (2.0 * setup.batch_size))


def isotropic_risk(t, *, step_size, batch_size, noise_std, initial_risk):
    r"""Closed form for H = I (homogenized ODE, spec §2.1): R solves
    dR/dt = -2 gamma (R - sigma^2/2) + (gamma^2/B) R, so

        R(t) = R_inf + (R_0 - R_inf) exp(-(2 gamma - gamma^2/B) t),   R_inf = B sigma^2 / (2B - gamma).
    """
    g, b2 = step_size, batch_size
    r_inf = b2 * noise_std**2 / (2 * b2 - g)
    return r_inf + (initial_risk - r_inf) * np.exp(-(2 * g - g**2 / b2) * np.asarray(t))


# ----------------------------------------------------------------- the ODE
def _ode_field(t, rho, args):
    lam, noise_var, gamma, batch = args
    d = lam.shape[0]
    psi = noise_var + jnp.dot(lam, rho)
    return -2.0 * gamma * lam * rho + (gamma**2 / (batch * d)) * lam * psi


def _ode_save(t, rho, args):
    lam, noise_var, _, _ = args
    return noise_var + jnp.dot(lam, rho)


def _ode_blew_up(t, rho, args, **kwargs):
    lam, noise_var, _, _ = args
    return noise_var + jnp.dot(lam, rho) > 1e30


@eqx.filter_jit
def ode_psi(eigenvalues, rho_start, noise_var, step_size, batch_size, t_start, t_out, max_steps: int,
            rtol=1e-8, atol=1e-14):
    """psi(t) = 2R(t) from the homogenized ODE started at ``t_start`` in state ``rho_start``.

    Diffrax Tsit5 with adaptive steps; stops at blow-up (psi > 1e30) and never raises.
    Returns (psi at t_out, success flag); values after a failure are inf.
    """
    args = (eigenvalues, noise_var, step_size, batch_size)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_ode_field),
        diffrax.Tsit5(),
        t0=t_start,
        t1=t_out[-1],
        dt0=None,
        y0=rho_start,
        args=args,
        saveat=diffrax.SaveAt(ts=t_out, fn=_ode_save),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol * (1.0 + jnp.max(rho_start))),
        max_steps=max_steps,
        throw=False,
        event=diffrax.Event(_ode_blew_up),
    )
    return sol.ys, sol.result == diffrax.RESULTS.successful


def _ode_max_steps(setup, t_span: float) -> int:
    # An explicit solver's step is bounded by the fastest mode's rate 2 gamma lambda_max.
    stiff = 2.0 * setup.step_size * float(setup.eigenvalues.max()) * t_span
    # Rounded up to a power of two so that nearby horizons share one compilation.
    return int(2 ** math.ceil(math.log2(min(10_000_000, 4096 + 8 * stiff))))


# ----------------------------------------------------------------- the Volterra equation
def volterra_risk(eigenvalues, initial_error, noise_var, step_size, batch_size, horizon: float,
                  n_grid: int) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """R on a uniform grid of ``n_grid + 1`` points on [0, horizon], trapezoidal product integration.

    R_n = (F_n + h (1/2 K_n R_0 + sum_{0<j<n} K_{n-j} R_j)) / (1 - h K_0 / 2).
    """
    d = eigenvalues.shape[0]
    grid = jnp.linspace(0.0, horizon, n_grid + 1)
    h = horizon / n_grid
    decay = jnp.exp(-2.0 * step_size * grid[:, None] * eigenvalues[None, :])  # (N+1, d)
    forcing = 0.5 * noise_var + 0.5 * decay @ (eigenvalues * initial_error)
    kernel = (step_size**2 / batch_size) * (decay @ eigenvalues**2) / d
    n = n_grid + 1
    kext_rev = jnp.concatenate([jnp.zeros(n - 1), kernel])[::-1]

    def body(r, i):
        w = jax.lax.dynamic_slice(kext_rev, (n - 1 - i,), (n,))
        conv = jnp.dot(w, r) - 0.5 * kernel[i] * r[0]
        value = jnp.where(i == 0, forcing[0], (forcing[i] + h * conv) / (1.0 - 0.5 * h * kernel[0]))
        return r.at[i].set(value), None

    r, _ = jax.lax.scan(body, jnp.zeros(n), jnp.arange(n))
    return grid, r


# ----------------------------------------------------------------- predict
_recursion_psi_jit = jax.jit(recursion_psi, static_argnums=(5,))
_recursion_state_jit = jax.jit(recursion_state, static_argnums=(5,))
_volterra_jit = jax.jit(volterra_risk, static_argnums=(5, 6))


def _default_exact_steps(setup: StreamingLeastSquares, horizon_steps: int) -> int:
    # Enough steps for every mode the solver would find stiff, and the O(1/k) start-up error,
    # to be gone; costs O(d) per step.
    return int(min(horizon_steps, max(1000, 4 * setup.dim)))


@predict.register
def _predict(setup: StreamingLeastSquares, horizon: float, *, times=None, method: str | None = None,
             exact_steps: int | None = None, n_grid: int | None = None, rtol: float = 1e-8,
             **options) -> Curve:
    """Predict the risk of streaming least-squares SGD.

    Args:
        setup: a `StreamingLeastSquares`.
        horizon: final time t = steps / d.
        times: output times (in t); default: every step up to the first log-spaced ones,
            then log-spaced (about 100 points). The recursion rounds times to whole steps.
        method: ``"recursion"`` (default; exact), ``"ode"`` or ``"volterra"``.
        exact_steps: ``"ode"`` only: steps taken with the exact recursion before the ODE
            takes over (default max(1000, 4d), capped by the horizon; 0 for the pure ODE).
        n_grid: ``"volterra"`` only: uniform grid size (default 2000).
        rtol: ``"ode"`` only: the solver's relative tolerance.
    """
    if setup.momentum != 0.0:  # heavy ball: hdsgd.odes.lstsq_momentum (spec momentum.md §8a)
        from .lstsq_momentum import predict_momentum
        given = {k: v for k, v in (("exact_steps", exact_steps), ("n_grid", n_grid)) if v is not None}
        given.update({"rtol": rtol} if rtol != 1e-8 else {})
        return predict_momentum(setup, horizon, times=times, method=method, **given, **options)
    if options:
        raise TypeError(f"unknown option(s) for StreamingLeastSquares: {sorted(options)}")
    method = "recursion" if method is None else method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    horizon = check_horizon(horizon)
    d = setup.dim
    horizon_steps = max(1, int(round(horizon * d)))
    if times is None:
        steps = step_grid(horizon_steps)
        t_out = steps / d
    else:
        t_out = check_times(times, horizon)
        steps = np.round(t_out * d).astype(np.int64)
    lam = jnp.asarray(setup.eigenvalues)
    rho0 = jnp.asarray(setup.initial_error)
    noise_var = setup.noise_std**2
    gamma, batch = setup.step_size, setup.batch_size
    extra = {}

    if method == "recursion":
        t_out = steps / d  # the recursion lives on whole steps
        psi = _recursion_psi_jit(lam, rho0, noise_var, gamma, batch, int(steps.max()))
        risk = 0.5 * np.asarray(psi)[steps]
    elif method == "ode":
        k0 = _default_exact_steps(setup, horizon_steps) if exact_steps is None else int(exact_steps)
        if k0 < 0:
            raise ValueError(f"exact_steps={exact_steps} is invalid; allowed: an integer >= 0")
        k0 = min(k0, int(np.floor(t_out.max() * d)))
        risk = np.empty_like(t_out)
        early = t_out * d <= k0
        if k0 > 0:
            psi = np.asarray(_recursion_psi_jit(lam, rho0, noise_var, gamma, batch, k0))
            # Times within the exact part are whole steps (a continuous ODE time in between
            # is interpolated linearly between the two exact steps around it).
            risk[early] = 0.5 * np.interp(t_out[early] * d, np.arange(k0 + 1), psi)
            rho_start = _recursion_state_jit(lam, rho0, noise_var, gamma, batch, k0)
        else:
            rho_start = rho0
        late = ~early
        if late.any() or k0 == 0:
            t_late = t_out[late] if k0 > 0 else t_out
            ys, ok = ode_psi(lam, jnp.asarray(rho_start), jnp.asarray(noise_var, float),
                             jnp.asarray(gamma, float), jnp.asarray(batch, float),
                             jnp.asarray(k0 / d, float), jnp.asarray(t_late, float),
                             _ode_max_steps(setup, float(t_late[-1]) - k0 / d), rtol=rtol)
            ys = np.where(np.isfinite(np.asarray(ys)), np.asarray(ys), np.inf)
            if k0 > 0:
                risk[late] = 0.5 * ys
            else:
                risk = 0.5 * ys
            extra["solver_ok"] = bool(ok)
        extra["exact_steps"] = k0
    else:  # volterra
        n = 2000 if n_grid is None else int(n_grid)
        if n < 2:
            raise ValueError(f"n_grid={n_grid} is invalid; allowed: an integer >= 2")
        grid, r = _volterra_jit(lam, rho0, noise_var, gamma, batch, float(t_out.max()), n)
        risk = np.interp(t_out, grid, np.asarray(r))
        extra["n_grid"] = n

    return _risk_curve(setup, t_out, risk, method, extra)


def _risk_curve(setup: StreamingLeastSquares, t_out, risk, method: str, extra: dict) -> Curve:
    """Wrap a predicted risk into a Curve, flagging divergence (at or beyond gamma_c, which
    depends on the momentum when there is one, or blown up)."""
    gamma_c = critical_step_size(setup)
    supercritical = setup.step_size >= gamma_c
    risk = np.asarray(risk, dtype=np.float64)
    blown = ~np.isfinite(risk) | (risk > 1e30)
    risk = np.where(blown, np.inf, risk)
    diverged = np.maximum.accumulate(blown) | (supercritical & (t_out > 0))
    extra = dict(extra)
    if supercritical:
        at_beta = f" for momentum={setup.momentum}" if setup.momentum != 0.0 else ""
        extra["warning"] = (f"step_size={setup.step_size} is at or beyond the critical step size "
                            f"{gamma_c:.6g}{at_beta}: the risk diverges")
    return Curve(
        time=t_out,
        observables={"risk": risk, "excess_risk": risk - 0.5 * setup.noise_std**2},
        time_unit="t",
        samples=np.round(t_out * setup.dim) * setup.batch_size,
        seeds=None,
        diverged=diverged,
        meta={**setup.fields(), "method": method, "critical_step_size": gamma_c,
              "version": __version__, "time_label": "t = steps / d", **extra},
    )


_GRID_FIELDS = ("step_size", "batch_size", "noise_std")
_recursion_psi_grid = jax.jit(
    jax.vmap(recursion_psi, in_axes=(None, None, 0, 0, 0, None)), static_argnums=(5,))


@predict_grid.register
def _predict_grid(setup: StreamingLeastSquares, grid, horizon: float, *, times=None,
                  method: str | None = None, executor=None, **options) -> list:
    """A grid over (step_size, batch_size, noise_std) as one vmapped exact recursion.

    Other fields, methods or options fall back to a loop over `predict`.
    """
    if (not set(grid) <= set(_GRID_FIELDS) or method not in (None, "recursion") or options
            or setup.momentum != 0.0):
        return predict_grid.dispatch(object)(setup, grid, horizon, times=times, method=method,
                                             executor=executor, **options)
    horizon = check_horizon(horizon)
    d = setup.dim
    steps = setup.output_steps(horizon, times)
    setups = grid_setups(setup, grid)
    valid = [s for s in setups if s is not None]
    if not valid:
        return setups
    psi = _recursion_psi_grid(
        jnp.asarray(setup.eigenvalues), jnp.asarray(setup.initial_error),
        jnp.asarray([s.noise_std**2 for s in valid]), jnp.asarray([s.step_size for s in valid]),
        jnp.asarray([float(s.batch_size) for s in valid]), int(steps.max()))
    risks = iter(0.5 * np.asarray(psi)[:, steps])
    return [None if s is None else _risk_curve(s, steps / d, next(risks), "recursion", {})
            for s in setups]
