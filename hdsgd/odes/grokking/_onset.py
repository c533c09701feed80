r"""The grokking time: the feature-learning onset heuristic and the "too lazy" threshold.

docs/grokking.md, "Grokking time". Numpy and scipy only (the lazy spectral measure).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy  # its submodules load on first use (scipy.optimize, ...)

from ...setups.grokking import GrokkingTwoLayer, check_setup
from ._lazy import check_lazy_setup, lazy_spectrum


class GrokkingTime(NamedTuple):
    """The onset heuristic of docs/grokking.md, "Grokking time" (all times in tau = 2 eta0 t / D
    unless named ``steps``).

    Attributes:
        tau_onset: Lambda(tau_g) = ln(D/(alpha eps)); inf when the net is too lazy.
        steps_onset: the same in GD steps.
        tau_onset_small_alpha: alpha ln(D/(alpha eps)) / (2 eps (1 - 1/kappa)); inf when
            kappa <= 1.
        lambda_inf: Lambda(inf), the total log-growth of the teacher overlap S.
        log_target: ln(D/(alpha eps)).
        too_lazy: lambda_inf < log_target (no generalisation predicted), or alpha eps >= D
            (the heuristic's target is below S(0); the lazy side).
        alpha_threshold: the smallest alpha at which lambda_inf = log_target ("too lazy" above
            it; nan if there is none below D/eps).
    """

    tau_onset: float
    steps_onset: float
    tau_onset_small_alpha: float
    lambda_inf: float
    log_target: float
    too_lazy: bool
    alpha_threshold: float


def _rho_pieces(kappa, eps, n_quad=400):
    sp = lazy_spectrum(kappa, eps, n_quad)
    lam_nu = np.concatenate([sp.nu_bulk_lam, sp.nu_atoms])
    w_nu = np.concatenate([sp.nu_bulk_w, sp.nu_atom_w])
    return sp, lam_nu, w_nu


def grokking_time(setup: GrokkingTwoLayer, n_quad: int = 400) -> GrokkingTime:
    r"""Feature-learning onset and the "too lazy" threshold (docs/grokking.md, "Grokking time";
    a scaling law, not a fit).

    Along the lazy trajectory the teacher overlap grows as S ~ S(0) exp(Lambda(tau)) with
    Lambda(tau) = (2 eps/alpha) int_0^tau rho, rho(tau) = (1/P) Tr exp(-tau B/kappa)
    + c0 int exp(-tau lam/kappa) dnu, c0 = 1/2 (centred) or 1/2 - alpha eps/2 (uncentred,
    the constant f_0 = alpha eps/2 at N = inf). Onset: Lambda(tau_g) = ln(D/(alpha eps)).
    Measured onsets are 1.3-3x later than tau_g, the ratio growing with D (docs/grokking.md,
    "Measured agreement").

    Raises:
        ValueError: ``setup`` is not a `GrokkingTwoLayer`, or is outside the lazy quadrature's
            accurate range (`lazy_spectrum`: kappa = n_samples / dim in [1e-12, 1e8], and with
            eps = quadratic_strength, eps^2 max(kappa, 1) <= 1e3 and, when kappa > 1,
            eps^2 kappa >= 1e-4); or ``n_quad`` is not an integer in [16, 4096].
    """
    check_setup(setup)
    check_lazy_setup(setup, n_quad)
    d, kappa = setup.dim, setup.ratio
    eps, alpha = setup.quadratic_strength, setup.output_scale
    sp, lam_nu, w_nu = _rho_pieces(kappa, eps, n_quad)
    b_s = sp.bulk_s + eps**2

    def c0(a):
        return 0.5 if setup.centered else 0.5 - 0.5 * a * eps

    def integral(tau, a):  # int_0^tau rho
        def part(lams, w):
            return np.sum(w * kappa * (-np.expm1(-tau * lams / kappa)) / lams)
        null = sp.null * kappa * (-math.expm1(-tau * eps**2 / kappa)) / eps**2
        return part(b_s, sp.bulk_w) + null + c0(a) * part(lam_nu, w_nu)

    def lam_total(a, tau=np.inf):
        return 2.0 * eps / a * integral(tau, a)

    target = math.log(d / (alpha * eps)) if d > alpha * eps else 0.0
    lam_inf = lam_total(alpha)
    # alpha eps >= D: the target overlap 1/(alpha eps) is below S(0) = 1/D, where the
    # heuristic has no onset to predict; this is the lazy side (Lambda(inf) ~ 1/alpha -> 0)
    too_lazy = not (lam_inf > target and d > alpha * eps)
    if too_lazy:
        tau_g = math.inf
    else:
        hi = 1.0
        while lam_total(alpha, hi) < target:
            hi *= 2.0
        tau_g = scipy.optimize.brentq(lambda t: lam_total(alpha, t) - target, 0.0, hi, rtol=1e-12)
    small = (alpha * target / (2.0 * eps * (1.0 - 1.0 / kappa))) if kappa > 1 else math.inf

    def excess(log_a):
        a = math.exp(log_a)
        return lam_total(a) - math.log(max(d / (a * eps), 1.0 + 1e-300))

    # the first alpha (scanning upwards) at which Lambda(inf) drops below ln(D/(alpha eps))
    grid = np.linspace(math.log(1e-6), math.log(d / eps), 120)
    vals = np.array([excess(g) for g in grid])
    below = np.nonzero(vals < 0)[0]
    if below.size == 0 or below[0] == 0:
        a_star = math.nan
    else:
        i = int(below[0])
        a_star = math.exp(scipy.optimize.brentq(excess, grid[i - 1], grid[i], xtol=1e-12))
    return GrokkingTime(float(tau_g), float(setup.steps(tau_g)), float(small), float(lam_inf),
                        float(target), bool(too_lazy), float(a_star))

