"""Eigenvalue spectra for data covariances H (helpers for `StreamingLeastSquares`).

All return a float64 array of length ``dim``, sorted in decreasing order; ``dim`` is an integer
in [1, `MAX_DIM` = 2^26]: 67 M eigenvalues (512 MiB) is beyond any d a prediction runs at, and
2^31 - 1 would allocate 16 GiB.
"""

from __future__ import annotations

import numpy as np

from . import _validate as v

#: the most eigenvalues a helper makes
MAX_DIM = 1 << 26


def isotropic(dim: int, value: float = 1.0) -> np.ndarray:
    """H = value * I: every eigenvalue equals ``value``."""
    dim = v.integer("dim", dim, high=MAX_DIM)
    value = v.positive("value", value)
    return np.full(dim, value)


def power_law(dim: int, exponent: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """lambda_i = scale * i^(-exponent), i = 1..dim (power-law features; lambda_1 = scale).

    Its spectral measure is not dimension-free; for a family with a limit as dim grows use
    `ramp` or `from_density_quantiles`.
    """
    dim = v.integer("dim", dim, high=MAX_DIM)
    exponent = v.nonnegative("exponent", exponent)
    scale = v.positive("scale", scale)
    return scale * np.arange(1, dim + 1, dtype=np.float64) ** (-exponent)


def ramp(dim: int, low: float = 0.5, high: float = 1.5) -> np.ndarray:
    """Eigenvalues evenly spaced from ``high`` down to ``low`` (the uniform law on [low, high]).

    Its spectral measure converges as dim grows, so curves have a dimension-free limit.
    """
    dim = v.integer("dim", dim, high=MAX_DIM)
    low = v.positive("low", low)
    high = v.real("high", high, low=low)
    return np.linspace(high, low, dim)


def from_density_quantiles(dim: int, quantile_function) -> np.ndarray:
    """lambda_i = Q((i - 1/2) / dim) for a quantile function Q of the spectral law."""
    dim = v.integer("dim", dim, high=MAX_DIM)
    if not callable(quantile_function):
        v._fail("quantile_function", quantile_function, "a function of an array of levels in "
                "(0, 1)")
    u = (np.arange(dim, dtype=np.float64) + 0.5) / dim
    lam = np.asarray(quantile_function(u), dtype=np.float64)
    return np.sort(v.real_array("eigenvalues", lam, low=0.0, low_open=True))[::-1]


SPECTRA = {"isotropic": isotropic, "power_law": power_law, "ramp": ramp}


def parse(text: str) -> np.ndarray:
    """A spectrum from text: ``"NAME:DIM[:ARG...]"`` with NAME one of ``isotropic`` (value),
    ``power_law`` (exponent, scale) or ``ramp`` (low, high), e.g. ``"power_law:500:1.0"`` or
    ``"ramp:400:0.25:1.75"``; or comma-separated eigenvalues ``"2.0,1.0,0.5"``; or the path of a
    ``.npy`` or text file holding them."""
    if not isinstance(text, str) or not text.strip():
        v._fail("eigenvalues", text, "a spectrum 'NAME:DIM[:ARGS]' (NAME in isotropic, power_law, "
                "ramp), comma-separated numbers, or a .npy/.txt file")
    name, *args = [p.strip() for p in text.strip().split(":")]
    if name in SPECTRA:
        try:
            dim = int(args[0])
            numbers = [float(a) for a in args[1:]]
        except (IndexError, ValueError):
            v._fail("eigenvalues", text, f"'{name}:DIM[:ARGS]' with an integer DIM and numeric ARGS")
        most = SPECTRA[name].__code__.co_argcount - 1
        if len(numbers) > most:
            v._fail("eigenvalues", text, f"'{name}:DIM' with at most {most} more number(s) "
                    f"({', '.join(SPECTRA[name].__code__.co_varnames[1:most + 1])})")
        return SPECTRA[name](dim, *numbers)
    from pathlib import Path

    path = Path(text).expanduser()
    if path.suffix in (".npy", ".txt", ".csv") and path.is_file():
        values = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=None if path.suffix == ".txt" else ",")
        return v.real_array("eigenvalues", np.ravel(values), low=0.0, low_open=True)
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        v._fail("eigenvalues", text, "a spectrum 'NAME:DIM[:ARGS]' (NAME in isotropic, power_law, "
                "ramp), comma-separated numbers, or a .npy/.txt/.csv file")
    return v.real_array("eigenvalues", values, low=0.0, low_open=True)
