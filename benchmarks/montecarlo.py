"""Monte Carlo speed and memory, printed as ratios measured side by side in one run.

1. Least squares: `hdsgd.simulate` against a plain numpy loop of the same algorithm (seeds
   vectorised, float32, numpy's fastest generator), d = 1000 and 4096, batch 1 and 32, in
   samples x dim per second. hdsgd's default sampler is exact in law ("auto": projected from
   B = 2, O(B + d) normals a step instead of O(B d)). Column "per core": the same call in a
   fresh process that gave JAX one CPU device per core first, as the ``hdsgd`` command does
   (`hdsgd._devices.use_cpu_cores`; the seeds are then sharded over the cores).
2. Spiked: the full-dimension Monte Carlo (also per core) and the exact chain (the default)
   against a numpy loop of full-dimension online SGD, d = 1000 and 4096.
3. PRNG: normals per second of JAX's threefry2x32, rbg and unsafe_rbg and of hdsgd's
   Philox4x32-10 on this device, beside numpy's PCG64 (why hdsgd uses Philox: see
   benchmarks/README.md).
4. Memory: peak resident memory of a Monte Carlo at d = 10^5 with 64 seeds, in a fresh process
   per system, against the bytes of the weights (64 x d float32).

Usage: python benchmarks/montecarlo.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import hdsgd
from _timing import device_line, timed


PER_CORE = """
import time, jax, hdsgd
from hdsgd._devices import use_cpu_cores
devices = use_cpu_cores()
setup = {setup}
run = lambda: hdsgd.simulate(setup, {horizon!r}, key=jax.random.key(0), seeds=16,
                             times=[0.0, {horizon!r}], progress=False{options})
run()
best = float("inf")
for _ in range(2):
    start = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - start)
print(devices, best)
"""


def per_core_seconds(setup: str, horizon: float, options: str = "") -> float:
    """Seconds of one `simulate` call (best of 2, compiled) in a fresh process with one JAX CPU
    device per core, as the ``hdsgd`` command runs; ``setup`` is Python text."""
    code = PER_CORE.format(setup=setup, horizon=horizon, options=options)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.split()[-1])


# ----------------------------------------------------------------- 1. least squares
def numpy_lstsq(lam, e0, eta, batch, sigma, steps, seeds, seed=0):
    """Plain numpy SGD on least squares in H's eigenbasis, seeds vectorised (float32)."""
    rng = np.random.default_rng(seed)
    e = np.tile(e0.astype(np.float32), (seeds, 1))
    sq = np.sqrt(lam).astype(np.float32)
    for _ in range(steps):
        x = rng.standard_normal((seeds, batch, lam.size), dtype=np.float32) * sq
        eps = sigma * rng.standard_normal((seeds, batch), dtype=np.float32)
        r = np.einsum("sbd,sd->sb", x, e) - eps
        e -= (eta / batch) * np.einsum("sb,sbd->sd", r, x)
    return e


def bench_lstsq(quick: bool):
    print("\n[1] least squares, 16 seeds: samples x dim per second (millions)")
    print(f"    {'d':>6} {'B':>4} {'numpy loop':>11} {'hdsgd':>9} {'ratio':>7} {'per core':>9} "
          f"{'ratio':>7}  sampler")
    for d in (1000, 4096):
        for batch in (1, 32):
            text = f"hdsgd.StreamingLeastSquares('power_law:{d}:1.0', step_size=1.0, batch_size={batch})"
            setup = eval(text, {"hdsgd": hdsgd})
            steps = (400 if quick else 2000) // (1 if batch == 1 else 8)
            work = 16 * batch * d * steps
            _, _, t_np = timed(lambda: numpy_lstsq(setup.eigenvalues, np.sqrt(setup.initial_error),
                                                   1.0 / d, batch, 0.1, steps, 16), repeat=1)
            mc, _, t_mc = timed(lambda: hdsgd.simulate(setup, steps / d, key=jax.random.key(0),
                                                       seeds=16, times=[0, steps / d],
                                                       progress=False), repeat=2)
            t_core = per_core_seconds(text, steps / d)
            print(f"    {d:>6} {batch:>4} {work / t_np / 1e6:>11.0f} {work / t_mc / 1e6:>9.0f} "
                  f"{t_np / t_mc:>6.1f}x {work / t_core / 1e6:>9.0f} {t_np / t_core:>6.1f}x  "
                  f"{mc.meta['method']}")


# ----------------------------------------------------------------- 2. spiked
def numpy_spiked(d, theta, c, steps, seeds, m0=0.15, seed=0):
    """Plain numpy online SGD, He3 link, correlation loss, covariance normalisation."""
    rng = np.random.default_rng(seed)
    mu = np.zeros(d, np.float32)
    mu[0] = 1.0
    w = rng.standard_normal((seeds, d)).astype(np.float32)
    w[:, 0] = 0.0
    w *= (np.sqrt(1 - (1 + theta) * m0**2) / np.linalg.norm(w, axis=1))[:, None]
    w[:, 0] = m0
    scale = np.sqrt(1 + theta) - 1
    eta = c / d
    he3 = lambda u: (u**3 - 3 * u) / np.sqrt(6.0)  # noqa: E731
    dhe3 = lambda u: (3 * u**2 - 3) / np.sqrt(6.0)  # noqa: E731
    for _ in range(steps):
        z = rng.standard_normal((seeds, d), dtype=np.float32)
        u = z[:, 0]
        x = z.copy()
        x[:, 0] += scale * u
        h = np.einsum("sd,sd->s", w, x)
        w += (eta * he3(u) * dhe3(h))[:, None] * x
        m = w[:, 0]
        w /= np.sqrt(np.einsum("sd,sd->s", w, w) + theta * m * m)[:, None]
    return w


