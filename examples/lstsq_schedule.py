"""A tuned step-size schedule against the best constant step, for streaming least squares.

Both are chosen from the prediction alone: the best constant step by `hdsgd.tune`, the
8-piece schedule by `hdsgd.tune_schedule` (gradient through the exact recursion, every piece
below the exact stability edge gamma_c). Monte Carlo then checks both: the excess risk after
the step budget, with its standard error (docs/lstsq.md, "Schedules").

Left: excess risk against steps (theory lines, Monte Carlo means with +-2 s.e. bands).
Right: the two step sizes against steps, with gamma_c.

Usage: python examples/lstsq_schedule.py [--dim 100] [--budget 30] [--seeds 64] [--out figures/]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import hdsgd  # noqa: E402
from hdsgd.autotune import bootstrap_objective  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=100, help="dimension d (default 100)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="step budget in units of d (default 30: 30 d steps)")
    parser.add_argument("--noise-std", type=float, default=0.5, help="label noise (default 0.5)")
    parser.add_argument("--pieces", type=int, default=8, help="schedule pieces (default 8)")
    parser.add_argument("--seeds", type=int, default=64, help="Monte Carlo seeds (default 64)")
    parser.add_argument("--out", type=Path, default=Path("figures"),
                        help="output folder (default figures/)")
    args = parser.parse_args(argv)

    setup = hdsgd.StreamingLeastSquares(f"power_law:{args.dim}:1.0", initial_error=1.0,
                                        noise_std=args.noise_std, step_size=1.0)
    n = int(round(args.budget * args.dim))
    horizon = n / args.dim
    objective = hdsgd.value_at_budget(steps=n, observable="excess_risk")
    gamma_c = hdsgd.lstsq.critical_step_size(setup)
    constant = hdsgd.tune(setup, {"step_size": hdsgd.LogRange(1e-3 * gamma_c, 0.99 * gamma_c, 12)},
                          objective, horizon=horizon)
    tuned = hdsgd.tune_schedule(setup, objective, steps=n, pieces=args.pieces)
    print(f"d = {args.dim}, {n} steps, gamma_c = {gamma_c:.4g}")
    print(f"best constant step {constant.setup.step_size:.4g}; tuned {tuned.setup.step_size}")

    steps = np.unique(np.round(np.geomspace(1, n, 120)).astype(int))
    times = np.concatenate([[0], steps]) / args.dim
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    key = jax.random.key(0)
    for i, (name, s, color) in enumerate((("best constant", constant.setup, "tab:blue"),
                                          ("tuned schedule", tuned.setup, "tab:red"))):
        theory = hdsgd.predict(s, horizon, times=times)
        mc = hdsgd.simulate(s, horizon, times=times, key=jax.random.fold_in(key, i),
                            seeds=args.seeds, progress=False)
        value, sem = bootstrap_objective(objective, mc)
        print(f"{name:>15}: excess risk after {n} steps: predicted {objective(theory):.5g}, "
              f"Monte Carlo {value:.5g} +- {sem:.2g} ({args.seeds} seeds)")
        x = theory.time * args.dim
        y = mc.observables["excess_risk"]
        mean, se = y.mean(0), y.std(0, ddof=1) / np.sqrt(y.shape[0])
        ax.plot(x, theory.observables["excess_risk"], color=color, lw=1.6,
                label=f"{name}: theory ({objective(theory):.4g} at the budget)")
        ax.fill_between(x, mean - 2 * se, mean + 2 * se, color=color, alpha=0.25,
                        label=f"{name}: Monte Carlo +- 2 s.e. ({value:.4g} +- {sem:.2g})")
        k = np.arange(n)
        bx.plot(k, s.step_sizes(n), color=color, lw=1.6, label=name)
    bx.axhline(gamma_c, color="gray", ls="--", label=f"critical step size gamma_c = {gamma_c:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("steps")
    ax.set_ylabel("excess risk")
    ax.set_title(f"power-law spectrum, d = {args.dim}, noise_std = {args.noise_std}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    bx.set_yscale("log")
    bx.set_xlabel("step k")
    bx.set_ylabel("step size gamma(k) (each update uses gamma / d)")
    bx.set_title("the step sizes", fontsize=10)
    bx.grid(True, which="both", alpha=0.25)
    bx.legend(fontsize=7)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "lstsq_schedule.png"
    fig.savefig(path, dpi=130)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
