"""The eps sweep (Fig. 3b of Kumar et al., ICLR 2024): the initial kernel-task alignment.

eps sets how much initial-NTK power sits on quadratic functions (K0 = (x.x')(1 + eps^2 x.x')): smaller eps
means a more misaligned initial kernel, a longer train-to-test delay (the onset heuristic of
docs/grokking.md, "Grokking time", scales as 1/eps) and, in the paper, a lower final test loss. Centred network,
kappa = P/D = 5.5, alpha = ``--alpha``. Theory: the exact reduced GD map from the
infinite-width initial law; Monte Carlo: the full network of width ``--mc-width`` over
``--mc-seeds`` initialisations, over the whole horizon. Same panels as the alpha sweep.

    python examples/grokking_eps_sweep.py --out figures
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import hdsgd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grokking_alpha_sweep import plot_sweep, sweep  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--tau", type=float, default=1000.0, help="horizon in tau = 2 eta0 t / D")
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--n-samples", type=int, default=275)
    parser.add_argument("--step-size", type=float, default=2.0, help="eta0")
    parser.add_argument("--level", type=float, default=0.1,
                        help="loss level for the delay (0.1 as in the paper's code)")
    parser.add_argument("--mc-seeds", type=int, default=2, help="Monte Carlo seeds (0: none)")
    parser.add_argument("--mc-width", type=int, default=64)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    base = hdsgd.grokking.GrokkingTwoLayer(dim=args.dim, n_samples=args.n_samples, width=None,
                                  output_scale=args.alpha, step_size=args.step_size,
                                  centered=True)
    rows = sweep(base, "quadratic_strength", args.eps, args.tau, mc_seeds=args.mc_seeds,
                 mc_width=args.mc_width, level=args.level, label="eps")
    heuristic = [hdsgd.grokking.grokking_time(dataclasses.replace(base, quadratic_strength=e)).tau_onset
                 for e in args.eps]
    for e, h in zip(args.eps, heuristic):
        print(f"eps={e:<6g} onset heuristic tau_g = {h:.3g}")
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.5))
    plot_sweep(rows, ax, level=args.level, label="eps", heuristic=heuristic)
    fig.suptitle(f"eps sweep, centred: D={args.dim}, P={args.n_samples}, alpha={args.alpha}, "
                 f"eta0={args.step_size}; MC width {args.mc_width}, {args.mc_seeds} seeds")
    fig.tight_layout()
    path = args.out / "grokking_eps_sweep.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
