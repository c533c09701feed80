"""Label-noise SGD with momentum on the inner-product model f = <u, v>, critical scaling: the
reduced SDE (ambient coordinates of span(u_0, v_0)) and its closure against the Monte Carlo
they replace, as ratios timed side by side in one run (after compilation, best of
``--repeat``).

eta = 1e-3, 1 - beta = 0.711 eta^(2/3), c = 1/2, 3500 steps: the reduced SDE (``--paths``
paths), the deterministic closure, and the Monte Carlo (``--seeds`` seeds) at d = 4 and at
d = ``--dim`` (the theory's cost does not depend on d; the Monte Carlo's grows with it);
then the time-to-target from the SDE against the Monte Carlo run that measures it.

Usage: python benchmarks/momentum_inner_product.py [--seeds 500] [--paths 2000] [--dim 256]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import hdsgd
from _timing import device_line, timed  # benchmarks/_timing.py (the script folder is on sys.path)
from hdsgd import momentum


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--paths", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    print(device_line())
    key = jax.random.PRNGKey(0)
    common = dict(initial_cosine=0.5, step_size=1e-3, exponent=2 / 3, constant=0.711,
                  label_noise=0.3)
    setup = momentum.InnerProductMomentum(dim=4, **common)
    times = np.arange(0, 3501, 25)
    _, _, t_sde = timed(lambda: hdsgd.predict(setup, 3500, times=times, method="sde",
                                              paths=args.paths), args.repeat)
    _, _, t_clo = timed(lambda: hdsgd.predict(setup, 3500, times=times, method="closure"),
                        args.repeat)
    print(f"inner product, 3500 steps: reduced SDE ({args.paths} paths) {t_sde * 1e3:.0f} ms, "
          f"closure {t_clo * 1e3:.1f} ms")
    for dim in (4, args.dim):
        big = momentum.InnerProductMomentum(dim=dim, **common)
        _, _, t_mc = timed(lambda: hdsgd.simulate(big, 3500, key=key, seeds=args.seeds,
                                                  times=times, progress=False), args.repeat)
        print(f"   Monte Carlo d = {dim} ({args.seeds} seeds) {t_mc * 1e3:.0f} ms: ratios "
              f"Monte Carlo / SDE = {t_mc / t_sde:.2f}, Monte Carlo / closure = {t_mc / t_clo:.0f}")
        if dim == 4:
            t_mc4 = t_mc
    _, _, t_target = timed(lambda: momentum.time_to_target(setup, 0.1, method="sde", horizon=3500,
                                                     paths=args.paths, points=140), args.repeat)
    print(f"time-to-target from the reduced SDE {t_target * 1e3:.0f} ms vs the d = 4 Monte Carlo "
          f"run that measures it {t_mc4 * 1e3:.0f} ms: ratio {t_mc4 / t_target:.2f}")


if __name__ == "__main__":
    main()
