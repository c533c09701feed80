"""Streaming least squares: speed and accuracy, printed as ratios measured side by side.

1. predict (exact recursion) vs simulate (16 seeds) for the same curve at d = 4096.
2. method="ode" (exact first steps, then the homogenized ODE) vs method="recursion" for
   10^4 modes over a 10^6-step horizon: wall time after compilation, and the largest
   relative error of the ODE against the exact recursion at every output step >= 1.
3. Heavy-ball momentum (hdsgd.odes.lstsq_momentum): the exact moment recursion vs the discrete
   Volterra equation (O(N^2)) vs a 16-seed Monte Carlo, same curve; and at a large batch
   (B = 4 B_c) the Monte Carlo's two samplers, "data" (B x d normals per step) vs "projected"
   (B + B + d normals per step, exact in distribution).

Usage: python benchmarks/lstsq.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import hdsgd
from _timing import device_line, timed  # benchmarks/_timing.py (the script folder is on sys.path)
from hdsgd import spectra




def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args(argv)
    print(device_line())

    # 1. prediction vs Monte Carlo
    d = 1024 if args.quick else 4096
    horizon = 2.0 if args.quick else 10.0
    setup = hdsgd.StreamingLeastSquares(spectra.power_law(d, 1.0), initial_error=1.0, noise_std=0.1,
                                        step_size=2.0, batch_size=1)
    th, th_first, th_best = timed(lambda: hdsgd.predict(setup, horizon), repeat=2)
    mc, mc_first, mc_best = timed(
        lambda: hdsgd.simulate(setup, horizon, key=jax.random.key(0), seeds=16, progress=False), repeat=1)
    agreement = hdsgd.compare(th, mc, "excess_risk")
    print(f"\n[1] d={d}, horizon t={horizon} ({int(horizon * d)} steps), batch 1")
    print(f"    predict (recursion): {th_best:8.3f} s   (first call {th_first:.3f} s, with compilation)")
    print(f"    simulate (16 seeds): {mc_best:8.3f} s   (first call {mc_first:.3f} s)")
    print(f"    ratio simulate / predict: {mc_best / th_best:8.1f}x")
    print(f"    agreement: max gap {agreement['excess_risk'].max_sem_gap:.2f} standard errors, "
          f"{agreement['excess_risk'].max_rel_gap:.2%} relative")

    # 2. long horizon: ODE vs exact recursion
    d = 2000 if args.quick else 10_000
    steps = 100_000 if args.quick else 1_000_000
    setup = hdsgd.StreamingLeastSquares(spectra.power_law(d, 1.0), initial_error=1.0, noise_std=0.1,
                                        step_size=2.0, batch_size=1)
    horizon = steps / d
    rec, rec_first, rec_best = timed(lambda: hdsgd.predict(setup, horizon), repeat=1)
    ode, ode_first, ode_best = timed(lambda: hdsgd.predict(setup, horizon, method="ode"), repeat=2)
    later = rec.time * d >= 1
    err = np.abs(ode["risk"][later] / rec["risk"][later] - 1.0)
    print(f"\n[2] {d} modes, {steps} steps (t = {horizon:g}), power-law spectrum, gamma = 2")
    print(f"    recursion (exact):   {rec_best:8.3f} s   (first call {rec_first:.3f} s)")
    print(f"    ode (exact start {ode.meta['exact_steps']} steps + diffrax): {ode_best:8.3f} s   "
          f"(first call {ode_first:.3f} s)")
    print(f"    speed-up ode / recursion: {rec_best / ode_best:8.1f}x")
    print(f"    max relative error of ode vs recursion over {later.sum()} output steps >= 1: {err.max():.2e}")
    vol, vol_first, vol_best = timed(lambda: hdsgd.predict(setup, horizon, method="volterra"), repeat=1)
    verr = np.abs(vol["risk"][later] / rec["risk"][later] - 1.0)
    print(f"    volterra (2000-point grid): {vol_best:8.3f} s, max relative error {verr.max():.2e} "
          f"(no exact start: wrong at the first steps by design)")

    # 3. heavy-ball momentum
    d = 512 if args.quick else 2048
    horizon = 2.0 if args.quick else 5.0
    setup = hdsgd.StreamingLeastSquares(spectra.power_law(d, 1.0), initial_error=1.0, noise_std=0.1,
                                        step_size=0.4, batch_size=4, momentum=0.8)
    rec, rec_first, rec_best = timed(lambda: hdsgd.predict(setup, horizon), repeat=2)
    vol, vol_first, vol_best = timed(lambda: hdsgd.predict(setup, horizon, method="volterra"), repeat=1)
    mc, mc_first, mc_best = timed(
        lambda: hdsgd.simulate(setup, horizon, key=jax.random.key(0), seeds=16, progress=False), repeat=1)
    agreement = hdsgd.compare(rec, mc, "excess_risk")["excess_risk"]
    verr = np.max(np.abs(vol["risk"] / rec["risk"] - 1.0))
    print(f"\n[3] momentum beta=0.8, gamma=0.4, B=4, d={d}, horizon t={horizon} ({int(horizon * d)} steps)")
    print(f"    predict (recursion): {rec_best:8.3f} s   (first call {rec_first:.3f} s)")
    print(f"    predict (volterra):  {vol_best:8.3f} s   ratio volterra / recursion {vol_best / rec_best:6.1f}x, "
          f"max relative gap {verr:.2e}")
    print(f"    simulate (16 seeds): {mc_best:8.3f} s   ratio simulate / predict {mc_best / rec_best:8.1f}x")
    print(f"    agreement: max gap {agreement.max_sem_gap:.2f} standard errors, {agreement.max_rel_gap:.2%} relative")

    from hdsgd.odes import lstsq_momentum as hb
    lam = np.linspace(1.0, 0.04, 100)
    gamma, beta = hb.accelerated_hyperparameters(lam)
    batch = int(np.ceil(4 * hb.accelerated_critical_batch_size(lam)))
    large = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.0, step_size=gamma,
                                        batch_size=batch, momentum=beta)
    times = np.arange(41) / 100
    runs = {}
    for sampler in ("data", "projected"):
        runs[sampler] = timed(lambda: hdsgd.simulate(large, times[-1], times=times, key=jax.random.key(1),
                                                     seeds=64, progress=False, sampler=sampler), repeat=1)
    print(f"\n[4] large batch B={batch} (4 B_c), d=100, 40 steps, 64 seeds, accelerated (gamma*, beta*)")
    for sampler, (_, first, best) in runs.items():
        print(f"    simulate sampler={sampler!r}: {best:8.3f} s   (first call {first:.3f} s)")
    print(f"    speed-up projected / data: {runs['data'][2] / runs['projected'][2]:8.1f}x")


if __name__ == "__main__":
    main()
