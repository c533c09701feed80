"""Prox-linear rank-one sensing: predicted vs simulated error curves for a few (m, eta).

d1 = d2 = ``--dim``, noise ``--noise``, start s_0 = (0.7, 0.6, 0.8, 0.5) (E_0^2 = 0.64).
Settings: a small batch m = d/50 at eta_bar = eta d/m = 1 (the one-step map; the small-batch
ODE is drawn on top), m = d/4, m = d and m = 3d > d1 + d2 (primal solve), each run until the
error sits on its noise floor, several decades below the start. Lines: the map
(docs/proxlinear.md, "The one-step map");
dots: Monte Carlo mean over ``--seeds`` runs of the real algorithm, band 10-90%; dashed:
the predicted floor (`hdsgd.proxlinear.noise_floor`). The x axis is samples / d, where
the small-batch settings line up (linear scaling; docs/proxlinear.md, "The small-batch ODE").

    python examples/proxlinear_trajectories.py --out figures
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
    parser.add_argument("--noise", type=float, default=0.01, help="noise_std sigma")
    parser.add_argument("--seeds", type=int, default=16, help="Monte Carlo runs per setting")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    d = args.dim
    # (batch_size, step_size, horizon in steps)
    settings = [(max(1, d // 50), max(1, d // 50) / d, 40 * 50), (d // 4, 1.0, 120), (d, 1.0, 25),
                (3 * d, 2.0, 12)]
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(settings)))
    key = jax.random.key(args.seed)
    lines = []
    for (m, eta, horizon), color in zip(settings, colors):
        setup = hdsgd.proxlinear.ProxLinearSensing(dim_left=d, dim_right=d, batch_size=m,
                                                   step_size=eta, noise_std=args.noise)
        t0 = time.perf_counter()
        theory = hdsgd.predict(setup, horizon, method="map")
        t1 = time.perf_counter()
        key, sub = jax.random.split(key)
        mc = hdsgd.simulate(setup, horizon, key=sub, seeds=args.seeds, progress=False)
        t2 = time.perf_counter()
        floor = hdsgd.proxlinear.noise_floor(setup)
        a = hdsgd.compare(theory, mc, "error_sq")["error_sq"]
        label = f"m={m}, eta={eta:.3g} (eta_bar={setup.eta_bar:.3g})"
        x_th, x_mc = theory.samples / d, mc.samples / d
        lo, hi = mc.quantile(0.1)["error_sq"], mc.quantile(0.9)["error_sq"]
        for axis, xt, xm in ((ax[0], x_th, x_mc), (ax[1], theory.time, mc.time)):
            axis.plot(xt, theory["error_sq"], color=color, lw=1.5, label=label)
            axis.fill_between(xm, lo, hi, color=color, alpha=0.2, lw=0)
            axis.plot(xm, mc.mean()["error_sq"], "o", ms=2.5, color=color)
            axis.axhline(floor, color=color, ls="--", lw=0.8)
        if m * 50 <= d:
            ode = hdsgd.predict(setup, horizon, method="ode")
            ax[0].plot(ode.samples / d, ode["error_sq"], ":", color="k", lw=1.2,
                       label="small-batch ODE")
        lines.append(f"{label}: map {t1 - t0:.2f} s, MC {t2 - t1:.1f} s "
                     f"({mc.meta['method']} solve); "
                     f"E^2 from {theory['error_sq'][0]:.3g} to {theory['error_sq'][-1]:.3g} "
                     f"(floor {floor:.3g}); max gap {a.max_sem_gap:.2f} standard errors, "
                     f"{a.max_rel_gap:.1%} relative")
    for axis in ax:
        axis.set_yscale("log")
        axis.set_xlabel("samples / d")
        axis.set_ylabel(r"$E_t^2 = \|\mu_t\nu_t^T - \mu^*\nu^{*T}\|_F^2$")
    ax[1].set_xlabel("iterations t")
    ax[0].set_xlim(0, 40)
    ax[1].set_xscale("log")
    ax[0].legend(fontsize=8)
    fig.suptitle(f"prox-linear rank-one sensing, d1 = d2 = {d}, sigma = {args.noise}: "
                 f"map (lines) vs Monte Carlo ({args.seeds} seeds, dots and 10-90% band)")
    fig.tight_layout()
    path = args.out / "proxlinear_trajectories.png"
    fig.savefig(path, dpi=130)
    print("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