def bench_spiked(quick: bool):
    if not hasattr(hdsgd, "spiked"):
        print("\n[2] spiked: not available in this tree")
        return
    print("\n[2] spiked (He3, correlation loss, covariance normalisation), 16 seeds: steps x seeds "
          "per second (thousands)")
    print(f"    {'d':>6} {'numpy full':>11} {'full':>9} {'per core':>9} {'chain':>9} {'full/np':>8} "
          f"{'core/np':>8} {'chain/np':>9}")
    for d in (1000, 4096):
        steps = 2 * d if quick else 8 * d
        text = (f"hdsgd.SpikedSingleIndex(dim={d}, spike=4.0, link='he3', loss='correlation', "
                "normalization='covariance', step_size=0.05, initial_overlap=0.15)")
        setup = eval(text, {"hdsgd": hdsgd})
        horizon = steps / d
        _, _, t_np = timed(lambda: numpy_spiked(d, 4.0, 0.05, steps, 16), repeat=1)
        times = [0.0, horizon]
        _, _, t_full = timed(lambda: hdsgd.simulate(setup, horizon, key=jax.random.key(0), seeds=16,
                                                    times=times, method="full", progress=False))
        t_core = per_core_seconds(text, horizon, ", method='full'")
        _, _, t_chain = timed(lambda: hdsgd.simulate(setup, horizon, key=jax.random.key(0),
                                                     seeds=16, times=times, method="chain",
                                                     progress=False))
        work = steps * 16 / 1e3
        print(f"    {d:>6} {work / t_np:>11.0f} {work / t_full:>9.0f} {work / t_core:>9.0f} "
              f"{work / t_chain:>9.0f} {t_np / t_full:>7.1f}x {t_np / t_core:>7.1f}x "
              f"{t_np / t_chain:>8.0f}x")


# ----------------------------------------------------------------- 3. PRNG
def bench_prng():
    n = 16 * 4096
    rounds = 100
    print("\n[3] normals per second (millions), float32, 100 draws of 65536")
    rng = np.random.default_rng(0)
    _, _, t = timed(lambda: [rng.standard_normal(n, dtype=np.float32) for _ in range(rounds)])
    print(f"    numpy PCG64      {rounds * n / t / 1e6:8.0f}")
    for impl in ("threefry2x32", "rbg", "unsafe_rbg"):
        key = jax.random.key(0, impl=impl)

        @jax.jit
        def draw(k):
            return jax.lax.fori_loop(0, rounds, lambda i, acc: acc + jax.random.normal(
                jax.random.fold_in(k, i), (n,), jnp.float32).sum(), 0.0)

        _, _, t = timed(lambda: draw(key).block_until_ready(), repeat=2)
        print(f"    jax {impl:<13}{rounds * n / t / 1e6:8.0f}")
    # hdsgd's Philox4x32-10 (the Monte Carlo default), the same transform to normals
    from hdsgd.montecarlo import _philox

    with jax.enable_x64(True):
        @jax.jit
        def draw_philox(k):
            run = _philox.run_key(k)
            return jax.lax.fori_loop(0, rounds, lambda i, acc: acc + _philox.normal(
                run, i, 0, (n,), jnp.float32).sum(), jnp.float32(0.0))

        _, _, t = timed(lambda: draw_philox(jax.random.key(0)).block_until_ready(), repeat=2)
    print(f"    hdsgd philox4x32 {rounds * n / t / 1e6:8.0f}")


# ----------------------------------------------------------------- 4. memory
MEMORY = {
    "lstsq": "hdsgd.StreamingLeastSquares('power_law:{d}:1.0', batch_size=1)",
    "spiked": "hdsgd.SpikedSingleIndex(dim={d}, spike=4.0, link='he3', step_size=0.05, "
              "initial_overlap=0.15)",
}


def bench_memory(quick: bool):
    d = 20_000 if quick else 100_000
    seeds = 64
    print(f"\n[4] peak memory of a Monte Carlo, d = {d}, {seeds} seeds (fresh process each)")
    weights = seeds * d * 4
    for name, make in MEMORY.items():
        if not hasattr(hdsgd, name):
            continue
        code = ("import resource, jax, hdsgd\n"
                f"setup = {make.format(d=d)}\n"
                "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
                f"hdsgd.simulate(setup, 20 / {d}, key=jax.random.key(0), seeds={seeds}, "
                "progress=False" + (", method='full'" if name == "spiked" else "") + ")\n"
                "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
                "print(before * 1024, after * 1024)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            print(f"    {name}: failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        before, after = (int(v) for v in out.stdout.split())
        print(f"    {name:<8} weights {weights / 2**20:7.1f} MiB, peak growth "
              f"{(after - before) / 2**20:7.1f} MiB = {(after - before) / weights:5.1f}x the weights "
              f"(process peak {after / 2**20:.0f} MiB)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    args = parser.parse_args(argv)
    print(device_line())
    bench_lstsq(args.quick)
    bench_spiked(args.quick)
    bench_prng()
    bench_memory(args.quick)


if __name__ == "__main__":
    main()
