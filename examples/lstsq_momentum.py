"""SGD + heavy-ball momentum on streaming least squares: where momentum helps, and where it only
rescales the step (docs/lstsq.md, "Momentum"; Paquette & Paquette 2021; Lee, Cheng, Paquette &
Paquette 2022).

(a) Small batch (B = 1, d = 500): SGD+M at (gamma, beta) with gamma = gamma_eff (1 - beta) for
    several beta lies on top of plain SGD at gamma_eff: momentum only rescales the step.
(b) Large batch (d = 100, kappa = 25, B = 4 B_c): the full-batch optimal heavy ball (gamma*,
    beta*) converges at ~beta* per step, far faster than SGD at its best step, and SGD+M at its
    best (gamma, beta) for this B faster still. Here momentum is not a rescaled step: SGD at
    gamma*/(1 - beta*) diverges. Theory lines, Monte Carlo means (projected sampler, exact in
    distribution) as markers.
(c) The per-step speed -ln(rate) against B (theory, exact asymptotic rate): plain SGD at its
    best step, the accelerated pair (gamma*, beta*) (stable only above B_c), and SGD+M at its
    best (gamma, beta). Vertical lines: plain SGD's critical batch tr H / lambda_max and the
    accelerated pair's B_c (exact finite-d form, homogenized form, bulk approximation).

Usage: python examples/lstsq_momentum.py [--out figures/] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import jax
import numpy as np
import scipy.optimize

import hdsgd
from hdsgd import spectra
from hdsgd import lstsq as hb


def rate(setup, step_size, momentum):
    """Exact asymptotic per-step rate of the excess risk (1 where unstable)."""
    s = dataclasses.replace(setup, step_size=step_size, momentum=momentum)
    if step_size >= hb.critical_step_size(s):
        return 1.0
    return min(hb.asymptotic_rate(s), 1.0)


def best_plain(setup):
    """(rate, gamma) of plain SGD at its best step size."""
    sgd = dataclasses.replace(setup, momentum=0.0)
    gamma_c = hb.critical_step_size(sgd)
    res = scipy.optimize.minimize_scalar(lambda g: rate(sgd, g, 0.0), bounds=(1e-3 * gamma_c, 0.999 * gamma_c),
                                         method="bounded", options={"xatol": 1e-7 * gamma_c})
    return res.fun, res.x


def best_momentum(setup, gamma_start):
    """(rate, gamma, beta) of SGD+M at its best (gamma, beta), Nelder-Mead in (log gamma, logit beta)."""
    def f(p):
        beta = 1.0 / (1.0 + np.exp(-p[1]))
        return rate(setup, float(np.exp(p[0])), float(beta))

    best = None
    for beta in (0.1, 0.5, 0.9):
        res = scipy.optimize.minimize(f, [np.log(gamma_start * (1 - beta)), np.log(beta / (1 - beta))],
                                      method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-9})
        if best is None or res.fun < best.fun:
            best = res
    return best.fun, float(np.exp(best.x[0])), float(1.0 / (1.0 + np.exp(-best.x[1])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default figures/)")
    parser.add_argument("--seeds", type=int, default=32,
                        help="Monte Carlo seeds per curve in (a); 8x as many in (b) (default 32)")
    parser.add_argument("--quick", action="store_true", help="fewer batch sizes in panel (c)")
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = jax.random.key(0)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))

    # (a) small batch: momentum only rescales the step
    d, gamma_eff = 500, 1.5
    small = hdsgd.StreamingLeastSquares(spectra.ramp(d, 0.25, 1.75), initial_error=1.0, noise_std=0.05,
                                        step_size=gamma_eff, batch_size=1)
    horizon = 15.0
    sgd_curve = hdsgd.predict(small, horizon)
    ax = axes[0]
    ax.plot(sgd_curve.time, sgd_curve["excess_risk"], "k-", lw=3, alpha=0.3, label=f"SGD, gamma={gamma_eff}")
    print(f"(a) d={d}, B=1, gamma_eff={gamma_eff}: SGD+M at (gamma_eff (1-beta), beta) vs SGD at gamma_eff")
    for i, beta in enumerate((0.5, 0.8, 0.9)):
        s = dataclasses.replace(small, step_size=gamma_eff * (1 - beta), momentum=beta)
        th = hdsgd.predict(s, horizon)
        mc = hdsgd.simulate(s, horizon, key=jax.random.fold_in(key, i), seeds=args.seeds, progress=False)
        agreement = hdsgd.compare(th, mc, "excess_risk")["excess_risk"]
        gap_sgd = np.max(np.abs(th["excess_risk"] / sgd_curve["excess_risk"] - 1))
        print(f"    beta={beta}: theory vs MC {agreement.max_sem_gap:.2f} s.e. ({agreement.max_rel_gap:.1%}); "
              f"max relative gap to SGD at gamma_eff {gap_sgd:.2%}")
        line, = ax.plot(th.time, th["excess_risk"], "-", lw=1, label=f"SGD+M beta={beta}, gamma={s.step_size:.2f}")
        pick = np.unique(np.geomspace(1, th.time.size - 1, 25).astype(int))
        ax.plot(mc.time[pick], mc.mean()["excess_risk"][pick], "o", ms=3, color=line.get_color())
    ax.set(xscale="log", yscale="log", xlabel="t = steps / d", ylabel="excess risk",
           title="(a) small batch: SGD+M(gamma, beta) = SGD(gamma/(1-beta))")
    ax.legend(fontsize=7)

    # (b) large batch above the critical batch: acceleration
    d = 100
    lam = np.linspace(1.0, 0.04, d)
    gamma_star, beta_star = hb.accelerated_hyperparameters(lam)
    b_c = hb.accelerated_critical_batch_size(lam)
    batch = int(np.ceil(4 * b_c))
    large = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.0, step_size=gamma_star,
                                        batch_size=batch, momentum=beta_star)
    rate_sgd, gamma_sgd = best_plain(large)
    _, gamma_best, beta_best = best_momentum(large, gamma_sgd)
    steps = np.arange(0, 41)
    times = steps / d
    ax = axes[1]
    rescaled = dataclasses.replace(large, momentum=0.0, step_size=hb.effective_step_size(large))
    print(f"(b) d={d}, kappa=25, B={batch} = 4 B_c: SGD at gamma*/(1-beta*) = {rescaled.step_size:.0f} "
          f"(critical step {hdsgd.lstsq.critical_step_size(rescaled):.0f}) diverges: "
          f"{hdsgd.predict(rescaled, times[-1]).any_diverged}")
    for j, (name, s) in enumerate((
            (f"SGD, best gamma={gamma_sgd:.0f}", dataclasses.replace(large, momentum=0.0, step_size=gamma_sgd)),
            (f"SGD+M (gamma*, beta*) = ({gamma_star:.0f}, {beta_star:.2f})", large),
            (f"SGD+M best (gamma, beta) = ({gamma_best:.0f}, {beta_best:.2f})",
             dataclasses.replace(large, step_size=gamma_best, momentum=beta_best)))):
        th = hdsgd.predict(s, times[-1], times=times)
        mc = hdsgd.simulate(s, times[-1], times=times, key=jax.random.fold_in(key, 10 + j),
                            seeds=8 * args.seeds, progress=False, dtype=np.float64, method="projected")
        agreement = hdsgd.compare(th, mc, "excess_risk")["excess_risk"]
        print(f"    {name}: rate {hb.asymptotic_rate(s):.4f}; theory vs MC {agreement.max_sem_gap:.2f} s.e. "
              f"({agreement.max_rel_gap:.1%})")
        line, = ax.plot(steps, th["excess_risk"], "-", label=name)
        ax.plot(steps, mc.mean()["excess_risk"], "o", ms=3, color=line.get_color())
    ax.set(yscale="log", xlabel="steps", ylabel="excess risk",
           title=f"(b) large batch B={batch} (4 B_c): momentum accelerates")
    ax.legend(fontsize=7)

    # (c) speed against batch size
    base = dataclasses.replace(large, batch_size=1)
    b_plain = float(lam.sum() / lam.max())
    batches = np.unique(np.round(np.geomspace(1, 40 * b_c, 8 if args.quick else 16)).astype(int))
    rows = []
    for b in batches:
        s = dataclasses.replace(base, batch_size=int(b))
        r_sgd, g_sgd = best_plain(s)
        r_star = rate(s, gamma_star, beta_star)
        r_best, g_best, beta_best = best_momentum(s, g_sgd)
        rows.append((b, r_sgd, r_star, r_best, g_best / (1 - beta_best), beta_best))
    rows = np.array(rows)
    print("(c)      B    rate SGD*   rate (g*,b*)   rate SGD+M*  gamma_eff   beta")
    for r in rows:
        print(f"    {int(r[0]):>7d} {r[1]:>11.5f} {r[2]:>13.5f} {r[3]:>12.5f} {r[4]:>10.1f} {r[5]:>6.3f}")
    ax = axes[2]
    speed = lambda r: -np.log(np.clip(r, 1e-300, 1.0))  # noqa: E731
    ax.plot(rows[:, 0], speed(rows[:, 1]), "k-o", ms=3, label="SGD, best gamma")
    ok = rows[:, 2] < 1
    ax.plot(rows[ok, 0], speed(rows[ok, 2]), "r-s", ms=3, label="SGD+M at (gamma*, beta*)")
    ax.plot(rows[:, 0], speed(rows[:, 3]), "b--^", ms=3, label="SGD+M, best (gamma, beta)")
    ax.axhline(-np.log(beta_star), color="r", lw=0.6, ls=":", label="full-batch heavy ball (beta*)")
    for value, style, name in ((b_plain, "k:", "tr H/lambda_max"),
                               (b_c, "r-", "B_c exact"),
                               (hb.accelerated_critical_batch_size(lam, "homogenized"), "r--", "B_c homogenized"),
                               (hb.accelerated_critical_batch_size(lam, "bulk"), "r:", "B_c bulk")):
        ax.axvline(value, color=style[0], ls=style[1:], lw=0.8, label=f"{name} = {value:.0f}")
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="-ln(rate) per step",
           title=f"(c) speed vs batch (d={d}, kappa=25)")
    ax.legend(fontsize=7)

    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "lstsq_momentum.png"
    fig.savefig(path, dpi=130)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
