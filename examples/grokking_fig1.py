"""The paper's Fig. 1 setting: grokking without weight decay (Kumar et al., ICLR 2024).

D = 100, P = 550, N = 500, alpha = 1, eps = 1/4, eta0 = 1, uncentred, 1e5 GD steps (tau = 2000).
Theory: the exact reduced (w_bar, M) dynamics from the infinite-width initial law, integrated as
gradient flow in tau (diffrax); Monte Carlo: the full N = 500 network over the first
``--mc-steps`` steps (the CPU cost is ~1e8 flops per step and seed). Panels: train and test
loss, the test-loss decomposition (docs/grokking.md, "Observables"), the teacher overlap S and the weight norm, and
the kernel-task alignment.

    python examples/grokking_fig1.py --out figures
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    parser.add_argument("--steps", type=float, default=1e5, help="GD steps for the theory")
    parser.add_argument("--mc-steps", type=float, default=3000,
                        help="GD steps for the Monte Carlo (0: none)")
    parser.add_argument("--mc-seeds", type=int, default=2, help="Monte Carlo initialisations")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--n-samples", type=int, default=550)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    setup = hdsgd.grokking.GrokkingTwoLayer(dim=args.dim, n_samples=args.n_samples, width=args.width,
                                   output_scale=1.0, quadratic_strength=0.25, step_size=1.0)
    start = time.perf_counter()
    theory = hdsgd.predict(setup, args.steps, solver="ode")
    print(f"theory (reduced gradient flow, tau <= {theory['tau'][-1]:.0f}): "
          f"{time.perf_counter() - start:.1f} s")
    mc = None
    if args.mc_steps > 0 and args.mc_seeds > 0:
        start = time.perf_counter()
        mc = hdsgd.simulate(setup, args.mc_steps, key=jax.random.key(args.seed),
                            seeds=args.mc_seeds, progress=True)
        print(f"Monte Carlo (N={args.width}, {args.mc_seeds} seeds, {args.mc_steps:.0f} steps): "
              f"{time.perf_counter() - start:.1f} s")
        if args.mc_seeds >= 2:
            print(hdsgd.compare(theory, mc, ("train_loss", "test_loss")).summary())

    t = theory.time
    keep = t > 0
    fig, ax = plt.subplots(1, 4, figsize=(18, 4))

    def mc_line(panel, name, color, label=None):
        if mc is not None:
            m = mc.mean()
            panel.plot(m.time[m.time > 0], m[name][m.time > 0], "o", ms=3, mfc="none",
                       color=color, label=label)

    for name, color in (("train_loss", "C0"), ("test_loss", "C3")):
        ax[0].plot(t[keep], theory[name][keep], color=color, label=f"{name} (theory)")
        mc_line(ax[0], name, color, f"{name} (MC, N={args.width})")
    ax[0].set_title("train and test loss")
    for name, color in (("variance_error", "C1"), ("misalignment_error", "C2"),
                        ("linear_power", "C4")):
        ax[1].plot(t[keep], theory[name][keep], color=color, label=name)
        mc_line(ax[1], name, color)
    ax[1].set_title("test loss = variance + misalignment + linear power")
    ax[2].plot(t[keep], theory["weight_norm"][keep], color="C5", label="weight norm sqrt(Tr M)")
    mc_line(ax[2], "weight_norm", "C5")
    ax2 = ax[2].twinx()
    ax2.plot(t[keep], theory["S"][keep], color="C6", ls="--", label="S = b^T M b / D^2")
    ax2.set_yscale("log")
    ax2.legend(loc="lower right", fontsize=8)
    ax[2].set_title("weight norm rises while the teacher overlap grows")
    ax[3].plot(t[keep], theory["alignment"][keep], color="C7", label="kernel-task alignment")
    mc_line(ax[3], "alignment", "C7")
    ax[3].set_title("NTK-task alignment (CKA, train set)")
    for a in ax:
        a.set_xscale("log")
        a.set_xlabel(f"GD steps t (tau = 2 eta0 t / D = t/{args.dim / 2:g})")
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    ax[0].set_yscale("log")
    ax[1].set_yscale("log")
    fig.suptitle(f"Grokking without weight decay: D={args.dim}, P={args.n_samples}, alpha=1, eps=1/4")
    fig.tight_layout()
    path = args.out / "grokking_fig1.png"
    fig.savefig(path, dpi=120)
    train, test = theory["train_loss"], theory["test_loss"]
    t_train = t[np.argmax(train < 0.1)] if np.any(train < 0.1) else np.inf
    t_test = t[np.argmax(test < 0.1)] if np.any(test < 0.1) else np.inf
    print(f"theory: train loss < 0.1 at t = {t_train:.0f}, test loss < 0.1 at t = {t_test:.0f} "
          f"(delay ratio {t_test / t_train:.1f}); wrote {path}")


if __name__ == "__main__":
    main()
