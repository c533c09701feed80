"""Prox-linear rank-one sensing: the map's cost against one Monte Carlo run, as ratios.

Timed side by side in one run (after compilation, best of ``--repeat``):

1. one step of the map (docs/proxlinear.md, "The one-step map") with the default polar rule
   (2064 nodes) and with the grid rule `GRID_RULE` (516 nodes);
2. a 1000-point (eta, m) grid of full trajectories (``--steps`` map steps each, vmapped,
   `hdsgd.proxlinear.map_grid`);
3. one Monte Carlo run (1 seed) at d1 = d2 = ``--dim``, m = d (kernel solve), for the same
   number of steps, through `hdsgd.simulate` (its first call compiles, later calls do not).

Usage: python benchmarks/proxlinear.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import hdsgd
from _timing import device_line, timed  # benchmarks/_timing.py (the script folder is on sys.path)
from hdsgd.odes import proxlinear as theory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--dim", type=int, default=1000, help="Monte Carlo d1 = d2 = m")
    parser.add_argument("--steps", type=int, default=32, help="iterations per trajectory")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.dim, args.steps, args.repeat = 200, 16, 1
    print(device_line())
    d, T = args.dim, args.steps
    setup = hdsgd.proxlinear.ProxLinearSensing(dim_left=d, dim_right=d, batch_size=d,
                                               noise_std=0.1)

    # 1. one map step (float64, as inside hdsgd)
    rows = {}
    with jax.enable_x64(True):
        state = jnp.asarray(np.array([0.7, 0.6, 0.8, 0.5]))
        params = jnp.asarray(np.array(theory.map_params(setup)))
        step = jax.jit(theory.one_step)
        for name, rule in (("default", theory.polar_rule()),
                           ("grid", theory.polar_rule(**theory.GRID_RULE))):
            rule = theory.rule_arrays(rule)
            kappa = theory.initial_kappa(state, params)
            _, first, best = timed(lambda: jax.block_until_ready(step(state, kappa, params, rule)),
                                   repeat=max(args.repeat, 5))
            rows[name] = best
            print(f"one map step, {name} rule ({rule[0].shape[0]} nodes): {best * 1e3:.2f} ms "
                  f"(first call {first:.2f} s)")

    # 2. a 1000-point grid of full trajectories
    ms = np.repeat(np.round(np.geomspace(max(1, d // 100), 2 * d, 25)).astype(int), 40)
    etas = np.tile(np.geomspace(0.1, 30.0, 40), 25) * ms / d
    sig = np.full(ms.size, 0.1)
    (states, ok), first, grid_time = timed(
        lambda: hdsgd.proxlinear.map_grid(setup, ms, etas, sig, T), repeat=args.repeat)
    print(f"1000-point (eta, m) grid x {T} map steps (vmapped, grid rule): {grid_time:.2f} s "
          f"(first call {first:.2f} s); {grid_time / (ms.size * T) * 1e6:.1f} us per "
          f"setting-step; {int(ok[:, -1].sum())}/1000 settings finite")

    # 3. one Monte Carlo run at d, m = d: simulate compiles once, then runs
    _, first, mc_time = timed(lambda: hdsgd.simulate(setup, T, key=jax.random.key(0), seeds=1,
                                                     times=[0, T], progress=False),
                              repeat=args.repeat)
    print(f"one Monte Carlo run, d1 = d2 = m = {d}, {T} steps, 1 seed (hdsgd.simulate): "
          f"{mc_time:.2f} s (first call, with compilation, {first:.2f} s)")

    one_traj = rows["default"] * T
    print()
    print(f"ratio: one Monte Carlo run / one map trajectory (default rule)  = "
          f"{mc_time / one_traj:.0f}x")
    print(f"ratio: one Monte Carlo run / the whole 1000-point map grid      = "
          f"{mc_time / grid_time:.2f}x")
    print(f"ratio: map step, default rule / grid rule                       = "
          f"{rows['default'] / rows['grid']:.1f}x")


if __name__ == "__main__":
    main()
