"""Tuning the step size of full-batch GD on the grokking network from the predictions alone.

The task: generalise as early as possible, i.e. the fewest GD steps until the test loss drops
below half its value at initialisation and stays there (`steps_to_target(..., settle=True)`:
a test loss that dips and comes back does not count, and at large steps it does come back: at
eta0 = 6.3 the predicted test loss falls to 0.437 by step 100 and climbs back to 0.514 by step
2000, so a target near 0.5 would reward a transient). The prediction is the reduced dynamics of
the first-layer statistics from the infinite-width initial law (docs/grokking.md); larger steps
generalise sooner until the edge of stability at initialisation
(`hdsgd.grokking.critical_step_size`), past which GD leaves along the top Hessian mode.
`hdsgd.tune` scans 10 log-spaced step sizes up to 0.8 x that edge and refines the best by
bracketing (0.8, because the edge is the infinite-width one: at N = 1024 each initialisation
has its own, and at 0.95 x the edge all 16 trained networks diverge). Its choice keeps a 2 %
margin from any jump of the predicted score (the cliff guard, `tune(..., margin=)`): with a
target of 0.6 x the start, as `hdsgd grokking tune` sets, the score jumps from ~30 steps to
infinity at eta0 ~ 6.3, where the late test loss rises through the target, and the unguarded
refinement chose 6.29, at which 16 trained networks took 1740 +- 270 steps against 30
predicted. `Tuned.verify` trains the N = 1024 network from ``--seeds`` initialisations at the
choice and at its two grid neighbours and scores each with the same objective (here: eta0 =
5.92, 96.8 steps predicted, 101.6 +- 3.3 measured).

    python examples/grokking_tune.py --out figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

import hdsgd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("."), help="output folder")
    parser.add_argument("--seeds", type=int, default=16, help="network initialisations per point")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    setup = hdsgd.GrokkingTwoLayer()   # D = 20, P = 60, N = 1024, alpha = 1, eps = 1/2
    edge = hdsgd.grokking.critical_step_size(setup)
    start = float(hdsgd.predict(setup, 1.0, times=[0.0])["test_loss"][0])
    space = {"step_size": hdsgd.LogRange(0.02 * edge, 0.8 * edge, 10)}
    objective = hdsgd.steps_to_target(0.5 * start, "test_loss", settle=True)
    tuned = hdsgd.tune(setup, space, objective, horizon=2000)
    print(f"edge of stability at initialisation eta0 = {edge:.4g}; initial test loss {start:.4g}")
    print(f"best step size eta0 = {tuned.setup.step_size:.4g}: test loss below "
          f"{0.5 * start:.4g} for good after {tuned.objective_value:.4g} steps (predicted)")
    check = tuned.verify(jax.random.key(0), seeds=args.seeds, progress=False)
    print(check.summary())
    path = tuned.plot(args.out / "grokking_tune.png", check)
    print(f"wrote {path}")
    return tuned, check


if __name__ == "__main__":
    main()
