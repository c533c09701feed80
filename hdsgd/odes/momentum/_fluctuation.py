r"""The normal fluctuation of label-noise SGD with momentum (docs/momentum.md, "Scales" and
"Observables from the theory"), shared by the three models' theories.

* `stationary_variance`: S(lambda) = eta delta^2 (1+beta) / [(1-beta)(2(1+beta) - eta lambda)],
  the exact stationary variance of one normal mode x_{k+1} = (1+beta-eta lambda) x_k -
  beta x_{k-1} - eta delta sqrt(lambda) zeta_k.
* Quadrature nodes for E g(m + sqrt(S) X) over the two laws of the fluctuation:
  ``GAUSS`` (X ~ N(0, 1), 12-point Gauss-Hermite) for an ensemble, and ``PHASE``
  (X = sqrt(2) cos phi, phi uniform, 12 Gauss-Chebyshev phases) for one sample path of the
  reduced SDE, whose S is the phase-averaged variance of an oscillation of given energy. Both
  have unit variance; over paths with exponentially distributed energies (the stationary law
  of the energy SDE) the random-phase law mixes into the Gaussian, whereas Gaussians of
  exponentially distributed variance do not (they put too much mass near x = 0; with
  Gaussians per path the SDE's distance to the flattest minimisers is ~10% low near the
  fluctuation floor).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ..._numerics import gauss_hermite

GAUSS = gauss_hermite(12)
# exact for polynomials of degree < 24 in X
PHASE = (math.sqrt(2.0) * np.cos((2.0 * np.arange(1, 13) - 1.0) * math.pi / 24.0),
         np.full(12, 1.0 / 12.0))
for _array in PHASE:
    _array.setflags(write=False)


def array_module(*values):
    """numpy for numbers and numpy arrays (float64 whatever JAX's precision), else jax.numpy
    (inside traced code)."""
    plain = all(isinstance(v, (int, float, np.ndarray, np.generic)) for v in values)
    return np if plain else jnp


def stationary_variance(step_size, momentum, noise_var, curvature):
    """Exact stationary variance S(lambda) of one normal mode (docs/momentum.md, "Scales").

    S = eta delta^2 (1+beta) / [(1-beta)(2(1+beta) - eta lambda)] ~ eta delta^2 / (2(1-beta));
    inf beyond the stability edge eta lambda >= 2(1+beta). Units: length^2. numpy in, numpy
    out; JAX arrays in, JAX arrays out.
    """
    xp = array_module(step_size, momentum, noise_var, curvature)
    eta, beta, lam = step_size, momentum, curvature
    denom = (1.0 - beta) * (2.0 * (1.0 + beta) - eta * lam)
    return xp.where(denom > 0, eta * noise_var * (1.0 + beta) / xp.where(denom > 0, denom, 1.0),
                    xp.inf)
