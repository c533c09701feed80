r"""The exact expected recursion of streaming least-squares SGD, plain and with heavy ball.

docs/lstsq.md, "Deterministic equivalents" and "Momentum". Notation: eigenvalues lambda_i,
eta = gamma / d the per-step step, B the batch, sigma^2 the label-noise variance, and
psi = sigma^2 + sum_i lambda_i rho_i = 2R (twice the risk, used internally only).

Plain SGD (beta = 0), per mode rho_i = E<w - w*, u_i>^2:

    rho_i(k+1) = a_i rho_i(k) + b_i psi(k),
    a_i = 1 - 2 eta lambda_i + (1 + 1/B) eta^2 lambda_i^2,   b_i = eta^2 lambda_i / B.

Heavy ball, per mode the moments Sxx = E e_i^2, Sxv = E e_i v_i, Svv = E v_i^2 (a = eta lambda_i,
N_i = (eta^2/B)(lambda_i^2 Sxx_i + lambda_i psi)):

    Sxx' = (1-a)^2 Sxx + 2(1-a) beta Sxv + beta^2 Svv + N
    Sxv' = -(1-a) a Sxx + (1-2a) beta Sxv + beta^2 Svv + N
    Svv' = a^2 Sxx - 2 a beta Sxv + beta^2 Svv + N.

Both are exact in expectation for Gaussian data at any finite d. The plain recursion is kept
beside the beta = 0 heavy ball because it carries one d-vector instead of three and takes k
steps a pass (`recursion_block`): 20 000 steps at d = 10^4 take 27 ms against 590 ms for the
heavy-ball moment recursion at beta = 0.7, also 8 steps a pass (``benchmarks/lstsq.py`` prints
the ratios).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg
from jaxtyping import Array, Float


def mode_coefficients(eigenvalues: Float[Array, " d"], step_size, batch_size, dim
                      ) -> tuple[Float[Array, " d"], Float[Array, " d"]]:
    """(a_i, b_i) of the plain recursion rho_i(k+1) = a_i rho_i(k) + b_i psi(k).

    a_i = 1 - 2 eta lambda_i + (1 + 1/B) eta^2 lambda_i^2 and b_i = eta^2 lambda_i / B, with
    eta = step_size / dim. Both dimensionless (per step).
    """
    eta = step_size / dim
    x = eta * eigenvalues
    a = 1.0 - 2.0 * x + (1.0 + 1.0 / batch_size) * x**2
    b = eta * x / batch_size
    return a, b


def recursion_block(dim: int) -> int:
    """Steps per pass of `recursion_psi` for ``dim`` modes: 8 up to d = 32768, else 16.

    Measured on a 2-core CPU (``benchmarks/lstsq.py`` prints the ratio against one step a
    pass): 4.5x at d = 100, 11-12x at d = 1000-4000, 4.8x at d = 10^4, 1.4x at 3 x 10^4 and,
    with 16, 3.1x at 10^5 (one k x d table is read a pass; it is cheapest while it stays in
    cache)."""
    return 8 if dim <= 32768 else 16


def _block_solve(kernel):
    """(I - T)^-1 for the k x k unit lower-triangular Toeplitz T with T[j, m] = K_{j-1-m}
    (m < j): the in-pass coupling psi(k0+j) <- sum_{m<j} K_{j-1-m} psi(k0+m)."""
    k = kernel.shape[0]
    j = jnp.arange(k)
    lag = j[:, None] - j[None, :] - 1
    coupling = jnp.where(lag >= 0, kernel[jnp.clip(lag, 0)], 0.0)
    return jax.scipy.linalg.solve_triangular(jnp.eye(k) - coupling, jnp.eye(k), lower=True,
                                             unit_diagonal=True)


def recursion_psi(eigenvalues, initial_error, noise_var, step_size, batch_size, n_steps: int,
                  block: int | None = None) -> Float[Array, " n"]:
    """psi(k) = 2 R(k) for k = 0..n_steps from the plain recursion (pure JAX, vmappable).

    ``n_steps`` and ``block`` must be Python ints. ``block`` = k steps are taken per pass
    (default `recursion_block`; 1 is the plain step-by-step scan). Unrolling the recursion k
    steps from rho(k0), with K_l = sum_i lambda_i b_i a_i^l,

        psi(k0+j) = sigma^2 + sum_i lambda_i a_i^j rho_i(k0) + sum_{m<j} K_{j-1-m} psi(k0+m),
        rho_i(k0+k) = a_i^k rho_i(k0) + sum_{m<k} a_i^(k-1-m) b_i psi(k0+m),

    so one pass is a k x d matrix-vector product, a unit lower-triangular Toeplitz solve of
    size k (all its terms are >= 0: no cancellation) and, per mode, the polynomial
    sum_m a_i^(k-1-m) psi(k0+m) by Horner's rule (k multiply-adds, no table). It is the same
    recursion in another order of summation: equal to the step-by-step scan to rounding
    (tested to 1e-12 relative, diverging runs included).
    """
    dim = eigenvalues.shape[0]
    a, b = mode_coefficients(eigenvalues, step_size, batch_size, dim)
    k = recursion_block(dim) if block is None else int(block)
    if k == 1:
        def step(rho, _):
            psi = noise_var + jnp.dot(eigenvalues, rho)
            return a * rho + b * psi, psi

        rho_end, psis = jax.lax.scan(step, initial_error, None, length=n_steps)
        psi_end = noise_var + jnp.dot(eigenvalues, rho_end)
        return jnp.concatenate([psis, psi_end[None]])

    ones = jnp.ones((1, dim), dtype=jnp.result_type(a, initial_error))
    powers = jnp.cumprod(jnp.concatenate([ones, jnp.broadcast_to(a, (k, dim))]), axis=0)
    reach = eigenvalues * powers[:k]          # row j: lambda_i a_i^j
    solve = _block_solve(reach @ b)           # K_l = sum_i lambda_i b_i a_i^l, l = 0..k-1
    carry = powers[k]                         # a_i^k

    def block_step(rho, _):
        psi = solve @ (noise_var + reach @ rho)
        fed = psi[0]                          # sum_m a_i^(k-1-m) psi(k0+m), Horner's rule
        for m in range(1, k):
            fed = fed * a + psi[m]
        return carry * rho + b * fed, psi

    # enough passes to cover step n_steps; the extra steps past it are dropped
    _, psis = jax.lax.scan(block_step, initial_error, None, length=n_steps // k + 1)
    return psis.reshape(-1)[:n_steps + 1]


def recursion_state(eigenvalues, initial_error, noise_var, step_size, batch_size, n_steps: int
                    ) -> Float[Array, " d"]:
    """rho(n_steps), the per-mode error after ``n_steps`` exact plain steps."""
    dim = eigenvalues.shape[0]
    a, b = mode_coefficients(eigenvalues, step_size, batch_size, dim)

    def step(rho, _):
        psi = noise_var + jnp.dot(eigenvalues, rho)
        return a * rho + b * psi, None

    rho, _ = jax.lax.scan(step, initial_error, None, length=n_steps)
    return rho


def moment_step(moments, eigenvalues, psi, eta, batch_size, momentum):
    """One heavy-ball step of the per-mode moments ``(Sxx, Sxv, Svv)``, each (d,), given
    psi = sigma^2 + sum_i lambda_i Sxx_i, twice the risk at this step. Linear in (moments, psi):
    `momentum_recursion_psi` reads its per-mode 3 x 3 matrix and psi feed off this function."""
    sxx, sxv, svv = moments
    a = eta * eigenvalues
    noise = (eta**2 / batch_size) * (eigenvalues**2 * sxx + eigenvalues * psi)
    b = momentum
    common = b * b * svv + noise
    sxx_new = (1 - a) ** 2 * sxx + 2 * (1 - a) * b * sxv + common
    sxv_new = -(1 - a) * a * sxx + (1 - 2 * a) * b * sxv + common
    svv_new = a * a * sxx - 2 * a * b * sxv + common
    return sxx_new, sxv_new, svv_new


def momentum_recursion_psi(eigenvalues, initial_error, noise_var, step_size, batch_size,
                           momentum, n_steps: int, block: int | None = None) -> Float[Array, " n"]:
    """psi(k) = 2 R(k), k = 0..n_steps, from the heavy-ball moment recursion (pure JAX).

    Starts from Sxx = rho(0), Sxv = Svv = 0 (v_0 = 0). ``n_steps`` and ``block`` must be
    Python ints. With ``block`` = k > 1 (default 8), k steps a pass, as in `recursion_psi`: the
    step is S_i' = M_i S_i + f_i psi per mode (M_i the 3 x 3 matrix and f_i the psi feed of
    `moment_step`), so with K_l = sum_i lambda_i e_xx^T M_i^l f_i

        psi(k0+j) = sigma^2 + sum_i lambda_i e_xx^T M_i^j S_i(k0) + sum_{m<j} K_{j-1-m} psi(k0+m),
        S_i(k0+k) = M_i^k S_i(k0) + sum_{m<k} M_i^(k-1-m) f_i psi(k0+m),

    the last sum one (k,) x (k, 3d) product with the vectors M_i^(k-1-m) f_i precomputed (not
    Horner's rule, whose k dependent 3 x 3 applications a pass cost twice as much: 2.2 -> 1.0 ms
    at d = 500, 2000 steps); equal to one step a pass to rounding (tested to 1e-12 relative).
    """
    dim = eigenvalues.shape[0]
    eta = step_size / dim
    zero = jnp.zeros_like(initial_error)
    k = 8 if block is None else int(block)
    if k == 1:
        def step(moments, _):
            psi = noise_var + jnp.dot(eigenvalues, moments[0])
            return moment_step(moments, eigenvalues, psi, eta, batch_size, momentum), psi

        end, psis = jax.lax.scan(step, (initial_error, zero, zero), None, length=n_steps)
        return jnp.concatenate([psis, (noise_var + jnp.dot(eigenvalues, end[0]))[None]])

    one = jnp.ones_like(initial_error)
    basis = [tuple(one if i == c else zero for i in range(3)) for c in range(3)]
    columns = [moment_step(e, eigenvalues, 0.0, eta, batch_size, momentum) for e in basis]
    matrix = tuple(tuple(columns[c][r] for c in range(3)) for r in range(3))  # M_i[r][c]
    feed = moment_step((zero, zero, zero), eigenvalues, 1.0, eta, batch_size, momentum)

    def apply(s):  # M_i S_i for every mode
        return tuple(matrix[r][0] * s[0] + matrix[r][1] * s[1] + matrix[r][2] * s[2]
                     for r in range(3))

    rows, row = [], (eigenvalues, zero, zero)  # lambda_i e_xx^T M_i^j, j = 0..k-1
    for _ in range(k):
        rows.append(jnp.concatenate(row))
        row = tuple(row[0] * matrix[0][c] + row[1] * matrix[1][c] + row[2] * matrix[2][c]
                    for c in range(3))
    reach = jnp.stack(rows)                   # (k, 3d)
    solve = _block_solve(reach @ jnp.concatenate(feed))
    powers, fed = [], feed                    # M_i^j f_i, j = 0..k-1
    for _ in range(k):
        powers.append(jnp.concatenate(fed))
        fed = apply(fed)
    feeds = jnp.stack(powers[::-1])           # (k, 3d): row m is M_i^(k-1-m) f_i
    carry = basis                             # the columns of M_i^k
    for _ in range(k):
        carry = [apply(col) for col in carry]

    def block_step(s, _):
        psi = solve @ (noise_var + reach @ jnp.concatenate(s))
        fed = psi @ feeds                     # sum_m M_i^(k-1-m) f_i psi(k0+m)
        moved = tuple(carry[0][r] * s[0] + carry[1][r] * s[1] + carry[2][r] * s[2]
                      for r in range(3))
        return tuple(x + fed[r * dim:(r + 1) * dim] for r, x in enumerate(moved)), psi

    _, psis = jax.lax.scan(block_step, (initial_error, zero, zero), None,
                           length=n_steps // k + 1)
    return psis.reshape(-1)[:n_steps + 1]


def scheduled_recursion_psi(eigenvalues, initial_error, noise_var, step_sizes: Float[Array, " n"],
                            batch_size, momentum=0.0) -> Float[Array, " n1"]:
    """psi(k) = 2 R(k), k = 0..n, with step k using its own step size gamma(k) = step_sizes[k]
    (docs/lstsq.md, "Schedules"); pure JAX, differentiable in ``step_sizes``.

    Plain SGD (``momentum`` 0, a Python number): rho_i(k+1) = a_i(k) rho_i(k) + b_i(k) psi(k)
    with a_i(k), b_i(k) the coefficients of `mode_coefficients` at gamma(k). Heavy ball: the
    moment recursion of `moment_step` at eta(k) = gamma(k) / d. A constant ``step_sizes`` gives
    `recursion_psi` (or `momentum_recursion_psi`) exactly.
    """
    dim = eigenvalues.shape[0]
    if isinstance(momentum, (int, float)) and momentum == 0.0:
        def step(rho, gamma):
            a, b = mode_coefficients(eigenvalues, gamma, batch_size, dim)
            psi = noise_var + jnp.dot(eigenvalues, rho)
            return a * rho + b * psi, psi

        rho_end, psis = jax.lax.scan(step, initial_error, step_sizes)
        return jnp.concatenate([psis, (noise_var + jnp.dot(eigenvalues, rho_end))[None]])
    zero = jnp.zeros_like(initial_error)

    def hb_step(moments, gamma):
        psi = noise_var + jnp.dot(eigenvalues, moments[0])
        return moment_step(moments, eigenvalues, psi, gamma / dim, batch_size, momentum), psi

    end, psis = jax.lax.scan(hb_step, (initial_error, zero, zero), step_sizes)
    return jnp.concatenate([psis, (noise_var + jnp.dot(eigenvalues, end[0]))[None]])


def _scheduled_jit(eigenvalues, initial_error, noise_var, step_sizes, batch_size, momentum):
    return scheduled_recursion_psi(eigenvalues, initial_error, noise_var, step_sizes, batch_size,
                                   0.0 if momentum is None else momentum)


scheduled_recursion_psi_jit = jax.jit(_scheduled_jit)
"""`scheduled_recursion_psi` compiled once per length (``momentum=None``: the plain recursion)."""

recursion_state_jit = jax.jit(recursion_state, static_argnums=(5,))
momentum_recursion_psi_jit = jax.jit(momentum_recursion_psi, static_argnums=(6,),
                                     static_argnames=("block",))
recursion_psi_jit = jax.jit(recursion_psi, static_argnums=(5,), static_argnames=("block",))
recursion_psi_grid = jax.jit(jax.vmap(recursion_psi, in_axes=(None, None, 0, 0, 0, None)),
                             static_argnums=(5,))
"""`recursion_psi` vmapped over (noise_var, step_size, batch_size): a grid of settings (k steps a
pass: over chunks of 4-8 settings, 145 us a setting at d = 500 and 2000 steps, against 305 us
one step a pass, measured)."""
momentum_recursion_psi_grid = jax.jit(
    jax.vmap(momentum_recursion_psi, in_axes=(None, None, 0, 0, 0, 0, None)), static_argnums=(6,))
"""`momentum_recursion_psi` vmapped over (noise_var, step_size, batch_size, momentum)."""
