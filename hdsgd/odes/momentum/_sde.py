r"""The reduced SDE of the two-parameter model, and its deterministic closure
(docs/momentum.md, "Reduced SDE"), in step units:

    ds = p/g dk,   dp = [1/2 g' (p/g)^2 - (1-beta) p - eta 1/2 S lambda'] dk,
    dS = [-(1-beta)(S - S_eq(lambda)) - 1/2 S (lambda'/lambda) ds/dk] dk + sqrt(eta delta^2 S) dW,

(lambda = g = 2 cosh 2s, S_eq = `stationary_variance`). Euler-Maruyama with diffrax, averaged
over sample paths: with one normal mode the energy noise is O(1) at the critical scaling.
``noise=False`` drops dW (the deterministic closure; Tsit5).

`default_dt` (one generic function for both product models) is the Euler step the SDE and
the closure use by default.
"""

from __future__ import annotations

import functools
import math

# diffrax is imported inside the functions that solve: `import hdsgd` skips its ~0.4 s
import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import power_of_two_at_least
from ...setups.momentum import LabelNoiseMomentum, TwoParameterMomentum
from ._fluctuation import stationary_variance


def _reduced_drift(k, y, args):
    """Drift of (s, p, S) of the reduced equations; y has shape (3, ...) (paths batched)."""
    eta, beta, omb, noise_var = args
    s, p, var = y[0], y[1], y[2]
    lam = 2.0 * jnp.cosh(2.0 * s)
    dlam = 4.0 * jnp.sinh(2.0 * s)
    sdot = p / lam
    s_eq = stationary_variance(eta, beta, noise_var, lam)
    var_pos = jnp.maximum(var, 0.0)
    dp = 0.5 * dlam * sdot**2 - omb * p - eta * 0.5 * var_pos * dlam
    dvar = -omb * (var - s_eq) - 0.5 * var_pos * (dlam / lam) * sdot
    return jnp.stack([sdot, dp, dvar])


def _reduced_diffusion(k, y, args):
    """Diagonal diffusion: only S is driven, by sqrt(eta delta^2 S) dW (the energy noise)."""
    import lineax as lx
    eta, beta, omb, noise_var = args
    amp = jnp.sqrt(eta * noise_var * jnp.maximum(y[2], 0.0))
    return lx.DiagonalLinearOperator(jnp.stack([jnp.zeros_like(amp), jnp.zeros_like(amp), amp]))


@functools.partial(jax.jit, static_argnames=("max_steps", "noise"))
def _reduced_solve(y0, args, steps, dt, key, *, max_steps: int, noise: bool):
    import diffrax
    drift = diffrax.ODETerm(_reduced_drift)
    if noise:
        bm = diffrax.UnsafeBrownianPath(shape=y0.shape, key=key)
        terms = diffrax.MultiTerm(drift, diffrax.ControlTerm(_reduced_diffusion, bm))
        sol = diffrax.diffeqsolve(terms, diffrax.Euler(), t0=0.0, t1=steps[-1], dt0=dt, y0=y0,
                                  args=args, saveat=diffrax.SaveAt(ts=steps),
                                  max_steps=max_steps, throw=False, adjoint=diffrax.ForwardMode())
    else:
        sol = diffrax.diffeqsolve(
            drift, diffrax.Tsit5(), t0=0.0, t1=steps[-1], dt0=dt, y0=y0, args=args,
            saveat=diffrax.SaveAt(ts=steps),
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-12, dtmax=10 * dt),
            max_steps=max_steps, throw=False)
    return sol.ys, sol.result == diffrax.RESULTS.successful


def reduced_paths(setup: TwoParameterMomentum, steps, *, key, paths: int, dt: float,
                  noise: bool):
    """Sample paths of (s, p, S) of the reduced equations at ``steps``, numpy array of shape
    (paths, T, 3): Euler-Maruyama with diffrax at fixed step ``dt`` (in steps), all paths in
    one solve; without noise (``noise=False``) the deterministic closure, one path, Tsit5.
    Also returns whether the solver succeeded. The output grid is padded to a power of two
    and the step cap rounded up to one, so nearby calls share a compilation. At k = 0 the
    output is the start (s_0, 0, 0) itself."""
    args = tuple(jnp.asarray(a, jnp.float64) for a in (
        setup.step_size, setup.momentum, setup.one_minus_beta, setup.noise_var))
    steps = np.asarray(steps, dtype=np.float64)
    size = steps.size
    padded = np.concatenate([steps, np.full(power_of_two_at_least(size, 16) - size, steps[-1])])
    n = paths if noise else 1
    y0 = jnp.broadcast_to(jnp.asarray([setup.initial_coordinate, 0.0, 0.0], jnp.float64)[:, None],
                          (3, n))
    n_max = power_of_two_at_least(int(math.ceil(float(steps[-1]) / dt)) + 16, 256)
    ys, ok = _reduced_solve(y0, args, jnp.asarray(padded), jnp.asarray(dt, jnp.float64), key,
                            max_steps=n_max if noise else 4 * n_max, noise=noise)
    ys = np.array(ys[:size])
    # the saved state at k = 0 is interpolated from the first step; it is the known start
    # (which stays finite even where the first step overflows past the stability edge)
    ys[steps == 0] = np.asarray(y0)
    return np.transpose(ys, (2, 0, 1)), bool(ok)


@functools.singledispatch
def default_dt(setup: LabelNoiseMomentum, method: str = "sde") -> float:
    """The default Euler step (in steps) of the reduced SDE / closure of this Setup's model."""
    raise ValueError(f"{type(setup).__name__} has no reduced SDE; allowed: "
                     "TwoParameterMomentum or InnerProductMomentum")


@default_dt.register
def _(setup: TwoParameterMomentum, method: str = "sde") -> float:
    """1/20 of the fastest reduced timescale (1/(1 - beta), or the along-manifold oscillation
    s'' ~ -(eta S lambda'' / (2 g)) s with lambda''/g <= 4), at least 1."""
    omb = setup.one_minus_beta
    s_eq = float(stationary_variance(setup.step_size, setup.momentum, setup.noise_var, 2.0))
    lam0 = 2.0 * math.cosh(2.0 * setup.initial_coordinate)
    omega = math.sqrt(max(2.0 * setup.step_size * s_eq * lam0 / 2.0, 1e-300))
    return max(1.0, 0.05 * min(1.0 / omb, 1.0 / omega))
