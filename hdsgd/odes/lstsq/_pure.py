"""Least-squares predictions as pure JAX functions of continuous fields (for tuning by gradient).

The exact recursion (docs/lstsq.md, "Deterministic equivalents") is differentiable in the step
size, the label noise and the momentum; forward-mode derivatives through its scan cost one
extra recursion per field. With a step-size `Schedule` and ``names == ("step_size",)``, theta
holds the P pieces' step sizes gamma_0..gamma_{P-1}, step k uses gamma_{p(k)}
(docs/lstsq.md, "Schedules"), and each entry must stay below the exact edge gamma_c
(``PurePrediction.upper``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ...api import PurePrediction, pure_prediction
from ...setups.lstsq import StreamingLeastSquares
from ._recursion import momentum_recursion_psi, recursion_psi, scheduled_recursion_psi
from ._stability import critical_step_size

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
    if setup.scheduled:
        return _pure_schedule(setup, names, observable, n_steps, lam, rho0)
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

    gamma_c = critical_step_size(setup)
    upper = [gamma_c if n == "step_size" else (1.0 if n == "momentum" else float("inf"))
             for n in names]
    return PurePrediction(names, fn, lambda theta: float(setup.batch_size), n_steps, upper)


def _pure_schedule(setup, names, observable, n_steps, lam, rho0):
    """theta = the schedule's piece step sizes: psi from `scheduled_recursion_psi` with
    gamma(k) = theta[p(k)]."""
    if tuple(names) != ("step_size",):
        return None
    index = jnp.asarray(setup.step_size.piece_index(n_steps))
    noise_var = setup.noise_var
    beta = setup.momentum

    def fn(theta):
        psi = scheduled_recursion_psi(lam, rho0, noise_var, theta[index],
                                      float(setup.batch_size), beta)
        return 0.5 * psi if observable == "risk" else 0.5 * (psi - noise_var)

    upper = np.full(setup.step_size.pieces, critical_step_size(setup))
    return PurePrediction(names, fn, lambda theta: float(setup.batch_size), n_steps, upper)
