r"""Scales of label-noise SGD with momentum: the two timescales, the regime, the stationary
loss (docs/momentum.md, "Scales").

Notation: eta = step size, beta = momentum, delta^2 = label_noise^2 / B, lambda = tr H on the
manifold (the normal curvature: one normal mode for the product models), kappa =
d^2 tr H / d l^2 at the flattest point along the arc length l.
"""

from __future__ import annotations

import functools
import math

from ..._precision import scoped_x64
from ...setups import _validate as v
from ...setups.momentum import (PRODUCT_MODELS, InnerProductMomentum, LabelNoiseMomentum,
                                MatrixSensingMomentum, TwoParameterMomentum, check_model)
from ._fluctuation import stationary_variance

CRITICAL_EXPONENT = 2.0 / 3.0
#: kappa = d^2 tr H / dl^2 at the flattest points of both product models (docs/momentum.md,
#: "The inner-product model": the Riemannian Hessian of tr H there has eigenvalues {0, 4, 4}).
SLOW_CURVATURE = 4.0


@functools.singledispatch
def flattest_curvature(setup: LabelNoiseMomentum) -> tuple[float, float]:
    """(lambda_min, kappa): the normal curvature and d^2 tr H / dl^2 at the flattest minimiser
    (product models only; a ValueError naming ``setup`` otherwise)."""
    check_model(setup, PRODUCT_MODELS)  # always raises: the product models are registered


@flattest_curvature.register
def _(setup: TwoParameterMomentum) -> tuple[float, float]:
    """lambda = 2 at s = 0 and tr H = 2 cosh 2s = 2 + 2 l^2 + ... with the arc length
    l = sqrt(2) s, so kappa = 4."""
    return 2.0, SLOW_CURVATURE


@flattest_curvature.register
def _(setup: InnerProductMomentum) -> tuple[float, float]:
    """lambda = P + Q = 2 at u = v, ||u|| = 1, and kappa = 4 along both curved directions."""
    return 2.0, SLOW_CURVATURE


@flattest_curvature.register
def _(setup: MatrixSensingMomentum) -> tuple[float, float]:
    check_model(setup, PRODUCT_MODELS, " (MatrixSensingMomentum has no closed-form flattest "
                "curvature: the flattest interpolant U* U*^T = X* is a singular point of the "
                "manifold, the rank of the Jacobian drops from n to d r there)")


@scoped_x64
def stationary_train_loss(setup: LabelNoiseMomentum, s: float = 0.0) -> float:
    """E[L] at the manifold point s in the stationary state: 1/2 lambda S(lambda), lambda =
    2 cosh 2s (docs/momentum.md, "Scales"; leading order in S); inf past the stability edge
    eta lambda >= 2 (1 + beta). Product models only (at the point s of a parallel start for the
    inner product).

    Raises:
        ValueError: for another model, or s outside [-5, 5] (the range of the Setups'
            ``initial_coordinate``; cosh 2s overflows past |s| ~ 177).
    """
    flattest_curvature(setup)  # product models only
    s = v.real("s", s, low=-5.0, high=5.0)
    lam = 2.0 * math.cosh(2.0 * s)
    return 0.5 * lam * float(stationary_variance(setup.step_size, setup.momentum,
                                                 setup.noise_var, lam))


@scoped_x64
def timescales(setup: LabelNoiseMomentum) -> dict:
    """The two timescales in steps, and the stationary transverse variance (docs/momentum.md,
    "Scales"); product models only.

    Returns a dict with ``tau_1`` (transverse relaxation, max{(1-beta)/(eta lambda_min),
    2/(1-beta)}), ``tau_2`` ((1-beta)^2 / (eta^2 delta^2 kappa), the time of an O(1)
    displacement along the manifold), ``ratio`` = tau_2 / tau_1, ``stationary_variance``
    (S at the flattest point), ``overdamped`` (eta lambda_min < (1 - sqrt(beta))^2) and
    ``optimal_constant`` C* = (delta^2 kappa)^{1/3} (the critical-damping estimate).

    Raises:
        ValueError: for a setup that is not a product model.
    """
    lam, kappa = flattest_curvature(setup)  # product models only
    eta, omb, d2 = setup.step_size, setup.one_minus_beta, setup.noise_var
    tau1 = max(omb / (eta * lam), 2.0 / omb)
    tau2 = omb**2 / (eta**2 * d2 * kappa) if d2 > 0 else math.inf
    return {
        "tau_1": tau1,
        "tau_2": tau2,
        "ratio": tau2 / tau1,
        "stationary_variance": float(stationary_variance(eta, setup.momentum, d2, lam)),
        "overdamped": bool(eta * lam < (1.0 - math.sqrt(setup.momentum)) ** 2),
        "optimal_constant": (d2 * kappa) ** (1.0 / 3.0),
    }


def regime(setup: LabelNoiseMomentum, *, tolerance: float = 0.02) -> str:
    """``"separated"`` (gamma < 2/3), ``"critical"`` (gamma = 2/3) or ``"ballistic"`` (gamma > 2/3).

    From the exponent when the Setup is given as 1 - beta = C eta^gamma (within
    ``tolerance`` of 2/3 counts as critical); otherwise from the effective exponent
    gamma = ln(1 - beta) / ln(eta).

    Raises:
        ValueError: for a setup that is not a momentum Setup, or a ``tolerance`` that is not a
            finite number >= 0.
    """
    check_model(setup)
    tolerance = v.real("tolerance", tolerance, low=0.0)
    gamma = setup.exponent
    if gamma is None:
        gamma = (math.log(setup.one_minus_beta) / math.log(setup.step_size)
                 if setup.step_size != 1 else 0.0)
    if abs(gamma - CRITICAL_EXPONENT) <= tolerance:
        return "critical"
    return "separated" if gamma < CRITICAL_EXPONENT else "ballistic"
