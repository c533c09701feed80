"""Small numerical pieces every system shares: Gaussian quadrature, first crossings, sizes
rounded to powers of two (so that nearby shapes share one compilation), sticky masks.

Pure numpy; imported by theory and Monte Carlo alike (it sits below both).
"""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.lru_cache(maxsize=32)
def _hermegauss(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    weights = weights / math.sqrt(2.0 * math.pi)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


def gauss_hermite(n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of n-point Gauss-Hermite quadrature for g ~ N(0, 1).

    sum_k w_k f(x_k) = E[f(g)] exactly for polynomials f of degree <= 2n - 1; the weights sum
    to one. Built on numpy's ``hermegauss`` (probabilists' Hermite), cached, read-only.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n={n!r} is invalid; allowed: an integer >= 1")
    return _hermegauss(int(n))


def gauss_hermite_2d(n: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tensor rule for (u, xi) ~ N(0, I_2): nodes (n, 1), (1, n) and weights (n, n)."""
    nodes, weights = gauss_hermite(n)
    return nodes[:, None], nodes[None, :], np.outer(weights, weights)


def power_of_two_at_least(n: int, minimum: int = 1) -> int:
    """The smallest power of two >= max(n, minimum).

    Used to pad array lengths (output grids, solver step caps, batches of settings) so that
    calls of nearby sizes share one compiled program.
    """
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def first_crossing(x: np.ndarray, y: np.ndarray, level: float, *, below: bool = True,
                   log: bool = True) -> float:
    """The smallest x at which y reaches ``level`` (y <= level if ``below``, else y >= level).

    Between the two grid points around the first crossing, interpolates linearly in
    (x, log y) when ``log`` and both values and the level are positive (the right reading of a
    geometrically decaying curve), else linearly in (x, y). Returns ``x[0]`` when the level is
    met at the first point and ``inf`` when it is never met. Non-finite y never counts as met.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(y)
    met = finite & ((y <= level) if below else (y >= level))
    hits = np.flatnonzero(met)
    if hits.size == 0:
        return math.inf
    i = int(hits[0])
    if i == 0:
        return float(x[0])
    y0, y1 = y[i - 1], y[i]
    if not np.isfinite(y0):
        return float(x[i])
    if log and y0 > 0 and y1 > 0 and level > 0:
        frac = (math.log(y0) - math.log(level)) / (math.log(y0) - math.log(y1))
    else:
        frac = (y0 - level) / (y0 - y1) if y0 != y1 else 1.0
    frac = min(max(frac, 0.0), 1.0)
    return float(x[i - 1] + frac * (x[i] - x[i - 1]))


def sticky(mask: np.ndarray, axis: int = -1) -> np.ndarray:
    """True from the first True along ``axis`` onwards (a run that blew up stays blown up)."""
    return np.maximum.accumulate(np.asarray(mask, dtype=bool), axis=axis)


def exceeds(values: np.ndarray, reference, factor: float = 1e12) -> np.ndarray:
    """True where ``|values|`` is non-finite or exceeds ``factor`` times ``|reference|``
    (broadcast against the leading axes; a zero reference counts as the smallest float).

    The usual blow-up criterion of a run or a prediction, before `sticky` makes it permanent.
    """
    values = np.asarray(values, dtype=np.float64)
    scale = np.maximum(np.abs(np.asarray(reference, dtype=np.float64)), np.finfo(np.float64).tiny)
    if scale.ndim and scale.ndim < values.ndim:
        scale = scale.reshape(scale.shape + (1,) * (values.ndim - scale.ndim))
    with np.errstate(invalid="ignore", over="ignore"):
        return ~np.isfinite(values) | (np.abs(values) > factor * scale)
