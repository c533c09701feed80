"""spiked single-index model: closed forms vs quadrature (docs/spiked.md, "Closed forms"), the
ODE's escape time, the exact chi^2 sampler and the chain's escape sampler.

Internals (pure JAX) are called inside ``jax.enable_x64(True)``, with their results converted
to numpy inside the block; the public functions scope their own precision."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

import hdsgd
from hdsgd._numerics import gauss_hermite
from hdsgd.montecarlo.spiked import chi2
from hdsgd.odes.spiked import correlation_potential, matched_moments_closed_form
from hdsgd.spiked import (
    SpikedSingleIndex,
    escape_samples,
    escape_time,
    gaussian_moments,
    hermite_e_eval,
    to_hermite_e,
)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_matched_closed_forms_match_quadrature(k):
    noise_var = 0.3
    label_noise = math.sqrt(noise_var)  # a standard deviation: Delta = label_noise^2
    setup = SpikedSingleIndex(link=f"he{k}", label_noise=label_noise)
    for a in (0.0, 0.2, 0.7, 0.95):
        b = math.sqrt(1 - a * a)
        a1, a2, a3 = (float(x) for x in gaussian_moments(setup, a, b))
        c1, c2, c3 = matched_moments_closed_form(k, a, label_noise)
        assert a1 == pytest.approx(c1, abs=1e-12)
        assert a2 == pytest.approx(c2, abs=1e-12)
        if c3 is not None:
            assert a3 == pytest.approx(c3, abs=1e-12)
    # A3(0) = k (1 + Delta) (the O(c^2) term at the origin)
    assert float(gaussian_moments(setup, 0.0, 1.0)[2]) == pytest.approx(k * (1 + noise_var), abs=1e-12)
    # vectorised over (a, b): the same numbers as one point at a time
    a = np.array([0.0, 0.2, 0.7])
    vec = gaussian_moments(setup, a, np.sqrt(1 - a * a))
    for i, ai in enumerate(a):
        one = gaussian_moments(setup, ai, math.sqrt(1 - ai * ai))
        assert [v[i] for v in vec] == pytest.approx([float(x) for x in one], rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_observables_closed_forms(k):
    # matched He_k link and student, (N): ||w||_Sigma = 1 makes a^2 + q = 1, so the correlation
    # is a and E[sigma*(u) sigma(h)] = a^k: risk = 1 - a^k + Delta/2 (docs/spiked.md, "Closed
    # forms"). The risk and the other observables are computed alike for the theory and the
    # Monte Carlo, which therefore cannot check them.
    setup = SpikedSingleIndex(dim=400, spike=3.0, link=f"he{k}", step_size=0.5, label_noise=0.5,
                              initial_overlap=0.2)
    theory = hdsgd.predict(setup, 1.0)
    a = theory["covariance_overlap"]
    assert np.ptp(a) > 0.1
    np.testing.assert_allclose(a, 2.0 * theory["overlap"], rtol=1e-14)
    np.testing.assert_allclose(theory["correlation"], a, rtol=1e-12)
    np.testing.assert_allclose(theory["orthogonal_norm_sq"], 1.0 - a * a, rtol=1e-12)
    m = theory["overlap"]
    np.testing.assert_allclose(theory["cosine"], m / np.sqrt(1.0 - 3.0 * m * m), rtol=1e-12)
    np.testing.assert_allclose(theory["risk"], 1.0 - a**k + 0.125, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", ["correlation", "square"])
def test_potential_gradients_match_quadrature(loss):
    # mismatched link/student, off the unit sphere (the (P) variant): A1 = d/da, A2 = d/db of
    # Phi(a, b) = E[sigma*(u) sigma(a u + b xi)] (minus Psi = E[sigma(s g)^2] / 2 for the square loss)
    setup = SpikedSingleIndex(link="he2+he4", student=[0.0, 0.3, 0.8, 0.5], loss=loss)
    nodes, weights = gauss_hermite(40)
    e_student = to_hermite_e(setup.student)

    def potential(a, b):
        phi = correlation_potential(setup, a, b)
        if loss == "square":
            s = jnp.sqrt(a * a + b * b)
            phi = phi - 0.5 * jnp.sum(weights * hermite_e_eval(e_student, s * jnp.asarray(nodes)) ** 2)
        return phi

    grad = jax.grad(potential, argnums=(0, 1))
    for a, b in ((0.3, 0.8), (1.2, 0.5), (-0.4, 1.3)):
        a1, a2, _ = gaussian_moments(setup, a, b)
        with jax.enable_x64(True):
            g1, g2 = (float(g) for g in grad(jnp.float64(a), jnp.float64(b)))
        np.testing.assert_allclose([float(a1), float(a2)], [g1, g2], rtol=1e-10, atol=1e-12)


def test_escape_time_matches_quadrature_of_the_drift():
    # (N), He2, correlation loss: da/dt = c 2(1+theta)(1-a^2) a - (c^2/2) a (2 + 8a^2), so
    # t_escape = int_{a0}^{a_thr} da / drift(a); the correlation is a itself.
    theta, c, a0, thr = 2.0, 1.5, 0.05, 0.5
    setup = SpikedSingleIndex(spike=theta, link="he2", step_size=c,
                              initial_overlap=a0 / math.sqrt(1 + theta))

    def drift(a):
        return c * 2 * (1 + theta) * (1 - a * a) * a - 0.5 * c * c * a * (2 + 8 * a * a)

    expected = scipy.integrate.quad(lambda a: 1 / drift(a), a0, thr, epsabs=0, epsrel=1e-12)[0]
    assert escape_time(setup, threshold=thr) == pytest.approx(expected, rel=1e-6)
    # above the fixed point a* ~ 0.61 the threshold is never reached
    assert escape_time(setup, threshold=0.7) == math.inf
    # mutation: without the O(c^2) term the escape would be visibly faster
    assert expected > 1.2 * scipy.integrate.quad(lambda a: 1 / (c * 2 * (1 + theta) * (1 - a * a) * a),
                                                 a0, thr)[0]


_draw_chi2 = jax.jit(lambda key, dof: chi2(key, dof, (20000,), jnp.float64))  # dof traced: one compilation


@pytest.mark.parametrize("dof", [1.0, 3.0, 98.0, 1e6])
def test_chi2_sampler_is_exact(dof):
    with jax.enable_x64(True):
        x = np.asarray(_draw_chi2(jax.random.key(5), jnp.float64(dof)))
    assert scipy.stats.kstest(x, scipy.stats.chi2(dof).cdf).pvalue > 1e-3
    # power: the neighbouring law is rejected
    assert scipy.stats.kstest(x, scipy.stats.chi2(dof * 1.05 + 0.1).cdf).pvalue < 1e-3


def test_chain_escape_samples_match_the_ode_from_a_macroscopic_start():
    # from a0 = 0.2 the escape is LLN-like: the chain's samples / d concentrate at the ODE's
    # escape time; the same chain at a start twice as large escapes visibly sooner.
    theta, c, d = 2.0, 1.5, 20_000
    out = {}
    for a0 in (0.2, 0.4):
        setup = SpikedSingleIndex(dim=d, spike=theta, link="he2", step_size=c,
                                  initial_overlap=a0 / math.sqrt(1 + theta))
        n = escape_samples(setup, key=jax.random.key(9), seeds=32, threshold=0.5)
        out[a0] = (np.median(n) / d, escape_time(setup, threshold=0.5))
        assert np.all(np.isfinite(n))
    for a0, (chain_t, ode_t) in out.items():
        assert chain_t == pytest.approx(ode_t, rel=0.05), (a0, chain_t, ode_t)
    assert out[0.4][0] < 0.7 * out[0.2][0]
    # bad input names the argument
    with pytest.raises(ValueError, match="observable"):
        escape_samples(setup, key=jax.random.key(0), observable="risk")
