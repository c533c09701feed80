r"""The normal fluctuation of label-noise SGD with momentum (spec momentum.md §2, §3b), shared
by the two-parameter, inner-product and matrix-sensing theories.

* `stationary_variance`: S(lambda) = eta delta^2 (1+beta) / [(1-beta)(2(1+beta) - eta lambda)],
  the exact stationary variance of one normal mode x_{k+1} = (1+beta-eta lambda) x_k -
  beta x_{k-1} - eta delta sqrt(lambda) zeta_k.
* Quadrature nodes for E g(m + sqrt(S) X) over the two laws of the fluctuation:
  ``GAUSS`` (X ~ N(0, 1), 12-point Gauss-Hermite) for an ensemble, and ``PHASE``
  (X = sqrt(2) cos phi, phi uniform, 12 Gauss-Chebyshev phases) for one sample path of the
  reduced SDE, whose S is the phase-averaged variance of an oscillation of given energy. Both
  have unit variance; over paths with exponentially distributed energies (the stationary law
  of the energy SDE) the random-phase law mixes into the Gaussian, whereas Gaussians of
  exponentially distributed variance do not (they put too much mass near x = 0) [derived here;
  with Gaussians per path the SDE's distance to the flattest minimisers is ~10% low near the
  fluctuation floor].
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

_gauss_x, _gauss_w = np.polynomial.hermite_e.hermegauss(12)
GAUSS = (_gauss_x, _gauss_w / _gauss_w.sum())
# exact for polynomials of degree < 24 in X
PHASE = (math.sqrt(2.0) * np.cos((2.0 * np.arange(1, 13) - 1.0) * math.pi / 24.0),
         np.full(12, 1.0 / 12.0))


def stationary_variance(step_size, momentum, noise_var, curvature):
    """Exact stationary variance S(lambda) of one normal mode (spec §2).

    S = eta delta^2 (1+beta) / [(1-beta)(2(1+beta) - eta lambda)] ~ eta delta^2 / (2(1-beta));
    inf beyond the stability edge eta lambda >= 2(1+beta). Units: length^2.
    """
    eta, beta, lam = step_size, momentum, curvature
    denom = (1.0 - beta) * (2.0 * (1.0 + beta) - eta * lam)
    return jnp.where(denom > 0, eta * noise_var * (1.0 + beta) / jnp.where(denom > 0, denom, 1.0),
                     jnp.inf)
