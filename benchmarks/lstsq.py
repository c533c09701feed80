"""Streaming least squares: speed and accuracy of every deterministic equivalent, measured side by
side in one run (ratios; timings are never asserted in tests).

1. predict vs simulate (16 seeds) for the same curve at d = 4096.
2. The power-law problem of the public power-law random-features code: 10^4 modes, eigenvalues
   j^-2, target coefficients j^-0.7, per-step learning rate 0.5 / tr H, batch 1, 10^6 steps,
   about 300 output steps: method="recursion" (the reference), "spectral", "ode", "volterra",
   and, with --plrf, that code's own ODE solver on the same problem. Time after compilation,
   relative error at steps 7, 100 and 10^6 and the largest over all output steps >= 1, and what
   each method reports about its own error.
3. The same with eigenvalues 1/j (stiffer than average, ordinary).
4. d = 1000 (uniform spectrum) at 0.99 of the stability edge: the O(1/d) gap of ode and volterra.
5. 10^6 modes (eigenvalues j^-2, and 1/j): the spectral solution over 10^6 steps, checked against
   the recursion on its first 2000 steps.
6. Heavy-ball momentum: the spectral solution (slow roots after the exact first steps) vs the
   moment recursion; the discrete Volterra equation; a 16-seed Monte Carlo; and at a large batch
   the Monte Carlo's two samplers, "data" (B x d normals per step) vs "projected" (B + B + d).
7. The plain recursion taken k steps a pass (the default, `recursion_block(d)`) against one step
   a pass, d = 100 ... 10^5, and their largest relative difference; the same for the heavy-ball
   moment recursion (8 steps a pass).

The public code is not part of hdsgd: --plrf takes the path of a checkout of
github.com/LosVolterrosHermanos/Experimental (its power_law_rf/ode.py,
ode_resolvent_log_implicit, is imported from there and run as is, with g2 = the learning rate
and g1 = g3 = delta = 0, i.e. plain SGD).

Usage: python benchmarks/lstsq.py [--quick] [--plrf PATH] [--plrf-dt 1e-3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import hdsgd
from _timing import device_line, timed  # benchmarks/_timing.py (the script folder is on sys.path)
from hdsgd import spectra


def _steps(n_steps: int, early: int = 100, points: int = 200) -> np.ndarray:
    return np.unique(np.concatenate([np.arange(0, early + 1),
                                     np.round(np.geomspace(early, n_steps, points)).astype(int)]))


def _rel(curve, reference) -> np.ndarray:
    return np.abs(np.asarray(curve) / np.asarray(reference) - 1.0)


def _at(steps, rel, k):
    return float(rel[np.searchsorted(steps, k)]) if k <= steps[-1] else float("nan")


def _public_ode(path: str):
    """ode_resolvent_log_implicit from a checkout of the public code (None if absent)."""
    if not path:
        return None
    file = Path(path) / "power_law_rf" / "ode.py"
    if not file.exists():
        print(f"    (--plrf {path}: no power_law_rf/ode.py there)")
        return None
    spec = importlib.util.spec_from_file_location("public_plrf_ode", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _problem(label, lam, rho0, n_steps, public, public_dt):
    """Section 2/3: every method on one problem, against the recursion."""
    d = lam.size
    lr = 0.5 / lam.sum()
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=rho0, noise_std=0.0, step_size=lr * d,
                                        batch_size=1)
    steps = _steps(n_steps)
    times = steps / d
    print(f"\n[{label}] {d} modes, {n_steps} steps, learning rate 0.5 / tr H = {lr:.4g}, "
          f"batch 1, {steps.size} output steps")
    rec, _, rec_time = timed(lambda: hdsgd.predict(setup, times[-1], times=times,
                                                   method="recursion"), repeat=1)
    ref = rec["risk"]
    print(f"    {'method':<22}{'time':>9}{'vs recursion':>14}{'step 7':>10}{'step 100':>10}"
          f"{'last':>10}{'max':>10}   reported")
    rows = [("recursion (exact)", rec, rec_time)]
    for method in ("spectral", "ode", "volterra"):
        curve, _, best = timed(lambda: hdsgd.predict(setup, times[-1], times=times, method=method),
                               repeat=2)
        rows.append((method, curve, best))
    for name, curve, best in rows:
        rel = _rel(curve["risk"], ref)
        meta = curve.meta
        said = ""
        if "spectral_check_error" in meta:
            said = f"check {meta['spectral_check_error']:.1e}"
        if "gap_to_exact" in meta:
            said = (f"gap {meta['gap_to_exact']:.2e}, own error {meta['error_estimate']:.1e}"
                    + (", WARNING" if "warning" in meta else ""))
        print(f"    {name:<22}{best:8.2f}s{rec_time / best:12.1f}x{_at(steps, rel, 7):10.1e}"
              f"{_at(steps, rel, 100):10.1e}{rel[-1]:10.1e}{rel[1:].max():10.1e}   {said}")
    if public is None:
        return
    zero = lambda t: 0.0 * t  # noqa: E731
    hparams = public.DanaHparams(zero, lambda t: lr + 0.0 * t, zero, zero)

    def run():  # in float64, like hdsgd (the code keeps its own float32 log-time grid)
        inputs = public.ODEInputs(jnp.asarray(lam), jnp.asarray(rho0), jnp.zeros(d), jnp.zeros(d),
                                  0.0)
        grid, twice = public.ode_resolvent_log_implicit(inputs, hparams, 1, d, float(n_steps),
                                                        public_dt)
        return jax.block_until_ready((grid, twice))

    with jax.enable_x64(True):
        (grid, twice), _, best = timed(run, repeat=1)
    risk = np.interp(steps, np.asarray(grid, float), 0.5 * np.asarray(twice, float))
    rel = _rel(risk, ref)
    print(f"    {'public ODE, dt=' + str(public_dt):<22}{best:8.2f}s{rec_time / best:12.1f}x"
          f"{_at(steps, rel, 7):10.1e}{_at(steps, rel, 100):10.1e}{rel[-1]:10.1e}"
          f"{rel[1:].max():10.1e}   ({np.asarray(grid).size} log-time steps)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--plrf", default="", help="a checkout of the public power-law RF code")
    parser.add_argument("--plrf-dt", type=float, default=1e-3, help="its log-time step")
    args = parser.parse_args(argv)
    print(device_line())
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (times are wall "
          "clock; ratios are measured side by side)")
    public = _public_ode(args.plrf)

    # 1. prediction vs Monte Carlo
    d = 1024 if args.quick else 4096
    horizon = 2.0 if args.quick else 10.0
    setup = hdsgd.StreamingLeastSquares(spectra.power_law(d, 1.0), initial_error=1.0,
                                        noise_std=0.1, step_size=2.0, batch_size=1)
    th, th_first, th_best = timed(lambda: hdsgd.predict(setup, horizon), repeat=2)
    mc, mc_first, mc_best = timed(
        lambda: hdsgd.simulate(setup, horizon, key=jax.random.key(0), seeds=16, progress=False),
        repeat=1)
    agreement = hdsgd.compare(th, mc, "excess_risk")
    print(f"\n[1] d={d}, horizon t={horizon} ({int(horizon * d)} steps), batch 1")
    print(f"    predict ({th.meta['method']}): {th_best:8.3f} s   (first call {th_first:.3f} s)")
    print(f"    simulate (16 seeds): {mc_best:8.3f} s   (first call {mc_first:.3f} s)")
    print(f"    ratio simulate / predict: {mc_best / th_best:8.1f}x")
    print(f"    agreement: max gap {agreement['excess_risk'].max_sem_gap:.2f} standard errors, "
          f"{agreement['excess_risk'].max_rel_gap:.2%} relative")

    # 2-3. the power-law problems
    d = 2000 if args.quick else 10_000
    n_steps = 100_000 if args.quick else 1_000_000
    j = np.arange(1, d + 1)
    _problem(2, j**-2.0, j**-1.4, n_steps, public, args.plrf_dt)
    _problem(3, 1.0 / j, j**-1.4, n_steps, public, args.plrf_dt)

    # 4. near the stability edge at d = 1000
    d = 1000
    setup = hdsgd.StreamingLeastSquares(spectra.ramp(d, 0.25, 1.75), initial_error=1.0,
                                        noise_std=0.3, step_size=1.0, batch_size=1)
    setup = setup.replace(step_size=0.99 * hdsgd.lstsq.critical_step_size(setup))
    n_steps = 20_000 if args.quick else 200_000
    times = _steps(n_steps) / d
    exact = hdsgd.predict(setup, times[-1], times=times, method="spectral")
    print(f"\n[4] d={d}, uniform spectrum on [0.25, 1.75], step 0.99 gamma_c = "
          f"{setup.step_size:.4g}, noise 0.3, {n_steps} steps")
    for method in ("ode", "volterra"):
        curve = hdsgd.predict(setup, times[-1], times=times, method=method)
        print(f"    {method:<9} max relative gap to the exact solution "
              f"{_rel(curve['risk'], exact['risk']).max():.2e} (reported {curve.meta['gap_to_exact']:.2e}, "
              f"own error {curve.meta['error_estimate']:.1e})")

    # 5. a million modes
    d = 100_000 if args.quick else 1_000_000
    n_steps = 1_000_000
    j = np.arange(1, d + 1)
    print(f"\n[5] {d} modes, {n_steps} steps, learning rate 0.5 / tr H, batch 1")
    for name, lam in (("j^-2", j**-2.0), ("1/j", 1.0 / j)):
        setup = hdsgd.StreamingLeastSquares(lam, initial_error=j**-1.4, noise_std=0.0,
                                            step_size=0.5 * d / lam.sum(), batch_size=1)
        steps = _steps(n_steps)
        curve, first, best = timed(lambda: hdsgd.predict(setup, n_steps / d, times=steps / d,
                                                         method="spectral"), repeat=1)
        early = steps <= 2000
        rec, _, rec_time = timed(lambda: hdsgd.predict(setup, 2000 / d, times=steps[early] / d,
                                                       method="recursion"), repeat=1)
        err = _rel(curve["risk"][early], rec["risk"]).max()
        print(f"    eigenvalues {name}: spectral {best:7.2f} s (first call {first:.2f} s), "
              f"{curve.meta['spectral_groups']} distinct poles, {curve.meta['spectral_sums']} sums; "
              f"error vs the recursion on steps <= 2000: {err:.1e} (recursion, 2000 steps: "
              f"{rec_time:.2f} s)")

    # 6. heavy-ball momentum
    d = 2000 if args.quick else 10_000
    n_steps = 100_000 if args.quick else 1_000_000
    j = np.arange(1, d + 1)
    lam = j**-2.0
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=j**-1.4, noise_std=0.0,
                                        step_size=0.5 * 0.1 * d / lam.sum(), batch_size=1,
                                        momentum=0.9)
    steps = _steps(n_steps)
    times = steps / d
    rec, _, rec_time = timed(lambda: hdsgd.predict(setup, times[-1], times=times,
                                                   method="recursion"), repeat=1)
    spec, first, best = timed(lambda: hdsgd.predict(setup, times[-1], times=times,
                                                    method="spectral"), repeat=2)
    err = _rel(spec["risk"], rec["risk"])
    print(f"\n[6] momentum 0.9, effective learning rate 0.5 / tr H, {d} modes, {n_steps} steps")
    print(f"    recursion (exact): {rec_time:8.2f} s")
    print(f"    spectral:          {best:8.2f} s   ({rec_time / best:.1f}x faster; first call "
          f"{first:.2f} s); {spec.meta['exact_steps']} exact steps, "
          f"{spec.meta['spectral_secular_poles']} slow poles; max relative error {err[1:].max():.1e}")
    d = 512 if args.quick else 2048
    horizon = 2.0 if args.quick else 5.0
    setup = hdsgd.StreamingLeastSquares(spectra.power_law(d, 1.0), initial_error=1.0,
                                        noise_std=0.1, step_size=0.4, batch_size=4, momentum=0.8)
    rec, rec_first, rec_best = timed(lambda: hdsgd.predict(setup, horizon, method="recursion"),
                                     repeat=2)
    vol, _, vol_best = timed(lambda: hdsgd.predict(setup, horizon, method="volterra"), repeat=1)
    mc, _, mc_best = timed(
        lambda: hdsgd.simulate(setup, horizon, key=jax.random.key(0), seeds=16, progress=False),
        repeat=1)
    agreement = hdsgd.compare(rec, mc, "excess_risk")["excess_risk"]
    print(f"    beta=0.8, gamma=0.4, B=4, d={d}, {int(horizon * d)} steps: recursion "
          f"{rec_best:.3f} s, discrete Volterra {vol_best:.3f} s ({vol_best / rec_best:.1f}x, gap "
          f"{vol.meta['gap_to_exact']:.1e}), 16-seed Monte Carlo {mc_best:.2f} s "
          f"({mc_best / rec_best:.0f}x; {agreement.max_sem_gap:.2f} standard errors)")
    lam = np.linspace(1.0, 0.04, 100)
    gamma, beta = hdsgd.lstsq.accelerated_hyperparameters(lam)
    batch = int(np.ceil(4 * hdsgd.lstsq.accelerated_critical_batch_size(lam)))
    large = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.0, step_size=gamma,
                                        batch_size=batch, momentum=beta)
    times = np.arange(41) / 100
    runs = {sampler: timed(lambda: hdsgd.simulate(large, times[-1], times=times,
                                                  key=jax.random.key(1), seeds=64, progress=False,
                                                  method=sampler), repeat=1)[2]
            for sampler in ("data", "projected")}
    print(f"    large batch B={batch} (4 B_c), d=100, 40 steps, 64 seeds: sampler 'data' "
          f"{runs['data']:.2f} s, 'projected' {runs['projected']:.2f} s "
          f"({runs['data'] / runs['projected']:.1f}x)")

    blocked_vs_stepwise(args.quick)


def _pass_row(recursion, d: int, n: int, k: int, momentum: tuple = ()):
    """One row of [7]: ``recursion`` one step a pass vs ``k`` steps, timed side by side."""
    with jax.enable_x64(True):
        args = (jnp.asarray(spectra.power_law(d, 1.0)), jnp.ones(d), 0.01, 2.0, 1.0, *momentum, n)
        last = len(args) - 1  # n_steps: static
        one = jax.jit(lambda *a: recursion(*a, block=1), static_argnums=last)
        many = jax.jit(lambda *a: recursion(*a, block=k), static_argnums=last)
        ref, _, t_one = timed(lambda: one(*args).block_until_ready(), repeat=3)
        out, _, t_many = timed(lambda: many(*args).block_until_ready(), repeat=3)
        diff = float(jnp.max(jnp.abs(out - ref) / ref))
    print(f"    {d:>6} {n:>6} {k:>3} {1e3 * t_one:>8.1f}ms {1e3 * t_many:>8.1f}ms "
          f"{t_one / t_many:>6.2f}x {diff:>13.1e}")


def blocked_vs_stepwise(quick: bool):
    from hdsgd.odes.lstsq import _recursion

    print("\n[7] plain recursion: k steps a pass vs one step a pass (compiled, best of 3)")
    print(f"    {'d':>6} {'steps':>6} {'k':>3} {'one step':>10} {'k steps':>10} {'ratio':>7} "
          f"{'max rel diff':>13}")
    sizes = [(100, 2000), (1000, 5000), (4000, 8000), (10000, 20000), (30000, 4000), (100000, 2000)]
    for d, n in sizes[:3] if quick else sizes:
        _pass_row(_recursion.recursion_psi, d, n, _recursion.recursion_block(d))
    print("    heavy ball (beta = 0.7), 8 steps a pass vs one")
    for d, n in sizes[:2] if quick else sizes[:4]:
        _pass_row(_recursion.momentum_recursion_psi, d, n, 8, momentum=(0.7,))

if __name__ == "__main__":
    main()
