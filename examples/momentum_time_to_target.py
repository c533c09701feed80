"""Time-to-target of label-noise SGD with momentum along 1 - beta = C eta^gamma (Cowsik, Can &
Glorioso, arXiv:2210.16400; docs/momentum.md, "Scales", "Time to target", "Optimal momentum"),
on the two-parameter model f = w1 w2.

T = the step from which E[s^2] stays below target^2 (s = manifold coordinate, from s_0 = 1 to
the flattest minimiser s = 0). Panels:

1. T against eta along 1 - beta = C eta^gamma for several gamma (colours) at C = C* and, for
   gamma = 2/3, C = C*/2 and 2 C* (dashed/dotted); theory = the uniform recursion for
   gamma < 2/3 and the reduced SDE (averaged over paths) for gamma >= 2/3; Monte Carlo
   points with bootstrap error bars. Slopes: eta^{2 gamma - 2} below 2/3, eta^{-gamma} above.
2. The best 1 - beta at each eta (numerical optimum of T from the recursion; and from the
   reduced SDE at a few eta), with the fitted exponent (expected 2/3) and Monte Carlo T at the
   optimum.
3. The speed-up of the optimal schedule (best 1 - beta from the recursion, T there from the
   reduced SDE) over fixed beta = 0.9 (recursion; separated regime, where it is accurate) and
   over beta = 0 (plain label-noise SGD, first-order flow:
   T = (1/(eta^2 delta^2)) ln[sinh 2 s_0 / sinh 2 target]).

Defaults run in a few minutes on a 2-core CPU:

    python examples/momentum_time_to_target.py --out figures

Smallest setting (seconds): --points 2 --paths 50 --mc-seeds 0 --sde-optimum 0 --gammas 0.5 0.6667
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
from hdsgd import momentum  # noqa: E402


def theory_time(setup, target, *, paths):
    """T from the reduced equation that holds in the Setup's regime (see module docstring)."""
    if setup.exponent is not None and setup.exponent < 0.6:
        return momentum.time_to_target(setup, target, method="recursion")
    return momentum.time_to_target(setup, target, method="sde", paths=paths)


