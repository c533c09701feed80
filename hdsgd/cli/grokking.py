"""``hdsgd grokking``: grokking in a two-layer quadratic network on the command line, and its demo.

``--width none`` is infinite width (theory only); ``--centered yes|no`` trains f - f_0.
"""

from __future__ import annotations

import jax
import numpy as np

from .. import grokking
from ..api import predict, simulate
from ..autotune import LogRange
from ..compare import compare
from ._system import CliSystem, Demo, register


def demo(out_dir, key) -> Demo:
    """The reduced map against the network it reduces (same initialisation), and the
    infinite-width-initial-law prediction against an 8-seed Monte Carlo at N = 1024."""
    setup = grokking.GrokkingTwoLayer()  # D=20, P=60, N=1024, alpha=1, eps=1/2
    horizon, seeds = 400, 8
    mc = simulate(setup, horizon, key=key, seeds=seeds, progress=False)
    exact = predict(setup, horizon, init_key=jax.random.split(key, seeds)[0])
    exact_gap = float(np.max(np.abs(exact["test_loss"] - mc["test_loss"][0])))
    agreement = compare(predict(setup, horizon), mc, ("train_loss", "test_loss"))
    figure = agreement.plot(out_dir / "grokking.png", observable="test_loss",
                            title="grokking: D=20, P=60, N=1024, alpha=1, eps=1/2")
    a = agreement["test_loss"]
    return Demo(f"reduced (w_bar, M) map vs the full network from the same init: max |gap| "
                f"{exact_gap:.1e} (float32 Monte Carlo); infinite-width-init theory vs 8-seed "
                f"Monte Carlo (N=1024) test loss: max gap {a.max_sem_gap:.2f} standard errors "
                f"({a.max_rel_gap:.2%} relative)", agreement, figure)


def tune_space(setup: grokking.GrokkingTwoLayer) -> dict:
    """step_size (eta0) on 10 log-spaced values up to 0.95 x the edge of stability at
    initialisation."""
    edge = grokking.critical_step_size(setup)
    return {"step_size": LogRange(0.02 * edge, 0.95 * edge, 10)}


def tune_target(setup: grokking.GrokkingTwoLayer, observable: str, space, run) -> float:
    """Six tenths of the observable's value at initialisation (the infinite-width prediction)."""
    start = predict(setup, 1.0, times=[0.0])
    return 0.6 * float(start[observable][0])


SYSTEM = register(CliSystem(
    name="grokking",
    summary="grokking as lazy-to-rich: two-layer quadratic net, full-batch GD (Kumar et al. 2024)",
    models={"two_layer": grokking.GrokkingTwoLayer},
    default_horizon=lambda setup: 2000.0,
    methods=grokking.PREDICT_METHODS,
    method_help="reduced",
    simulate_methods=grokking.SIMULATE_METHODS,
    demo=demo,
    observable="test_loss",
    tune_space=tune_space,
    tune_target=tune_target,
    tune_objective="steps_to_target",
    tune_settle=True,
    tune_help="step_size on 10 log-spaced values up to 0.95 x critical_step_size; GD steps until "
              "the test loss stays below 0.6 x its initial value (the time to generalise)",
))
