"""Grokking time against alpha and ln D: the onset heuristic vs measured onsets.

docs/grokking.md, "Grokking time": along the lazy trajectory the teacher overlap grows as S(tau) ~ S(0) e^Lambda(tau),
and generalisation starts when Lambda(tau_g) = ln(D/(alpha eps)); for small alpha
tau_g ~ alpha ln(D/(alpha eps)) / (2 eps (1 - 1/kappa)). So the delay grows like alpha ln D.
Here tau_g (`hdsgd.grokking.grokking_time`) is compared with the measured onset of the exact reduced
dynamics (infinite-width initial law, centred, kappa = 5.5, eps = 1/4), for every alpha in
``--alphas`` and D in ``--dims``, averaged over ``--data-seeds`` training sets: the first tau
with L_test < ``--level`` x L_test(0) (0.4 x 0.75 = 0.3 is the reference absolute level for
|beta|^2 = D; relative, because |beta|^2/D fluctuates by sqrt(2/D), which moves
L_test(0) = (3/4)(|beta|^2/D)^2 by +-50% at D = 25).
eta0 = D/25, so every D uses the same step 0.08 in tau = 2 eta0 t / D. ``--mc-seeds`` adds the
full network (width ``--mc-width``, fresh data per seed) at the smallest D.

Panels: measured onset against tau_g (a scaling law: the ratio is reported, not fitted away);
measured onset / alpha against ln(D/(alpha eps)) with the small-alpha slope
1/(2 eps (1 - 1/kappa)).

    python examples/grokking_time_scaling.py --out figures
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


def first_below(t, values, level):
    hit = np.nonzero(values < level)[0]
    return t[hit[0]] if hit.size else np.inf


def onset_test(curve, level, seed=None):
    """First tau with L_test < level x L_test(0) (one seed of a Monte Carlo curve if given)."""
    tau, loss = curve["tau"], curve["test_loss"]
    if seed is not None:
        tau, loss = tau[seed], loss[seed]
    return first_below(tau, loss, level * loss[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--dims", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--kappa", type=float, default=5.5)
    parser.add_argument("--eps", type=float, default=0.25)
    parser.add_argument("--level", type=float, default=0.4,
                        help="onset when L_test < level x L_test(0)")
    parser.add_argument("--data-seeds", type=int, default=3)
    parser.add_argument("--horizon-factor", type=float, default=8.0,
                        help="integrate to this many times tau_g")
    parser.add_argument("--mc-seeds", type=int, default=0)
    parser.add_argument("--mc-width", type=int, default=64)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    for dim in args.dims:
        for alpha in args.alphas:
            setup = hdsgd.grokking.GrokkingTwoLayer(dim=dim, n_samples=int(round(args.kappa * dim)),
                                           width=None, output_scale=alpha,
                                           quadratic_strength=args.eps,
                                           step_size=dim / 25.0, centered=True)
            g = hdsgd.grokking.grokking_time(setup)
            if not np.isfinite(g.tau_onset):
                print(f"D={dim} alpha={alpha}: too lazy by the heuristic; skipped")
                continue
            horizon = float(np.round(setup.steps(args.horizon_factor * g.tau_onset)))
            grid = np.unique(np.round(np.linspace(0.0, horizon, 401)))   # onset resolution
            start = time.perf_counter()
            onsets = []
            for seed in range(args.data_seeds):
                curve = hdsgd.predict(dataclasses.replace(setup, data_seed=seed), horizon,
                                      times=grid)
                onsets.append(onset_test(curve, args.level))
            mc_onset = np.nan
            if args.mc_seeds > 0 and dim == min(args.dims):
                mc = hdsgd.simulate(dataclasses.replace(setup, width=args.mc_width), horizon,
                                    key=jax.random.key(0), seeds=args.mc_seeds, method="fresh_data",
                                    times=grid, progress=False)
                mc_onset = np.mean([onset_test(mc, args.level, s) for s in range(args.mc_seeds)])
            onset = float(np.mean(onsets))
            rows.append((dim, alpha, g.tau_onset, g.tau_onset_small_alpha, g.log_target, onset,
                         mc_onset))
            print(f"D={dim:<4d} alpha={alpha:<5g} tau_g={g.tau_onset:7.3g} (small-alpha form "
                  f"{g.tau_onset_small_alpha:7.3g}), test onset {onset:7.3g} "
                  f"(seeds {', '.join(f'{o:.3g}' for o in onsets)}), ratio {onset / g.tau_onset:5.2f}"
                  + (f", MC N={args.mc_width}: {mc_onset:.3g}" if np.isfinite(mc_onset) else "")
                  + f"  [{time.perf_counter() - start:.1f} s]")
    rows = np.array(rows)
    ratio = rows[:, 5] / rows[:, 2]
    print(f"measured onset / heuristic tau_g: {ratio.min():.2f} - {ratio.max():.2f} "
          f"(mean {ratio.mean():.2f}) over {len(rows)} (D, alpha) pairs")

    fig, ax = plt.subplots(1, 2, figsize=(12, 4.8))
    markers = dict(zip(args.dims, "osd^v<>"))
    colors = dict(zip(args.alphas, plt.cm.plasma(np.linspace(0, 0.8, len(args.alphas)))))
    for dim, alpha, tau_g, _, log_t, onset, mc_onset in rows:
        kw = dict(marker=markers[int(dim)], color=colors[alpha], ls="none", ms=8)
        ax[0].plot(tau_g, onset, **kw)
        ax[1].plot(log_t, onset / alpha, **kw)
        if np.isfinite(mc_onset):
            ax[0].plot(tau_g, mc_onset, marker="x", color=colors[alpha], ms=10, mew=2, ls="none")
    lim = np.array([rows[:, 2].min() * 0.7, rows[:, 2].max() * 1.4])
    ax[0].plot(lim, lim, "k:", label="measured = tau_g")
    ax[0].plot(lim, ratio.mean() * lim, "k--", label=f"measured = {ratio.mean():.2f} tau_g")
    ax[0].set(xscale="log", yscale="log", xlabel="onset heuristic tau_g",
              ylabel="measured onset tau",
              title=f"onset: L_test < {args.level} L_test(0) (x: Monte Carlo)")
    x = np.linspace(rows[:, 4].min() * 0.9, rows[:, 4].max() * 1.1, 10)
    slope = 1.0 / (2.0 * args.eps * (1.0 - 1.0 / args.kappa))
    ax[1].plot(x, slope * x, "k:", label="small-alpha heuristic alpha ln(D/(alpha eps))/(2eps(1-1/kappa))")
    fit = np.polyfit(rows[:, 4], rows[:, 5] / rows[:, 1], 1)
    ax[1].plot(x, np.polyval(fit, x), "k--", label=f"least squares: slope {fit[0]:.2f}")
    ax[1].set(xlabel="ln(D / (alpha eps))", ylabel="measured onset / alpha",
              title="onset / alpha against ln(D/(alpha eps))")
    for dim in args.dims:
        ax[1].plot([], [], marker=markers[dim], color="gray", ls="none", label=f"D = {dim}")
    for alpha in args.alphas:
        ax[1].plot([], [], marker="o", color=colors[alpha], ls="none", label=f"alpha = {alpha:g}")
    ax[0].legend(fontsize=8)
    ax[1].legend(fontsize=6, loc="lower right")
    for a in ax:
        a.grid(alpha=0.3)
    fig.suptitle(f"grokking time: centred, kappa={args.kappa}, eps={args.eps}, N = inf init, "
                 f"{args.data_seeds} training sets per point")
    fig.tight_layout()
    path = args.out / "grokking_time_scaling.png"
    fig.savefig(path, dpi=120)
    print(f"least-squares slope of onset/alpha in ln(D/(alpha eps)): {fit[0]:.2f} "
          f"(heuristic {slope:.2f}); wrote {path}")


if __name__ == "__main__":
    main()