def mc_time(setup, target, t_guess, *, seeds, key):
    """Monte Carlo T (and its bootstrap error) on a grid of 300 steps up to 2.5 t_guess."""
    horizon = float(np.ceil(2.5 * t_guess))
    times = np.unique(np.round(np.linspace(0, horizon, 301)))
    mc = hdsgd.simulate(setup, horizon, key=key, seeds=seeds, times=times, progress=False)
    return momentum.measured_time_to_target(mc, target)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="figures", help="output folder (default figures/)")
    parser.add_argument("--label-noise", type=float, default=0.3, help="delta_0 (default 0.3)")
    parser.add_argument("--target", type=float, default=0.1, help="sqrt(E s^2) target (0.1)")
    parser.add_argument("--eta-min", type=float, default=3e-4)
    parser.add_argument("--eta-max", type=float, default=1e-2)
    parser.add_argument("--points", type=int, default=5, help="eta values per curve (5)")
    parser.add_argument("--paths", type=int, default=400, help="reduced-SDE paths (400)")
    parser.add_argument("--mc-seeds", type=int, default=400, help="Monte Carlo seeds (400; 0: none)")
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.4, 0.5, 2 / 3, 0.8])
    parser.add_argument("--sde-optimum", type=int, default=3,
                        help="eta values at which the optimum is also found from the SDE (3; 0: none)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    target = args.target
    etas = np.geomspace(args.eta_min, args.eta_max, args.points)
    base = momentum.TwoParameterMomentum(step_size=1e-3, exponent=2 / 3, constant=1.0,
                                         label_noise=args.label_noise, initial_coordinate=1.0)
    c_star = momentum.timescales(base)["optimal_constant"]
    key = jax.random.PRNGKey(0)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))

    # ---- panel 1: T(eta) along the family
    ax = axes[0]
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(args.gammas)))
    print(f"C* = (delta^2 kappa)^(1/3) = {c_star:.3f}")
    for gamma, colour in zip(args.gammas, colours):
        constants = [(c_star, "-")]
        if abs(gamma - 2 / 3) < 1e-9:
            constants += [(c_star / 2, "--"), (2 * c_star, ":")]
        for constant, style in constants:
            rows = []
            for eta in etas:
                if constant * eta**gamma > 1:
                    continue
                setup = dataclasses.replace(base, step_size=float(eta), exponent=gamma,
                                            constant=constant)
                rows.append((eta, theory_time(setup, target, paths=args.paths)))
            e, t = np.array(rows).T
            slope = np.polyfit(np.log(e), np.log(t), 1)[0]
            label = f"gamma={gamma:.2f}, C={constant / c_star:g} C*: slope {slope:.2f}"
            ax.loglog(e, t, style, color=colour, label=label)
            print("T along the family:", label, " T =", np.round(t).astype(int))
            if args.mc_seeds and style == "-":
                for eta, t_th in rows[:: 2]:
                    key, sub = jax.random.split(key)
                    setup = dataclasses.replace(base, step_size=float(eta), exponent=gamma,
                                                constant=constant)
                    t_mc, err = mc_time(setup, target, t_th, seeds=args.mc_seeds, key=sub)
                    ax.errorbar([eta], [t_mc], yerr=[err], fmt="o", color=colour, ms=4)
                    print(f"   eta={eta:.2e}: theory T={t_th:.0f}, Monte Carlo T={t_mc:.0f} +- {err:.0f}"
                          f" ({(t_th - t_mc) / err:+.1f} s.e.)")
    ax.set_xlabel("step size eta")
    ax.set_ylabel("steps to sqrt(E s^2) < %g" % target)
    ax.set_title("T along 1 - beta = C eta^gamma (lines: theory, dots: MC)")
    ax.legend(fontsize=7)

    # ---- panel 2: the optimal 1 - beta against eta
    ax = axes[1]
    fine = np.geomspace(args.eta_min, args.eta_max, 2 * args.points)
    best = [momentum.optimal_momentum(dataclasses.replace(base, step_size=float(eta)), target)
            for eta in fine]
    gaps, t_best_recursion = np.array(best).T
    # T at the best 1 - beta from the reduced SDE (the recursion places the optimum well but,
    # with one normal mode, its T there is about half the Monte Carlo's)
    t_best = np.array([momentum.time_to_target(dataclasses.replace(base, step_size=float(eta), exponent=None,
                                                             constant=None, momentum=1.0 - gap),
                                         target, method="sde", paths=args.paths)
                       for eta, gap in zip(fine, gaps)])
    print("T at the best 1-beta: recursion", np.round(t_best_recursion).astype(int),
          "| reduced SDE", np.round(t_best).astype(int),
          "| slope (SDE) %.3f" % np.polyfit(np.log(fine), np.log(t_best), 1)[0])
    slope = np.polyfit(np.log(fine), np.log(gaps), 1)[0]
    ax.loglog(fine, gaps, "o-", label=f"recursion optimum: slope {slope:.3f}")
    print(f"optimal 1-beta (recursion): fitted exponent {slope:.3f} (expected 2/3)")
    if args.sde_optimum:
        sde_etas = np.geomspace(args.eta_min, args.eta_max, args.sde_optimum)
        sde_best = []
        for eta in sde_etas:
            setup = dataclasses.replace(base, step_size=float(eta))
            centre = c_star * eta ** (2 / 3)
            sde_best.append(momentum.optimal_momentum(setup, target, method="sde", paths=args.paths,
                                                bounds=(centre / 4, min(1.0, 3 * centre)), grid=9))
        sde_gaps, sde_t = np.array(sde_best).T
        sde_slope = np.polyfit(np.log(sde_etas), np.log(sde_gaps), 1)[0] if len(sde_etas) > 1 else np.nan
        ax.loglog(sde_etas, sde_gaps, "s", ms=8, mfc="none",
                  label=f"reduced-SDE optimum: slope {sde_slope:.3f}")
        print(f"optimal 1-beta (reduced SDE) at eta={np.round(sde_etas, 5)}: {np.round(sde_gaps, 5)}, "
              f"fitted exponent {sde_slope:.3f}")
        if args.mc_seeds:
            for eta, gap, t_th in zip(sde_etas, sde_gaps, sde_t):
                key, sub = jax.random.split(key)
                setup = dataclasses.replace(base, step_size=float(eta), exponent=None,
                                            constant=None, momentum=1 - gap)
                t_mc, err = mc_time(setup, target, t_th, seeds=args.mc_seeds, key=sub)
                print(f"   at the SDE optimum, eta={eta:.2e}: theory T={t_th:.0f}, "
                      f"Monte Carlo T={t_mc:.0f} +- {err:.0f}")
    ax.loglog(fine, c_star * fine ** (2 / 3), "k:", label="C* eta^(2/3) (critical damping)")
    ax.set_xlabel("step size eta")
    ax.set_ylabel("best 1 - beta")
    ax.set_title("optimal momentum: 1 - beta ~ eta^(2/3)")
    ax.legend(fontsize=8)

    # ---- panel 3: speed-up over fixed beta and over beta = 0
    ax = axes[2]
    t_zero = np.array([momentum.time_to_target(dataclasses.replace(base, step_size=float(eta), exponent=None,
                                                             constant=None, momentum=0.0),
                                         target, method="flow") for eta in fine])
    t_fixed = np.array([momentum.time_to_target(dataclasses.replace(base, step_size=float(eta), exponent=None,
                                                              constant=None, momentum=0.9),
                                          target, method="recursion") for eta in fine])
    up_zero = t_zero / t_best
    up_fixed = t_fixed / t_best
    ax.loglog(fine, up_zero, "o-", label="T(beta=0) / T(best): slope %.2f"
              % np.polyfit(np.log(fine), np.log(up_zero), 1)[0])
    ax.loglog(fine, up_fixed, "s-", label="T(beta=0.9) / T(best): slope %.2f"
              % np.polyfit(np.log(fine), np.log(up_fixed), 1)[0])
    ax.set_xlabel("step size eta")
    ax.set_ylabel("speed-up of the best 1 - beta")
    ax.set_title("speed-up (expected ~ eta^(-4/3) over beta = 0)")
    ax.legend(fontsize=8)
    for eta, a, b in zip(fine, up_zero, up_fixed):
        print(f"eta={eta:.2e}: speed-up over beta=0 {a:9.1f}, over beta=0.9 {b:7.2f}")

    fig.suptitle(f"label-noise SGD + momentum, f = w1 w2, delta = {args.label_noise}, s0 = 1")
    fig.tight_layout()
    path = out / "momentum_time_to_target.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
