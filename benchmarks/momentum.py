"""Label-noise SGD with momentum: the reduced equations' cost against the Monte Carlo they
replace, as ratios timed side by side in one run (after compilation, best of ``--repeat``).

1. two-parameter model, critical scaling (eta = 1e-3, 1 - beta = 0.711 eta^(2/3), 3000 steps):
   the uniform recursion, the reduced SDE (``--paths`` paths) and the Monte Carlo
   (``--seeds`` seeds) over the same horizon;
2. the time-to-target T from the reduced SDE against the Monte Carlo needed to measure it;
3. matrix sensing (d = 8, n = 20): the Gaussian moment closure (one deterministic run) against
   the Monte Carlo (``--seeds`` seeds), 2000 steps.

Usage: python benchmarks/momentum.py [--seeds 1000] [--paths 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import hdsgd
from _timing import timed  # benchmarks/_timing.py (the script folder is on sys.path)
from hdsgd import momentum




def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--paths", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    key = jax.random.PRNGKey(0)

    setup = momentum.TwoParameterMomentum(step_size=1e-3, exponent=2 / 3, constant=0.711,
                                          label_noise=0.3)
    times = np.arange(0, 3001, 25)
    _, _, t_rec = timed(lambda: hdsgd.predict(setup, 3000, times=times), args.repeat)
    _, _, t_sde = timed(lambda: hdsgd.predict(setup, 3000, times=times, method="sde",
                                              paths=args.paths), args.repeat)
    _, _, t_mc = timed(lambda: hdsgd.simulate(setup, 3000, key=key, seeds=args.seeds, times=times,
                                              progress=False), args.repeat)
    print(f"two-parameter, 3000 steps: recursion {t_rec * 1e3:.1f} ms, reduced SDE ({args.paths} paths) "
          f"{t_sde * 1e3:.0f} ms, Monte Carlo ({args.seeds} seeds) {t_mc * 1e3:.0f} ms")
    print(f"   ratios: Monte Carlo / recursion = {t_mc / t_rec:.0f}, Monte Carlo / SDE = {t_mc / t_sde:.1f}")

    _, _, t_target = timed(lambda: momentum.time_to_target(setup, 0.1, method="sde", paths=args.paths),
                           args.repeat)
    print(f"time-to-target from the reduced SDE {t_target * 1e3:.0f} ms vs the Monte Carlo run that "
          f"measures it {t_mc * 1e3:.0f} ms: ratio {t_mc / t_target:.1f}")
    _, _, t_opt = timed(lambda: momentum.optimal_constant(setup, 0.1), 1)
    print(f"optimal constant C from the recursion (61-point scan + Brent): {t_opt:.2f} s")

    sensing = momentum.MatrixSensingMomentum(dim=8, rank=1, n_samples=20, step_size=2e-2,
                                             momentum=0.9, label_noise=0.5)
    grid = np.unique(np.concatenate([[0, 10], np.geomspace(30, 2000, 12).round()]))
    _, _, t_clo = timed(lambda: hdsgd.predict(sensing, 2000, times=grid), args.repeat)
    seeds = min(args.seeds, 256)
    _, _, t_smc = timed(lambda: hdsgd.simulate(sensing, 2000, key=key, seeds=seeds, times=grid,
                                               progress=False), args.repeat)
    print(f"matrix sensing d=8, 2000 steps: closure {t_clo * 1e3:.0f} ms, Monte Carlo ({seeds} seeds) "
          f"{t_smc * 1e3:.0f} ms: ratio {t_smc / t_clo:.1f}")
    print(f"(device: {jax.devices()[0].platform})")


if __name__ == "__main__":
    main()
