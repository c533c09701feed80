r"""The homogenized ODE of streaming least-squares SGD (the d -> infinity equivalent in t = k/d).

docs/lstsq.md, "Deterministic equivalents":

    d rho_i/dt = -alpha_i rho_i + beta_i psi(t),   psi = sigma^2 + sum_j lambda_j rho_j,
    alpha_i = 2 gamma lambda_i,   beta_i = gamma^2 lambda_i / (B d),

which drops the O(1/d) terms of the exact recursion. Given psi, each mode is linear, so the
integrator is exponential: over a step of length h with psi linear in between,

    rho_i(t + h) = e^{-alpha_i h} rho_i(t) + beta_i h [psi(t) (phi_1 - phi_2) + psi(t + h) phi_2](-alpha_i h),
    phi_1(z) = (e^z - 1)/z,   phi_2(z) = (e^z - 1 - z)/z^2,

and psi(t + h) = sigma^2 + sum_i lambda_i rho_i(t + h) is solved from this linear equation. Each
mode is propagated exactly (no stiffness limit, whatever gamma lambda_max); the only error is the
linear interpolation of psi, second order in h. The grid is log-spaced from 0.01/alpha_max to
the horizon (the fast modes move at the start, psi changes on the scale of t later), with the
output times added, and every step is also taken as two half steps: the curve is the fine run,
and its error is estimated by step doubling (Richardson: |psi_h/2 - psi_h| / 3). By default the first max(1000, 4d) steps are the
exact recursion (the ODE is wrong at the first steps, where the O(1/d) terms matter).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import power_of_two_at_least

N_GRID = 2048
#: the most points of the grid: the fine grid (twice as many, padded to a power of two) and the
#: outputs stay below ~64 MiB (the default 2^31 - 1 was a 16 GiB allocation)
MAX_N_GRID = 1 << 20


def _phis(z):
    """(phi_1(z), phi_2(z)) for z <= 0, by their Taylor series near 0."""
    small = jnp.abs(z) < 1e-2
    zs = jnp.where(small, z, 0.0)
    series1 = 1.0 + zs * (1 / 2 + zs * (1 / 6 + zs * (1 / 24 + zs * (1 / 120 + zs / 720))))
    series2 = 1 / 2 + zs * (1 / 6 + zs * (1 / 24 + zs * (1 / 120 + zs * (1 / 720 + zs / 5040))))
    zb = jnp.where(small, -1.0, z)
    em1 = jnp.expm1(zb)
    return jnp.where(small, series1, em1 / zb), jnp.where(small, series2, (em1 - zb) / (zb * zb))


def exponential_psi(eigenvalues, rho_start, noise_var, step_size, batch_size, grid):
    """psi at the points of ``grid`` (times after the start, grid[0] = 0, non-decreasing; a
    repeated time is a step of length 0), by the exponential integrator."""
    d = eigenvalues.shape[0]
    alpha = 2.0 * step_size * eigenvalues
    beta = step_size**2 * eigenvalues / (batch_size * d)
    psi0 = noise_var + jnp.dot(eigenvalues, rho_start)

    def step(carry, h):
        rho, psi = carry
        phi1, phi2 = _phis(-alpha * h)
        base = jnp.exp(-alpha * h) * rho + beta * h * (phi1 - phi2) * psi
        gain = beta * h * phi2
        psi_new = (noise_var + jnp.dot(eigenvalues, base)) / (1.0 - jnp.dot(eigenvalues, gain))
        return (base + gain * psi_new, psi_new), psi_new

    _, psis = jax.lax.scan(step, (rho_start, psi0), jnp.diff(grid))
    return jnp.concatenate([psi0[None], psis])


exponential_psi_jit = jax.jit(exponential_psi)


def time_grids(span: float, fastest_rate: float, outputs: np.ndarray, n_grid: int):
    """Two grids on [0, span] (times after the start): the coarse one log-spaced from
    0.01/fastest_rate with ``n_grid`` points plus the ``outputs``, and the fine one, every step of
    the coarse one halved. Each is padded to a power of two (a repeated last time; the same size
    for both: one compilation). Returns ((fine, outputs' places), (coarse, outputs' places))."""
    first = min(0.01 / max(fastest_rate, 1e-300), span / n_grid)
    base = np.concatenate([[0.0], np.geomspace(first, span, n_grid - 1)]) if span > 0 else np.zeros(1)
    coarse = np.union1d(base, outputs)
    fine = np.empty(2 * coarse.size - 1)
    fine[0::2] = coarse
    fine[1::2] = 0.5 * (coarse[1:] + coarse[:-1])
    size = power_of_two_at_least(fine.size, 8)
    out = []
    for pts in (fine, coarse):
        padded = np.concatenate([pts, np.full(size - pts.size, pts[-1])])
        out.append((padded, np.searchsorted(pts, outputs)))
    return out


def default_exact_steps(setup, horizon_steps: int) -> int:
    """max(1000, 4d) exact steps, capped by the horizon: enough for every mode the ODE gets
    wrong at the start, and the O(1/k) start-up error, to be gone; O(d) per step."""
    return int(min(horizon_steps, max(1000, 4 * setup.dim)))
