"""Quadrature rules for the (g1, g2) expectations of the map and the ODE.

docs/proxlinear.md, "Gaussian expectations". Every expectation of the one-step map is an
integral against g = (g1, g2) ~ N(0, I_2) of a function whose weight
W = 1 / (1 + kappa1 z^2 + kappa2 x^2) is sharply peaked at g = 0 when kappa is large
(eta / delta >~ 10). The polar rule resolves that peak; tensor Gauss-Hermite does not
(`gauss_hermite_rule`, kept for the test that shows it).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..._numerics import gauss_hermite_2d

#: the polar rule used for grids of settings: 86 radial x 24 angles (6 per quadrant, 516
#: nodes); it agrees with the default rule to ~1e-8 relative on the map, at a quarter of the cost.
GRID_RULE = dict(n_radial=86, n_angles=24)


def polar_rule(n_radial: int = 172, n_angles: int = 48, u_min: float = -22.0,
               u_max: float = 3.6, quadrant: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes (g1, g2) and weights of the polar rule for E[f(g1, g2)], g ~ N(0, I_2).

    g = R (cos theta, sin theta) with R^2/2 = v ~ Exp(1); v = e^u, trapezoid in u on
    [u_min, u_max] (default step 0.15) and ``n_angles`` equally spaced (midpoint) angles on
    the circle. The weights are normalised to sum to one (docs/proxlinear.md, "Gaussian
    expectations").

    With ``quadrant=True`` only the angles in (0, pi/2) are kept (n_angles/4 of them, each
    with four times the weight). This is exact for the map: after the exact h-expectations
    every integrand is even in g1 and in g2 separately ((g1, h1) -> (-g1, -h1) flips p, q and
    x together), and the midpoint angles are symmetric under both reflections.
    """
    u = np.linspace(u_min, u_max, n_radial)
    h = u[1] - u[0]
    wu = h * np.exp(u - np.exp(u))
    wu[[0, -1]] *= 0.5
    theta = (np.arange(n_angles) + 0.5) * (2.0 * np.pi / n_angles)
    if quadrant:
        if n_angles % 4:
            raise ValueError(f"n_angles={n_angles} is invalid with quadrant=True; allowed: a "
                             "multiple of 4")
        theta = theta[: n_angles // 4]
    radius = np.sqrt(2.0 * np.exp(u))
    g1 = (radius[:, None] * np.cos(theta)[None, :]).ravel()
    g2 = (radius[:, None] * np.sin(theta)[None, :]).ravel()
    w = np.repeat(wu / len(theta), len(theta))
    return g1, g2, w / w.sum()


def gauss_hermite_rule(n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite nodes and weights in (g1, g2), flattened (`gauss_hermite_2d`).

    Accurate for smooth integrands, but not when W = 1/(1 + kappa1 z^2 + kappa2 x^2) is
    sharply peaked at the origin (large eta/delta): kept to show that (tests), not used.
    """
    g1, g2, w = gauss_hermite_2d(n)
    g1, g2 = np.broadcast_arrays(g1, g2)
    return g1.ravel(), g2.ravel(), w.ravel()


def rule_arrays(rule=None):
    """(g1, g2, w) as JAX arrays (float64 inside hdsgd's scope); default `polar_rule()`."""
    if rule is None:
        rule = polar_rule()
    try:
        g1, g2, w = (np.asarray(a, dtype=np.float64) for a in rule)
        # (non-finite entries pass: the map flags them as a failure, with the step)
        ok = g1.ndim == 1 and g1.shape == g2.shape == w.shape and g1.size > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"rule={rule!r} is invalid; allowed: (g1, g2, w), three equal-length "
                         "1-d arrays (nodes and weights; see polar_rule)")
    return jnp.asarray(g1), jnp.asarray(g2), jnp.asarray(w)


def grid_rule_arrays(rule=None):
    """`rule_arrays` with the grid default `GRID_RULE`."""
    return rule_arrays(polar_rule(**GRID_RULE) if rule is None else rule)
