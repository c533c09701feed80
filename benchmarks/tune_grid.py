"""What a tuning grid costs: time(1000-point grid) / time(one point), least squares and
prox-linear side by side in one run.

Each system's `hdsgd.predict_grid` runs the whole grid as one vmapped theory (least squares: the
exact recursion, plain or heavy ball, chunked to fit a memory budget; prox-linear: the map,
in batches of 32 on a CPU). For
each system the script prints, after compilation (best of ``--repeat`` calls):

* one point: `predict_grid` on a one-point grid;
* the grid: `predict_grid` on ``--points`` step sizes (returned stacked, a `CurveGrid` whose
  Curves are built when read);
* of which theory: the vmapped theory alone (given the validated grid);
* of which checks: validating the grid (`hdsgd.api.grid_columns`: each value by its field's
  check, no Setup per point);
* tune: `hdsgd.tune` over the grid (no refinement): the grid, its scores, the cliff guard;
* the loop fallback: `predict` per point, timed on ``--loop-points`` points and scaled to the
  grid's size.

Usage: python benchmarks/tune_grid.py [--points 1000] [--repeat 2] [--loop-points 50]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import hdsgd
from hdsgd.api import grid_columns
from _timing import device_line, timed  # benchmarks/_timing.py (the script folder is on sys.path)
from hdsgd.odes.lstsq import _predict as lstsq_theory
from hdsgd.odes.proxlinear import _grid as prox_theory


def lstsq_case(momentum: float = 0.0):
    setup = hdsgd.StreamingLeastSquares("power_law:500:1.0", noise_std=0.1, step_size=1.0,
                                        momentum=momentum)
    gamma_c = hdsgd.lstsq.critical_step_size(setup)
    horizon = 4.0  # 2000 steps

    def theory(checked):
        steps = setup.output_steps(horizon)
        settings = lstsq_theory.grid_settings(setup, *checked)
        with jax.enable_x64(True):
            return lstsq_theory.grid_psi(setup, settings, int(steps.max()), steps)

    name = "lstsq, d = 500, 2000 steps" + (f", heavy ball {momentum}" if momentum else "")
    return (name, setup, horizon, lambda n: np.geomspace(1e-3, 0.99, n) * gamma_c,
            lambda grid: grid_columns(setup, grid), theory, "excess_risk")


def proxlinear_case():
    setup = hdsgd.ProxLinearSensing(dim_left=100, dim_right=100, batch_size=50, noise_std=0.1)
    horizon = 40.0  # 40 steps

    def theory(checked):
        valid, columns = checked
        steps = setup.output_steps(horizon)
        n = int(valid.sum())
        params = prox_theory.grid_params(setup, np.full(n, setup.batch_size),
                                         columns["step_size"][valid], np.full(n, setup.noise_std))
        with jax.enable_x64(True):
            return prox_theory.grid_records(setup, params, steps)["status"]

    return ("proxlinear, d1 = d2 = 100, m = 50, 40 steps", setup, horizon,
            lambda n: np.geomspace(0.1, 3.0, n), lambda grid: grid_columns(setup, grid), theory,
            "error_sq")


def measure(case, points: int, repeat: int, loop_points: int) -> dict:
    name, setup, horizon, values, check, theory, observable = case
    grid = values(points)
    one = values(1)
    _, _, t_one = timed(lambda: hdsgd.predict_grid(setup, {"step_size": one}, horizon), 20)
    _, _, t_grid = timed(lambda: hdsgd.predict_grid(setup, {"step_size": grid}, horizon), repeat)
    checked = check({"step_size": grid})
    _, _, t_theory = timed(lambda: np.asarray(theory(checked)), repeat)
    _, _, t_setups = timed(lambda: check({"step_size": grid}), repeat)
    curves = hdsgd.predict_grid(setup, {"step_size": grid}, horizon)
    first = curves.values(0, observable)
    target = float(np.sqrt(first.values[0] * first.values[-1]))  # met by the first point
    _, _, t_tune = timed(lambda: hdsgd.tune(setup, {"step_size": grid},
                                            hdsgd.samples_to_target(target, observable),
                                            horizon=horizon, refine=False), repeat)
    few = grid[:: max(1, points // loop_points)][:loop_points]
    hdsgd.predict(setup.replace(step_size=float(few[0])), horizon)
    _, _, t_loop = timed(lambda: [hdsgd.predict(setup.replace(step_size=float(g)), horizon)
                                  for g in few], 1)
    return {"name": name, "one": t_one, "grid": t_grid, "theory": t_theory, "setups": t_setups,
            "tune": t_tune, "loop": t_loop * points / len(few)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1000, help="grid points (default 1000)")
    parser.add_argument("--repeat", type=int, default=2, help="timed calls (default 2)")
    parser.add_argument("--loop-points", type=int, default=50,
                        help="points of the timed loop fallback (default 50)")
    args = parser.parse_args(argv)
    print(device_line())
    rows = [measure(case, args.points, args.repeat, args.loop_points)
            for case in (lstsq_case(), lstsq_case(0.5), proxlinear_case())]
    print(f"{'system':<46} {'one point':>10} {f'{args.points} points':>12} {'ratio':>7} "
          f"{'theory':>8} {'checks':>8} {'tune':>8} {'loop':>9} {'loop/grid':>9}")
    for r in rows:
        print(f"{r['name']:<46} {r['one'] * 1e3:>8.1f}ms {r['grid']:>11.2f}s "
              f"{r['grid'] / r['one']:>6.0f}x {r['theory']:>7.2f}s {r['setups']:>7.2f}s "
              f"{r['tune']:>7.2f}s {r['loop']:>8.1f}s {r['loop'] / r['grid']:>8.1f}x")
    print("ratio = time(grid) / time(one point); theory = the vmapped theory alone; checks = "
          "validating the grid; tune = hdsgd.tune over the grid (refine=False); "
          "loop = predict per point, scaled to the grid")


if __name__ == "__main__":
    main()
