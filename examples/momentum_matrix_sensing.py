"""The 1 - beta ~ eta^(2/3) law on overparametrised matrix sensing (spec momentum.md §6c;
Cowsik, Can & Glorioso, arXiv:2210.16400): a model with many normal modes, where the
deterministic moment closure (no energy noise) should hold.

U in R^{8x8}, X* of rank 1, n = 20 Gaussian measurements, full-batch label noise; the run
starts at an interpolating U_0 far from X* and label noise drifts it toward the flattest
interpolant (smallest tr Hess, ~ nuclear norm), i.e. toward X*. T = the step from which the
relative distance ||U U^T - X*||_F / ||X*||_F stays below ``--target``.

Panels: (1) T against 1 - beta at several eta, from the closure (lines) with Monte Carlo points
at the best grid point; (2) the best 1 - beta against eta with the fitted exponent (expected
2/3) and T at the best against eta; (3) one trajectory, closure vs Monte Carlo, at the best.

Measured with the defaults (see docs/momentum.md): the closure's T agrees with the Monte Carlo's
within a few standard errors, but T keeps falling as 1 - beta decreases until the distance no
longer settles below the target (its fluctuation floor ~ sqrt(eta delta^2 / (1 - beta)), or
the overshoot), so the best 1 - beta sits at that edge and the fitted exponent is not the
timescale-balance 2/3 of the two-parameter model. Reproducing the 2/3 law here needs a target
well above the floor over the whole range (smaller delta_0, longer runs): not done.

    python examples/momentum_matrix_sensing.py --out figures
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import hdsgd  # noqa: E402
from hdsgd.odes import momentum as th  # noqa: E402
from hdsgd.setups.momentum import settling_time  # noqa: E402


def mc_time(setup, target, t_guess, *, seeds, key):
    """Monte Carlo T (settling of the seed-mean distance) and the Monte Carlo curve."""
    horizon = float(np.ceil(2.0 * t_guess))
    times = np.unique(np.round(np.linspace(0, horizon, 121)))
    mc = hdsgd.simulate(setup, horizon, key=key, seeds=seeds, times=times, progress=False)
    dist = mc["distance_to_flattest"]
    value = settling_time(mc.time, dist.mean(axis=0), target)
    rng = np.random.default_rng(0)
    boots = [settling_time(mc.time, dist[rng.integers(0, seeds, seeds)].mean(axis=0), target)
             for _ in range(100)]
    boots = np.asarray(boots)
    error = float(np.std(boots, ddof=1)) if np.isfinite(boots).all() else float("inf")
    return value, error, mc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="figures", help="output folder (default figures/)")
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--rank", type=int, default=1)
    parser.add_argument("--n-samples", type=int, default=20)
    parser.add_argument("--label-noise", type=float, default=0.3)
    parser.add_argument("--target", type=float, default=0.5, help="distance target (0.5)")
    parser.add_argument("--etas", type=float, nargs="+", default=[1e-2, 2e-2, 4e-2])
    parser.add_argument("--gaps", type=int, default=7, help="1 - beta values per eta (7)")
    parser.add_argument("--mc-seeds", type=int, default=32, help="Monte Carlo seeds (32; 0: none)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = hdsgd.LabelNoiseMomentum(model="matrix_sensing", dim=args.dim, rank=args.rank,
                                    n_samples=args.n_samples, step_size=1e-2, momentum=0.9,
                                    label_noise=args.label_noise)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    best = []
    key = jax.random.PRNGKey(0)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(args.etas)))
    for eta, colour in zip(args.etas, colours):
        gaps = np.geomspace(0.1, 3.0, args.gaps) * eta ** (2 / 3)
        gaps = gaps[gaps < 1.0]
        times = np.array([th.sensing_time_to_target(dataclasses.replace(base, step_size=eta,
                                                                        momentum=1 - g), args.target)
                          for g in gaps])
        finite = np.isfinite(times)
        j = int(np.argmin(np.where(finite, times, np.inf)))
        edge = j == 0 or not finite[j - 1]
        fine, fine_t = gaps, times
        best.append((eta, gaps[j], times[j], edge))
        axes[0].loglog(gaps, times, "-", color=colour, label=f"eta={eta:g}")
        print(f"eta={eta:g}: T(1-beta) = " + ", ".join(f"{g:.3g}:{t:.0f}" for g, t in zip(gaps, times))
              + f"; best 1-beta on the grid = {fine[j]:.4g}, T = {fine_t[j]:.0f}"
              + (" (at the edge of the settled range: below it the noise floor or the"
                 " overshoot keeps the distance above the target)" if edge else " (interior)"))
        if args.mc_seeds:
            key, sub = jax.random.split(key)
            setup = dataclasses.replace(base, step_size=eta, momentum=1 - fine[j])
            t_mc, err, mc = mc_time(setup, args.target, fine_t[j], seeds=args.mc_seeds, key=sub)
            axes[0].errorbar([fine[j]], [t_mc], yerr=[err], fmt="o", color=colour)
            print(f"   Monte Carlo at the optimum: T = {t_mc:.0f} +- {err:.0f} (closure {fine_t[j]:.0f})")
            if eta == args.etas[len(args.etas) // 2]:
                theory = hdsgd.predict(setup, mc.time[-1], times=mc.time)
                agreement = hdsgd.compare(theory, mc, "distance_to_flattest", t_min=1)
                m, s = mc.mean()["distance_to_flattest"], mc.sem()["distance_to_flattest"]
                axes[2].fill_between(mc.time, m - 2 * s, m + 2 * s, alpha=0.3, label="Monte Carlo +- 2 s.e.")
                axes[2].plot(theory.time, theory["distance_to_flattest"], "k-", label="closure")
                axes[2].set_title(f"eta={eta:g}, 1-beta={fine[j]:.3g}: max gap "
                                  f"{agreement['distance_to_flattest'].max_sem_gap:.1f} s.e.")
                print("   trajectory:", agreement.summary().splitlines()[1])
    axes[0].set_xlabel("1 - beta")
    axes[0].set_ylabel(f"steps to ||UU^T - X*|| / ||X*|| < {args.target}")
    axes[0].set_title("T against 1 - beta (lines: closure, dots: MC)")
    axes[0].legend(fontsize=8)
    etas, gaps, times, edges = np.array(best).T
    slope = np.polyfit(np.log(etas), np.log(gaps), 1)[0]
    t_slope = np.polyfit(np.log(etas), np.log(times), 1)[0]
    axes[1].loglog(etas, gaps, "o-", label=f"best 1 - beta: slope {slope:.3f}")
    axes[1].loglog(etas, times / times[0] * gaps[0], "s--", label=f"T at the best (rescaled): slope {t_slope:.3f}")
    axes[1].set_xlabel("step size eta")
    axes[1].set_title("best 1 - beta ~ eta^gamma (expected gamma = 2/3)")
    axes[1].legend(fontsize=8)
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("||UU^T - X*||_F / ||X*||_F")
    axes[2].legend(fontsize=8)
    print(f"fitted exponent of the best 1-beta: {slope:.3f} (expected 2/3); T at the best ~ eta^{t_slope:.3f}"
          " (expected -2/3)")
    if edges.any():
        print("note: the best 1-beta sat at the edge of the settled range for "
              f"{int(edges.sum())} of {len(edges)} step sizes; there the exponent measures where the "
              "noise floor crosses the target, not the timescale balance of spec §2")
    fig.suptitle(f"label-noise SGD + momentum on matrix sensing, d={args.dim}, r={args.rank}, "
                 f"n={args.n_samples}, delta_0={args.label_noise}")
    fig.tight_layout()
    path = out / "momentum_matrix_sensing.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
