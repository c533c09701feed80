"""Tuning (m, eta) of prox-linear rank-one sensing from the map alone, checked by Monte Carlo.

For every (m, eta_bar) on a grid (eta = eta_bar m / d), the one-step map (docs/proxlinear.md,
"The one-step map"; vmapped over the step sizes of each batch size by `hdsgd.predict_grid`)
predicts the samples needed to reach E^2 <= ``--target``, within a budget of ``--budget`` x d
samples per setting: `hdsgd.tune` over ``batch_size`` and the derived coordinate ``eta_bar``,
with the same sample budget for every setting. The noise floor E_inf^2 of every setting comes
from `hdsgd.proxlinear.floor_grid` (polished from the end of its trajectory). Panels:

1. samples-to-target / d as a heat map over (eta_bar, m), grey where the target is never
   reached (the floor is above it, or the budget runs out), with the chosen point;
2. at the smallest batch: samples-to-target, the floor and the local rate against eta_bar:
   the rate rises with eta_bar but so does the floor, hence the interior optimum
   (docs/proxlinear.md, "Grids and tuning");
3. the best eta for each m against m: eta proportional to m for m << d (eta_bar fixed, the
   linear-scaling rule of docs/proxlinear.md, "The small-batch ODE").

The chosen point is then simulated (``--seeds`` runs) and scored with the same objective.

    python examples/proxlinear_tuning.py --out figures
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
    parser.add_argument("--dim", type=int, default=200, help="d1 = d2")
    parser.add_argument("--noise", type=float, default=0.1, help="noise_std sigma")
    parser.add_argument("--target", type=float, default=0.02, help="target error_sq")
    parser.add_argument("--budget", type=float, default=40.0, help="samples / d per setting")
    parser.add_argument("--seeds", type=int, default=16, help="Monte Carlo runs for the check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    d = args.dim
    setup = hdsgd.proxlinear.ProxLinearSensing(dim_left=d, dim_right=d, batch_size=1,
                                               step_size=1.0 / d, noise_std=args.noise)
    ms = np.unique(np.round(np.geomspace(1, 2 * d, 10)).astype(int))
    eta_bars = np.geomspace(0.1, 30.0, 16)
    objective = hdsgd.samples_to_target(args.target, "error_sq")
    t0 = time.perf_counter()
    tuned = hdsgd.tune(setup, {"batch_size": ms, "eta_bar": eta_bars}, objective,
                       budget=args.budget * d)
    t_tune = time.perf_counter() - t0
    scores = np.array([row["score"] for row in tuned.table if "refined" not in row])
    scores = scores.reshape(len(ms), len(eta_bars)) / d
    # the floor of every setting, polished from where its trajectory ends (the budget)
    t0 = time.perf_counter()
    floors = np.stack([hdsgd.proxlinear.floor_grid(
        setup, np.full(eta_bars.size, m), eta_bars * m / d, np.full(eta_bars.size, args.noise),
        burn_in=int(np.ceil(args.budget * d / m))) for m in ms])
    t_floor = time.perf_counter() - t0
    chosen = tuned.setup
    chosen_floor = floors[list(ms).index(chosen.batch_size),
                          int(np.argmin(np.abs(eta_bars - chosen.eta_bar)))]
    chosen_rate = hdsgd.proxlinear.local_rate(chosen)
    print(f"map over {len(ms)} x {len(eta_bars)} = {scores.size} settings in {t_tune:.1f} s "
          f"(floors {t_floor:.1f} s)")
    print(f"chosen batch_size={chosen.batch_size} step_size={chosen.step_size:.4g} "
          f"(eta_bar={chosen.eta_bar:.4g}): {objective.description} = "
          f"{tuned.objective_value:.6g} (predicted); noise floor E_inf^2 = {chosen_floor:.4g}; "
          f"local rate {chosen_rate:.4g} per step "
          f"({chosen_rate * d / chosen.batch_size:.4g} per d samples)")

    t0 = time.perf_counter()
    check = tuned.verify(jax.random.key(args.seed), seeds=args.seeds, progress=False)
    t_mc = time.perf_counter() - t0
    gap = check.agreement["error_sq"]
    print(f"Monte Carlo at the chosen point ({args.seeds} seeds, {t_mc:.1f} s): "
          f"{objective.description} = {check.objective_value:.6g} vs predicted "
          f"{tuned.objective_value:.6g}; max gap {gap.max_sem_gap:.2f} standard errors "
          f"({gap.max_rel_gap:.1%} relative)")

    fig, ax = plt.subplots(1, 3, figsize=(17, 4.8))
    masked = np.ma.masked_invalid(np.log10(scores))
    cmap = plt.cm.viridis.copy()
    cmap.set_bad("0.85")
    mesh = ax[0].pcolormesh(eta_bars, ms, masked, shading="nearest", cmap=cmap)
    fig.colorbar(mesh, ax=ax[0], label=r"$\log_{10}$ (samples to target / d)")
    ax[0].contour(eta_bars, ms, floors, levels=[args.target], colors="w", linewidths=1)
    ax[0].plot([chosen.eta_bar], [chosen.batch_size], "r*", ms=14,
               label=f"chosen: m={chosen.batch_size}, eta_bar={chosen.eta_bar:.3g}\n"
                     f"predicted {tuned.objective_value / d:.2f} d, "
                     f"MC {check.objective_value / d:.2f} d")
    ax[0].set_xscale("log")
    ax[0].set_yscale("log")
    ax[0].set_xlabel(r"$\bar\eta = \eta d / m$")
    ax[0].set_ylabel("batch size m")
    ax[0].set_title(f"samples to E^2 <= {args.target:g} (white: floor = target)")
    ax[0].legend(fontsize=8, loc="lower left")

    small = setup.replace(batch_size=int(ms[0]))
    rates = np.array([hdsgd.proxlinear.local_rate(small.replace(eta_bar=eb)) * d / ms[0]
                      for eb in eta_bars])
    ax[1].plot(eta_bars, scores[0], "o-", label=f"samples to target / d (m={ms[0]})")
    ax[1].plot(eta_bars, rates, "s-", label=r"local rate $\rho$ per d samples")
    ax[1].plot(eta_bars, floors[0] / args.noise**2, "^-",
               label=r"floor $E_\infty^2/\sigma^2$")
    ax[1].axhline(args.target / args.noise**2, color="k", lw=0.8, ls=":",
                  label=r"target / $\sigma^2$")
    ax[1].set_xscale("log")
    ax[1].set_yscale("log")
    ax[1].set_xlabel(r"$\bar\eta$")
    ax[1].set_title(f"small batch (m={small.batch_size}): rate and floor both rise")
    ax[1].legend(fontsize=8)

    best = np.argmin(np.where(np.isfinite(scores), scores, np.inf), axis=1)
    ok = np.isfinite(scores[np.arange(len(ms)), best])
    best_eta = eta_bars[best] * ms / d
    ax[2].loglog(ms[ok], best_eta[ok], "o-", label="best eta (map)")
    ref = best_eta[0] * ms / ms[0]
    ax[2].loglog(ms, ref, "k--", lw=0.8, label=r"$\eta \propto m$")
    ax[2].axvline(d, color="0.5", lw=0.8, ls=":", label="m = d")
    ax[2].set_xlabel("batch size m")
    ax[2].set_ylabel("best step size eta")
    ax[2].set_title("linear scaling for m <~ d")
    ax[2].legend(fontsize=8)
    fig.suptitle(f"prox-linear tuning from the map alone, d1 = d2 = {d}, sigma = {args.noise}, "
                 f"budget {args.budget:g} d samples per setting")
    fig.tight_layout()
    path = args.out / "proxlinear_tuning.png"
    fig.savefig(path, dpi=130)
    print("best eta_bar per m:", dict(zip(ms.tolist(), np.round(eta_bars[best], 3).tolist())))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
