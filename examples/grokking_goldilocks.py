"""The goldilocks data size (Fig. 9 of Kumar et al., ICLR 2024): grokking needs P ~ D samples.

D = 40, alpha = 1, eps = 1/4, eta0 = 1/2, uncentred, ``--steps`` GD steps, P in ``--sizes``.
Too little data (P ~ D): the network interpolates the training set through linear modes and
never generalises; too much (P >> D): train and test loss fall together; in between
(P = 120, kappa = 3) the test loss falls long after the train loss.

Theory: the exact reduced dynamics from the infinite-width initial law (the P-space form,
docs/grokking.md, is used automatically when P < D). Monte Carlo: the paper's N = 2 network over
``--mc-seeds`` initialisations and training sets (``method="fresh_data"``); at N = 2 the
outcome depends on the seed, so the figure shows every seed and the fraction that groks. The
reduced dynamics does not depend on N except through the initial condition, so the N = 2
spread around the N = inf curve is the effect of the initial statistics alone.

    python examples/grokking_goldilocks.py --out figures
"""

from __future__ import annotations

import argparse
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 120, 300, 500])
    parser.add_argument("--dim", type=int, default=40)
    parser.add_argument("--steps", type=float, default=5e4, help="GD steps")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--eps", type=float, default=0.25)
    parser.add_argument("--step-size", type=float, default=0.5, help="eta0")
    parser.add_argument("--level", type=float, default=0.1, help="loss level (paper: 0.1)")
    parser.add_argument("--mc-seeds", type=int, default=8, help="N = 2 seeds (0: none)")
    parser.add_argument("--mc-width", type=int, default=2)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(2, len(args.sizes), figsize=(3.6 * len(args.sizes), 6.5),
                           squeeze=False)
    summary = []
    for j, p in enumerate(args.sizes):
        setup = hdsgd.grokking.GrokkingTwoLayer(dim=args.dim, n_samples=p, width=None,
                                       output_scale=args.alpha, quadratic_strength=args.eps,
                                       step_size=args.step_size)
        start = time.perf_counter()
        theory = hdsgd.predict(setup, args.steps)
        t = theory.time
        keep = t > 0
        row = {"P": p, "form": theory.meta["form"],
               "train": first_below(t, theory["train_loss"], args.level),
               "test": first_below(t, theory["test_loss"], args.level),
               "final": theory["test_loss"][-1], "lin": theory["linear_power"][-1]}
        for i, name in enumerate(("train_loss", "test_loss")):
            ax[i, j].plot(t[keep], theory[name][keep], "k", lw=2, label="theory, N = inf init")
        if args.mc_seeds > 0:
            mc_setup = hdsgd.grokking.GrokkingTwoLayer(dim=args.dim, n_samples=p, width=args.mc_width,
                                              output_scale=args.alpha,
                                              quadratic_strength=args.eps,
                                              step_size=args.step_size)
            mc = hdsgd.simulate(mc_setup, args.steps, key=jax.random.key(0), seeds=args.mc_seeds,
                                times=t, method="fresh_data", progress=False)
            tests = np.array([first_below(t, v, args.level) for v in mc["test_loss"]])
            trains = np.array([first_below(t, v, args.level) for v in mc["train_loss"]])
            row.update(mc_grokked=float(np.mean(np.isfinite(tests))),
                       mc_final=float(np.median(mc["test_loss"][:, -1])),
                       mc_delay=float(np.median(tests - trains)) if np.any(np.isfinite(tests))
                       else np.inf)
            for i, name in enumerate(("train_loss", "test_loss")):
                for s in range(args.mc_seeds):
                    ax[i, j].plot(t[keep], np.clip(mc[name][s][keep], 1e-6, None), lw=0.7,
                                  alpha=0.6, label=f"N = {args.mc_width} seeds" if s == 0 else None)
        summary.append(row)
        for i, name in enumerate(("train loss", "test loss")):
            ax[i, j].axhline(args.level, color="gray", ls=":", lw=1)
            ax[i, j].set(xscale="log", yscale="log", ylim=(1e-4, 5), xlabel="GD steps t",
                         title=f"P = {p} (kappa = {p / args.dim:g}): {name}")
            ax[i, j].grid(alpha=0.3)
        msg = (f"P={p:<4d} [{row['form']}-space] theory: train<{args.level} at t={row['train']:.4g}, "
               f"test<{args.level} at t={row['test']:.4g}, final test {row['final']:.3f} "
               f"(linear power {row['lin']:.3f})")
        if args.mc_seeds > 0:
            msg += (f" | N={args.mc_width}: {row['mc_grokked']:.0%} of seeds reach test<"
                    f"{args.level}, median final test {row['mc_final']:.3f}, median delay "
                    f"{row['mc_delay']:.4g}")
        print(msg + f"  [{time.perf_counter() - start:.1f} s]")
    ax[0, 0].legend(fontsize=7)
    fig.suptitle(f"goldilocks data size: D={args.dim}, alpha={args.alpha}, eps={args.eps}, "
                 f"eta0={args.step_size}, uncentred (thick: theory; thin: N={args.mc_width} "
                 f"networks, fresh data per seed)")
    fig.tight_layout()
    path = args.out / "grokking_goldilocks.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
