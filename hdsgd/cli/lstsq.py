"""``hdsgd lstsq``: streaming least squares on the command line, its demo and its tuner."""

from __future__ import annotations

import jax

from .. import lstsq
from ..api import predict, simulate
from ..autotune import LogRange, samples_to_target, steps_to_target, tune, value_at_budget
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


def cli_tune(setup: lstsq.StreamingLeastSquares, args) -> str:
    """``hdsgd lstsq tune``: the step size (up to the exact threshold) for the objective."""
    horizon = args.horizon if args.horizon is not None else 10.0
    observable = args.observable or "excess_risk"
    if args.objective == "value_at_budget":
        if args.budget is None:
            raise ValueError("budget=None is invalid; allowed: a positive sample budget (--budget)")
        objective = value_at_budget(samples=args.budget, observable=observable)
    else:
        target = args.target if args.target is not None else 0.1 * (setup.initial_risk - 0.5 * setup.noise_var)
        make = samples_to_target if args.objective == "samples_to_target" else steps_to_target
        objective = make(target, observable)
    gamma_c = lstsq.critical_step_size(setup)
    tuned = tune(setup, {"step_size": LogRange(1e-3 * gamma_c, 0.99 * gamma_c, 16)}, objective,
                 horizon=horizon, method=args.method)
    lines = [f"# tuning step_size for {objective.description} (critical step size {gamma_c:.6g})",
             tuned.table_str(),
             f"# chosen step_size = {tuned.setup.step_size:.6g}: predicted {tuned.objective_value:.6g}"]
    if args.seeds > 0 and tuned.objective_value != float("inf"):
        check = tuned.verify(jax.random.key(args.seed), seeds=args.seeds)
        lines.append(f"# Monte Carlo ({args.seeds} seeds) at the chosen step: {check.objective_value:.6g}")
    return "\n".join(lines)


SYSTEM = register(CliSystem(
    name="lstsq",
    summary="one-pass mini-batch SGD (plain or heavy ball) on least squares, any spectrum",
    models={"sgd": lstsq.StreamingLeastSquares},
    default_horizon=lambda setup: 10.0,
    methods=lstsq.PREDICT_METHODS,
    simulate_methods=lstsq.SIMULATE_METHODS,
    demo=demo,
    observable="excess_risk",
    tune=cli_tune,
))
