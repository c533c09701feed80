"""Bad arguments to the public functions of `hdsgd.spiked` raise a ValueError that names the
parameter, its value and the allowed range, before any JAX work; valid calls keep their
numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial import hermite_e

import hdsgd
from hdsgd import spiked
from hdsgd.odes.spiked import matched_moments_closed_form
from hdsgd.spiked import SpikedSingleIndex

NAN = float("nan")
KEY = jax.random.key(0)
# (N), He2, theta = 1: |overlap| <= 1/sqrt(2), |covariance_overlap| <= 1
COV = SpikedSingleIndex(dim=200, spike=1.0, link="he2", step_size=0.5, label_noise=0.5,
                        initial_overlap=0.2)
# (S): |overlap| <= 1, |covariance_overlap| <= sqrt(2)
SPHERE = SpikedSingleIndex(spike=1.0, link="he2+he4", normalization="sphere", step_size=0.5)
PLAIN = SpikedSingleIndex(link="he1", loss="square", normalization="none")


def _samples(setup=COV, **kw):
    return spiked.escape_samples(setup, **{"key": KEY, "seeds": 2, "max_samples": 1000, **kw})


def _cases():
    counts = ("abc", NAN, 2.5, None, True, 0, -1, 2**40)
    # a threshold past the largest value the observable takes, or none at all
    thresholds = [("correlation", COV, v) for v in (2.5, 1.0 + 1e-9, 2**40, True, 0, 0.0, -1,
                                                    NAN, math.inf, "abc", None)]
    thresholds += [("cosine", SPHERE, 1.5), ("overlap", COV, 0.75),
                   ("overlap", SPHERE, 1.5), ("covariance_overlap", COV, 1.5),
                   ("covariance_overlap", SPHERE, 1.5), ("overlap", PLAIN, 0.0),
                   ("covariance_overlap", PLAIN, 1e40)]
    series = (np.array([]), NAN, [NAN, 1.0], [[0.0, 1.0]], "abc", None, True, [False, True])
    return [
        *[(lambda v: spiked.critical_step_size(SPHERE, n_grid=v), "n_grid", v)
          for v in (*counts, 1, 10**6)],
        *[(lambda v: spiked.critical_step_size(PLAIN, n_grid=v), "n_grid", v) for v in (0, 2**40)],
        *[(lambda v: spiked.fixed_points(SPHERE, n_grid=v), "n_grid", v) for v in (*counts, 1)],
        (lambda v: spiked.critical_step_size(v), "setup", "abc"),
        (lambda v: spiked.fixed_points(v), "setup", None),
        *[(lambda v: spiked.gaussian_moments(SPHERE, v, 0.5), "a", v)
          for v in (NAN, None, "abc", True, [0.1, math.inf], 1e40)],
        *[(lambda v: spiked.gaussian_moments(SPHERE, 0.5, v), "b", v)
          for v in (NAN, None, "abc", True, -0.1, [0.5, -1.0], [[0.5, NAN]])],
        (lambda v: spiked.gaussian_moments(SPHERE, [0.1, 0.2], v), "b", [0.5, 0.5, 0.5]),
        *[(lambda v: spiked.gaussian_moments(SPHERE, [0.1, 0.2], 0.5, n_nodes=v), "n_nodes", v)
          for v in (*counts, 10**4)],
        # finite (a, b) whose moments overflow float64: square loss, He4, G^2 ~ a^14 = 1e420
        (lambda v: spiked.gaussian_moments(SpikedSingleIndex(link="he4", loss="square"), v, 0.5),
         "a", 1e30),
        (lambda v: spiked.gaussian_moments(v, 0.5, 0.5), "setup", 1.0),
        *[(lambda v, o=o, s=s: spiked.escape_time(s, threshold=v, observable=o), "threshold", v)
          for o, s, v in thresholds],
        *[(lambda v, o=o, s=s: _samples(s, threshold=v, observable=o), "threshold", v)
          for o, s, v in thresholds],
        *[(lambda v: spiked.escape_time(COV, horizon=v), "horizon", v)
          for v in (0, -1.0, NAN, math.inf, True, "abc", None)],
        (lambda v: spiked.escape_time(COV, observable=v), "observable", "risk"),
        (lambda v: _samples(observable=v), "observable", "risk"),
        (lambda v: spiked.escape_time(v), "setup", "abc"),
        (lambda v: _samples(v), "setup", None),
        *[(lambda v: _samples(max_samples=v), "max_samples", v)
          for v in (*counts[:-1], 2**53 + 1)],
        *[(lambda v: _samples(seeds=v), "seeds", v) for v in (0, 2.5, "abc")],
        (lambda v: _samples(dtype=v), "dtype", jnp.int32),
        (lambda v: _samples(key=v), "key", 0),
        *[(lambda v: spiked.hermite_e_eval(v, np.array([0.5, 1.0])), "e", v)
          for v in (np.array([]), NAN, [NAN, 1.0], [[0.0, 1.0]], "abc", None, True)],
        *[(lambda v: spiked.hermite_e_eval([1.0, 0.5], v), "x", v)
          for v in (NAN, [NAN, 1.0], [1.0, math.inf], "abc", None, True, [1j])],
        *[(lambda v: spiked.information_exponent(v), "coeffs", v)
          for v in (*series, [0.0], [1.0, 0.0], [0.0, 0.0, 0.0])],
        *[(lambda v: spiked.series_degree(v), "coeffs", v) for v in (*series, [0.0], [0.0, 0.0])],
        *[(lambda v: spiked.to_hermite_e(v), "coeffs", v) for v in (*series, [0.1] * 22)],
        *[(lambda v: spiked.parse_link("link", v), "link", v)
          for v in (*series, [0.0], [1.0, 0.0], "he21", "he2+he2", [0.1] * 22)],
        *[(lambda v: spiked.parse_link(v, "he2"), "name", v) for v in (None, 1, "")],
    ]


@pytest.mark.parametrize("call, parameter, value", [
    pytest.param(*case, id=f"{i}-{case[1]}={case[2]!r:.24}") for i, case in enumerate(_cases())])
def test_bad_arguments_raise_value_errors_naming_themselves(call, parameter, value):
    with pytest.raises(ValueError, match=rf"^{parameter}=.* is invalid; allowed: "):
        call(value)


def test_valid_calls_keep_their_numbers():
    # Hermite series: against numpy's own He basis and the definitions
    c = np.array([0.0, 0.0, 0.6, 0.0, 0.8])
    e = c / np.sqrt([math.factorial(j) for j in range(c.size)])
    np.testing.assert_array_equal(spiked.to_hermite_e(c), e)
    np.testing.assert_array_equal(spiked.to_hermite_e(list(c)), e)
    assert (spiked.information_exponent(c), spiked.series_degree(c)) == (2, 4)
    assert spiked.information_exponent(jnp.asarray(c)) == 2 and spiked.series_degree([1.0]) == 0
    np.testing.assert_array_equal(spiked.parse_link("link", "he2+he4"),
                                  [0, 0, 1 / math.sqrt(2), 0, 1 / math.sqrt(2)])
    np.testing.assert_array_equal(spiked.parse_link("link", list(c) + [0.0]), c)
    x = np.linspace(-2.0, 2.0, 7)
    np.testing.assert_allclose(spiked.hermite_e_eval(e, x), hermite_e.hermeval(x, e), rtol=1e-13)
    assert spiked.hermite_e_eval(e, 0.5) == pytest.approx(hermite_e.hermeval(0.5, e), rel=1e-13)
    assert spiked.hermite_e_eval([2.0], np.zeros((2, 0))).shape == (2, 0)
    with jax.enable_x64(True):  # still pure JAX: jit and grad trace through the checks
        jx = jnp.asarray(x)
        np.testing.assert_allclose(jax.jit(lambda z: spiked.hermite_e_eval(e, z))(jx),
                                   hermite_e.hermeval(x, e), rtol=1e-13)
        np.testing.assert_allclose(jax.vmap(jax.grad(lambda z: spiked.hermite_e_eval(e, z)))(jx),
                                   hermite_e.hermeval(x, hermite_e.hermeder(e)), rtol=1e-12)
    # (A1, A2, A3) for He2, correlation loss, at a^2 + b^2 = 1: the closed form; numpy, list,
    # jnp and scalar inputs agree
    a = np.array([0.0, 0.3, -0.6])
    b = np.sqrt(1.0 - a * a)
    got = spiked.gaussian_moments(COV, a, b, n_nodes=20)
    for want, have in zip(matched_moments_closed_form(2, a, COV.label_noise), got):
        np.testing.assert_allclose(have, want, rtol=1e-12, atol=1e-14)
    with jax.enable_x64(True):  # float64 JAX arrays (else float32: other inputs)
        ja, jb = jnp.asarray(a), jnp.asarray(b)
    for other in (spiked.gaussian_moments(COV, list(a), list(b), n_nodes=20),
                  spiked.gaussian_moments(COV, ja, jb, n_nodes=20.0)):
        for x1, x2 in zip(got, other):
            np.testing.assert_array_equal(x1, x2)
    assert spiked.gaussian_moments(COV, 0.3, b[1], n_nodes=20)[0].shape == ()
    assert spiked.gaussian_moments(COV, np.zeros(0), 0.5)[2].shape == (0,)
    # the critical step of (N), He2: 2 (1 + theta) / (1 + Delta)
    assert math.isclose(spiked.critical_step_size(COV, n_grid=500), 2 * 2.0 / 1.25, rel_tol=1e-6)
    assert spiked.critical_step_size(PLAIN, n_grid=2) == 2.0  # 2 / s_1^2; no grid
    # (S), He2+He4: the values of the unchanged code (before the argument checks)
    assert spiked.critical_step_size(SPHERE, n_grid=500) == pytest.approx(1.33333333356611,
                                                                          rel=1e-12)
    (fp,) = spiked.fixed_points(SPHERE, n_grid=np.int64(500))
    assert fp["stable"] and fp["overlap"] == pytest.approx(0.15779066644103407, rel=1e-12)
    # the start's |correlation| is 0.2 sqrt(2) = 0.283: past a threshold of 0.25 at t = 0
    assert spiked.escape_time(COV, threshold=0.25, observable="correlation", horizon=1) == 0.0
    assert spiked.escape_time(SPHERE, threshold=0.1, observable="overlap") == 0.0


def test_escape_samples_hands_the_checked_values_to_the_chain(monkeypatch):
    # the chain's first passages themselves are tested in test_spiked*.py (their compilation
    # alone would take half of this file's time budget): here, that the checks hand the
    # same threshold, max_samples and observable on, and the hits come back as before
    seen = []

    def chain(chain, m, q, key, threshold, max_samples, observable):
        seen.append((threshold.dtype, float(threshold), max_samples.dtype, int(max_samples),
                     observable))
        return jnp.where(jnp.arange(m.shape[0]) % 2 == 0, 7, -1)

    monkeypatch.setattr(hdsgd.montecarlo.spiked, "_escape_run", chain)
    hits = _samples(seeds=3, threshold=1, observable="cosine", max_samples=np.int64(500),
                    dtype=None)
    assert seen == [(jnp.float64, 1.0, jnp.int64, 500, "cosine")]
    np.testing.assert_array_equal(hits, [7.0, math.inf, 7.0])
