"""Streaming least squares with heavy-ball momentum (spec momentum.md §8a): theory against Monte
Carlo, the Volterra form against the exact recursion, thresholds, critical batch, mutants."""

import dataclasses

import jax
import numpy as np
import pytest

import hdsgd
from hdsgd import spectra
from hdsgd.odes import lstsq as plain
from hdsgd.odes import lstsq_momentum as theory


def _setup(d=400, **kw):
    base = dict(initial_error=1.0, noise_std=0.3, step_size=0.5, batch_size=1, momentum=0.6)
    base.update(kw)
    return hdsgd.StreamingLeastSquares(spectra.ramp(d, 0.25, 1.75), **base)


def _max_rel_gap(a, b):
    return float(np.max(np.abs(np.asarray(a["risk"]) / np.asarray(b["risk"]) - 1.0)))


@pytest.mark.parametrize("batch_size, step_size, momentum", [(1, 0.5, 0.6), (4, 1.0, 0.8)])
def test_recursion_matches_monte_carlo_early_and_late(batch_size, step_size, momentum):
    setup = _setup(400, batch_size=batch_size, step_size=step_size, momentum=momentum)
    steps = np.concatenate([np.arange(0, 11), [50, 200, 400, 1000, 2000]])
    times = steps / setup.dim
    th = hdsgd.predict(setup, times[-1], times=times)
    assert th.meta["method"] == "recursion" and th.meta["momentum"] == momentum
    mc = hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(11), seeds=48,
                        progress=False)
    agreement = hdsgd.compare(th, mc, "risk")
    assert agreement.ok(sem_tol=4.0), agreement.summary()
    vol = hdsgd.predict(setup, times[-1], times=times, method="volterra")
    assert hdsgd.compare(vol, mc, "risk").ok(sem_tol=4.0)
    # The curve moves by many standard errors, so the agreement is not vacuous ...
    sem = mc.sem()["risk"]
    assert th["risk"][0] - th["risk"][-1] > 50 * sem[-1]
    # ... and momentum matters: plain SGD at the same gamma is rejected.
    sgd = hdsgd.predict(dataclasses.replace(setup, momentum=0.0), times[-1], times=times)
    assert np.max(np.abs(sgd["risk"] - mc.mean()["risk"]) / np.maximum(sem, 1e-12)) > 20


def _mutant_risk(setup, n_steps, *, per_mode_noise=1.0, momentum_memory=1.0, momentum=None,
                 step_size=None):
    """The moment recursion in numpy with one ingredient perturbed."""
    lam = setup.eigenvalues
    beta = setup.momentum if momentum is None else momentum
    eta = (setup.step_size if step_size is None else step_size) / setup.dim
    batch, a = setup.batch_size, eta * lam
    sxx, sxv, svv = setup.initial_error.copy(), np.zeros_like(lam), np.zeros_like(lam)
    out = []
    for _ in range(n_steps + 1):
        psi = setup.noise_std**2 + lam @ sxx
        out.append(0.5 * psi)
        noise = eta**2 / batch * (per_mode_noise * lam**2 * sxx + lam * psi)
        common = momentum_memory * beta**2 * svv + noise
        sxx, sxv, svv = ((1 - a) ** 2 * sxx + 2 * (1 - a) * beta * sxv + common,
                         -(1 - a) * a * sxx + (1 - 2 * a) * beta * sxv + common,
                         a * a * sxx - 2 * a * beta * sxv + common)
    return np.array(out)


def test_recursion_is_exact_at_small_dimension_and_mutants_are_rejected():
    # At d = 6 with eta * lambda ~ 0.2-0.5 every ingredient of the recursion is O(1), so each
    # perturbation below is visible to a 6000-seed Monte Carlo.
    lam = np.array([2.0, 1.5, 1.0, 0.7, 0.4, 0.2])
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=np.full(6, 0.5), noise_std=0.5,
                                        step_size=1.0, batch_size=2, momentum=0.5)
    n = 25
    times = np.arange(n + 1) / setup.dim
    th = hdsgd.predict(setup, times[-1], times=times)
    mc = hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(3), seeds=6000,
                        progress=False, dtype=np.float64)
    good = hdsgd.compare(th, mc, "risk")
    assert good.ok(sem_tol=4.0), good.summary()
    np.testing.assert_allclose(_mutant_risk(setup, n), th["risk"], rtol=1e-10)
    mean, sem = mc.mean()["risk"], mc.sem()["risk"]
    gamma, beta = setup.step_size, setup.momentum
    for name, mutant in {
        "no per-mode (1/B) lambda^2 Sxx noise": dict(per_mode_noise=0.0),
        "doubled per-mode noise": dict(per_mode_noise=2.0),
        "velocity memory beta instead of beta^2": dict(momentum_memory=1.0 / beta),
        "plain SGD at gamma": dict(momentum=0.0),
        "plain SGD at gamma/(1-beta)": dict(momentum=0.0, step_size=gamma / (1 - beta)),
    }.items():
        gap = np.abs(_mutant_risk(setup, n, **mutant) - mean) / np.maximum(sem, 1e-12)
        assert gap.max() > 8.0, name


def test_beta_zero_reproduces_plain_sgd():
    setup = _setup(300, momentum=0.0, step_size=1.5, batch_size=2)
    times = np.linspace(0, 5.0, 26)
    old = hdsgd.predict(setup, 5.0, times=times)
    new = theory.predict_momentum(setup, 5.0, times=times)
    np.testing.assert_allclose(new["risk"], old["risk"], rtol=1e-13)
    assert theory.critical_step_size(setup) == pytest.approx(plain.critical_step_size(setup), rel=1e-12)
    assert theory.limit_excess_risk(setup) == pytest.approx(plain.limit_excess_risk(setup), rel=1e-10)
    from hdsgd.montecarlo.lstsq_momentum import simulate_momentum
    a = hdsgd.simulate(setup, 1.0, key=jax.random.key(4), seeds=3, progress=False)
    b = simulate_momentum(setup, 1.0, key=jax.random.key(4), seeds=3, progress=False)
    np.testing.assert_allclose(b["risk"], a["risk"], rtol=1e-5)


@pytest.mark.parametrize("momentum", [-0.1, 1.0, 1.5, np.nan, np.inf, "x"])
def test_bad_momentum_names_the_field(momentum):
    with pytest.raises(ValueError, match="momentum"):
        hdsgd.StreamingLeastSquares([1.0, 2.0], momentum=momentum)
    with pytest.raises(ValueError, match="momentum"):
        dataclasses.replace(_setup(10), momentum=momentum)


def test_bad_call_arguments_with_momentum():
    setup = _setup(20)
    with pytest.raises(ValueError, match="method"):
        hdsgd.predict(setup, 1.0, method="ode")
    with pytest.raises(ValueError, match="horizon"):
        hdsgd.predict(setup, -1.0)
    with pytest.raises(ValueError, match="seeds"):
        hdsgd.simulate(setup, 1.0, key=jax.random.key(0), seeds=0)
    with pytest.raises(TypeError, match="unknown option"):
        hdsgd.predict(setup, 1.0, exact_steps=3)
    with pytest.raises(TypeError, match="unknown option"):
        hdsgd.predict(setup, 1.0, tolerance=3)
