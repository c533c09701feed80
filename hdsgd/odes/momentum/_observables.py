r"""Observables of the two-parameter theory: the expectation over the normal fluctuation
(docs/momentum.md, "Observables from the theory").

The theory gives the manifold point s and the normal variance S; each observable is the
expectation E f(phi(s) + x n(s)) over the normal fluctuation x, by quadrature: x ~ N(m, S)
for an ensemble (recursion, flow, closure) and x = m + sqrt(2 S) cos(phi) with a uniform phase
for one path of the reduced SDE (`_fluctuation`), with the mean normal offset m of
`normal_offset` (this puts in the O(S) corrections, e.g. E tr H = lambda(s) + S + ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import power_of_two_at_least
from ...setups.momentum import two_parameter_normal, two_parameter_observables, two_parameter_point
from ._fluctuation import GAUSS, PHASE, array_module


def normal_offset(s, var, sdot, step_size):
    """Quasi-static mean normal offset E[x] of the two-parameter model.

    The normal gradient is lambda x + 3 x^2 / sqrt(lambda) + O(x^3) (f = 1 + sqrt(lambda) x
    + x^2 / lambda along the normal), and following the curved manifold at speed sdot needs
    the centripetal acceleration 2 sdot^2 / sqrt(lambda) per step^2; balancing both,
    E[x] = -(3 S + 2 sdot^2 / eta) / lambda^{3/2} (docs/momentum.md, "Observables from the
    theory"; without it E tr H misses -2 sqrt(2) * 1.06 S at s = 0, which the Monte Carlo
    resolves).
    """
    xp = array_module(s, var, sdot, step_size)
    lam = 2.0 * xp.cosh(2.0 * s)
    return -(3.0 * var + 2.0 * sdot**2 / step_size) / lam**1.5


def gaussian_observables(s, mean, var, *, phase: bool = False):
    """E obs(phi(s) + x n(s)) over the normal fluctuation x of the given mean and variance, by
    quadrature (any shape): x ~ N(mean, var) (``phase=False``: an ensemble, or the recursion
    and closure) or x = mean + sqrt(2 var) cos(phi) with a uniform phase (``phase=True``: one
    path of the reduced SDE, an oscillation of given energy; see `_fluctuation`)."""
    s = jnp.asarray(s)
    sd = jnp.sqrt(jnp.maximum(var, 0.0))
    phi = two_parameter_point(s)[..., None, :]  # (..., 1, 2)
    nrm = two_parameter_normal(s)[..., None, :]
    nodes, weights = PHASE if phase else GAUSS
    x = (jnp.asarray(mean)[..., None]
         + jnp.asarray(nodes)[(None,) * s.ndim + (slice(None),)] * sd[..., None])
    # the two components apart, then stacked: (..., q, 2) (a broadcast over the trailing pair
    # would be fused by XLA into a five times slower loop)
    w = jnp.stack([phi[..., 0] + x * nrm[..., 0], phi[..., 1] + x * nrm[..., 1]], axis=-1)
    obs = two_parameter_observables(w)
    weights = jnp.asarray(weights)
    return {k: jnp.sum(val * weights, axis=-1) for k, val in obs.items()}


_gaussian_observables_jit = jax.jit(gaussian_observables, static_argnames="phase")


def gaussian_observables_on_grid(s, mean, var, *, phase: bool = False) -> dict:
    """`gaussian_observables` of numpy arrays of shape (..., T), compiled once per padded shape
    (the time axis padded to a power of two), as numpy arrays."""
    size = np.shape(s)[-1]
    width = [(0, 0)] * (np.ndim(s) - 1) + [(0, power_of_two_at_least(size, 16) - size)]
    padded = (np.pad(np.asarray(a, dtype=np.float64), width, mode="edge") for a in (s, mean, var))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite past the edge: flagged
        obs = _gaussian_observables_jit(*padded, phase=phase)
    return {k: np.asarray(v)[..., :size] for k, v in obs.items()}
