"""``hdsgd momentum``: label-noise SGD with heavy-ball momentum on the command line, and its demo.

Three models (``--model``): ``two_parameter`` (`TwoParameterMomentum`, the default),
``inner_product`` (`InnerProductMomentum`) and ``matrix_sensing`` (`MatrixSensingMomentum`);
the options are the union of their fields, each checked against the chosen model.
"""

from __future__ import annotations

from .. import momentum
from ..api import predict, simulate
from ..autotune import LogRange
from ..compare import compare
from ._system import CliSystem, Demo, register

DEMO_TIMES = (0, 10, 30, 100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 1800, 2100, 2400,
              3000)


def demo(out_dir, key) -> Demo:
    """The reduced SDE (500 paths) against a 500-seed Monte Carlo on w_1 w_2 at the critical
    scaling 1 - beta = 0.711 eta^(2/3), eta = 1e-3: the manifold coordinate over 3000 steps."""
    setup = momentum.TwoParameterMomentum(step_size=1e-3, exponent=2.0 / 3.0, constant=0.711,
                                          label_noise=0.3, initial_coordinate=1.0)
    theory = predict(setup, 3000, times=DEMO_TIMES, method="sde", paths=500)
    mc = simulate(setup, 3000, key=key, seeds=500, times=DEMO_TIMES, progress=False)
    agreement = compare(theory, mc, "manifold_coordinate", t_min=1)
    figure = agreement.plot(out_dir / "momentum.png", observable="manifold_coordinate",
                            title="label-noise SGD + momentum, w1*w2 model, "
                                  "1-beta = 0.711 eta^(2/3)")
    a = agreement["manifold_coordinate"]
    return Demo(f"manifold coordinate, reduced SDE (500 paths) vs 500-seed Monte Carlo at "
                f"eta=1e-3, 1-beta=0.711 eta^(2/3): max gap {a.max_sem_gap:.2f} standard errors "
                f"({a.max_abs_gap:.3g} absolute)", agreement, figure)


def tune_space(setup) -> dict:
    """damping 1 - beta on 12 log-spaced values in [1e-3, 0.5] (at the given step size)."""
    return {"damping": LogRange(1e-3, 0.5, 12)}


def tune_target(setup, observable: str, space, run) -> float:
    """A fifth of the observable's value at the start."""
    start = predict(setup, 1.0, times=[0.0])
    return 0.2 * float(start[observable][0])


SYSTEM = register(CliSystem(
    name="momentum",
    summary="label-noise SGD with heavy-ball momentum near a manifold of minimisers",
    models={cls.model: cls for cls in (momentum.TwoParameterMomentum,
                                       momentum.InnerProductMomentum,
                                       momentum.MatrixSensingMomentum)},
    default_horizon=lambda setup: 3000.0,
    methods=momentum.PREDICT_METHODS,
    method_help=", ".join(f"{momentum.MODEL_METHODS[cls][0]} ({cls.model})"
                          for cls in momentum.MODEL_METHODS),
    demo=demo,
    observable="manifold_coordinate",
    tune_space=tune_space,
    tune_target=tune_target,
    tune_objective="steps_to_target",
    tune_settle=True,
    # a run costs ~1 us a step, and the train loss is a square: its seed mean is skewed, and at
    # 16 seeds the standard error is often far too small (the default compare read a correct
    # recursion as 7.5 standard errors off; at 1024 seeds the gap is 3.0)
    default_seeds=256,
    tune_help="damping 1 - beta (momentum = 1 - damping) on 12 log-spaced values in [1e-3, 0.5] at "
              "the given step_size; steps until the observable stays below a fifth of its start",
))
