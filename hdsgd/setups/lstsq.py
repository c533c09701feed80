"""Setup for one-pass mini-batch SGD (with optional heavy-ball momentum) on least squares.

The mathematics is in ``docs/lstsq.md``.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np
from jaxtyping import Float

from . import _validate as v
from . import spectra
from ._base import Setup
from .schedule import Schedule


class StreamingLeastSquares(Setup):
    r"""One-pass mini-batch SGD on least squares with data covariance H = diag(eigenvalues).

    Data ``x ~ N(0, H)``, labels ``y = <w*, x> + eps``, ``eps ~ N(0, noise_std^2)``. Each step
    draws ``batch_size`` fresh samples and averages their gradients (heavy ball, v_0 = 0):

        g_k = (1/B) sum_b (<w_k, x_b> - y_b) x_b,
        v_{k+1} = beta v_k - (step_size / d) g_k,     w_{k+1} = w_k + v_{k+1},

    which is plain SGD ``w_{k+1} = w_k - (step_size/d) g_k`` at ``momentum`` beta = 0
    (docs/lstsq.md, "The system").

    Time unit: ``t = steps / d`` (``Curve.time_unit == "t"``); ``Curve.samples = steps * B``.

    Observables:
        risk: R(w) = 1/2 E[(y - <w, x>)^2] = sigma^2/2 + 1/2 sum_i lambda_i <w - w*, u_i>^2
            (noise floor included; never twice the risk).
        excess_risk: R(w) - sigma^2/2.

    Attributes:
        eigenvalues: the spectrum lambda_1..lambda_d of H, all > 0; d = its length. An array,
            or text: "power_law:DIM[:EXPONENT[:SCALE]]" (lambda_i = scale i^-exponent),
            "ramp:DIM[:LOW:HIGH]", "isotropic:DIM[:VALUE]", comma-separated numbers, or a
            .npy/.txt file (see `hdsgd.spectra`).
        initial_error: rho_i(0) = <w_0 - w*, u_i>^2 per mode (length d, >= 0), or a scalar
            ||w_0 - w*||^2 spread evenly over the d modes.
        noise_std: label-noise standard deviation sigma >= 0.
        step_size: gamma > 0; each update uses gamma / d. A `Schedule` gives step k its own
            gamma(k) (piecewise constant; Python API only, docs/lstsq.md, "Schedules").
        batch_size: B >= 1, fresh samples per step.
        momentum: heavy-ball beta in [0, 1) (0: plain SGD).

    References: docs/lstsq.md; Bordelon & Pehlevan (ICLR 2022); Paquette, Paquette, Adlam &
    Pennington (2022); Lee, Cheng, Paquette & Paquette (NeurIPS 2022).
    """

    system: ClassVar[str] = "lstsq"
    grid_checks: ClassVar[dict] = {
        "noise_std": functools.partial(v.nonnegative, "noise_std"),
        "step_size": functools.partial(v.positive, "step_size"),  # a number (a Schedule: below)
        "batch_size": functools.partial(v.integer, "batch_size", low=1),
        "momentum": functools.partial(v.real, "momentum", low=0.0, high=1.0, high_open=True),
    }
    time_unit: ClassVar[str] = "t"
    time_label: ClassVar[str] = "t = steps / d"

    eigenvalues: Float[np.ndarray, " d"]
    initial_error: Float[np.ndarray, " d"]
    noise_std: float
    step_size: float | Schedule
    batch_size: int
    momentum: float

    def __init__(self, eigenvalues: Float[np.ndarray, " d"] | str = "power_law:500:1.0",
                 initial_error: float | Float[np.ndarray, " d"] = 1.0, noise_std: float = 0.1,
                 step_size: float | Schedule = 1.0, batch_size: int = 1, momentum: float = 0.0):
        if isinstance(eigenvalues, str):
            eigenvalues = spectra.parse(eigenvalues)
        lam = v.real_array("eigenvalues", eigenvalues, low=0.0, low_open=True)
        d = lam.shape[0]
        if np.ndim(initial_error) == 0:
            total = v.nonnegative("initial_error", initial_error)
            rho0 = np.full(d, total / d)
        else:
            rho0 = v.real_array("initial_error", initial_error, low=0.0)
            if rho0.shape != lam.shape:
                v._fail("initial_error", v._short(initial_error),
                        f"a scalar or shape {lam.shape} (one value per eigenvalue), got "
                        f"{rho0.shape}")
        self.eigenvalues = lam
        self.initial_error = rho0
        check = self.grid_checks
        self.noise_std = check["noise_std"](noise_std)
        self.step_size = (step_size if isinstance(step_size, Schedule)
                          else check["step_size"](step_size))
        self.batch_size = check["batch_size"](batch_size)
        self.momentum = check["momentum"](momentum)

    @property
    def dim(self) -> int:
        return int(self.eigenvalues.shape[0])

    @property
    def scheduled(self) -> bool:
        """True when ``step_size`` is a `Schedule`."""
        return isinstance(self.step_size, Schedule)

    def step_sizes(self, n_steps: int) -> Float[np.ndarray, " n"]:
        """gamma(k) for k = 0..n_steps-1 (constant, or the schedule's values)."""
        if self.scheduled:
            return self.step_size.values(n_steps)
        return np.full(int(n_steps), self.step_size)

    @property
    def noise_var(self) -> float:
        """sigma^2."""
        return self.noise_std**2

    @property
    def initial_risk(self) -> float:
        """R(w_0) = sigma^2/2 + 1/2 sum_i lambda_i rho_i(0)."""
        return 0.5 * self.noise_std**2 + 0.5 * float(np.dot(self.eigenvalues, self.initial_error))

    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``), with ``dim``."""
        return {**super().fields(), "dim": self.dim}
