r"""Heavy-ball SGD on least squares in closed form (docs/lstsq.md, "Spectral solution, heavy ball").

Per mode the moments s_i = (Sxx, Sxv, Svv) follow s_i(k+1) = A~_i s_i(k) + u_i psi(k), with A~_i
the noiseless 3 x 3 moment map plus the mode's own gradient noise eps_i 1 e_1^T
(eps_i = eta^2 lambda_i^2 / B) and u_i = (eta^2 lambda_i / B) 1. The coupling through psi is rank
one, so as for plain SGD

    sum_k psi(k) mu^{-k-1} = [sigma^2/(mu - 1) + g(mu)] / (1 - f(mu)),
    f(mu) = sum_i eps_i N_i(nu)/D_i(nu),   g(mu) = sum_i lambda_i rho_i(0) Q_i(nu)/D_i(nu),   nu = 1 - mu,

with D_i = det(mu - A~_i) = D0_i - eps_i N_i (cubic), N_i = e_1^T adj(mu - A_i) 1 and
Q_i = adj(mu - A_i)_11 (quadratics), all written in nu with coefficients free of cancellation:
D0_i = ((1 - beta) - nu)(nu^2 - s nu + P), P = a(2(1 + beta) - a), s = (1 - beta^2) + P, a = eta lambda_i.

A mode is overdamped when its noiseless poles r_1^2 >= beta >= r_2^2 are real (s^2 >= 4P); its
largest pole p_i = 1 - nu_i (nu_i by Newton from nu_0 = 2P/(s + sqrt(s^2 - 4P))) has a positive
residue R_i = -eps_i N_i(nu_i)/D_i'(nu_i). Every other pole of every mode lies in a disc of
radius rho_bg ~ beta. The roots of f(mu) = 1 above rho_c = rho_bg + (1 - rho_bg)/4 are found as
for plain SGD (`_secular`): the poles p_i >= rho_bg + (1 - rho_bg)/8 are the secular poles, and
everything else (the other poles of those modes, by exact polynomial division, and the
underdamped or near-critical modes whole) is a background E, smooth on [rho_c, mu_top], taken
by Chebyshev interpolation. The roots below rho_c, and the poles inside the disc, contribute at
most ~rho_c^k to psi(k): after K0 = 46 / (-log rho_c) steps (exp(-46) ~ 1e-20) they are gone,
so the exact moment recursion gives psi for k <= K0 and

    psi(k) = sum_{mu_j >= rho_c} [(g(mu_j)/S_j) mu_j^k + sigma^2 mu_j^K0 G_j(k - K0)/S_j] + psi_noise(K0)

after (`_spectral.Modes`; psi_noise(K0), the noise part, also from the recursion). The recursion is run a little past K0 and the two compared (``check``), so a failure of
these assumptions is seen, never silent.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..._precision import scoped_x64, theory_dtype
from ...setups import _validate as v
from . import _secular
from ._recursion import momentum_recursion_psi
from ._secular import Background, bracketed_root, chebyshev_points, group_poles
from ._spectral import (Modes, evaluate_modes, plain_poles, roots_and_residues, solve_modes,
                        sums_method)

DECAY = 46.0        # exp(-46) ~ 1e-20: what the dropped roots keep after the exact steps
CHEB_NODES = 64     # Chebyshev points of the background
NEWTON = 40         # Newton steps for the per-mode poles (quadratic convergence: far fewer needed)


class ModeData(NamedTuple):
    """Per-mode polynomials (in nu = 1 - mu) and the slow pole of each overdamped mode."""

    eps: jax.Array        # eta^2 lambda^2 / B
    lam_rho: jax.Array    # lambda rho(0)
    n1: jax.Array         # N = nu^2 + n1 nu + n0
    n0: jax.Array
    m1: jax.Array         # Q = nu^2 + m1 nu + m0
    m0: jax.Array
    c2: jax.Array         # D = -nu^3 + c2 nu^2 + c1 nu + c0
    c1: jax.Array
    c0: jax.Array
    over: jax.Array       # overdamped: the slow pole below is real and simple
    nu1: jax.Array        # 1 - p (p the largest pole)
    res_f: jax.Array      # residue of f_i at p
    res_g: jax.Array      # residue of g_i at p
    q1: jax.Array         # D = (nu - nu1) q, q = -nu^2 + q1 nu + q0
    q0: jax.Array
    lf1: jax.Array        # f_i - res_f/(mu - p) = (lf1 nu + lf0)/q(nu)
    lf0: jax.Array
    lg1: jax.Array        # g_i - res_g/(mu - p) = (lg1 nu + lg0)/q(nu)
    lg0: jax.Array
    radius: jax.Array     # the largest modulus of the mode's other poles


def _quadratic_radius(b1, b0):
    """max |1 - nu| over the roots of nu^2 - b1 nu - b0 = 0 (real or complex)."""
    disc = b1 * b1 + 4.0 * b0
    root = jnp.sqrt(jnp.abs(disc))
    real = jnp.maximum(jnp.abs(1.0 - 0.5 * (b1 + root)), jnp.abs(1.0 - 0.5 * (b1 - root)))
    cplx = jnp.sqrt((1.0 - 0.5 * b1) ** 2 + 0.25 * jnp.abs(disc))
    return jnp.where(disc >= 0, real, cplx)


def mode_data(eigenvalues, initial_error, step_size, batch_size, momentum) -> ModeData:
    """The per-mode rational functions and slow poles (docs/lstsq.md, "Spectral solution, heavy ball")."""
    d = eigenvalues.shape[0]
    beta = momentum
    a = (step_size / d) * eigenvalues
    eps = a * a / batch_size
    big_p = a * (2.0 * (1.0 + beta) - a)
    s = (1.0 - beta * beta) + big_p
    g2 = (1.0 - beta) + 2.0 * a * beta
    g3 = 1.0 - beta * beta
    n1 = -(g2 + g3) - 2.0 * (1.0 - a) * beta - beta * beta
    n0 = g2 * g3 + 2.0 * (1.0 - a) * beta * g3 + 2.0 * (1.0 - a) * beta**3 + beta * beta * g2
    m1 = -(g2 + g3)
    m0 = g2 * g3 + 2.0 * a * beta**3
    c2 = s + (1.0 - beta) - eps
    c1 = -(big_p + (1.0 - beta) * s) - eps * n1
    c0 = (1.0 - beta) * big_p - eps * n0
    disc = s * s - 4.0 * big_p
    over = disc >= 0
    root = jnp.sqrt(jnp.maximum(disc, 0.0))
    nu0 = 2.0 * big_p / jnp.where(s + root > 0, s + root, 1.0)
    nu0b = 0.5 * (s + root)

    def newton(_, delta):
        nu = nu0 + delta
        big_n = nu * nu + n1 * nu + n0
        val = ((1.0 - beta) - nu) * delta * (nu - nu0b) - eps * big_n
        der = (-delta * (nu - nu0b) + ((1.0 - beta) - nu) * (nu - nu0b)
               + ((1.0 - beta) - nu) * delta - eps * (2.0 * nu + n1))
        step = val / jnp.where(der == 0, 1.0, der)
        return jnp.where(over, delta - step, 0.0)

    delta = jax.lax.fori_loop(0, NEWTON, newton, jnp.zeros_like(a))
    nu1 = nu0 + delta
    dd = (-delta * (nu1 - nu0b) + ((1.0 - beta) - nu1) * (nu1 - nu0b)
          + ((1.0 - beta) - nu1) * delta - eps * (2.0 * nu1 + n1))   # D'(nu1) < 0
    dd = jnp.where(over & (dd != 0), dd, -1.0)
    res_f = -eps * (nu1 * nu1 + n1 * nu1 + n0) / dd
    lam_rho = eigenvalues * initial_error
    res_g = -lam_rho * (nu1 * nu1 + m1 * nu1 + m0) / dd
    q1 = c2 - nu1
    q0 = c1 + nu1 * q1
    lf1 = eps - res_f
    lf0 = (eps * n1 + res_f * q1) + nu1 * lf1
    lg1 = lam_rho - res_g
    lg0 = (lam_rho * m1 + res_g * q1) + nu1 * lg1
    # The other poles: roots of q (overdamped), or all three (underdamped: the real one near
    # beta by Newton on D, then the complex pair from the deflated quadratic).

    def newton_d(_, nu):
        val = ((-nu + c2) * nu + c1) * nu + c0
        der = (-3.0 * nu + 2.0 * c2) * nu + c1
        return nu - val / jnp.where(der == 0, 1.0, der)

    nu3 = jax.lax.fori_loop(0, NEWTON, newton_d, jnp.full_like(a, 1.0 - beta))
    r1 = c2 - nu3
    r0 = c1 + nu3 * r1
    under_radius = jnp.maximum(jnp.abs(1.0 - nu3), _quadratic_radius(r1, r0))
    radius = jnp.where(over, _quadratic_radius(q1, q0), under_radius)
    return ModeData(eps, lam_rho, n1, n0, m1, m0, c2, c1, c0, over, nu1, res_f, res_g, q1, q0,
                    lf1, lf0, lg1, lg0, radius)


def thresholds(md: ModeData):
    """(rho_bg, rho_c): the radius of the background poles and the lower end of the roots kept."""
    rho_bg = jnp.max(md.radius)
    return rho_bg, rho_bg + 0.25 * (1.0 - rho_bg)


def secular_mask(md: ModeData):
    """The modes whose slow pole is a secular pole: overdamped, p >= rho_bg + (1 - rho_bg)/8."""
    rho_bg, _ = thresholds(md)
    return md.over & (1.0 - md.nu1 >= rho_bg + 0.125 * (1.0 - rho_bg))


def _background_terms(md: ModeData, secular, nu):
    """sum_i of f_i and g_i minus their secular poles, at one nu (closed form, O(d))."""
    q = (-nu + md.q1) * nu + md.q0
    d_full = ((-nu + md.c2) * nu + md.c1) * nu + md.c0
    big_n = (nu + md.n1) * nu + md.n0
    big_q = (nu + md.m1) * nu + md.m0
    f = jnp.where(secular, (md.lf1 * nu + md.lf0) / q, md.eps * big_n / d_full)
    g = jnp.where(secular, (md.lg1 * nu + md.lg0) / q, md.lam_rho * big_q / d_full)
    return jnp.sum(f), jnp.sum(g)


def _full_terms(md: ModeData, secular, ref, om_ref, t):
    """(f, g) at mu = ref + t, all modes; a secular mode as -eps N/((mu - p) q) with
    mu - p = (ref - p) + t exact next to its pole."""
    nu = om_ref - t
    q = (-nu + md.q1) * nu + md.q0
    d_full = ((-nu + md.c2) * nu + md.c1) * nu + md.c0
    big_n = (nu + md.n1) * nu + md.n0
    big_q = (nu + md.m1) * nu + md.m0
    x = ((ref - (1.0 - md.nu1)) + t)
    x = jnp.where(secular, x, 1.0)
    f = jnp.where(secular, -md.eps * big_n / (x * q), md.eps * big_n / d_full)
    g = jnp.where(secular, -md.lam_rho * big_q / (x * q), md.lam_rho * big_q / d_full)
    return jnp.sum(f), jnp.sum(g)


def _top_f(t, args):
    """f at mu = ref + t from all modes (args = (mode data, secular mask, ref, 1 - ref))."""
    md, secular, ref, om_ref = args
    return _full_terms(md, secular, ref, om_ref, t)[0]


@jax.custom_jvp
def _top_offset(args, lo, hi):
    """The offset t in (lo, hi) of the top root of f = 1 (`_top_f`); differentiable in args by
    the implicit function theorem."""
    def f_and_slope(t):
        return jax.jvp(lambda u: _top_f(u, args), (t,), (jnp.ones_like(t),))

    return bracketed_root(f_and_slope, lo, hi)


@_top_offset.defjvp
def _top_offset_jvp(primals, tangents):
    args, lo, hi = primals
    t = _top_offset(args, lo, hi)
    _, df = jax.jvp(lambda a: _top_f(t, a), (args,), (tangents[0],))
    _, slope = jax.jvp(lambda u: _top_f(u, args), (t,), (jnp.ones_like(t),))
    return t, -df / jnp.where(slope == 0, -1.0, slope)


class HeavyBallModes(NamedTuple):
    """`Modes` for k >= K0 (``k0`` and ``anchor`` still to be set from the recursion) plus what
    decided them."""

    modes: Modes
    rho_bg: jax.Array
    rho_c: jax.Array
    secular_count: jax.Array
    background_error: jax.Array   # the Chebyshev background against the closed form, at test points


def heavy_ball_modes(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
                     method: str, nodes: int = _secular.SOE_NODES) -> HeavyBallModes:
    """The slow roots and residues of the heavy-ball recursion (pure JAX)."""
    md = mode_data(eigenvalues, initial_error, step_size, batch_size, momentum)
    rho_bg, rho_c = thresholds(md)
    secular = secular_mask(md)
    p = 1.0 - md.nu1
    any_secular = jnp.any(secular)
    ref_i = jnp.argmax(jnp.where(secular, p, -jnp.inf))
    ref = jnp.where(any_secular, p[ref_i], rho_c)
    om_ref = jnp.where(any_secular, md.nu1[ref_i], 1.0 - rho_c)
    poles = group_poles(jnp.where(secular, p, ref), jnp.where(secular, md.nu1, om_ref),
                        jnp.where(secular, md.res_f, 0.0), jnp.where(secular, md.res_g, 0.0))

    # The top root, from the full closed form (all modes), above the last secular pole or rho_c.
    args = (md, secular, ref, om_ref)
    start = jax.lax.stop_gradient(jnp.maximum(jnp.sum(jnp.where(secular, md.res_f, 0.0)),
                                              1e-6 * (1.0 - rho_bg)))
    hi = jax.lax.while_loop(lambda h: (_top_f(h, jax.lax.stop_gradient(args)) > 1.0) & (h < 1e6),
                            lambda h: 2.0 * h, start)
    has_top = any_secular | (_top_f(jnp.zeros(()), args) > 1.0)
    t_top = jnp.where(has_top, _top_offset(args, jnp.zeros(()), hi), 0.0)
    mu_top = ref + t_top

    # The background on [rho_c, mu_top] by Chebyshev interpolation.
    hi_b = jnp.maximum(mu_top, ref) + 1e-9 * (1.0 - rho_bg)
    xs = chebyshev_points(rho_c, hi_b, CHEB_NODES)

    def background(mu):
        return _background_terms(md, secular, 1.0 - mu)

    def with_slope(mu):
        (e, g), (de, _) = jax.jvp(background, (mu,), (jnp.ones_like(mu),))
        return e, de, g

    e, de, g = jax.lax.map(with_slope, xs)
    bg = Background(rho_c, hi_b, e, de, g)
    test = rho_c + (hi_b - rho_c) * jnp.array([0.013, 0.29, 0.51, 0.77, 0.97])
    exact = jax.lax.map(lambda m: background(m)[0], test)
    approx = _secular.background_at(bg, test)[0]
    background_error = jnp.max(jnp.abs(approx - exact))

    roots = roots_and_residues(poles, method, nodes, bg=bg, top_hi=jnp.maximum(t_top, 1e-300),
                               bottom_lo=rho_c, bottom=True, top=False)
    keep = roots.valid & (1.0 + roots.mu_minus_1 >= rho_c)
    # The top root's g/S and 1/S from the full closed form.
    (_, g_top), (df_top, _) = jax.jvp(lambda t: _full_terms(md, secular, ref, om_ref, t),
                                      (t_top,), (jnp.ones_like(t_top),))
    inv_top = jnp.where(has_top, 1.0 / -df_top, 0.0)
    denom = jnp.concatenate([jnp.where(keep, roots.mu_minus_1, 0.0),
                             jnp.where(has_top, t_top - om_ref, 0.0)[None]])
    zero = jnp.zeros_like(rho_c)
    modes = Modes(jnp.concatenate([jnp.where(keep, roots.init, 0.0), (g_top * inv_top)[None]]),
                  jnp.concatenate([jnp.where(keep, roots.inv_slope, 0.0), inv_top[None]]),
                  jnp.log1p(denom), denom, jnp.asarray(noise_var, rho_c.dtype), zero, zero,
                  jnp.where(has_top, mu_top, rho_c), roots.iterations, roots.converged,
                  roots.soe_accuracy)
    return HeavyBallModes(modes, rho_bg, rho_c, jnp.sum(secular), background_error)


def recursion_parts(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
                    n_steps: int):
    """psi(k), k = 0..n_steps, from the moment recursion: (total, noise part alone)."""
    both = jax.vmap(momentum_recursion_psi, in_axes=(None, 0, 0, None, None, None, None))(
        eigenvalues, jnp.stack([initial_error, jnp.zeros_like(initial_error)]),
        jnp.stack([noise_var, noise_var]) * jnp.ones(2), step_size, batch_size, momentum, n_steps)
    return both[0], both[1]


recursion_parts_jit = jax.jit(recursion_parts, static_argnums=(6,))


def exact_steps(rho_c: float) -> int:
    """K0 = ceil(46 / -log rho_c): after it the roots below rho_c are below 1e-20 of their size."""
    return int(np.ceil(DECAY / -np.log(rho_c)))


@functools.partial(jax.jit, static_argnames=("method", "nodes"))
def heavy_ball_modes_jit(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
                         method: str, nodes: int = _secular.SOE_NODES) -> HeavyBallModes:
    return heavy_ball_modes(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
                            method, nodes)


def default_exact_steps(momentum: float) -> int:
    """K0 for `spectral_risk` from beta alone: rho_c estimated as beta + 0.3 (1 - beta) (the
    background radius is beta up to the small per-mode noise)."""
    return exact_steps(momentum + 0.3 * (1.0 - momentum))


#: the most exact steps `spectral_risk` takes with heavy ball (its moment recursion keeps psi at
#: each of them, twice: 16.8 M steps hold 270 MB); the default K0 reaches it at beta ~ 0.999996
MAX_EXACT_STEPS = 1 << 24
#: the largest beta whose default K0 (`default_exact_steps`) is at most MAX_EXACT_STEPS
MAX_DEFAULT_MOMENTUM = (np.exp(-DECAY / MAX_EXACT_STEPS) - 0.3) / 0.7


def _traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _check_spectral_args(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
                         steps, exact_steps, sums):
    """The arguments of `spectral_risk`, checked (values only where concrete: a traced value
    keeps its shape and dtype checks) and converted: (arrays and scalars, steps, beta, K0,
    sums, traced)."""
    if _traced(eigenvalues):
        if eigenvalues.ndim != 1:
            v._fail("eigenvalues", eigenvalues, f"an array of rank 1, got shape {eigenvalues.shape}")
    else:
        eigenvalues = v.real_array("eigenvalues", eigenvalues, low=0.0, low_open=True)
    if not _traced(initial_error):
        initial_error = v.real_array("initial_error", initial_error, low=0.0, nonempty=False)
    if initial_error.shape != eigenvalues.shape:
        shown = initial_error if _traced(initial_error) else v._short(initial_error)
        v._fail("initial_error", shown,
                f"shape {eigenvalues.shape} (one value per eigenvalue), got {initial_error.shape}")
    scalars = []
    for name, value, check in (("noise_var", noise_var, v.nonnegative),
                               ("step_size", step_size, v.positive),
                               ("batch_size", batch_size, lambda n, x: v.real(n, x, low=1.0))):
        if _traced(value) and value.shape != ():
            v._fail(name, value, f"a scalar, got shape {value.shape}")
        scalars.append(value if _traced(value) else check(name, value))
    if _traced(momentum):
        v._fail("momentum", momentum, "a Python float in [0, 1), not traced (it sets the form of "
                "the solution and the exact steps)")
    momentum = v.real("momentum", momentum, low=0.0, high=1.0, high_open=True)
    if _traced(steps):
        if steps.ndim != 1 or not jnp.issubdtype(steps.dtype, jnp.integer):
            v._fail("steps", steps, "a one-dimensional array of integers")
    else:
        steps = _steps(steps)
    if exact_steps is None:
        if momentum > MAX_DEFAULT_MOMENTUM:  # the default K0 ~ 66 / (1 - beta) is too long
            v._fail("momentum", momentum, f"[0, {MAX_DEFAULT_MOMENTUM:.9g}] with the default "
                    f"exact_steps (~66 / (1 - momentum) steps of the moment recursion, at most "
                    f"{MAX_EXACT_STEPS}), or any beta < 1 with exact_steps given")
        k0 = min(default_exact_steps(momentum), MAX_EXACT_STEPS) if momentum != 0.0 else 0
    else:
        k0 = v.integer("exact_steps", exact_steps, low=0, high=MAX_EXACT_STEPS)
    if sums is not None and not (isinstance(sums, str) and sums in ("direct", "fast")):
        v._fail("sums", sums, "one of (None, 'direct', 'fast')")
    if sums == "fast" and eigenvalues.shape[0] <= _secular.NEAR:  # its far field needs a pole
        v._fail("sums", sums, f"None or 'direct' for d = {eigenvalues.shape[0]} (the fast sums "
                f"need more than {_secular.NEAR} eigenvalues)")
    traced = any(_traced(x) for x in (eigenvalues, initial_error, *scalars, steps))
    return eigenvalues, initial_error, scalars, steps, momentum, k0, sums, traced


def _steps(steps) -> np.ndarray:
    """Concrete ``steps`` as int64: a one-dimensional array of integers in [0, 2^53]."""
    try:
        ndim = np.ndim(steps)
    except ValueError:  # a ragged nesting of lists
        ndim = -1
    if ndim != 1:
        v._fail("steps", v._short(steps), "a one-dimensional array of integers >= 0")
    return v.whole_array("steps", steps, low=0, high=v.MAX_STEPS, nonempty=False).astype(np.int64)


def _spectral_risk(eigenvalues, initial_error, noise_var, step_size, batch_size, steps,
                   momentum: float, k0: int, method: str):
    """psi(steps)/2 (see `spectral_risk`; ``momentum``, ``k0`` and ``method`` are static)."""
    if momentum == 0.0:
        poles = plain_poles(eigenvalues, initial_error, step_size, batch_size)
        return 0.5 * evaluate_modes(solve_modes(poles, noise_var, method), steps)
    hb = heavy_ball_modes(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum,
                          method)
    total, noise = recursion_parts(eigenvalues, initial_error, noise_var, step_size, batch_size,
                                   momentum, k0)
    modes = hb.modes._replace(k0=jnp.asarray(float(k0)), anchor=noise[k0])
    late = evaluate_modes(modes, jnp.maximum(steps, k0))
    return 0.5 * jnp.where(steps <= k0, total[jnp.clip(steps, 0, k0)], late)


_spectral_risk_jit = jax.jit(_spectral_risk, static_argnums=(6, 7, 8))


@scoped_x64
def spectral_risk(eigenvalues, initial_error, noise_var, step_size, batch_size, momentum, steps,
                  *, exact_steps: int | None = None, sums: str | None = None):
    """R(k) = psi(k)/2 of the exact expected recursion at integer ``steps``, in closed form.

    Pure JAX (jit- and grad-compatible): differentiable in ``step_size``, ``batch_size`` (a
    float), ``noise_var``, ``eigenvalues`` and ``initial_error``; the roots enter through the
    implicit function theorem. ``momentum`` is a Python float (0: plain SGD). With momentum the
    first ``exact_steps`` (default `default_exact_steps`, ~66 / (1 - beta)) come from the moment
    recursion. ``sums``: ``"direct"`` or ``"fast"`` (default None: by size, see `_secular`). Past
    the stability edge (`critical_step_size`) the risk grows geometrically.

    Precision: called on concrete values (numpy or JAX arrays, numbers) it runs in float64, like
    every hdsgd entry point (unless HDSGD_X64=0), and returns a float64 numpy array; it compiles
    once per d, number of steps, momentum, exact_steps and sums. Under your own ``jax.jit``,
    ``jax.grad`` or ``jax.vmap`` it returns a JAX array in the dtype of the traced arguments, so
    nothing float64 leaks into a 32-bit program: wrap the transformation in
    ``jax.enable_x64(True)`` for float64 (the root finder's tolerances are float64's).

    Args:
        eigenvalues: lambda_i > 0, finite, a one-dimensional array (d = its length).
        initial_error: rho_i(0) >= 0, finite, the same shape.
        noise_var: sigma^2 >= 0.
        step_size: gamma > 0 (each update uses gamma / d).
        batch_size: B >= 1.
        momentum: beta in [0, 1), a Python number (with the default exact steps, at most
            `MAX_DEFAULT_MOMENTUM` ~ 0.999996).
        steps: the steps k, a one-dimensional array of integers in [0, 2^53] (traced: an integer
            dtype).
        exact_steps: an integer in [0, `MAX_EXACT_STEPS` = 2^24] (used by heavy ball only).
        sums: None, ``"direct"`` or ``"fast"`` (d >= 3).

    Raises:
        ValueError: for any other value (traced values: for another shape or dtype).
    """
    lam, rho0, scalars, steps, momentum, k0, sums, traced = _check_spectral_args(
        eigenvalues, initial_error, noise_var, step_size, batch_size, momentum, steps,
        exact_steps, sums)
    method = sums or sums_method(lam.shape[0])
    # The concrete values take the traced ones' float dtype (float64 when none is traced), so
    # a transformation under 32 bits stays 32-bit; what is computed from concrete values alone
    # comes back as numpy, as from every hdsgd entry point.
    args = (lam, rho0, *scalars)
    floats = [x.dtype for x in args if _traced(x) and jnp.issubdtype(x.dtype, jnp.floating)]
    dtype = np.result_type(*floats) if floats else theory_dtype()
    args = [x if _traced(x) else jnp.asarray(x, dtype) for x in args]
    risk = _spectral_risk_jit(*args, jnp.asarray(steps), momentum,
                              k0 if momentum != 0.0 else 0, method)  # plain: k0 unused
    return risk if traced else np.asarray(risk)
