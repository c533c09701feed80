"""Prox-linear rank-one sensing: the map's cost against one Monte Carlo run, as ratios.

Timed side by side in one run (after compilation, best of ``--repeat``):

1. one step of the map (spec §3.2) with the default polar rule (2064 nodes) and with the
   grid rule `GRID_RULE` (516 nodes);
2. a 1000-point (eta, m) grid of full trajectories (``--steps`` map steps each, vmapped,
   `hdsgd.proxlinear.map_grid`);
3. one Monte Carlo run (1 seed) at d1 = d2 = ``--dim``, m = d (kernel form), for the same
   number of steps.

Usage: python benchmarks/proxlinear.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import hdsgd
from _timing import device_line, timed  # benchmarks/_timing.py (the script folder is on sys.path)
from hdsgd.odes import proxlinear as P




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

    # 1. one map step
    state = jnp.array([0.7, 0.6, 0.8, 0.5])
    params = jnp.asarray(P.map_params(hdsgd.ProxLinearSensing(dim_left=d, dim_right=d,
                                                              batch_size=d, noise_std=0.1)))
    step = jax.jit(P.one_step)
    rows = {}
    for name, rule in (("default", P.polar_rule()), ("grid", P.polar_rule(**P.GRID_RULE))):
        rule = tuple(jnp.asarray(r) for r in rule)
        kappa = P.initial_kappa(state, params)
        _, first, best = timed(lambda: jax.block_until_ready(step(state, kappa, params, rule)),
                               repeat=max(args.repeat, 5))
        rows[name] = best
        print(f"one map step, {name} rule ({rule[0].shape[0]} nodes): {best * 1e3:.2f} ms "
              f"(first call {first:.2f} s)")

    # 2. a 1000-point grid of full trajectories
    setup = hdsgd.ProxLinearSensing(dim_left=d, dim_right=d, batch_size=d, noise_std=0.1)
    ms = np.repeat(np.round(np.geomspace(max(1, d // 100), 2 * d, 25)).astype(int), 40)
    etas = np.tile(np.geomspace(0.1, 30.0, 40), 25) * ms / d
    sig = np.full(ms.size, 0.1)
    (states, ok), first, grid_time = timed(lambda: P.map_grid(setup, ms, etas, sig, T),
                                           repeat=args.repeat)
    print(f"1000-point (eta, m) grid x {T} map steps (vmapped, grid rule): {grid_time:.2f} s "
          f"(first call {first:.2f} s); {grid_time / (ms.size * T) * 1e6:.1f} us per "
          f"setting-step; {int(ok[:, -1].sum())}/1000 settings finite")

    # 3. one Monte Carlo run at d, m = d: the jitted loop alone, and simulate() end to end
    from hdsgd.montecarlo.proxlinear import _draw, prox_linear_step

    @jax.jit
    def mc_run(key):
        dmu = jnp.zeros(d, jnp.float32).at[0].set(-0.3).at[1].set(0.6)
        dnu = jnp.zeros(d, jnp.float32).at[0].set(-0.2).at[1].set(0.5)

        def body(i, carry):
            A, B, eps = _draw(jax.random.fold_in(key, i), d, d, d, jnp.float32(0.1), jnp.float32)
            return prox_linear_step(*carry, A, B, eps, jnp.float32(d), "kernel")

        return jax.lax.fori_loop(0, T, body, (dmu, dnu))

    _, first, mc_time = timed(lambda: jax.block_until_ready(mc_run(jax.random.key(0))),
                              repeat=args.repeat)
    print(f"one Monte Carlo run, d1 = d2 = m = {d}, {T} steps, 1 seed (jitted loop): "
          f"{mc_time:.2f} s (first call {first:.2f} s)")
    _, sim_time, _ = timed(lambda: hdsgd.simulate(setup, T, key=jax.random.key(0), seeds=1,
                                                  progress=False), repeat=0)
    print(f"hdsgd.simulate, same run, end to end (compiles each call): {sim_time:.2f} s")

    one_traj = rows["default"] * T
    print()
    print(f"ratio: one Monte Carlo run / one map trajectory (default rule)  = {mc_time / one_traj:.0f}x")
    print(f"ratio: one Monte Carlo run / the whole 1000-point map grid      = {mc_time / grid_time:.2f}x")
    print(f"ratio: map step, default rule / grid rule                       = "
          f"{rows['default'] / rows['grid']:.1f}x")


if __name__ == "__main__":
    main()
