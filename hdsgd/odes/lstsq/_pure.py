"""Least-squares predictions as pure JAX functions of continuous fields (for tuning by gradient).

The exact recursion (docs/lstsq.md, "Deterministic equivalents") is differentiable in the step
size, the label noise and the momentum; forward-mode derivatives through its scan cost one
extra recursion per field.
"""

from __future__ import annotations

import jax.numpy as jnp

from ...api import PurePrediction, pure_prediction
from ...setups.lstsq import StreamingLeastSquares
from ._recursion import momentum_recursion_psi, recursion_psi

CONTINUOUS = ("step_size", "noise_std", "momentum")


@pure_prediction.register
def _pure(setup: StreamingLeastSquares, names, observable: str, n_steps: int, method=None,
          **options):
    if set(names) - set(CONTINUOUS) or method not in (None, "recursion") or options:
        return None
    if observable not in ("risk", "excess_risk"):
        return None
    lam = jnp.asarray(setup.eigenvalues)
    rho0 = jnp.asarray(setup.initial_error)
    heavy = "momentum" in names or setup.momentum != 0.0
    base = {"step_size": setup.step_size, "noise_std": setup.noise_std,
            "momentum": setup.momentum}

    def fn(theta):
        p = dict(base)
        p.update({n: theta[i] for i, n in enumerate(names)})
        noise_var = p["noise_std"] ** 2
        if heavy:
            psi = momentum_recursion_psi(lam, rho0, noise_var, p["step_size"],
                                         float(setup.batch_size), p["momentum"], n_steps)
        else:
            psi = recursion_psi(lam, rho0, noise_var, p["step_size"], float(setup.batch_size),
                                n_steps)
        return 0.5 * psi if observable == "risk" else 0.5 * (psi - noise_var)

    return PurePrediction(names, fn, lambda theta: float(setup.batch_size), n_steps)
