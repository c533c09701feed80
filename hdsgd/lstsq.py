"""Streaming least squares: one-pass mini-batch SGD (plain or heavy ball) on a Gaussian linear
model with any covariance spectrum (docs/lstsq.md).

    setup = hdsgd.lstsq.StreamingLeastSquares("power_law:1000:1.0", step_size=2.0, batch_size=4)
    hdsgd.predict(setup, horizon=20.0)             # exact (closed form or recursion, the cheaper)
    hdsgd.lstsq.critical_step_size(setup)          # the exact stability edge gamma_c
    hdsgd.lstsq.spectral_risk(lam, rho0, s2, gamma, B, beta, steps)   # pure JAX, differentiable
"""

from .montecarlo.lstsq import METHODS as SIMULATE_METHODS
from .odes.lstsq import METHODS as PREDICT_METHODS
from .odes.lstsq import (
    accelerated_critical_batch_size,
    accelerated_hyperparameters,
    asymptotic_rate,
    critical_batch_size,
    critical_step_size,
    effective_step_size,
    feedback,
    homogenized_critical_step_size,
    homogenized_kernel_mass,
    isotropic_risk,
    kernel_mass,
    limit_excess_risk,
    limit_risk,
    recursion_matrix,
    spectral_risk,
)
from .setups import spectra
from .setups.lstsq import StreamingLeastSquares

__all__ = [
    "PREDICT_METHODS",
    "SIMULATE_METHODS",
    "StreamingLeastSquares",
    "accelerated_critical_batch_size",
    "accelerated_hyperparameters",
    "asymptotic_rate",
    "critical_batch_size",
    "critical_step_size",
    "effective_step_size",
    "feedback",
    "homogenized_critical_step_size",
    "homogenized_kernel_mass",
    "isotropic_risk",
    "kernel_mass",
    "limit_excess_risk",
    "limit_risk",
    "recursion_matrix",
    "spectra",
    "spectral_risk",
]
