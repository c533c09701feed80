"""Eigenvalue spectra for data covariances H (helpers for `StreamingLeastSquares`).

All return a float64 array of length ``dim``, sorted in decreasing order.
"""

from __future__ import annotations

import numpy as np

from .setups import _validate as v


def isotropic(dim: int, value: float = 1.0) -> np.ndarray:
    """H = value * I: every eigenvalue equals ``value``."""
    dim = v.integer("dim", dim)
    value = v.positive("value", value)
    return np.full(dim, value)


def power_law(dim: int, exponent: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """lambda_i = scale * i^(-exponent), i = 1..dim (power-law features; lambda_1 = scale).

    Its spectral measure is not dimension-free; for a family with a limit as dim grows use
    `ramp` or `from_density_quantiles`.
    """
    dim = v.integer("dim", dim)
    exponent = v.nonnegative("exponent", exponent)
    scale = v.positive("scale", scale)
    return scale * np.arange(1, dim + 1, dtype=np.float64) ** (-exponent)


def ramp(dim: int, low: float = 0.5, high: float = 1.5) -> np.ndarray:
    """Eigenvalues evenly spaced from ``high`` down to ``low`` (the uniform law on [low, high]).

    Its spectral measure converges as dim grows, so curves have a dimension-free limit.
    """
    dim = v.integer("dim", dim)
    low = v.positive("low", low)
    high = v.real("high", high, low=low)
    return np.linspace(high, low, dim)


def from_density_quantiles(dim: int, quantile_function) -> np.ndarray:
    """lambda_i = Q((i - 1/2) / dim) for a quantile function Q of the spectral law."""
    dim = v.integer("dim", dim)
    u = (np.arange(dim, dtype=np.float64) + 0.5) / dim
    lam = np.asarray(quantile_function(u), dtype=np.float64)
    return np.sort(v.real_array("eigenvalues", lam, low=0.0, low_open=True))[::-1]
