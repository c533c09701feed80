"""Grokking: cost of the theory against the full-network Monte Carlo, timed side by side.

For the Fig. 1 setting (D = 100, P = 550, N = 500) over ``--steps`` GD steps: the exact reduced
(w_bar, M) GD map (one trajectory, N-free), its gradient-flow ODE (diffrax), the lazy closed form,
and the full network (one seed, float32). Then, for P < D (``--p-below``, default P = D/4 at
D = ``--wide-dim``), the D-space against the P-space form of the same exact map. Each is run
once to compile, then timed.

    python benchmarks/grokking.py --steps 2000
"""

from __future__ import annotations

import argparse
import time

import jax

import hdsgd


def timed(fn):
    fn()  # compile
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--n-samples", type=int, default=550)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--wide-dim", type=int, default=400, help="D of the P < D comparison")
    parser.add_argument("--p-below", type=int, default=100, help="P of the P < D comparison")
    args = parser.parse_args(argv)
    setup = hdsgd.grokking.GrokkingTwoLayer(dim=args.dim, n_samples=args.n_samples, width=args.width)
    centred = hdsgd.grokking.GrokkingTwoLayer(dim=args.dim, n_samples=args.n_samples, centered=True)
    key = jax.random.key(0)
    t_scan = timed(lambda: hdsgd.predict(setup, args.steps))
    t_ode = timed(lambda: hdsgd.predict(setup, args.steps, solver="ode"))
    t_lazy = timed(lambda: hdsgd.predict(centred, args.steps, method="lazy"))
    t_mc = timed(lambda: hdsgd.simulate(setup, args.steps, key=key, seeds=1, progress=False))
    print(f"D={args.dim} P={args.n_samples} N={args.width}, {args.steps} GD steps "
          f"(tau = {2 * args.steps / args.dim:g}), {jax.devices()[0].platform}")
    print(f"  reduced GD map (scan)     {t_scan:8.3f} s")
    print(f"  reduced gradient flow     {t_ode:8.3f} s")
    print(f"  lazy closed form          {t_lazy:8.3f} s")
    print(f"  full network, 1 seed      {t_mc:8.3f} s")
    print(f"  ratio MC seed / reduced scan: {t_mc / t_scan:.2f}; MC seed / flow: {t_mc / t_ode:.2f}; "
          f"MC seed / lazy: {t_mc / t_lazy:.0f}")
    wide = hdsgd.grokking.GrokkingTwoLayer(dim=args.wide_dim, n_samples=args.p_below, width=None)
    steps = max(1, args.steps // 4)
    t_d = timed(lambda: hdsgd.predict(wide, steps, form="D"))
    t_p = timed(lambda: hdsgd.predict(wide, steps, form="P"))
    print(f"D={args.wide_dim} P={args.p_below}, {steps} GD steps: reduced map in D-space "
          f"{t_d:.3f} s, in P-space {t_p:.3f} s; ratio D/P form: {t_d / t_p:.1f}")


if __name__ == "__main__":
    main()
