r"""The lazy limit: alpha -> inf (centred), D, P -> inf at kappa = P/D.

docs/grokking.md, "The lazy limit". Kernel gradient flow with the initial NTK, in closed form
from the Marchenko-Pastur law of the Gram matrix and the outlier roots of the rank-one
(constant-mode) perturbation. Numpy and scipy only.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import scipy  # its submodules load on first use (scipy.optimize, ...)

from ...setups import _validate as v

#: the most Gauss-Legendre nodes: numpy builds them from an n x n eigenproblem, O(n^3) (4096
#: nodes take ~half a minute; 10^5 were a MemoryError); the fewest: 16, as ``predict`` allows
MIN_QUAD, MAX_QUAD = 16, 4096

#: where the quadrature is accurate (measured: the train loss at tau = 0 within 1e-4 of its
#: exact 3/4): kappa in `KAPPA_RANGE`, eps^2 max(kappa, 1) <= LAZY_SCALE[1] and, for kappa > 1,
#: eps^2 kappa >= LAZY_SCALE[0]. Outside, the outlier atom's finite-difference derivative loses
#: its digits: the measure nu loses mass (L_train(0) = 0.5 at kappa = 1, eps = 10^4; 0.625 from
#: kappa ~ 3e8 on), or gains it (5e8 at kappa = 2.5, eps = 10^-6, the outlier next to the null
#: atom), then inf and NaN.
KAPPA_RANGE = (1e-12, 1e8)
LAZY_SCALE = (1e-4, 1e3)


def check_lazy(kappa, eps, n_quad) -> tuple[float, float, int]:
    """(kappa, eps, n_quad), checked: kappa in `KAPPA_RANGE`, eps > 0 within `LAZY_SCALE`,
    n_quad in [`MIN_QUAD`, `MAX_QUAD`]."""
    kappa = v.real("kappa", kappa, low=KAPPA_RANGE[0], high=KAPPA_RANGE[1])
    eps = v.positive("eps", eps)
    _check_scale(kappa, eps, "eps", f"kappa = {kappa:.6g}")
    return kappa, eps, v.integer("n_quad", n_quad, low=MIN_QUAD, high=MAX_QUAD)


def check_lazy_setup(setup, n_quad) -> int:
    """`check_lazy` for a setup's kappa = n_samples / dim and eps = quadratic_strength, its
    errors naming those fields; returns n_quad."""
    kappa, (low, high) = setup.ratio, KAPPA_RANGE
    if not low <= kappa <= high:
        raise ValueError(f"n_samples={setup.n_samples!r} is invalid; allowed: n_samples / dim in "
                         f"[{low:g}, {high:g}] (dim={setup.dim}), where the lazy quadrature is "
                         "accurate")
    _check_scale(kappa, setup.quadratic_strength, "quadratic_strength",
                 f"kappa = n_samples / dim = {kappa:.6g}")
    return v.integer("n_quad", n_quad, low=MIN_QUAD, high=MAX_QUAD)


def _check_scale(kappa: float, eps: float, name: str, shown: str):
    low, high = LAZY_SCALE
    if eps * eps * max(kappa, 1.0) > high or (kappa > 1.0 and eps * eps * kappa < low):
        raise ValueError(
            f"{name}={eps!r} is invalid; allowed: {name} > 0 with {name}^2 * max(kappa, 1) <= "
            f"{high:g} and, when kappa > 1, {name}^2 * kappa >= {low:g} ({shown}; outside, the "
            "lazy quadrature loses its accuracy)")


def check_taus(taus) -> np.ndarray:
    """A non-empty rank-1 grid of finite times tau >= 0 (any order), float64."""
    return v.real_array("taus", taus, low=0.0)


class LazySpectrum(NamedTuple):
    """The kernel's spectral data in the proportional limit (docs/grokking.md, "The lazy limit").

    K0(train, train) -> B + eps^2 kappa u u^T with B = A + eps^2 I, A = X^T X (Gram matrix).
    ``bulk_*``: Gauss-Legendre nodes/weights for the MP density of A's nonzero eigenvalues
    (P-space law, so (1/P) Tr h(A) = sum bulk_w h(bulk_s) + null h(0)); ``nu_*``: the spectral
    measure of K0 at u = 1/sqrt(P), as a bulk density on B's support plus atoms (outliers).
    """

    bulk_s: np.ndarray
    bulk_w: np.ndarray
    null: float
    nu_bulk_lam: np.ndarray
    nu_bulk_w: np.ndarray
    nu_atoms: np.ndarray
    nu_atom_w: np.ndarray


@functools.lru_cache(maxsize=8)
def _leggauss(n: int):
    return np.polynomial.legendre.leggauss(n)


def _mp_edges(kappa: float):
    return (math.sqrt(kappa) - 1.0) ** 2, (math.sqrt(kappa) + 1.0) ** 2


def _mp_density(s, kappa):
    """Density of the nonzero eigenvalues of A = X^T X (P x P, x ~ N(0, I/D), P = kappa D),
    normalised so that its mass is min(1, 1/kappa) (the rest is the atom at 0)."""
    a, b = _mp_edges(kappa)
    inside = np.clip((b - s) * (s - a), 0.0, None)
    return np.sqrt(inside) / (2.0 * np.pi * kappa * s)


def _stieltjes_closed(z, kappa):
    """m_A(z) = (1/P) Tr (z - A)^-1 in closed form (MP, branch with m ~ 1/z at infinity)."""
    a, b = _mp_edges(kappa)
    z = np.asarray(z, dtype=complex)
    root = np.sqrt(z - a) * np.sqrt(z - b)  # principal branches: ~ z at infinity, cut on [a, b]
    return (z + kappa - 1.0 - root) / (2.0 * kappa * z)


def lazy_spectrum(kappa: float, eps: float, n_quad: int = 400) -> LazySpectrum:
    """Quadrature for the MP law of A and for the spectral measure nu of K0 at the constant mode.

    nu has Stieltjes transform G_nu = m_B / (1 - eps^2 kappa m_B) (Sherman-Morrison; u is a
    generic direction for A): a bulk density -Im G_nu(lam + i0)/pi on B's support and atoms at
    the roots lam* of 1 = eps^2 kappa m_B(lam) outside it, of weight -1/(c^2 m_B'(lam*)).

    Args:
        kappa: P/D, in [1e-12, 1e8].
        eps: the quadratic strength > 0, with eps^2 max(kappa, 1) <= 1e3 and, when kappa > 1,
            eps^2 kappa >= 1e-4 (outside these ranges the quadrature loses its accuracy:
            `LAZY_SCALE`).
        n_quad: Gauss-Legendre nodes on the bulk, in [16, 4096] (the nodes cost O(n_quad^3)).

    Raises:
        ValueError: an argument outside these ranges.
    """
    kappa, eps, n_quad = check_lazy(kappa, eps, n_quad)
    lo, hi = _mp_edges(kappa)
    c = eps**2 * kappa
    null = max(0.0, 1.0 - 1.0 / kappa)
    # Gauss-Legendre in the angle s = mid - half cos(theta): resolves the square-root edges
    theta, wt = _leggauss(n_quad)
    theta = 0.5 * np.pi * (theta + 1.0)
    wt = 0.5 * np.pi * wt
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    s = mid - half * np.cos(theta)
    ds = half * np.sin(theta)
    bulk_w = _mp_density(s, kappa) * ds * wt
    # nu's bulk: -Im G_nu / pi at lam = s + eps^2 + i0
    m_a = _stieltjes_closed(s + 1e-300j, kappa)
    m_a = np.conj(m_a) if np.mean(m_a.imag) > 0 else m_a  # lam + i0: Im m < 0
    m_b = m_a  # shift by eps^2: m_B(s + eps^2) = m_A(s)
    g_nu = m_b / (1.0 - c * m_b)
    nu_bulk_w = -g_nu.imag / np.pi * ds * wt
    lam_bulk = s + eps**2
    # outliers: roots of 1 = c m_B(lam) above the bulk and between eps^2 (null atom) and the bulk
    atoms, weights = [], []

    def fun(lam):
        return c * np.real(_stieltjes_closed(lam - eps**2, kappa)) - 1.0

    def dfun(lam, h=1e-7):
        return (fun(lam + h) - fun(lam - h)) / (2.0 * h)

    intervals = [(hi + eps**2, hi + eps**2 + 10.0 * (1.0 + c) + 10.0)]
    if kappa > 1.0:
        intervals.append((eps**2, lo + eps**2))
    elif kappa < 1.0:
        intervals.append((eps**2 + 0.0, lo + eps**2))
    for left, right in intervals:
        span = right - left
        a_, b_ = left + 1e-12 * span, right - 1e-12 * span
        fa, fb = fun(a_), fun(b_)
        if np.isfinite(fa) and np.isfinite(fb) and fa * fb < 0:
            root = scipy.optimize.brentq(fun, a_, b_, xtol=1e-14, rtol=1e-14)
            mprime = dfun(root) / c
            atoms.append(root)
            weights.append(-1.0 / (c**2 * mprime))
    return LazySpectrum(s, bulk_w, null, lam_bulk, nu_bulk_w, np.array(atoms), np.array(weights))


def lazy_curves(taus, kappa: float, eps: float, n_quad: int = 400) -> dict:
    r"""Train/test loss of kernel gradient flow with K0 in the proportional limit
    (docs/grokking.md, "The lazy limit").

    With g_tau(lam) = (1 - exp(-tau lam / kappa)) / lam,

        L_train = 1/2 (1/P) Tr exp(-2 tau B / kappa) + 1/4 int exp(-2 tau lam/kappa) dnu
        b       = (eps^2 kappa / 2) int g_tau dnu                       (learned constant)
        ell     = 1/2 kappa int s g_tau(s + eps^2)^2 dmu_A(s)
                  + (kappa/4) [int g_tau^2 (lam - eps^2) dnu - eps^2 kappa (int g_tau dnu)^2]
        L_test  = 1/2 + (b - 1/2)^2 + ell

    (``mu_A`` is the law of A's eigenvalues in P-space, i.e. (1/P) Tr; on the nonzero part
    kappa mu_A = mu_D, the law of the eigenvalues of X X^T.) Returns a dict of arrays over ``taus``.

    Args:
        taus: a non-empty 1-d grid of finite times tau >= 0 (any order; a scalar is refused).
        kappa, eps, n_quad: as in `lazy_spectrum` (within its accurate range; n_quad in
            [16, 4096]).

    Raises:
        ValueError: an argument outside these ranges.
    """
    kappa, eps, n_quad = check_lazy(kappa, eps, n_quad)
    taus = check_taus(taus)
    sp = lazy_spectrum(kappa, eps, n_quad)
    t = np.asarray(taus, dtype=np.float64)[:, None]
    lam_nu = np.concatenate([sp.nu_bulk_lam, sp.nu_atoms])
    w_nu = np.concatenate([sp.nu_bulk_w, sp.nu_atom_w])
    b_s = sp.bulk_s + eps**2

    def g(lam):
        return -np.expm1(-t * lam / kappa) / lam

    train = 0.5 * (np.sum(sp.bulk_w * np.exp(-2 * t * b_s / kappa), axis=1)
                   + sp.null * np.exp(-2 * t[:, 0] * eps**2 / kappa))
    train = train + 0.25 * np.sum(w_nu * np.exp(-2 * t * lam_nu / kappa), axis=1)
    g_nu = g(lam_nu)
    const = 0.5 * eps**2 * kappa * np.sum(w_nu * g_nu, axis=1)
    ell = 0.5 * kappa * np.sum(sp.bulk_w * sp.bulk_s * g(b_s) ** 2, axis=1)
    ell = ell + 0.25 * kappa * (np.sum(w_nu * g_nu**2 * (lam_nu - eps**2), axis=1)
                                - eps**2 * kappa * np.sum(w_nu * g_nu, axis=1) ** 2)
    variance = (const - 0.5) ** 2
    return {
        "train_loss": train,
        "test_loss": 0.5 + variance + ell,
        "variance_error": variance,
        "misalignment_error": np.full_like(train, 0.5),
        "linear_power": ell,
        "constant": const,
    }

