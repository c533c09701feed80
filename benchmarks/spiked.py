"""Spiked single-index model: the limit ODE vs full-d Monte Carlo vs the exact chain, as ratios
measured side by side in one run.

1. One curve ((N), He3, theta = 4, c = 0.05, m0 = 0.15, horizon t = 2; the docs' He3 instance) at
   d = 1000 and d = 10 000: predict (diffrax ODE) vs simulate(method="full", 16 seeds) vs
   simulate(method="chain", 16 seeds); times after compilation, and each Monte Carlo's
   agreement with the ODE in standard errors.
2. Escape statistics from a random start ((N), He2, theta = 0, c = 0.5): the chain's cost per
   step is independent of d, full SGD's grows like d; seconds per 10^6 steps of 32 runs.

Usage: python benchmarks/spiked.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import hdsgd
from _timing import device_line, timed  # benchmarks/_timing.py (the script folder is on sys.path)
from hdsgd.spiked import SpikedSingleIndex


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args(argv)
    print(device_line())

    dims = (1000,) if args.quick else (1000, 10_000)
    for i, d in enumerate(dims):
        setup = SpikedSingleIndex(dim=d, spike=4.0, link="he3", normalization="covariance",
                                  step_size=0.05, initial_overlap=0.15)
        key = jax.random.key(i)
        th, th_first, th_best = timed(lambda: hdsgd.predict(setup, 2.0), repeat=3)
        full, full_first, full_best = timed(
            lambda: hdsgd.simulate(setup, 2.0, key=key, seeds=16, progress=False))
        chain, chain_first, chain_best = timed(
            lambda: hdsgd.simulate(setup, 2.0, key=key, seeds=16, method="chain", progress=False))
        print(f"\n[1] (N) He3 theta=4 c=0.05, d={d}, horizon t=2 ({2 * d} steps), 16 seeds")
        print(f"    predict (ODE):       {th_best:8.4f} s   (first call {th_first:.2f} s)")
        print(f"    simulate full-d:     {full_best:8.3f} s   (first call {full_first:.2f} s)")
        print(f"    simulate chain:      {chain_best:8.3f} s   (first call {chain_first:.2f} s)")
        print(f"    ratios: full / ODE {full_best / th_best:8.0f}x, chain / ODE "
              f"{chain_best / th_best:6.0f}x, full / chain {full_best / chain_best:6.1f}x")
        for name, mc in (("full", full), ("chain", chain)):
            a = hdsgd.compare(th, mc, "overlap", t_min=0.05)["overlap"]
            print(f"    ODE vs {name:5s}: max gap {a.max_sem_gap:.2f} standard errors, "
                  f"{a.max_rel_gap:.2%} relative")

    steps = 20_000 if args.quick else 100_000
    print(f"\n[2] seconds per 10^6 steps of 32 runs ((N) He2, theta=0, c=0.5, {steps} steps timed)")
    rows = []
    for d in ((1000, 10_000) if args.quick else (1000, 10_000, 100_000)):
        setup = SpikedSingleIndex(dim=d, spike=0.0, link="he2", step_size=0.5, initial_overlap="random")
        t = steps / d
        grid = np.array([0.0, t])
        _, _, chain_best = timed(lambda: hdsgd.simulate(setup, t, key=jax.random.key(5), seeds=32,
                                                        times=grid, method="chain", progress=False))
        full_steps = min(steps, 2_000_000 // d)  # keep full SGD short at large d
        tf = full_steps / d
        _, _, full_best = timed(lambda: hdsgd.simulate(setup, tf, key=jax.random.key(5), seeds=32,
                                                       times=np.array([0.0, tf]), progress=False))
        per_chain, per_full = chain_best / steps * 1e6, full_best / full_steps * 1e6
        rows.append((d, per_chain, per_full))
        print(f"    d={d:>7}: chain {per_chain:8.2f} s, full {per_full:9.1f} s, full / chain "
              f"{per_full / per_chain:8.0f}x")
    return rows


if __name__ == "__main__":
    main()
