"""The Philox4x32-10 generator of the least-squares and spiked Monte Carlo: known answers, the
law of its normals, and the same Monte Carlo law as JAX's threefry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

import hdsgd
from hdsgd.montecarlo import _philox


@pytest.mark.parametrize("counter, key, expected", [
    # Random123's known-answer vectors (kat_vectors, philox4x32 10 rounds)
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
@pytest.mark.parametrize("wide", [True, False])
def test_philox_matches_the_random123_known_answers(counter, key, expected, wide):
    # wide: 64-bit multiplies (x64 mode, hdsgd's default); else 16-bit pieces (HDSGD_X64=0)
    with jax.enable_x64(wide):
        out = _philox.philox4x32(tuple(np.uint32(c) for c in counter),
                                 tuple(np.uint32(k) for k in key))
    assert tuple(int(w) for w in out) == expected


def _draw(dtype, step=0, stream=0, n=2**18, seed=0):
    with jax.enable_x64(True):
        key = _philox.run_key(jax.random.key(seed))
        return np.asarray(_philox.normal(key, jnp.asarray(step), stream, (n,), dtype),
                          dtype=np.float64)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_philox_normals_have_the_standard_normal_law(dtype):
    n = 2**18
    z = _draw(dtype, n=n)
    assert np.all(np.isfinite(z))
    # moments in units of their standard errors (var z = 1, var z^2 = 2, var z^3 = 15,
    # var z^4 = 96): a wrong scale (1.01) or a missing sqrt(2) fails at many s.e.
    for power, mean, var in ((1, 0.0, 1.0), (2, 1.0, 2.0), (3, 0.0, 15.0), (4, 3.0, 96.0)):
        gap = (np.mean(z**power) - mean) / np.sqrt(var / n)
        assert abs(gap) < 4.5, (power, gap)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    if dtype == jnp.float64:
        # 52 random bits a normal: no repeated value among 2^18 (n^2 / 2^53 expected)
        assert np.unique(z).size == n


def test_float32_normals_are_independent_box_muller_pairs():
    # the float32 normals are the cosines then the sines of n/2 Box-Muller pairs: the squared
    # radius of a pair is chi-square with 2 degrees of freedom (exponential, mean 2), its angle
    # uniform and independent of the radius, and the two normals of a pair uncorrelated (a
    # wrong quadrant sign, a radius and angle from one word, or -log u for -2 log u fail here)
    n = 2**18
    z = _draw(jnp.float32, n=n)
    cosine, sine = z[: n // 2], z[n // 2:]
    radius2 = cosine**2 + sine**2
    angle = np.mod(np.arctan2(sine, cosine), 2 * np.pi)
    assert scipy.stats.kstest(radius2, "expon", args=(0, 2)).pvalue > 1e-3
    assert scipy.stats.kstest(angle, "uniform", args=(0, 2 * np.pi)).pvalue > 1e-3
    limit = 4.5 / np.sqrt(n // 2)
    pairs = ((cosine, sine), (cosine**2, sine**2), (radius2, angle), (radius2, np.cos(4 * angle)))
    for a, b in pairs:
        assert abs(scipy.stats.spearmanr(a, b)[0]) < limit


def test_box_muller_uses_23_radius_bits_and_the_full_turn():
    # word 0 is u = 2^-24 (the smallest midpoint of 2^23 cells): R = sqrt(48 log 2) = 5.768,
    # at angles 0, pi/2, pi, 3 pi/2; the largest word is u = 1 - 2^-24 (22 bits: R = 5.65)
    a = jnp.asarray(np.array([0, 0, 0, 0, 2**32 - 1], np.uint32))
    b = jnp.asarray(np.array([0, 2**30, 2**31, 3 * 2**30, 0], np.uint32))
    z1, z2 = (np.asarray(v, np.float64) for v in _philox.box_muller(a, b))
    r = np.sqrt(48 * np.log(2.0))
    np.testing.assert_allclose(z1, [r, 0, -r, 0, np.sqrt(-2 * np.log1p(-2.0**-24))],
                               rtol=1e-6, atol=2e-6)
    np.testing.assert_allclose(z2, [0, r, 0, -r, 0], atol=2e-6)


def test_cos_turn_is_accurate_over_all_angle_words():
    # cos(2 pi w / 2^32) against float64 on 2^22 random words, a grid of 256 and the quarter
    # turns: below 3e-7 (a dropped Taylor term gives 6.8e-7, a lost half-turn sign 2)
    rng = np.random.default_rng(0)
    w = np.concatenate([rng.integers(0, 2**32, 2**22, dtype=np.uint64),
                        np.arange(0, 2**32, 2**24, dtype=np.uint64),
                        np.array([2**30 - 1, 2**30, 2**30 + 1, 2**31 - 1, 2**31, 2**32 - 1],
                                 np.uint64)]).astype(np.uint32)
    got = np.asarray(_philox.cos_turn(jnp.asarray(w)), np.float64)
    want = np.cos(2 * np.pi * w.astype(np.float64) / 2**32)
    assert np.max(np.abs(got - want)) < 3e-7


def test_philox_draws_differ_across_runs_steps_and_streams_and_are_uncorrelated():
    n = 2**16
    base = _draw(jnp.float32, n=n)
    others = {"step": _draw(jnp.float32, step=1, n=n), "stream": _draw(jnp.float32, stream=1, n=n),
              "run": _draw(jnp.float32, seed=1, n=n)}
    for what, z in others.items():
        assert np.corrcoef(base, z)[0, 1] < 4.5 / np.sqrt(n), what
        assert np.mean(base == z) < 1e-3, what
    # same (run, step, stream): the same numbers (a run is reproducible)
    np.testing.assert_array_equal(_draw(jnp.float32, n=n), base)
    # neighbouring elements of one draw are uncorrelated too
    assert abs(np.corrcoef(base[:-1], base[1:])[0, 1]) < 4.5 / np.sqrt(n)


def test_generator_is_checked():
    setup = hdsgd.StreamingLeastSquares("ramp:8:0.5:1.5")
    with pytest.raises(ValueError, match="generator='mt19937' is invalid; allowed"):
        hdsgd.simulate(setup, 1.0, key=jax.random.key(0), seeds=2, generator="mt19937")


@pytest.mark.parametrize("batch_size", [1, 4])
def test_lstsq_generators_agree_in_distribution(batch_size):
    # Philox (default) and threefry drive the same Monte Carlo law: the risk after 40 steps over
    # 3000 seeds, two-sample Kolmogorov-Smirnov (B = 1: the data sampler; B = 4: projected).
    setup = hdsgd.StreamingLeastSquares("ramp:12:0.5:2.0", noise_std=0.5, step_size=2.0,
                                        batch_size=batch_size)
    times = [0.0, 40 / 12]
    runs = {g: hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(i), seeds=3000,
                              progress=False, generator=g)
            for i, g in enumerate(("philox", "threefry"))}
    assert runs["philox"].meta["generator"] == "philox"
    a, b = (runs[g]["risk"][:, -1] for g in ("philox", "threefry"))
    assert scipy.stats.ks_2samp(a, b).pvalue > 1e-3
    # the test has power: a 1.3x step is rejected
    other = hdsgd.simulate(setup.replace(step_size=2.6), times[-1], times=times,
                           key=jax.random.key(5), seeds=3000, progress=False)
    assert scipy.stats.ks_2samp(a, other["risk"][:, -1]).pvalue < 1e-6


def test_spiked_full_generators_agree_in_distribution():
    setup = hdsgd.SpikedSingleIndex(dim=64, spike=2.0, link="he2", step_size=0.5,
                                    initial_overlap=0.3)
    runs = {g: hdsgd.simulate(setup, 2.0, times=[0.0, 2.0], key=jax.random.key(i), seeds=2000,
                              method="full", progress=False, generator=g)
            for i, g in enumerate(("philox", "threefry"))}
    a, b = (runs[g]["overlap"][:, -1] for g in ("philox", "threefry"))
    assert scipy.stats.ks_2samp(a, b).pvalue > 1e-3
    other = hdsgd.simulate(setup.replace(step_size=0.8), 2.0, times=[0.0, 2.0],
                           key=jax.random.key(7), seeds=2000, method="full", progress=False)
    assert scipy.stats.ks_2samp(a, other["overlap"][:, -1]).pvalue < 1e-6


def test_philox_runs_do_not_depend_on_how_the_horizon_is_cut():
    # counters carry the step index: the same numbers whether a run stops at t = 0.5 or not
    setup = hdsgd.StreamingLeastSquares("ramp:20:0.5:1.5", noise_std=0.2, step_size=1.0)
    one = hdsgd.simulate(setup, 2.0, times=[0.0, 2.0], key=jax.random.key(3), seeds=4,
                         progress=False)
    cut = hdsgd.simulate(setup, 2.0, times=[0.0, 0.5, 1.0, 2.0], key=jax.random.key(3), seeds=4,
                         progress=False)
    np.testing.assert_allclose(cut["risk"][:, -1], one["risk"][:, -1], rtol=1e-6)


def test_philox_gives_the_same_runs_without_64_bit_mode(tmp_path):
    # HDSGD_X64=0 leaves JAX in 32-bit mode: Philox multiplies in 16-bit pieces there, and a
    # float32 Monte Carlo gives the same numbers as in hdsgd's default 64-bit mode
    import os
    import subprocess
    import sys

    code = ("import sys, jax, numpy as np, hdsgd\n"
            "s = hdsgd.StreamingLeastSquares('ramp:16:0.5:1.5', noise_std=0.3, step_size=1.5)\n"
            "c = hdsgd.simulate(s, 2.0, key=jax.random.key(8), seeds=4, progress=False)\n"
            "assert not jax.config.jax_enable_x64\n"
            "np.save(sys.argv[1], c['risk'])\n")
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"} | {"HDSGD_X64": "0"}
    path = tmp_path / "risk.npy"
    res = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    here = hdsgd.simulate(hdsgd.StreamingLeastSquares("ramp:16:0.5:1.5", noise_std=0.3,
                                                      step_size=1.5),
                          2.0, key=jax.random.key(8), seeds=4, progress=False)
    np.testing.assert_allclose(np.load(path), here["risk"], rtol=1e-5)
