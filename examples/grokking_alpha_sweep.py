"""The alpha sweep (Fig. 3a of Kumar et al., ICLR 2024): delay and final test loss against alpha.

Centred network, kappa = P/D = 5.5, eps = 1/4. For each alpha: the exact reduced (w_bar, M) GD
map from the infinite-width initial law (theory, `hdsgd.predict`) and the full network of width
``--mc-width`` over ``--mc-seeds`` initialisations (Monte Carlo, `hdsgd.simulate`), both over
the whole horizon. Panels: test/train loss in tau = 2 eta0 t / D; the train-to-test delay
tau_test(L < level) - tau_train(L < level) against alpha with the onset heuristic tau_g of
docs/grokking.md, "Grokking time" (`hdsgd.grokking.grokking_time`, a scaling law); the final test loss against alpha with the
lazy (alpha -> inf) closed form (docs/grokking.md, "The lazy limit") at the same tau and its tau -> inf floor, and the
finite-D lazy value: kernel gradient flow with the initial NTK on this training set (at D = 50
the kernel still learns part of the quadratic modes, so large alpha approaches this, not the
proportional-limit floor).

The defaults (D = 50, eta0 = 2, tau = 1000) run in a few minutes on a laptop CPU; the paper's
size is ``--dim 100 --n-samples 550 --step-size 1`` (slower Monte Carlo).

    python examples/grokking_alpha_sweep.py --out figures
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import hdsgd  # noqa: E402
from hdsgd.grokking import kernel_flow  # noqa: E402


def first_below(tau, values, level):
    """First tau at which ``values`` < ``level`` (inf if never)."""
    hit = np.nonzero(values < level)[0]
    return tau[hit[0]] if hit.size else np.inf


def sweep(base, field, values, tau_end, *, mc_seeds, mc_width, level, label, log=print):
    """Theory (reduced GD map, N = inf init) and Monte Carlo (width ``mc_width``) for each value
    of ``field``; returns rows (value, theory curve, mean MC curve or None, MC curves or None)."""
    rows = []
    for value in values:
        setup = dataclasses.replace(base, **{field: value})
        horizon = float(np.round(setup.steps(tau_end)))
        start = time.perf_counter()
        theory = hdsgd.predict(setup, horizon)
        mc = None
        if mc_seeds > 0:
            mc = hdsgd.simulate(dataclasses.replace(setup, width=mc_width), horizon,
                                key=jax.random.key(0), seeds=mc_seeds, times=theory.time,
                                progress=False)
        tau = theory["tau"]
        line = (f"{label}={value:<6g} theory: delay {delay(theory, level):8.3g}, final test "
                f"{theory['test_loss'][-1]:.4f}")
        if mc is not None:
            final = mc["test_loss"][:, -1]
            sem = final.std(ddof=1) / np.sqrt(mc_seeds) if mc_seeds > 1 else 0.0
            line += (f" | MC (N={mc_width}, {mc_seeds} seeds): delay "
                     f"{delay(mc.mean(), level):8.3g}, final test {final.mean():.4f} +- {sem:.4f}")
        log(line + f"  [{time.perf_counter() - start:.1f} s, tau_end {tau[-1]:g}]")
        rows.append((value, theory, None if mc is None else mc.mean(), mc))
    return rows


def delay(curve, level):
    tau = curve["tau"]
    return (first_below(tau, curve["test_loss"], level)
            - first_below(tau, curve["train_loss"], level))


def plot_sweep(rows, axes, *, level, label, lazy=None, floor=None, kernel=None, heuristic=None):
    """Three panels: curves, delay, final test loss (theory lines, Monte Carlo markers)."""
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(rows)))
    for (value, theory, mc_mean, _), color in zip(rows, colors):
        keep = theory["tau"] > 0
        axes[0].plot(theory["tau"][keep], theory["test_loss"][keep], color=color,
                     label=f"{label}={value:g}")
        axes[0].plot(theory["tau"][keep], theory["train_loss"][keep], color=color, ls=":", lw=1)
        if mc_mean is not None:
            axes[0].plot(mc_mean["tau"][keep][::4], mc_mean["test_loss"][keep][::4], "o", ms=3,
                         mfc="none", color=color)
    if lazy is not None:
        keep = lazy["tau"] > 0
        axes[0].plot(lazy["tau"][keep], lazy["test_loss"][keep], "k--", label="lazy limit")
    axes[0].set(xscale="log", yscale="log", ylim=(1e-5, 2), xlabel="tau = 2 eta0 t / D",
                ylabel="loss",
                title="test (solid: theory, o: MC) and train (dotted)")
    axes[0].legend(fontsize=7)
    vals = np.array([r[0] for r in rows])
    axes[1].plot(vals, [delay(r[1], level) for r in rows], "o-", label="theory (reduced)")
    if rows[0][2] is not None:
        axes[1].plot(vals, [delay(r[2], level) for r in rows], "x", ms=9, mew=2,
                     label="Monte Carlo (seed mean)")
    if heuristic is not None:
        axes[1].plot(vals, heuristic, "s--", label="onset heuristic tau_g")
    axes[1].set(xscale="log", yscale="log", xlabel=label, ylabel="tau",
                title=f"train-to-test delay (first L < {level})")
    axes[1].legend(fontsize=8)
    axes[2].plot(vals, [r[1]["test_loss"][-1] for r in rows], "o-", label="theory (reduced)")
    if rows[0][3] is not None:
        finals = np.array([r[3]["test_loss"][:, -1] for r in rows])
        err = finals.std(axis=1, ddof=1) / np.sqrt(finals.shape[1]) if finals.shape[1] > 1 else None
        axes[2].errorbar(vals, finals.mean(axis=1), yerr=err, fmt="x", ms=9, mew=2,
                         label="Monte Carlo")
    if lazy is not None:
        axes[2].axhline(lazy["test_loss"][-1], color="k", ls="--", label="lazy, same tau")
    if floor is not None:
        axes[2].axhline(floor, color="k", ls=":", label="lazy floor (tau -> inf)")
    if kernel is not None:
        axes[2].axhline(kernel, color="r", ls="-.",
                        label="K0 kernel flow on this training set (finite-D lazy)")
    axes[2].set(xscale="log", xlabel=label, ylabel="test loss", title="final test loss")
    axes[2].legend(fontsize=8)
    for a in axes:
        a.grid(alpha=0.3)
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    parser.add_argument("--alphas", type=float, nargs="+",
                        default=[0.25, 0.5, 1, 2, 4, 8, 16, 64, 256, 1024])
    parser.add_argument("--tau", type=float, default=1000.0, help="horizon in tau = 2 eta0 t / D")
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--n-samples", type=int, default=275)
    parser.add_argument("--eps", type=float, default=0.25)
    parser.add_argument("--step-size", type=float, default=2.0, help="eta0")
    parser.add_argument("--level", type=float, default=0.1,
                        help="loss level for the delay (0.1 as in the paper's code)")
    parser.add_argument("--mc-seeds", type=int, default=2, help="Monte Carlo seeds (0: none)")
    parser.add_argument("--mc-width", type=int, default=64)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    base = hdsgd.grokking.GrokkingTwoLayer(dim=args.dim, n_samples=args.n_samples, width=None,
                                  quadratic_strength=args.eps, step_size=args.step_size,
                                  centered=True)
    rows = sweep(base, "output_scale", args.alphas, args.tau, mc_seeds=args.mc_seeds,
                 mc_width=args.mc_width, level=args.level, label="alpha")
    lazy = hdsgd.predict(base, float(base.steps(args.tau)), method="lazy")
    far = float(base.steps(1e6))
    floor = hdsgd.predict(base, far, times=[0.0, far], method="lazy")["test_loss"][-1]
    kernel = kernel_flow(base, np.array([0.0, args.tau]))["test_loss"][-1]
    heuristic = [hdsgd.grokking.grokking_time(dataclasses.replace(base, output_scale=a)).tau_onset
                 for a in args.alphas]
    for a, h in zip(args.alphas, heuristic):
        print(f"alpha={a:<6g} onset heuristic tau_g = {h:.3g}")
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    plot_sweep(rows, ax, level=args.level, label="alpha", lazy=lazy, floor=floor, kernel=kernel,
               heuristic=heuristic)
    fig.suptitle(f"alpha sweep, centred: D={args.dim}, P={args.n_samples}, eps={args.eps}, "
                 f"eta0={args.step_size}; MC width {args.mc_width}, {args.mc_seeds} seeds")
    fig.tight_layout()
    path = args.out / "grokking_alpha_sweep.png"
    fig.savefig(path, dpi=120)
    print(f"lazy (proportional limit) test loss at tau={args.tau:g}: {lazy['test_loss'][-1]:.4f}, "
          f"floor {floor:.4f}; K0 kernel flow on this training set (finite-D lazy): "
          f"{kernel:.4f}; wrote {path}")


if __name__ == "__main__":
    main()
