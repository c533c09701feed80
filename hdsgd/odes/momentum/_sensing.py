r"""The Gaussian moment closure of matrix sensing (docs/momentum.md, "Matrix sensing"): mean
weights and velocity plus the full covariances of all normal modes, advanced step by step and
observed through Gaussian expectations; meant for many normal modes, where the energy noise
self-averages.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..._segments import Dynamics, run_segments
from ...setups.momentum import MatrixSensingMomentum, matrix_sensing_problem, sensing_observables


def _sensing_pieces(u, a, y):
    """Gradients g_i = 2 A_i U (n, d, d), residuals r_i, and the Gauss-Newton matrix J^T J / n
    (D x D, D = d^2, U raveled row-major: index (row a, column k))."""
    n, d = a.shape[0], a.shape[1]
    grads = 2.0 * jnp.einsum("nab,bk->nak", a, u)
    res = jnp.einsum("nab,ak,bk->n", a, u, u) - y
    jac = grads.reshape(n, d * d)
    return grads, res, jac.T @ jac / n


def _row_trace(cov, d):
    """T[a, b] = sum_k Cov[(a, k), (b, k)] = E[X X^T][a, b] for a (d d x d d) covariance."""
    return jnp.einsum("akbk->ab", cov.reshape(d, d, d, d))


def sensing_closure_step(state, args):
    """One step of the Gaussian moment closure for matrix sensing (the deterministic closure of
    the reduced equations, i.e. the uniform recursion with all normal modes, in the ambient
    coordinates; docs/momentum.md, "Matrix sensing").

    State (u, v, Sxx, Sxv, Svv): mean weights U and velocity (d, d), and the D x D covariances
    (D = d^2) of the fluctuation x = U - u and its velocity. With g_i = grad f_i(u) = 2 A_i u,
    Hf_i = Hess f_i = 2 A_i (x) I (f_i is quadratic), r_i = f_i(u) - y_i and
    delta^2 = delta_0^2 / b:

        E grad L(u + x) = (1/n) sum_i [r_i g_i + Hf_i Sxx g_i + 1/2 tr(Hf_i Sxx) g_i]   (exact),
        H = E Hess L(u + x) = (1/n) sum_i [g_i g_i^T + Hf_i Sxx Hf_i + E(r_i) Hf_i],
            E(r_i) = r_i + 1/2 tr(Hf_i Sxx),
        Xi = delta^2 (1/n) sum_i E[grad f_i grad f_i^T]
           = delta^2 (1/n) sum_i (g_i g_i^T + Hf_i Sxx Hf_i),
        v' = beta v - eta E grad L,  u' = u + v',   A = I - eta H,
        Sxx' = A Sxx A^T + beta (A Sxv + Svx A^T) + beta^2 Svv + eta^2 Xi,
        Sxv' = -eta A Sxx H + beta A Sxv - eta beta Svx H + beta^2 Svv + eta^2 Xi,
        Svv' = eta^2 H Sxx H - eta beta (H Sxv + Svx H) + beta^2 Svv + eta^2 Xi.

    The tangential part of the mean-gradient correction is the drift (S/2) grad_Gamma tr H
    (docs/momentum.md, "Scales") summed over the normal modes; its normal part sets the mean
    normal offset.

    The fluctuation is propagated with the statistical linearisation H = E Hess L(u + x) (by
    Stein's lemma the best linear fit of grad L(u + x) in x under the Gaussian law), not with
    the Hessian at the mean (docs/momentum.md, "Where a reference derivation differs";
    checked against the Monte Carlo):
    * Hess L(u) has the term (1/n) sum_i r_i Hf_i with the mean residual r_i = -O(S), which
      has small negative eigenvalues along the manifold; the tangential covariance then grows
      exponentially and the closure blows up after ~1000 steps at gamma = 2/3. The averaged
      residual E(r_i) is ~0 near the manifold.
    * The Gauss-Newton part alone has no curvature along the manifold: the rotating normal
      space feeds tangential fluctuations that nothing confines, and at small 1 - beta the
      closure drifts away from the Monte Carlo and blows up (for d = 8, r = 1, n = 20,
      delta_0 = 0.02, eta = 0.01, 1 - beta = 7.5e-4 its distance rises from 0.07 to 0.32 by
      step 4000 while the Monte Carlo's stays at 0.06-0.10). The term (1/n) sum_i Hf_i Sxx Hf_i
      is that curvature: the restoring force of the tr H drift on tangential fluctuations.
    * The law is invariant under U -> U O (O orthogonal). A Gaussian fluctuation along the
      orbit directions u Omega (Omega antisymmetric) is undamped, random-walks, and would count
      as spurious growth of ||U||^2 and tr H (second order in x) though it is a rotation; the
      covariances are therefore projected onto the complement of the orbit of the mean after
      every step (`_orbit_projector`; with it the late-time tr H and ||U||^2 at gamma = 2/3,
      delta_0 = 0.5 match the Monte Carlo as well as the Gauss-Newton version did, without it
      they are 10 s.e. high). Sxx and Svv are also re-symmetrised: otherwise round-off
      asymmetry in the undamped directions grows until the closure fails.
    """
    u, v, sxx, sxv, svv = state
    eta, beta, noise_var, a, y = args
    n, d = a.shape[0], a.shape[1]
    grads, res, gn = _sensing_pieces(u, a, y)
    sg = jnp.einsum("pq,nq->np", sxx, grads.reshape(n, d * d)).reshape(n, d, d)
    traces = 2.0 * jnp.einsum("nab,ba->n", a, _row_trace(sxx, d))  # tr(Hf_i Sxx)
    correction = (jnp.einsum("nab,nbk->ak", 2.0 * a, sg)
                  + 0.5 * jnp.einsum("n,nak->ak", traces, grads)) / n
    mean_grad = jnp.einsum("n,nak->ak", res, grads) / n + correction
    # (1/n) sum_i Hf_i Sxx Hf_i with Hf_i [(a, k), (b, l)] = 2 A_i[a, b] delta_kl
    curvature = (4.0 / n) * jnp.einsum("nab,bkel,nec->akcl", a, sxx.reshape(d, d, d, d),
                                       a).reshape(d * d, d * d)
    mean_res = res + 0.5 * traces
    fisher = gn + curvature
    hess = fisher + 2.0 * jnp.kron(jnp.einsum("n,nab->ab", mean_res, a) / n, jnp.eye(d))
    v_new = beta * v - eta * mean_grad
    u_new = u + v_new
    amat = jnp.eye(d * d) - eta * hess
    xi = eta**2 * noise_var * fisher
    svx = sxv.T
    sxx_new = amat @ sxx @ amat.T + beta * (amat @ sxv + svx @ amat.T) + beta**2 * svv + xi
    sxv_new = (-eta * amat @ sxx @ hess + beta * amat @ sxv - eta * beta * svx @ hess
               + beta**2 * svv + xi)
    svv_new = (eta**2 * hess @ sxx @ hess - eta * beta * (hess @ sxv + svx @ hess)
               + beta**2 * svv + xi)
    proj = _orbit_projector(u_new)
    sxx_new, sxv_new, svv_new = (proj @ c @ proj for c in (sxx_new, sxv_new, svv_new))
    sxx_new = 0.5 * (sxx_new + sxx_new.T)
    svv_new = 0.5 * (svv_new + svv_new.T)
    return (u_new, v_new, sxx_new, sxv_new, svv_new)


def _orbit_projector(u, relative_ridge: float = 1e-3):
    """I - B (B^T B + eps I)^{-1} B^T, B = the d(d-1)/2 orbit directions u E_kl (E_kl = e_k e_l^T
    - e_l e_k^T) raveled as columns, eps = relative_ridge x their mean squared norm: the
    projector off the tangent space of {u O : O orthogonal}, smoothed where u is nearly
    rank deficient (there some orbit directions are tiny and only partly removed)."""
    d = u.shape[0]
    rows, cols = np.triu_indices(d, 1)
    m = rows.size
    gen = np.zeros((m, d, d))
    gen[np.arange(m), rows, cols] = 1.0
    gen[np.arange(m), cols, rows] = -1.0
    basis = jnp.einsum("ab,mbc->acm", u, jnp.asarray(gen)).reshape(d * d, m)
    gram = basis.T @ basis
    ridge = relative_ridge * jnp.trace(gram) / m
    # the explicit inverse of the small, ridge-conditioned SPD Gram matrix: XLA's CPU solve with
    # d^2 right-hand sides costs ~25 times more
    inverse = jnp.linalg.inv(gram + ridge * jnp.eye(m))
    return jnp.eye(d * d) - (basis @ inverse) @ basis.T


def sensing_expected_observables(u, sxx, a, y, x_star) -> dict:
    """Gaussian expectations of the matrix-sensing observables at mean u, covariance Sxx:
    exact for trace_hessian (quadratic in U); train_loss to O(Sxx); the distance as
    sqrt(E ||U U^T - X*||_F^2) / ||X*||_F to O(Sxx); the manifold coordinate as
    ln(E ||U||_F^2 / ||X*||_*)."""
    n, d = a.shape[0], a.shape[1]
    base = sensing_observables(u, a, y, x_star)
    grads, res, _ = _sensing_pieces(u, a, y)
    rows = _row_trace(sxx, d)  # E X X^T
    cols = jnp.einsum("akal->kl", sxx.reshape(d, d, d, d))  # E X^T X
    a_t = jnp.einsum("nab,ba->n", a, rows)
    a2_t = jnp.einsum("nab,nbc,ca->n", a, a, rows)
    trace_h = base["trace_hessian"] + jnp.mean(
        4.0 * a2_t + 2.0 * d * jnp.trace(a, axis1=1, axis2=2) * a_t)
    flat = grads.reshape(n, d * d)
    loss = base["train_loss"] + 0.5 * jnp.mean(jnp.einsum("np,pq,nq->n", flat, sxx, flat)
                                               + res * 2.0 * a_t)
    gap = u @ u.T - x_star
    cross = jnp.einsum("ak,bl,bkal->", u, u, sxx.reshape(d, d, d, d))
    dist_sq = (jnp.sum(gap * gap) + 2.0 * jnp.sum(gap * rows) + 2.0 * jnp.sum((u.T @ u) * cols)
               + 2.0 * cross)
    norm_sq = jnp.sum(u * u) + jnp.trace(sxx)
    return {
        "manifold_coordinate": jnp.log(norm_sq / jnp.trace(x_star)),
        "trace_hessian": trace_h,
        "train_loss": loss,
        "distance_to_flattest": jnp.sqrt(jnp.maximum(dist_sq, 0.0) / jnp.sum(x_star * x_star)),
    }


class SensingClosure(Dynamics):
    """The moment closure of one matrix-sensing Setup as a `Dynamics` (theory: unbatched);
    state (u, v, Sxx, Sxv, Svv) of `sensing_closure_step`."""

    a: jax.Array
    y: jax.Array
    x_star: jax.Array
    step_size: jax.Array
    momentum: jax.Array
    noise_var: jax.Array

    def advance(self, state, first_step, n_steps):
        args = (self.step_size, self.momentum, self.noise_var, self.a, self.y)
        return jax.lax.fori_loop(first_step, first_step + n_steps,
                                 lambda _, s: sensing_closure_step(s, args), state)

    def observe(self, state):
        return sensing_expected_observables(state[0], state[2], self.a, self.y, self.x_star)


def sensing_closure(setup: MatrixSensingMomentum, steps) -> dict:
    """Observables of the matrix-sensing closure at integer ``steps`` (sorted; numpy arrays),
    started at the interpolating U_0 at rest with no fluctuation (`run_segments`: one jitted
    segment per output interval, compiled once per problem size)."""
    problem = matrix_sensing_problem(setup)
    dynamics = SensingClosure(
        a=jnp.asarray(problem["a"]), y=jnp.asarray(problem["y"]),
        x_star=jnp.asarray(problem["x_star"]), step_size=jnp.asarray(setup.step_size),
        momentum=jnp.asarray(setup.momentum), noise_var=jnp.asarray(setup.noise_var))
    dd = setup.dim**2
    zero = jnp.zeros((dd, dd))
    state0 = (jnp.asarray(problem["u0"]), jnp.zeros((setup.dim, setup.dim)), zero, zero, zero)
    # ~0.6 ms a step at d = 8: a bar from ~8000 steps (~5 s; work 3 d^4 a step against
    # run_segments' 1e8), off with ``predict(..., progress=False)``
    out, _ = run_segments(dynamics, state0, np.asarray(steps, dtype=np.int64), batched=False,
                          work_per_step=3.0 * dd**2, description="matrix-sensing closure")
    return {k: np.asarray(val, dtype=np.float64) for k, val in out.items()}
