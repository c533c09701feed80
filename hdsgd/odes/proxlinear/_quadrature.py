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
from ...setups import _validate as v

#: the polar rule used for grids of settings: 86 radial x 24 angles (6 per quadrant, 516
#: nodes); it agrees with the default rule to ~1e-8 relative on the map, at a quarter of the cost.
GRID_RULE = dict(n_radial=86, n_angles=24)

#: the most nodes of a rule built here: the map holds ~20 numbers per node per setting of a
#: batch of up to 1024 settings, so more would not fit in memory (the default rule has 2064)
MAX_NODES = 10**6

#: the range of u = log(R^2/2) of the polar rule: e^u stays a normal float at -700, and at
#: 6.5 the weight e^(u - e^u) ~ 1e-286 has not underflowed
U_RANGE = (-700.0, 6.5)

#: the most points of `gauss_hermite_rule` per axis: numpy's hermegauss overflows (NaN
#: weights) past about 370
MAX_GAUSS_HERMITE = 300

#: how far the weights of a rule may sum from one (float32 weights are fine)
_WEIGHT_SUM_TOL = 1e-6


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

    Raises:
        ValueError: unless ``quadrant`` is a bool, ``n_angles`` >= 1 (a multiple of 4 with
            ``quadrant``), ``n_radial`` >= 2, the rule has at most `MAX_NODES` = 10^6 nodes,
            and -700 <= u_min < u_max <= 6.5 (`U_RANGE`).
    """
    step = 4 if v.flag("quadrant", quadrant) else 1
    n_angles = v.integer("n_angles", n_angles, low=step, high=MAX_NODES // 2)
    if n_angles % step:
        v._fail("n_angles", n_angles, "a multiple of 4 with quadrant=True (a quarter of the "
                                      "angles is kept)")
    n_radial = v.integer("n_radial", n_radial, low=2, high=MAX_NODES // (n_angles // step))
    u_min = v.real("u_min", u_min, low=U_RANGE[0], high=U_RANGE[1], high_open=True)
    u_max = v.real("u_max", u_max, low=u_min, high=U_RANGE[1], low_open=True)
    u = np.linspace(u_min, u_max, n_radial)
    h = u[1] - u[0]
    wu = h * np.exp(u - np.exp(u))
    wu[[0, -1]] *= 0.5
    theta = (np.arange(n_angles) + 0.5) * (2.0 * np.pi / n_angles)
    if quadrant:
        theta = theta[: n_angles // 4]
    radius = np.sqrt(2.0 * np.exp(u))
    g1 = (radius[:, None] * np.cos(theta)[None, :]).ravel()
    g2 = (radius[:, None] * np.sin(theta)[None, :]).ravel()
    w = np.repeat(wu / len(theta), len(theta))
    if not w.sum() > 0.0:  # u_max - u_min below the resolution of the nodes' spacing
        v._fail("u_max", u_max, f"a number in (u_min, {U_RANGE[1]}] far enough above "
                                f"u_min={u_min!r} that the {n_radial} radial nodes differ")
    return g1, g2, w / w.sum()


def gauss_hermite_rule(n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite nodes and weights in (g1, g2), flattened (`gauss_hermite_2d`).

    Accurate for smooth integrands, but not when W = 1/(1 + kappa1 z^2 + kappa2 x^2) is
    sharply peaked at the origin (large eta/delta): kept to show that (tests), not used.

    Raises:
        ValueError: unless 1 <= n <= `MAX_GAUSS_HERMITE` (300; n^2 nodes).
    """
    if isinstance(n, str):  # a number, not text that parses as one
        v._fail("n", n, f"an integer in [1, {MAX_GAUSS_HERMITE}]")
    n = v.integer("n", n, low=1, high=MAX_GAUSS_HERMITE)
    g1, g2, w = gauss_hermite_2d(n)
    g1, g2 = np.broadcast_arrays(g1, g2)
    return g1.ravel(), g2.ravel(), w.ravel()


def rule_arrays(rule=None, *, name: str = "rule", finite: bool = False):
    """(g1, g2, w) as JAX arrays (float64 inside hdsgd's scope); default `polar_rule()`.

    A rule is three equal-length 1-d arrays of numbers: nodes g1, g2 and weights w >= 0 that
    sum to one (an expectation). Non-finite entries pass unless ``finite`` (the map flags
    them as a failure, with the step); raises a ValueError naming ``name`` otherwise.
    """
    if rule is None:
        rule = polar_rule()
    try:
        parts = [np.asarray(a) for a in rule]
        ok = len(parts) == 3 and all(a.dtype.kind in "iuf" for a in parts)  # no numeric text
        g1, g2, w = (a.astype(np.float64) for a in parts)
        ok = ok and g1.ndim == 1 and g1.shape == g2.shape == w.shape and g1.size > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        v._fail(name, _Shown(rule), "(g1, g2, w), three equal-length 1-d arrays of numbers "
                                    "(nodes and weights; see polar_rule)")
    finite_w = np.isfinite(w)
    if finite and not (finite_w.all() and np.isfinite(g1).all() and np.isfinite(g2).all()):
        v._fail(name, _Shown(rule), "finite nodes and weights (no NaN or inf)")
    if np.any(w[finite_w] < 0.0) or (
            finite_w.all() and not abs(w.sum() - 1.0) <= _WEIGHT_SUM_TOL):
        v._fail(name, _Shown(rule), f"weights >= 0 that sum to one (got sum {w.sum():.6g}, "
                                    f"smallest {w.min():.6g})")
    return jnp.asarray(g1), jnp.asarray(g2), jnp.asarray(w)


class _Shown:
    """A rule in an error message on one line: its type and the shapes of its parts."""

    def __init__(self, rule):
        self.rule = rule

    def __repr__(self):
        rule = self.rule
        if isinstance(rule, (tuple, list)) and all(hasattr(a, "shape") or isinstance(a, list)
                                                   for a in rule):
            parts = ", ".join(f"<{type(a).__name__} of shape {np.shape(a)}>" for a in rule)
            return f"({parts})"
        shown = repr(rule)
        return shown if len(shown) <= 60 and "\n" not in shown else f"<{type(rule).__name__}>"


def grid_rule_arrays(rule=None, *, name: str = "rule", finite: bool = False):
    """`rule_arrays` with the grid default `GRID_RULE`."""
    return rule_arrays(polar_rule(**GRID_RULE) if rule is None else rule, name=name,
                       finite=finite)
