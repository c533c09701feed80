"""``hdsgd lstsq``: streaming least squares on the command line, its demo and its tuner."""

from __future__ import annotations

import math

from .. import lstsq
from ..api import predict, simulate
from ..autotune import LogRange, lowest_reached
from ..compare import compare
from ._system import CliSystem, Demo, register


def demo(out_dir, key) -> Demo:
    """Theory vs a 32-seed Monte Carlo at d = 400, power-law spectrum, B = 4."""
    setup = lstsq.StreamingLeastSquares("power_law:400:0.7", initial_error=1.0, noise_std=0.3,
                                        step_size=2.0, batch_size=4)
    theory = predict(setup, 20.0)
    mc = simulate(setup, 20.0, key=key, seeds=32, progress=False)
    agreement = compare(theory, mc, "excess_risk")
    figure = agreement.plot(out_dir / "lstsq.png", observable="excess_risk",
                            title="streaming least squares, d=400, power-law spectrum, B=4")
    a = agreement["excess_risk"]
    return Demo(f"excess risk, exact recursion vs 32-seed Monte Carlo at d=400: max gap "
                f"{a.max_sem_gap:.2f} standard errors ({a.max_rel_gap:.2%} relative)",
                agreement, figure)


def tune_space(setup: lstsq.StreamingLeastSquares) -> dict:
    """step_size on 16 log-spaced values up to 0.99 x the exact stability edge."""
    gamma_c = lstsq.critical_step_size(setup)
    return {"step_size": LogRange(1e-3 * gamma_c, 0.99 * gamma_c, 16)}


def tune_target(setup: lstsq.StreamingLeastSquares, observable: str, space: dict, run: dict
                ) -> float:
    """Halfway on a log scale between the observable at the start and the lowest value any
    candidate of ``space`` is predicted to reach within its budget (``run``): reachable by
    construction. (A fixed fraction of the start is not: with noise each step size has a
    floor, and at the default setting a tenth of the initial excess risk lies below every
    candidate's curve within t = 10.)"""
    start, lowest = lowest_reached(setup, space, observable, **run)
    return math.sqrt(start * lowest) if lowest > 0 else 0.5 * start


SYSTEM = register(CliSystem(
    name="lstsq",
    summary="one-pass mini-batch SGD (plain or heavy ball) on least squares, any spectrum",
    models={"sgd": lstsq.StreamingLeastSquares},
    default_horizon=lambda setup: 10.0,
    methods=lstsq.PREDICT_METHODS,
    method_help="the exact method that costs less: recursion, or spectral for long runs at "
                "large d (hdsgd.odes.lstsq.default_method)",
    simulate_methods=lstsq.SIMULATE_METHODS,
    demo=demo,
    observable="excess_risk",
    tune_space=tune_space,
    tune_target=tune_target,
    tune_help="step_size on 16 log-spaced values up to 0.99 x critical_step_size; target "
              "halfway (log scale) from the start to the lowest value any candidate reaches",
))
