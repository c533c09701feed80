"""Critical batch size of streaming least-squares SGD: steps to a target against batch size.

For each batch size B, the step size is tuned from the prediction alone (fewest steps to
reach the target excess risk, below the exact stability threshold), and the steps needed
are read off the prediction and off a Monte Carlo run at the tuned step. Below
B_crit = tr H / lambda_max the admissible step grows like B and the steps fall like 1/B;
above it the curvature limit 2d/lambda_max binds and more batch is wasted (docs/lstsq.md,
"Stability and batch size"; Lee, Cheng, Paquette & Paquette 2022).

Usage: python examples/lstsq_critical_batch.py [--dim 500] [--out figures/]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

import hdsgd
from hdsgd import spectra


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=500, help="dimension d (default 500)")
    parser.add_argument("--exponent", type=float, default=0.5, help="power-law exponent of H (default 0.5)")
    parser.add_argument("--target", type=float, default=0.1,
                        help="target excess risk, as a fraction of the initial one (default 0.1)")
    parser.add_argument("--seeds", type=int, default=8, help="Monte Carlo seeds per batch size (default 8)")
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default figures/)")
    args = parser.parse_args(argv)

    lam = spectra.power_law(args.dim, args.exponent)
    base = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.0, step_size=1.0, batch_size=1)
    target = args.target * base.initial_risk
    b_crit = hdsgd.lstsq.critical_batch_size(base)
    batches = np.unique(np.round(np.geomspace(1, 32 * b_crit, 12)).astype(int))
    objective = hdsgd.steps_to_target(target, "excess_risk")
    print(f"d={args.dim}, tr H / lambda_max = B_crit = {b_crit:.1f}; target excess risk {target:.4g}")
    print(f"{'B':>6} {'gamma':>10} {'gamma/gamma_c':>14} {'steps (theory)':>15} {'steps (MC)':>11}")
    rows = []
    key = jax.random.key(0)
    for i, batch in enumerate(batches):
        setup = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.0, step_size=1.0,
                                            batch_size=int(batch))
        gamma_c = hdsgd.lstsq.critical_step_size(setup)
        # Generous horizon: the slowest useful schedule at this batch size.
        horizon = 40.0 * b_crit / min(batch, b_crit)
        tuned = hdsgd.tune(setup, {"step_size": hdsgd.LogRange(0.02 * gamma_c, 0.95 * gamma_c, 10)},
                           objective, horizon=horizon)
        steps_theory = tuned.objective_value
        mc_steps = int(np.ceil(min(horizon * args.dim, 3.0 * steps_theory)))
        steps = np.unique(np.round(np.linspace(0, mc_steps, 200)).astype(int))
        mc = hdsgd.simulate(tuned.setup, mc_steps / args.dim, key=jax.random.fold_in(key, i),
                            seeds=args.seeds, times=steps / args.dim, progress=False)
        steps_mc = objective(mc)
        rows.append((batch, tuned.setup.step_size, tuned.setup.step_size / gamma_c, steps_theory, steps_mc))
        print(f"{batch:>6d} {rows[-1][1]:>10.4g} {rows[-1][2]:>14.3f} {steps_theory:>15.1f} {steps_mc:>11.1f}")

    rows = np.array(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].loglog(rows[:, 0], rows[:, 3], "-", lw=2, label="theory (exact recursion, tuned step)")
    ax[0].loglog(rows[:, 0], rows[:, 4], "o", mfc="none", label=f"Monte Carlo ({args.seeds} seeds)")
    ax[0].loglog(rows[:, 0], rows[0, 3] / rows[:, 0], ":", color="gray", label="linear scaling 1/B")
    ax[0].axvline(b_crit, color="red", ls="--", lw=1, label=r"$B_{crit} = \mathrm{tr}\,H/\lambda_{max}$")
    ax[0].set_xlabel("batch size B")
    ax[0].set_ylabel(f"steps to excess risk {target:.3g}")
    ax[0].legend(fontsize=8)
    ax[0].grid(True, which="both", alpha=0.3)
    ax[1].loglog(rows[:, 0], rows[:, 3] * rows[:, 0], "-", lw=2, label="theory")
    ax[1].loglog(rows[:, 0], rows[:, 4] * rows[:, 0], "o", mfc="none", label="Monte Carlo")
    ax[1].axvline(b_crit, color="red", ls="--", lw=1)
    ax[1].set_xlabel("batch size B")
    ax[1].set_ylabel("samples to target = steps x B")
    ax[1].legend(fontsize=8)
    ax[1].grid(True, which="both", alpha=0.3)
    fig.suptitle(f"streaming least squares, d={args.dim}, power-law spectrum (exponent {args.exponent})")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "lstsq_critical_batch.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")
    return rows


if __name__ == "__main__":
    main()
