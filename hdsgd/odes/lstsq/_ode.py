r"""The homogenized ODE of streaming least-squares SGD (the d -> infinity equivalent in t = k/d).

docs/lstsq.md, "Deterministic equivalents":

    d rho_i/dt = -2 gamma lambda_i rho_i + (gamma^2/(B d)) lambda_i psi(t),   psi = sigma^2 + sum_j lambda_j rho_j,

which drops the O(1/d) term of the exact recursion. A continuous-time solver is wrong at the
first steps (where the drop matters most and the fast modes move), so by default the first
``exact_steps`` steps are taken with the exact recursion and the ODE (diffrax, Tsit5 with
adaptive steps) takes over from there.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax.numpy as jnp

from ..._numerics import power_of_two_at_least


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


def ode_max_steps(setup, t_span: float) -> int:
    # An explicit solver's step is bounded by the fastest mode's rate 2 gamma lambda_max.
    stiff = 2.0 * setup.step_size * float(setup.eigenvalues.max()) * t_span
    # Rounded up to a power of two so that nearby horizons share one compilation.
    return power_of_two_at_least(int(min(10_000_000, 4096 + 8 * stiff)))


def default_exact_steps(setup: StreamingLeastSquares, horizon_steps: int) -> int:
    # Enough steps for every mode the solver would find stiff, and the O(1/k) start-up error,
    # to be gone; costs O(d) per step.
    return int(min(horizon_steps, max(1000, 4 * setup.dim)))


