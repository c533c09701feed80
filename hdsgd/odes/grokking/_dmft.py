r"""Finite-width DMFT of grokking: D, P -> inf at kappa = P/D, N fixed (docs/grokking.md, "The
finite-width DMFT").

Gradient flow in tau = 2 eta0 t / D, gamma = 1/(alpha kappa), on a uniform grid tau_n = n dt
(Euler, the GD map of step dt). Order parameters are N x N blocks on the causal two-time grid:
C(n, n') = E_j[W_j(n) W_j(n')^T], m(n) = E_j[beta_j W_j(n)], R(n, s) = dW(n)/d(kick at s+1),
C_F, R_F and g from the sample side.

Sample side (one training point; z ~ N(0, 1), chi ~ GP(0, C - m m^T) independent of z):

    h(n) = m(n) z + chi(n) - gamma dt sum_{s<n} R(n, s) F(s),   F = Delta phi'(h),
    Delta = (alpha/N) sum_i phi(h_i) - z^2/2   (minus the n = 0 value when centred).

Coordinate side (one input coordinate; linear Gaussian, solved through its propagator G):

    W(n+1) = W(n) - gamma dt [ xi(n) + kappa sum_{s<=n} R_F(n, s) W(s) + kappa beta g(n) ],
    xi ~ GP(0, kappa C_F).

Closure: C_F = E[F F^T]; R_F(n, s) = E[dF(n)/d eta(s)] for a kick eta added to h(s), from exact
per-path Jacobians, R_F = E[(I + gamma dt J R~)^-1 J] with J = dF/dh (one unit-lower-triangular
solve per path); g(n) = E[dF(n)/dz] where z is varied **in the label only** (the z entering h
through m z is the cavity field's correlation with the teacher, not a dependence of F on z).

Where a reference derivation differs: it writes "by Stein's lemma, g = E[F z]". Stein's lemma
on the effective process gives E[F z] = g + sum_s R_F(n, s) m(s), the total z-derivative including the
path through m z; the cavity term kappa beta_j g needs the label-only derivative, since the
response through h is already the R_F memory term (using E[F z] counts it twice). We compute g
directly (forward-mode, label-only); see the tests for the Monte Carlo check.

Initial condition (the overlaps must stay finite): C(0, 0) = I_N and
m(0) = sqrt(N/D) e_1 by default. The observables are even in m(0) and symmetric under neuron
permutations, so while m is small this single direction gives the average over the Gaussian
initial overlaps m(0) ~ N(0, I_N/D) of a random initialisation (E|m(0)|^2 = N/D).

This is a solver of the grokking system, not a system of its own: it is reached as
``predict(GrokkingTwoLayer(...), method="dmft")`` (`hdsgd.odes.grokking`), and its Monte Carlo
twin is the grokking network itself, ``simulate(setup, ..., method="fresh_data")``
(`hdsgd.montecarlo.grokking`), tested in tests/test_grokking.py (gap shrinking with D).

Compile once: the sizes (width, steps, paths, ...) are a static `DmftConfig`; the numbers
(alpha, eps, kappa, dt, damping) are traced `DmftParams`, so a new value compiles nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import gauss_hermite
from ...setups._validate import integer as v_integer, positive as v_positive, real as v_real
from ...setups.grokking import GrokkingTwoLayer, loss_terms


class DmftConfig(NamedTuple):
    """The static sizes of one DMFT solve (a new value compiles a new solver)."""

    width: int
    centered: bool
    n_steps: int
    paths: int
    iterations: int
    z_nodes: int = 8
    response_paths: int = 512
    chunk: int = 512


class DmftParams(NamedTuple):
    """The numbers of one DMFT solve (traced: a new value compiles nothing)."""

    alpha: jnp.ndarray
    eps: jnp.ndarray
    kappa: jnp.ndarray
    dt: jnp.ndarray
    damping: jnp.ndarray


def _phi(h, eps):
    return h + 0.5 * eps * h * h


def _sample_side(cfg: DmftConfig, prm: DmftParams, c, m, r, z, weight, zeta):
    """Paths of h, F, Delta and the averaged C_F, R_F, g, train loss (one call, all paths)."""
    n_t, n = cfg.n_steps + 1, cfg.width
    gam = 1.0 / (prm.alpha * prm.kappa)
    dt = prm.dt
    # chi ~ GP(0, C - m m^T): flatten (time, neuron)
    cov = c.transpose(0, 2, 1, 3).reshape(n_t * n, n_t * n) - jnp.outer(m.reshape(-1), m.reshape(-1))
    cov = 0.5 * (cov + cov.T)
    evals, evecs = jnp.linalg.eigh(cov)
    # the symmetric square root is continuous in cov (evecs * sqrt(evals) is not where
    # eigenvalues are degenerate), so the fixed-point iteration with fixed noise converges
    root = (evecs * jnp.sqrt(jnp.clip(evals, 0.0, None))) @ evecs.T
    chi = (zeta @ root.T).reshape(-1, n_t, n)  # (S, T, N), paired with z and its weight

    def path(zh, zy, chi_p, eta):
        """F(n) along one path; zh enters h via m z, zy enters the label; eta kicks h."""
        def step(carry, k):
            fbuf, f0 = carry
            mem = jnp.einsum("sij,sj->i", r[k], fbuf)
            h = m[k] * zh + chi_p[k] + eta[k] - gam * dt * mem
            f_out = prm.alpha * jnp.mean(_phi(h, prm.eps))
            f0 = jnp.where(k == 0, f_out, f0) if cfg.centered else jnp.zeros_like(f_out)
            delta = f_out - f0 - 0.5 * zy * zy
            fvec = delta * (1.0 + prm.eps * h)
            fbuf = fbuf.at[k].set(fvec)
            return (fbuf, f0), (fvec, delta)

        init = (jnp.zeros((n_t, n)), jnp.asarray(0.0))
        _, (fs, deltas) = jax.lax.scan(step, init, jnp.arange(n_t))
        return fs, deltas

    eta0 = jnp.zeros((n_t, n))

    def one(zp, chi_p):
        fs, deltas = path(zp, zp, chi_p, eta0)
        g = jax.jvp(lambda zy: path(zp, zy, chi_p, eta0)[0], (zp,), (jnp.ones_like(zp),))[1]
        return fs, deltas, g

    def jac_one(zp, chi_p):
        # exact per-path Jacobian: response of F to a kick of h at every time (forward mode)
        flat = lambda e: path(zp, zp, chi_p, e.reshape(n_t, n))[0].reshape(-1)  # noqa: E731
        return jax.jacfwd(flat)(eta0.reshape(-1))                            # (T N, T N)

    def chunk_sums(args):
        zp, chi_p, wp = args
        fs, deltas, g = jax.vmap(one)(zp, chi_p)
        return (jnp.einsum("p,psi,pqj->sqij", wp, fs, fs), jnp.einsum("p,psi->si", wp, g),
                jnp.einsum("p,ps->s", wp, deltas**2))

    def chunk_jac(args):
        zp, chi_p, wp = args
        return jnp.einsum("p,pab->ab", wp, jax.vmap(jac_one)(zp, chi_p))

    n_chunks = z.shape[0] // cfg.chunk
    sums = jax.lax.map(chunk_sums, (z.reshape(n_chunks, -1), chi.reshape(n_chunks, -1, n_t, n),
                                    weight.reshape(n_chunks, -1)))
    c_f, g, d2 = (jnp.sum(a, axis=0) for a in sums)
    # responses from the first ``response_paths`` chi samples at every z node (a smooth average)
    n_chi = z.shape[0] // cfg.z_nodes
    sub = min(cfg.response_paths, n_chi)
    pick = lambda a: a.reshape((cfg.z_nodes, n_chi) + a.shape[1:])[:, :sub].reshape(  # noqa: E731
        (-1,) + a.shape[1:])
    zs, chis, ws = pick(z), pick(chi), pick(weight) * (n_chi / sub)
    n_chunks = max(1, zs.shape[0] // cfg.chunk)
    jac = jnp.sum(jax.lax.map(chunk_jac, (zs.reshape(n_chunks, -1),
                                          chis.reshape(n_chunks, -1, n_t, n),
                                          ws.reshape(n_chunks, -1))), axis=0)
    r_f = jac.reshape(n_t, n, n_t, n).transpose(0, 2, 1, 3)
    return c_f, r_f, g, d2


def _coordinate_side(cfg: DmftConfig, prm: DmftParams, c_f, r_f, g, m0, c0):
    """C, m, R of the linear coordinate process, through its propagator G(n, s)."""
    n_t, n = cfg.n_steps + 1, cfg.width
    gam, dt, kap = 1.0 / (prm.alpha * prm.kappa), prm.dt, prm.kappa
    eye = jnp.eye(n)
    g_prop = jnp.zeros((n_t, n_t, n, n)).at[0, 0].set(eye)

    def step(gp, k):  # row k+1 from rows <= k
        drive = jnp.einsum("rij,rsjl->sil", r_f[k], gp)  # r_f[k, r] for r <= k (zero above)
        new = gp[k] - gam * kap * dt * drive
        new = new.at[k + 1].set(eye)
        return gp.at[k + 1].set(new), None

    g_prop, _ = jax.lax.scan(step, g_prop, jnp.arange(n_t - 1))
    # G(n, s+1) for s < n: kick at step s lands on W(s+1)
    shifted = jnp.concatenate([g_prop[:, 1:], jnp.zeros((n_t, 1, n, n))], axis=1)
    mask = (jnp.arange(n_t)[None, :] < jnp.arange(n_t)[:, None])[:, :, None, None]
    r_new = shifted * mask
    v = -gam * kap * dt * jnp.einsum("nsij,sj->ni", r_new, g)
    g0 = g_prop[:, 0]
    m_new = jnp.einsum("nij,j->ni", g0, m0) + v
    a = jnp.einsum("nij,jk,mlk->nmil", g0, c0, g0)
    gm = jnp.einsum("nij,j->ni", g0, m0)
    b = jnp.einsum("ni,mj->nmij", gm, v)
    noise = (gam * dt) ** 2 * kap * jnp.einsum("nsij,sqjk,mqlk->nmil", r_new, c_f, r_new)
    c_new = a + b + b.transpose(1, 0, 3, 2) + jnp.einsum("ni,mj->nmij", v, v) + noise
    return c_new, m_new, r_new


def path_noise(cfg: DmftConfig, key):
    """The sample-side randomness, fixed across iterations: z on Gauss-Hermite nodes (the labels
    z^2/2 are heavy-tailed, so z is integrated by quadrature) times ``paths`` antithetic pairs
    of standard normals for chi. Returns (z, weight, zeta), one row per path."""
    nodes, w = gauss_hermite(cfg.z_nodes)
    half = jax.random.normal(key, (cfg.paths // 2, (cfg.n_steps + 1) * cfg.width))
    zeta = jnp.concatenate([half, -half])
    s = zeta.shape[0]
    z = jnp.repeat(jnp.asarray(nodes), s)
    weight = jnp.repeat(jnp.asarray(w), s) / s
    return z, weight, jnp.tile(zeta, (cfg.z_nodes, 1))


def solve(cfg: DmftConfig, prm: DmftParams, m0, c0, key):
    """Damped fixed-point iteration; returns (C, m, train_loss, residual history)."""
    n_t, n = cfg.n_steps + 1, cfg.width
    z, weight, zeta = path_noise(cfg, key)
    c = jnp.broadcast_to(c0, (n_t, n_t, n, n))
    m = jnp.broadcast_to(m0, (n_t, n))
    lower = (jnp.arange(n_t)[None, :] < jnp.arange(n_t)[:, None])[:, :, None, None]
    r = jnp.broadcast_to(jnp.eye(n), (n_t, n_t, n, n)) * lower

    def body(state, _):
        c, m, r = state
        c_f, r_f, g, _ = _sample_side(cfg, prm, c, m, r, z, weight, zeta)
        c_n, m_n, r_n = _coordinate_side(cfg, prm, c_f, r_f, g, m0, c0)
        w = prm.damping
        res = jnp.max(jnp.abs(c_n - c))
        return (w * c + (1 - w) * c_n, w * m + (1 - w) * m_n, w * r + (1 - w) * r_n), res

    (c, m, r), residuals = jax.lax.scan(body, (c, m, r), None, length=cfg.iterations)
    _, _, _, train = _sample_side(cfg, prm, c, m, r, z, weight, zeta)
    return c, m, train, residuals


solve_jit = jax.jit(solve, static_argnums=(0,))


def observables(cfg: DmftConfig, prm: DmftParams, c, m, train) -> dict:
    """Train loss and the test-loss decomposition (`loss_decomposition`) from (C(n, n), m(n)),
    with |beta|^2/D = 1 (docs/grokking.md, "The finite-width DMFT")."""
    n = cfg.width
    diag = jnp.einsum("nnij->nij", c)
    ones = jnp.ones(n)
    tr = jnp.einsum("nii->n", diag) / n
    s = jnp.sum(m * m, axis=1) / n
    f = jnp.sum(diag * diag, axis=(1, 2)) / n**2
    ell = jnp.einsum("i,nij,j->n", ones, diag, ones) / n**2
    if cfg.centered:
        c00, c_n0 = diag[0], c[:, 0]
        tr_e = tr - tr[0]
        s_e = s - s[0]
        f_e = (f + jnp.sum(c00 * c00) / n**2 - 2.0 * jnp.sum(c_n0 * c_n0, axis=(1, 2)) / n**2)
        ell_e = (ell + ones @ c00 @ ones / n**2
                 - jnp.einsum("i,nij,j->n", ones, c_n0 + c_n0.transpose(0, 2, 1), ones) / n**2)
    else:
        tr_e, s_e, f_e, ell_e = tr, s, f, ell
    terms = loss_terms(prm.alpha, prm.eps, 1.0, tr_e, s_e, f_e, ell_e)
    return {"train_loss": train, **terms, "T": tr, "S": s, "F": f, "ell": ell}


#: the most elements one array of the DMFT may have (XLA's CPU compiler aborts past 2^31)
MAX_ARRAY = 2**31 - 1


def dmft_curves(setup: GrokkingTwoLayer, taus, *, dt: float = 0.05, paths: int = 16384,
                response_paths: int = 256, z_nodes: int = 8, iterations: int = 25,
                damping: float = 0.5, key=None, initial_overlap=None) -> tuple[dict, dict]:
    """The DMFT's observables at ``taus`` (interpolated from its Euler grid tau_n = n dt) and
    its bookkeeping (dt, paths, the last fixed-point residual).

    ``initial_overlap`` is the DMFT's m(0), the N overlaps of the neurons with the teacher
    (default sqrt(N/D) e_1, see the module docstring); ``key`` draws the path noise
    (default ``jax.random.key(0)``).
    """
    if setup.width is None:
        raise ValueError("method='dmft' is the finite-width DMFT; got width=None (allowed: an "
                         "integer >= 1; the infinite-width proportional closure is not derived)")
    dt = v_positive("dt", dt)
    damping = v_real("damping", damping, low=0.0, high=1.0, high_open=True)
    paths, response_paths, z_nodes, iterations = (
        v_integer(name, value, low=low) for name, value, low in (
            ("paths", paths, 2), ("response_paths", response_paths, 1), ("z_nodes", z_nodes, 1),
            ("iterations", iterations, 1)))
    n = setup.width
    taus = np.asarray(taus, dtype=np.float64)
    n_steps = max(1, int(np.ceil(taus[-1] / dt - 1e-9)))
    chunk = 512
    paths = int(np.ceil(int(paths) / 2.0)) * 2
    while (paths * z_nodes) % chunk:
        chunk //= 2
    # the largest arrays: a chunk of per-path response Jacobians, (T N)^2 each, and the path
    # noise, paths x z_nodes x T N; XLA aborts the process on an array past 2^31 elements
    tn = (n_steps + 1) * n
    rows = int(z_nodes) * min(int(response_paths), paths)
    per_chunk = rows // max(1, rows // chunk)
    largest = max(per_chunk * tn**2, paths * int(z_nodes) * tn)
    if largest > MAX_ARRAY:
        raise ValueError(
            f"method='dmft' would need an array of {largest:.3g} float64 ({8 * largest / 2**30:.3g} "
            f"GiB; at most {MAX_ARRAY} elements): T = {n_steps} Euler steps (tau up to "
            f"{taus[-1]:.4g} at dt = {dt:g}) x N = width = {n}, {per_chunk} response paths a "
            f"chunk, {paths} paths x {z_nodes} z_nodes; allowed: a shorter horizon, a larger dt, "
            "fewer paths or response_paths, or a smaller width")
    cfg = DmftConfig(width=n, centered=setup.centered, n_steps=n_steps, paths=paths,
                     iterations=int(iterations), z_nodes=int(z_nodes),
                     response_paths=int(response_paths), chunk=chunk)
    prm = DmftParams(*(jnp.asarray(v, dtype=float) for v in (
        setup.output_scale, setup.quadratic_strength, setup.ratio, dt, damping)))
    if initial_overlap is None:
        m0 = np.zeros(n)
        m0[0] = np.sqrt(n / setup.dim)
    else:
        m0 = np.asarray(initial_overlap, dtype=np.float64)
        if m0.shape != (n,) or not np.all(np.isfinite(m0)):
            raise ValueError(f"dmft_initial_overlap has shape {m0.shape}; allowed: {n} finite "
                             "numbers (the overlap of each neuron with the teacher)")
    key = jax.random.key(0) if key is None else key

    def run(prm):
        try:
            c, m, train, res = solve_jit(cfg, prm, jnp.asarray(m0), jnp.eye(n), key)
            obs = observables(cfg, prm, c, m, train)
            return {k: np.array(v, dtype=np.float64) for k, v in obs.items()}, np.asarray(res)
        except Exception as error:  # XLA's allocator refusing: a clear error, not its traceback
            if "RESOURCE_EXHAUSTED" not in str(error):
                raise
            raise ValueError(
                f"method='dmft' needs more memory than this machine has: its arrays grow as "
                f"(T N)^2 and paths x T N, here T = {n_steps} Euler steps (tau up to "
                f"{taus[-1]:.4g} at dt = {dt:g}), N = width = {n}, paths = {paths} x z_nodes = "
                f"{z_nodes}; allowed: a shorter horizon, a larger dt, fewer paths, or a smaller "
                "width") from None

    obs, res = run(prm)
    if not all(np.isfinite(v[0]) for v in obs.values()):
        # a blow-up later in the grid spoils the whole (non-causal) path covariance; the
        # initial state is known: take tau = 0 from the same solver standing still (dt = 0)
        start, _ = run(prm._replace(dt=jnp.zeros_like(prm.dt)))
        for k in obs:
            obs[k][0] = start[k][0]
    grid = np.arange(n_steps + 1) * float(dt)
    obs = {k: np.interp(taus, grid, v) for k, v in obs.items()}
    return obs, {"dt": float(dt), "paths": paths * int(z_nodes),
                 "fixed_point_residual": float(res[-1])}
