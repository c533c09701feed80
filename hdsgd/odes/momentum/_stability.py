r"""The stability edge of heavy ball at the start (docs/momentum.md, "Stability edge").

Near the manifold the normal fluctuation x along a direction of curvature lambda follows the
linear heavy-ball recursion x_{k+1} = (1 + beta - eta lambda) x_k - beta x_{k-1} + noise, whose
characteristic roots lie inside the unit circle iff 0 < eta lambda < 2 (1 + beta). At the
start the stiffest normal direction has the curvature lambda_0 = the top eigenvalue of
Hess L(w_0) (`LabelNoiseMomentum.start_curvature`: 2 cosh 2 s_0 for w_1 w_2, P_0 + Q_0 for
<u, v>, the top Gauss-Newton eigenvalue at U_0 for matrix sensing), so the critical step size
solves eta lambda_0 = 2 (1 + beta(eta)).
"""

from __future__ import annotations

import math

import scipy  # its submodules load on first use (scipy.optimize, ...)

from ...setups.momentum import LabelNoiseMomentum, check_model


def critical_step_size(setup: LabelNoiseMomentum) -> float:
    """The step size eta_c at which the start's stiffest normal mode turns unstable.

    Fixed momentum: eta_c = 2 (1 + beta) / lambda_0. Along the family 1 - beta = C eta^gamma
    (``exponent`` and ``constant`` set) beta moves with eta, and eta_c is the root of
    eta lambda_0 + 2 C eta^gamma = 4 (increasing in eta); ``inf`` when even the largest step
    the family allows (beta = 0 at eta = C^{-1/gamma}) is stable. In ``step_size`` units
    (docs/momentum.md, "Stability edge").

    Raises:
        ValueError: for a setup that is not one of the three momentum Setups.
    """
    lam = check_model(setup).start_curvature()
    if setup.exponent is None:
        return 2.0 * (1.0 + setup.momentum) / lam
    c, gamma = setup.constant, setup.exponent
    largest = c ** (-1.0 / gamma)

    def excess(eta):
        return eta * lam + 2.0 * c * eta**gamma - 4.0

    if excess(largest) < 0.0:
        return math.inf
    return float(scipy.optimize.brentq(excess, 0.0, largest, xtol=1e-15, rtol=1e-14))


def stability_warning(setup: LabelNoiseMomentum) -> str | None:
    """``meta["warning"]`` for a step size at or past `critical_step_size`, else None."""
    eta_c = critical_step_size(setup)
    if setup.step_size < eta_c:
        return None
    return (f"step_size={setup.step_size} is at or beyond the critical step size {eta_c:.6g} "
            f"(heavy-ball stability edge eta lambda_0 = 2 (1 + beta) of the stiffest normal "
            f"direction at the start, lambda_0 = {setup.start_curvature():.6g}, "
            f"momentum={setup.momentum:.6g}): the normal fluctuation grows without bound")
