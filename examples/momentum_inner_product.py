"""The inner-product model f = <u, v> at the critical scaling 1 - beta = C eta^(2/3)
(docs/momentum.md, "The inner-product model"; Cowsik, Can & Glorioso, arXiv:2210.16400): one
normal mode, so the energy
noise of the transverse oscillation is O(1) and the reduced SDE, not its deterministic
closure, gives the drift toward the flattest minimisers.

u, v in R^d (default d = 4) start off balance (s_0 = 1) and off parallel (cosine c = 1/2)
on <u, v> = 1; label noise drifts them toward u = v, ||u|| = 1.

Panels: (1) E s (s = 1/4 ln(||u||^2/||v||^2)) against the step at C = C* = (4 delta^2)^(1/3):
Monte Carlo mean and 2-standard-error band, reduced SDE, closure, first-order flow; (2) tr H - 2
and (3) the distance to the flattest minimisers, same runs; (4) the time-to-target T
(E s^2 <= target^2) against C: Monte Carlo (bootstrap errors) vs SDE, closure and flow.

Measured with the defaults (2-core CPU, ~30 s; see docs/momentum.md), T in steps for
C = 0.36 / 0.50 / 0.71 (= C*) / 1.01 / 1.42: Monte Carlo 2522 +- 56 / 2069 +- 50 / 2545 +- 37 /
4366 +- 70 / 8366 +- 57, reduced SDE 2378 / 2019 / 2576 / 4417 / 8348, closure 1832 / 1528 /
1735 / 3869 / 7959, flow 504 / 1007 / 2015 / 4030 / 8059. The SDE is within 1.4 s.e. from C = 0.5
up (2.6 s.e. early at C*/2, under-damped); the closure is 5-22 s.e. early; both the SDE and the
Monte Carlo put the best C near 0.5, below the critical-damping estimate C* (as for w_1 w_2).

    python examples/momentum_inner_product.py --out figures

Smallest setting (seconds): --seeds 50 --paths 100 --horizon 1000
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--step-size", type=float, default=1e-3, help="eta (default 1e-3)")
    parser.add_argument("--label-noise", type=float, default=0.3, help="delta_0 (default 0.3)")
    parser.add_argument("--dim", type=int, default=4,
                        help="d (default 4; the law does not depend on it)")
    parser.add_argument("--initial-cosine", type=float, default=0.5,
                        help="cosine c between u_0 and v_0 (default 0.5)")
    parser.add_argument("--seeds", type=int, default=500, help="Monte Carlo seeds (default 500)")
    parser.add_argument("--paths", type=int, default=2000, help="SDE sample paths (default 2000)")
    parser.add_argument("--target", type=float, default=0.1,
                        help="target on sqrt(E s^2) (default 0.1)")
    parser.add_argument("--horizon", type=float, default=3500, help="steps (default 3500)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()

    c_star = (4.0 * args.label_noise**2) ** (1.0 / 3.0)
    setup = momentum.InnerProductMomentum(dim=args.dim, initial_cosine=args.initial_cosine,
                                          step_size=args.step_size, exponent=2.0 / 3.0,
                                          constant=c_star, label_noise=args.label_noise)
    times = np.arange(0, args.horizon + 1, 25.0)
    key = jax.random.PRNGKey(0)
    mc = hdsgd.simulate(setup, args.horizon, key=key, seeds=args.seeds, times=times,
                        progress=False)
    curves = {
        "reduced SDE": hdsgd.predict(setup, args.horizon, times=times, method="sde",
                                     paths=args.paths),
        "closure (no energy noise)": hdsgd.predict(setup, args.horizon, times=times,
                                                   method="closure"),
        "first-order flow": hdsgd.predict(setup, args.horizon, times=times, method="flow"),
    }
    # from the transverse relaxation time tau_1: before it the run is still building up the
    # normal fluctuation the SDE averages over (docs/momentum.md, "Known limitations")
    tau_1 = momentum.timescales(setup)["tau_1"]
    agreement = hdsgd.compare(curves["reduced SDE"], mc,
                              ("manifold_coordinate", "trace_hessian", "distance_to_flattest"),
                              t_min=tau_1)

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))
    panels = [
        ("E s", mc.mean()["manifold_coordinate"], mc.sem()["manifold_coordinate"],
         lambda c: c["manifold_coordinate"], "log"),
        ("tr H - 2", mc.mean()["trace_hessian"] - 2.0, mc.sem()["trace_hessian"],
         lambda c: c["trace_hessian"] - 2.0, "symlog"),
        ("distance to the flattest minimisers", mc.mean()["distance_to_flattest"],
         mc.sem()["distance_to_flattest"], lambda c: c["distance_to_flattest"], "linear"),
    ]
    for ax, (name, mean, sem, of, scale) in zip(axes, panels):
        ax.fill_between(mc.time, mean - 2 * sem, mean + 2 * sem, color="k", alpha=0.2,
                        label=f"Monte Carlo ({args.seeds} seeds, 2 s.e.)")
        ax.plot(mc.time, mean, "k.", ms=3)
        for (label, curve), style in zip(curves.items(), ("C0-", "C3--", "C2:")):
            ax.plot(curve.time, of(curve), style, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.set_title(name)
        if scale == "log":
            ax.set_yscale("log")
            ax.set_ylim(bottom=max(1e-5, float(np.nanmin(mean[mean > 0])) / 3))
        elif scale == "symlog":  # tr H ends slightly below 2 (the mean normal offset)
            ax.set_yscale("symlog", linthresh=0.03)
    axes[0].legend(fontsize=8)

    constants = c_star * np.geomspace(0.5, 2.0, 5)
    rows = []
    for i, c in enumerate(constants):
        trial = dataclasses.replace(setup, constant=float(c))
        t_flow = momentum.time_to_target(trial, args.target, method="flow")
        horizon = float(np.ceil(max(1.6 * args.horizon, 1.5 * t_flow) / 25.0) * 25.0)
        grid = np.arange(0, horizon + 1, 25.0)
        run = hdsgd.simulate(trial, horizon, key=jax.random.PRNGKey(10 + i), seeds=args.seeds,
                             times=grid, progress=False)
        t_mc, err = momentum.measured_time_to_target(run, args.target)
        found = {m: momentum.time_to_target(trial, args.target, method=m, horizon=horizon,
                                      points=grid.size - 1, **kw)
                 for m, kw in (("sde", dict(paths=args.paths)), ("closure", {}))}
        found["flow"] = t_flow
        rows.append((c, t_mc, err, found))
        print(f"C = {c:.3f}: Monte Carlo T = {t_mc:.0f} +- {err:.0f}, SDE {found['sde']:.0f}, "
              f"closure {found['closure']:.0f}, flow {found['flow']:.0f}")
    ax = axes[3]
    cs = np.array([r[0] for r in rows])
    ax.errorbar(cs, [r[1] for r in rows], yerr=[2 * r[2] for r in rows], fmt="ko",
                label="Monte Carlo (2 s.e.)")
    for method, style in (("sde", "C0-"), ("closure", "C3--"), ("flow", "C2:")):
        ax.plot(cs, [r[3][method] for r in rows], style, label=method)
    ax.axvline(c_star, color="gray", lw=0.8, label=f"C* = {c_star:.3f} (critical damping)")
    ax.set_xscale("log")
    ax.set_xlabel("C  (1 - beta = C eta^(2/3))")
    ax.set_ylabel("T, steps")
    ax.set_title(f"time to sqrt(E s^2) <= {args.target}")
    ax.legend(fontsize=8)
    fig.suptitle(f"inner product f = <u, v>, d = {args.dim}, c = {args.initial_cosine}, "
                 f"eta = {args.step_size:g}, delta_0 = {args.label_noise:g}, C* = {c_star:.3f}")
    fig.tight_layout()
    path = out / "momentum_inner_product.png"
    fig.savefig(path, dpi=110)
    print(agreement.summary())
    print(f"wrote {path} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
