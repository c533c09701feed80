"""The 1 - beta ~ eta^(2/3) law on overparametrised matrix sensing (docs/momentum.md, "Matrix
sensing";
Cowsik, Can & Glorioso, arXiv:2210.16400): a model with many normal modes, where the
deterministic moment closure (no energy noise) should hold.

U in R^{8x8}, X* of rank 1, n = 20 Gaussian measurements, full-batch label noise; the run
starts at an interpolating U_0 far from X* and label noise drifts it toward the flattest
interpolant (smallest tr Hess, ~ nuclear norm), i.e. toward X*. T = the step from which the
relative distance ||U U^T - X*||_F / ||X*||_F stays below ``--target``.

For each eta: T against 1 - beta from the closure on a grid 1 - beta = c eta^(2/3),
c in ``--c-range``, then `hdsgd.momentum.optimal_momentum` (Brent) between the neighbours
of the best grid point, and the Monte Carlo T at the optimum. Panels: (1) T against
1 - beta (lines: closure, dots: Monte Carlo at the optimum); (2) the best 1 - beta and T
there against eta with fitted exponents (expected 2/3 and -2/3); (3) one trajectory,
closure vs Monte Carlo, at the optimum.

The label noise is small (delta_0 = 0.02) and the target strict (0.15 from 1.77) so that the
fluctuation floor of the distance, ~ sqrt(eta delta^2 / (1 - beta)) per normal mode, stays
well below the target over the grid: with delta_0 = 0.3 and target 0.5 the floor crosses
the target before the timescale balance, and the "best" 1 - beta is that crossing instead.
T(1 - beta) is a sawtooth on the under-damped side (one overshoot through X* fewer per
tooth), and the optimum sits at the edge of a tooth, as on the two-parameter model.

    python examples/momentum_matrix_sensing.py --out figures

Smallest setting (about a minute): --etas 0.04 0.02 --gaps 3 --mc-seeds 0
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import hdsgd  # noqa: E402
from hdsgd import momentum  # noqa: E402


def mc_time(setup, target, t_guess, *, seeds, key):
    """Monte Carlo T (settling of the seed-mean distance) and the Monte Carlo curve."""
    horizon = float(np.ceil(2.0 * t_guess))
    times = np.unique(np.round(np.linspace(0, horizon, 301)))
    mc = hdsgd.simulate(setup, horizon, key=key, seeds=seeds, times=times, progress=False)
    value, error = momentum.measured_time_to_target(mc, target, resamples=100)
    return value, error, mc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="figures", help="output folder (default figures/)")
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--rank", type=int, default=1)
    parser.add_argument("--n-samples", type=int, default=20)
    parser.add_argument("--label-noise", type=float, default=0.02)
    parser.add_argument("--target", type=float, default=0.15, help="distance target (0.15)")
    parser.add_argument("--etas", type=float, nargs="+", default=[4e-2, 2e-2, 1e-2])
    parser.add_argument("--c-range", type=float, nargs=2, default=[0.005, 0.05],
                        help="1 - beta = c eta^(2/3) for c in this range (0.005 0.05)")
    parser.add_argument("--gaps", type=int, default=7, help="grid points per eta (7)")
    parser.add_argument("--mc-seeds", type=int, default=64, help="Monte Carlo seeds per point (64; 0: none)")
    parser.add_argument("--mc-gaps", type=int, default=13,
                        help="Monte Carlo grid points in 1 - beta, shared by all eta (13)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = momentum.MatrixSensingMomentum(dim=args.dim, rank=args.rank, n_samples=args.n_samples,
                                          step_size=1e-2, momentum=0.9,
                                          label_noise=args.label_noise)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    best, mc_best = [], []
    key = jax.random.PRNGKey(0)
    c_lo, c_hi = args.c_range
    mc_gaps = np.geomspace(c_lo * min(args.etas) ** (2 / 3), c_hi * max(args.etas) ** (2 / 3),
                           args.mc_gaps)

    def mc_horizon(eta):
        return 6000.0 * (0.04 / eta) ** (2 / 3)

    colours = plt.cm.viridis(np.linspace(0, 0.9, len(args.etas)))
    for eta, colour in zip(args.etas, colours):
        setup = dataclasses.replace(base, step_size=eta)
        gaps = np.geomspace(*args.c_range, args.gaps) * eta ** (2 / 3)
        gaps = gaps[gaps < 1.0]
        times = np.array([momentum.time_to_target(dataclasses.replace(setup, momentum=1 - g),
                                                  args.target) for g in gaps])
        if not np.isfinite(times).any():
            print(f"eta={eta:g}: the distance never settles below {args.target} on the grid")
            continue
        j = int(np.argmin(np.where(np.isfinite(times), times, np.inf)))
        bounds = (gaps[max(j - 1, 0)], gaps[min(j + 1, gaps.size - 1)])
        gap, t_best = momentum.optimal_momentum(setup, args.target, method="closure",
                                                      bounds=bounds, grid=3)
        best.append((eta, gap, t_best))
        axes[0].loglog(gaps, times, "-", color=colour, label=f"eta={eta:g}")
        axes[0].loglog([gap], [t_best], "x", color=colour)
        print(f"eta={eta:g}: T(1-beta) = " + ", ".join(f"{g:.3g}:{t:.0f}" for g, t in zip(gaps, times))
              + f"; best 1-beta = {gap:.4g} = {gap / eta ** (2 / 3):.4g} eta^(2/3), T = {t_best:.0f}"
              + (" (at the end of the grid: widen --c-range)" if j in (0, gaps.size - 1) else ""))
        if args.mc_seeds:
            # Monte Carlo brute force on a grid of absolute 1 - beta (the same for every eta,
            # so the grid itself carries no eta^(2/3))
            scan = []
            for i, g in enumerate(mc_gaps):
                key, sub = jax.random.split(key)
                t_mc, err, mc = mc_time(dataclasses.replace(setup, momentum=1 - g), args.target,
                                        0.5 * mc_horizon(eta), seeds=args.mc_seeds, key=sub)
                scan.append((g, t_mc, err))
            g_mc, t_mc_all, e_mc = np.array(scan).T
            ok = np.isfinite(t_mc_all)
            axes[0].errorbar(g_mc[ok], t_mc_all[ok], yerr=e_mc[ok], fmt="o", ms=3, color=colour)
            k = int(np.argmin(np.where(ok, t_mc_all, np.inf)))
            mc_best.append((eta, g_mc[k], t_mc_all[k]))
            print("   Monte Carlo T(1-beta) = " + ", ".join(
                f"{g:.3g}:{t:.0f}+-{e:.0f}" for g, t, e in scan if np.isfinite(t))
                + f"; best on the grid 1-beta = {g_mc[k]:.4g} (T = {t_mc_all[k]:.0f}), closure's "
                f"T at its optimum {t_best:.0f} ({t_best / t_mc_all[k] - 1:+.0%})")
            if eta == args.etas[len(args.etas) // 2]:
                at_best = dataclasses.replace(setup, momentum=1 - gap)
                _, _, mc = mc_time(at_best, args.target, t_best, seeds=args.mc_seeds, key=key)
                theory = hdsgd.predict(at_best, mc.time[-1], times=mc.time)
                agreement = hdsgd.compare(theory, mc, "distance_to_flattest", t_min=1)
                m, s = mc.mean()["distance_to_flattest"], mc.sem()["distance_to_flattest"]
                axes[2].fill_between(mc.time, m - 2 * s, m + 2 * s, alpha=0.3, label="Monte Carlo +- 2 s.e.")
                axes[2].plot(theory.time, theory["distance_to_flattest"], "k-", label="closure")
                axes[2].axhline(args.target, color="grey", ls=":", label="target")
                axes[2].set_title(f"eta={eta:g}, 1-beta={gap:.3g} (closure's optimum): max gap "
                                  f"{agreement['distance_to_flattest'].max_sem_gap:.1f} s.e.")
                print("   trajectory at the closure's optimum:", agreement.summary().splitlines()[1])
    axes[0].set_xlabel("1 - beta")
    axes[0].set_ylabel(f"steps to ||UU^T - X*|| / ||X*|| < {args.target}")
    axes[0].set_title("T against 1 - beta (lines: closure, x: optimum, dots: MC)")
    axes[0].legend(fontsize=8)
    for name, points, style in (("closure", best, "-"), ("Monte Carlo", mc_best, "--")):
        if len(points) < 2:
            continue
        etas, gaps, times = np.array(points).T
        slope = np.polyfit(np.log(etas), np.log(gaps), 1)[0]
        t_slope = np.polyfit(np.log(etas), np.log(times), 1)[0]
        axes[1].loglog(etas, gaps, "o" + style, label=f"{name}: best 1 - beta, slope {slope:.3f}")
        axes[1].loglog(etas, times / times[0] * gaps[0], "s" + style,
                       label=f"{name}: T at the best (rescaled), slope {t_slope:.3f}")
        print(f"{name}: fitted exponent of the best 1-beta {slope:.3f} (expected 2/3); T at the "
              f"best ~ eta^{t_slope:.3f} (expected -2/3)")
    if len(mc_best) >= 2:
        spacing = math.log(mc_gaps[1] / mc_gaps[0])
        print(f"   (Monte Carlo optimum on a grid of ratio {mc_gaps[1] / mc_gaps[0]:.3f}: its exponent "
              f"is resolved to about +-{0.5 * spacing / math.log(max(args.etas) / min(args.etas)):.2f})")
    axes[1].set_xlabel("step size eta")
    axes[1].set_title("best 1 - beta ~ eta^gamma (expected gamma = 2/3)")
    axes[1].legend(fontsize=8)
    axes[2].set_xlabel("step")
    axes[2].set_ylabel("||UU^T - X*||_F / ||X*||_F")
    axes[2].legend(fontsize=8)
    fig.suptitle(f"label-noise SGD + momentum on matrix sensing, d={args.dim}, r={args.rank}, "
                 f"n={args.n_samples}, delta_0={args.label_noise}")
    fig.tight_layout()
    path = out / "momentum_matrix_sensing.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
