r"""Kernel gradient flow with the exact infinite-width initial NTK on a finite training set.

docs/grokking.md, "Kernel flow": the finite-D reference of the lazy limit. Numpy (an
eigendecomposition of the P x P kernel).
"""

from __future__ import annotations

import numpy as np

from ..._precision import scoped_x64
from ...setups import _validate as v
from ...setups.grokking import GrokkingTwoLayer, check_setup, loss_terms, training_set
from ._lazy import check_taus


@scoped_x64
def kernel_flow(setup: GrokkingTwoLayer, taus, *, average_teacher: bool = False) -> dict:
    r"""Kernel gradient flow with the exact infinite-width initial NTK on the setup's training set.

    The finite-D reference for ``"lazy"``: K0(x, x') = (x.x')(1 + eps^2 x.x'), centred,
    df/dtau = -(1/kappa) K0 Delta on the training set, so f = sum_mu c_mu K0(., x_mu) with
    c(tau) = g_tau(K0) y, and the test loss is exact (`loss_decomposition` with w_bar -> X^T c / alpha and
    alpha eps M -> 2 eps^2 X^T diag(c) X). Numpy (an eigendecomposition of the P x P kernel).

    ``average_teacher=True`` returns the exact average over the teacher beta ~ N(0, I) for the
    setup's inputs X: every observable is a polynomial of degree 4 in beta, so only
    E[y] = a/2, E[y y^T] = (a a^T + 2 A o A)/4, E[|beta|^2 y] = (D + 2) a/2 and
    E|beta|^4 = D^2 + 2D enter (a_mu = |x_mu|^2, A = X X^T). This removes the heavy-tailed
    label noise (y = z^2/2), which otherwise dominates the finite-D scatter of the test loss.

    ``taus``: a non-empty 1-d grid of finite times tau >= 0 (any order; a scalar is refused).

    Raises:
        ValueError: ``setup`` is not a `GrokkingTwoLayer` with dim, n_samples <= 46340 (its
            P x P and D x D matrices), ``taus`` is not such a grid, or ``average_teacher`` is not
            a bool.
    """
    check_setup(setup, square="kernel_flow")
    taus = check_taus(taus)
    if v.flag("average_teacher", average_teacher):
        return _kernel_flow_teacher_average(setup, taus)
    x, beta, y = (np.asarray(a) for a in training_set(setup))
    return _kernel_flow_arrays(x, beta, y, setup.ratio, setup.quadratic_strength, taus)




def _kernel_flow_arrays(x, beta, y, kappa, eps, taus) -> dict:
    """`kernel_flow` for given inputs (P, D), teacher and labels."""
    d = x.shape[1]
    gram = x @ x.T
    k0 = gram * (1.0 + eps**2 * gram)
    evals, evecs = np.linalg.eigh(k0)
    evals = np.clip(evals, 1e-300, None)
    yk = evecs.T @ y
    t = np.asarray(taus, dtype=np.float64)
    beta2 = beta @ beta
    out = {k: np.empty_like(t) for k in ("train_loss", "test_loss", "variance_error",
                                         "misalignment_error", "linear_power")}
    for i, ti in enumerate(t):
        decay = np.exp(-ti * evals / kappa)
        out["train_loss"][i] = np.mean((evecs @ (decay * yk)) ** 2)
        coef = evecs @ (-np.expm1(-ti * evals / kappa) / evals * yk)
        v = x.T @ coef                      # linear coefficient
        q = 2.0 * eps**2 * (x.T * coef) @ x  # quadratic matrix: f = v.x + x^T q x / 2
        # the network with alpha w_bar = v and alpha eps M = q
        terms = loss_terms(1.0, 1.0, beta2 / d, np.trace(q) / d, beta @ q @ beta / d**2,
                           np.sum(q * q) / d**2, v @ v / d)
        for name, value in terms.items():
            out[name][i] = value
    return out


def _kernel_flow_teacher_average(setup: GrokkingTwoLayer, taus) -> dict:
    """`kernel_flow` averaged over beta exactly (see there), with c = g_tau(K0) y."""
    x = np.asarray(training_set(setup)[0])
    p, d = x.shape
    kappa, eps = setup.ratio, setup.quadratic_strength
    gram = x @ x.T
    sq = np.diagonal(gram).copy()
    k0 = gram * (1.0 + eps**2 * gram)
    evals, evecs = np.linalg.eigh(k0)
    evals = np.clip(evals, 1e-300, None)
    yy = 0.25 * (np.outer(sq, sq) + 2.0 * gram**2)           # E[y y^T]
    rot = lambda m: evecs.T @ m @ evecs  # noqa: E731
    yy_k, a_k, gram_k, gram2_k = rot(yy), evecs.T @ sq, rot(gram), rot(gram**2)
    out = {k: np.empty(len(np.atleast_1d(taus))) for k in (
        "train_loss", "test_loss", "variance_error", "misalignment_error", "linear_power")}
    for i, ti in enumerate(np.asarray(taus, dtype=np.float64)):
        decay = np.exp(-ti * evals / kappa)
        g = -np.expm1(-ti * evals / kappa) / evals               # g_tau(K0) in its eigenbasis
        out["train_loss"][i] = np.sum(decay**2 * np.diagonal(yy_k)) / p
        lin = np.sum((g[:, None] * gram_k * g[None, :]) * yy_k) / d
        ga = g * a_k
        var = 0.25 * (1.0 + 2.0 / d - 4.0 * eps**2 * (d + 2.0) / (2.0 * d**2) * (a_k @ ga)
                      + 4.0 * eps**4 / d**2 * (ga @ yy_k @ ga))
        mis = (4.0 * eps**4 * np.sum((g[:, None] * gram2_k * g[None, :]) * yy_k)
               - 8.0 * eps**2 * np.sum(g * np.diagonal(yy_k)) + d**2 + 2.0 * d) / (2.0 * d**2)
        out["linear_power"][i], out["variance_error"][i], out["misalignment_error"][i] = lin, var, mis
        out["test_loss"][i] = var + mis + lin
    return out

