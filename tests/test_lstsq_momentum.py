"""Streaming least squares with heavy-ball momentum (docs/lstsq.md, "Momentum"): theory against
Monte Carlo, the Volterra form against the exact recursion, thresholds, critical batch, mutants."""

import dataclasses

import jax
import jax.numpy as jnp
import scipy.optimize
import numpy as np
import pytest

import hdsgd
from hdsgd import spectra
from hdsgd.odes import lstsq as odes_lstsq
from hdsgd import lstsq as theory


def _setup(d=400, **kw):
    base = dict(initial_error=1.0, noise_std=0.3, step_size=0.5, batch_size=1, momentum=0.6)
    base.update(kw)
    return hdsgd.StreamingLeastSquares(spectra.ramp(d, 0.25, 1.75), **base)


def _gap_message(agreement, limit):
    """A failure message that leads with the largest gap in standard errors."""
    return f"largest gap {agreement.worst[2]:.3g} SE (limit {limit})\n{agreement.summary()}"


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
    assert agreement.ok(sem_tol=4.0), "recursion: " + _gap_message(agreement, 4.0)
    vol = hdsgd.predict(setup, times[-1], times=times, method="volterra")
    vol_agreement = hdsgd.compare(vol, mc, "risk")
    assert vol_agreement.ok(sem_tol=4.0), "volterra: " + _gap_message(vol_agreement, 4.0)
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
    # perturbation below is visible to a 24000-seed Monte Carlo (the weakest, (1 - 2a) beta Sxv
    # in Sxv replaced by (1 - a) beta Sxv, by 11.5 s.e.; the exact recursion: 0.8 s.e.).
    lam = np.array([2.0, 1.5, 1.0, 0.7, 0.4, 0.2])
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=np.full(6, 0.5), noise_std=0.5,
                                        step_size=1.0, batch_size=2, momentum=0.5)
    n = 25
    times = np.arange(n + 1) / setup.dim
    th = hdsgd.predict(setup, times[-1], times=times)
    mc = hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(3), seeds=24000,
                        progress=False, dtype=np.float64)
    good = hdsgd.compare(th, mc, "risk")
    assert good.ok(sem_tol=4.0), _gap_message(good, 4.0)
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
    # The heavy-ball moment recursion at beta = 0 against the plain recursion (separate code),
    # and the unified threshold and floor against a numpy re-implementation of plain SGD's.
    setup = _setup(300, momentum=0.0, step_size=1.5, batch_size=2)
    n = 5 * setup.dim
    with jax.enable_x64(True):
        args = (jnp.asarray(setup.eigenvalues), jnp.asarray(setup.initial_error), setup.noise_var,
                setup.step_size, 2.0)
        heavy = np.asarray(odes_lstsq.momentum_recursion_psi(*args, 0.0, n))
        plain_psi = np.asarray(odes_lstsq.recursion_psi(*args, n))
    np.testing.assert_allclose(heavy, plain_psi, rtol=1e-13)
    lam, d, b = setup.eigenvalues, setup.dim, setup.batch_size

    def growth(gamma):
        return gamma / (b * d) * np.sum(lam / (2 - gamma / d * (1 + 1 / b) * lam)) - 1

    gamma_c = scipy.optimize.brentq(growth, 1e-9, 2 * d / ((1 + 1 / b) * lam.max()) * (1 - 1e-12),
                                    xtol=1e-14, rtol=1e-15)
    assert theory.critical_step_size(setup) == pytest.approx(gamma_c, rel=1e-12)
    eta = setup.step_size / d
    a_i = 1 - 2 * eta * lam + (1 + 1 / b) * eta**2 * lam**2
    b_i = eta**2 * lam / b
    psi = setup.noise_var / (1 - np.sum(lam * b_i / (1 - a_i)))
    assert theory.limit_excess_risk(setup) == pytest.approx(0.5 * (psi - setup.noise_var), rel=1e-10)


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
    with pytest.raises(ValueError, match="unknown option"):
        hdsgd.predict(setup, 1.0, exact_steps=3)
    with pytest.raises(ValueError, match="unknown option"):
        hdsgd.predict(setup, 1.0, tolerance=3)


def _moment_matrix(setup):
    """The 3d x 3d matrix of the exact recursion on (Sxx_i, Sxv_i, Svv_i), built entry by entry."""
    lam, d = setup.eigenvalues, setup.dim
    eta, beta, batch = setup.step_size / d, setup.momentum, setup.batch_size
    out = np.zeros((3 * d, 3 * d))
    for i, a in enumerate(eta * lam):
        out[3 * i:3 * i + 3, 3 * i:3 * i + 3] = [[(1 - a) ** 2, 2 * (1 - a) * beta, beta**2],
                                                 [-(1 - a) * a, (1 - 2 * a) * beta, beta**2],
                                                 [a * a, -2 * a * beta, beta**2]]
        for r in range(3):  # noise eta^2/B (lambda_i^2 Sxx_i + lambda_i sum_j lambda_j Sxx_j)
            out[3 * i + r, 3 * i] += eta**2 / batch * lam[i] ** 2
            out[3 * i + r, 0::3] += eta**2 / batch * lam[i] * lam
    return out


def _radius(setup):
    return float(np.max(np.abs(np.linalg.eigvals(_moment_matrix(setup)))))


@pytest.mark.parametrize("batch_size, momentum", [(1, 0.5), (1, 0.9), (8, 0.5), (8, 0.9)])
def test_exact_threshold_and_rate_are_the_spectral_radius(batch_size, momentum):
    rng = np.random.default_rng(0)
    lam = np.sort(rng.uniform(0.05, 3.0, 12))[::-1]
    setup = hdsgd.StreamingLeastSquares(lam, step_size=1.0, batch_size=batch_size, momentum=momentum)
    gamma_c = hdsgd.lstsq.critical_step_size(setup)  # dispatches on momentum
    assert gamma_c == theory.critical_step_size(setup)
    below = dataclasses.replace(setup, step_size=gamma_c * (1 - 1e-6))
    above = dataclasses.replace(setup, step_size=gamma_c * (1 + 1e-6))
    assert _radius(below) < 1.0 < _radius(above)
    assert theory.feedback(below) < 1.0 < theory.feedback(above)
    for fraction in (0.2, 0.7):
        inside = dataclasses.replace(setup, step_size=fraction * gamma_c)
        assert theory.asymptotic_rate(inside) == pytest.approx(_radius(inside), abs=1e-12)
    # Momentum lowers the threshold in gamma, roughly like (1 - beta) at small batch.
    plain_c = theory.critical_step_size(dataclasses.replace(setup, momentum=0.0))
    assert gamma_c < plain_c
    if batch_size == 1:
        assert gamma_c / (1 - momentum) == pytest.approx(plain_c, rel=0.15)


def test_supercritical_step_is_flagged_as_diverged():
    setup = _setup(100, step_size=0.3, momentum=0.7)
    gamma_c = hdsgd.lstsq.critical_step_size(setup)
    bad = dataclasses.replace(setup, step_size=1.05 * gamma_c)
    for method in ("recursion", "volterra"):
        curve = hdsgd.predict(bad, 200.0, method=method)
        assert curve.any_diverged and "warning" in curve.meta
        assert not curve.diverged[0] and curve.diverged[-1]
    mc = hdsgd.simulate(dataclasses.replace(setup, step_size=3 * gamma_c), 100.0,
                        key=jax.random.key(0), seeds=4, progress=False)
    assert mc.diverged[:, -1].all() and np.all(np.isinf(mc["risk"][mc.diverged]))
    assert not hdsgd.predict(dataclasses.replace(setup, step_size=0.9 * gamma_c), 50.0).any_diverged


def test_kernel_mass_and_limit_risk():
    setup = _setup(200, step_size=0.6, batch_size=2, momentum=0.7, noise_std=0.5)
    with jax.enable_x64(True):
        kernel = np.asarray(odes_lstsq.volterra_kernel(jnp.asarray(setup.eigenvalues),
                                                       setup.step_size, 2.0, setup.momentum, 60_000))
    assert float(np.sum(kernel)) == pytest.approx(theory.kernel_mass(setup), rel=1e-9)
    eta, beta, lam = setup.step_size / setup.dim, setup.momentum, setup.eigenvalues
    masses = eta * lam * (1 + beta) / (setup.batch_size * (1 - beta) * (2 * (1 + beta) - eta * lam))
    assert theory.kernel_mass(setup) == pytest.approx(masses.sum(), rel=1e-12)
    # ~ eta_eff tr H / (2B), up to O(eta lambda) corrections
    eff = theory.effective_step_size(setup) * setup.eigenvalues.mean() / (2 * setup.batch_size)
    assert theory.kernel_mass(setup) == pytest.approx(eff, rel=0.01)
    rec = hdsgd.predict(setup, 40.0)
    vol = hdsgd.predict(setup, 40.0, method="volterra")
    assert rec["risk"][-1] == pytest.approx(theory.limit_risk(setup), rel=1e-8)
    assert vol["risk"][-1] == pytest.approx(theory.limit_risk(setup, "volterra"), rel=1e-8)
    # The exact floor exceeds the Volterra one by the dropped O(1/d) per-mode noise.
    gap = theory.limit_risk(setup) / theory.limit_risk(setup, "volterra") - 1
    assert 0 < gap < 5.0 / setup.dim


def test_volterra_and_effective_step_approach_recursion_like_one_over_d():
    gaps_vol, gaps_eff = [], []
    for d in (250, 1000, 4000):
        setup = _setup(d, step_size=0.4, momentum=0.7, batch_size=1)
        times = np.linspace(0, 2.0, 21)
        rec = hdsgd.predict(setup, 2.0, times=times)
        vol = hdsgd.predict(setup, 2.0, times=times, method="volterra")
        sgd = hdsgd.predict(dataclasses.replace(setup, momentum=0.0,
                                                step_size=theory.effective_step_size(setup)),
                            2.0, times=times)
        gaps_vol.append(_max_rel_gap(vol, rec))
        gaps_eff.append(_max_rel_gap(sgd, rec))
    for gaps in (gaps_vol, gaps_eff):
        ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
        assert np.all((ratios > 3.0) & (ratios < 5.5)), (gaps, ratios)
    # Plain SGD at gamma (not gamma/(1-beta)) is off by O(1), at every d.
    sgd_raw = hdsgd.predict(dataclasses.replace(setup, momentum=0.0), 2.0, times=times)
    assert _max_rel_gap(sgd_raw, rec) > 0.1 > 10 * gaps_eff[0]


def test_accelerated_critical_batch_reproduces_the_homogenized_numbers():
    # The homogenized form (docs/lstsq.md, "Momentum"): d = 300 eigenvalues uniform on
    # [0.01, 1], B = 50, full-batch optimal
    # heavy ball: ||K||_1 = 117.011, B_c = 5851, bulk approximation 758.
    lam = np.linspace(0.01, 1.0, 300)
    gamma, beta = theory.accelerated_hyperparameters(lam)
    setup = hdsgd.StreamingLeastSquares(lam, step_size=gamma, batch_size=50, momentum=beta)
    assert theory.kernel_mass(setup) == pytest.approx(117.011, abs=1e-3)
    assert theory.accelerated_critical_batch_size(lam, "homogenized") == pytest.approx(5850.55, abs=0.01)
    assert round(theory.accelerated_critical_batch_size(lam, "bulk")) == 758
    exact = theory.accelerated_critical_batch_size(lam)
    assert exact > 5851  # the per-mode term makes the exact batch larger (edge modes)
    at = dataclasses.replace(setup, batch_size=int(np.ceil(exact)))
    assert theory.feedback(dataclasses.replace(at, batch_size=int(np.floor(exact)))) > 1 > theory.feedback(at)
    # Far above B_c the rate tends to the accelerated beta* per step (second moments).
    far = dataclasses.replace(setup, batch_size=int(1000 * exact))
    assert theory.asymptotic_rate(far) == pytest.approx(beta, rel=0.03)


def test_exact_critical_batch_is_sharp_and_the_spec_form_is_not_at_small_d():
    lam = np.sort(np.random.default_rng(0).uniform(0.1, 1.0, 10))[::-1]
    gamma, beta = theory.accelerated_hyperparameters(lam)
    exact = theory.accelerated_critical_batch_size(lam)
    homogenized = theory.accelerated_critical_batch_size(lam, "homogenized")
    assert np.ceil(homogenized) < np.floor(exact)

    def radius(batch):
        return _radius(hdsgd.StreamingLeastSquares(lam, step_size=gamma, batch_size=batch,
                                                   momentum=beta))

    assert radius(int(np.floor(exact))) > 1.0 > radius(int(np.ceil(exact)))
    assert radius(int(np.ceil(homogenized))) > 1.0  # spec form: too small at this d


def _best_plain_rate(setup):
    """The smallest per-step rate of plain SGD over its step size (theory)."""
    import scipy.optimize
    sgd = dataclasses.replace(setup, momentum=0.0)
    gamma_c = hdsgd.lstsq.critical_step_size(sgd)
    res = scipy.optimize.minimize_scalar(
        lambda g: theory.asymptotic_rate(dataclasses.replace(sgd, step_size=g)),
        bounds=(1e-3 * gamma_c, 0.999 * gamma_c), method="bounded", options={"xatol": 1e-6 * gamma_c})
    return res.fun, res.x


def test_above_critical_batch_momentum_beats_the_best_plain_step_in_monte_carlo():
    # kappa = 25; at B = 4 B_c the accelerated pair's rate is ~0.65 per step against ~0.85 for
    # plain SGD at its best step. Large batches: the exact-in-distribution projected sampler.
    lam = np.linspace(1.0, 0.04, 100)
    gamma, beta = theory.accelerated_hyperparameters(lam)
    batch = int(np.ceil(4 * theory.accelerated_critical_batch_size(lam)))
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.0, step_size=gamma,
                                        batch_size=batch, momentum=beta)
    rate_sgd, gamma_sgd = _best_plain_rate(setup)
    assert theory.asymptotic_rate(setup) < rate_sgd - 0.15
    sgd = dataclasses.replace(setup, momentum=0.0, step_size=gamma_sgd)
    steps = np.array([0, 1, 2, 3, 5, 10, 15, 20, 25, 30, 40])
    times = steps / setup.dim
    key = jax.random.key(21)
    final = {}
    for name, s in (("momentum", setup), ("sgd", sgd)):
        th = hdsgd.predict(s, times[-1], times=times)
        mc = hdsgd.simulate(s, times[-1], times=times, key=key, seeds=64, progress=False,
                            dtype=np.float64, method="projected")
        assert hdsgd.compare(th, mc, "excess_risk").ok(sem_tol=4.0), name
        final[name] = mc.mean()["excess_risk"][-1]
    assert final["momentum"] < 1e-2 * final["sgd"]
    # Below the critical batch the accelerated pair diverges (theory flag and Monte Carlo).
    small = dataclasses.replace(setup, batch_size=batch // 16)
    assert hdsgd.predict(small, times[-1], times=times).any_diverged
    mc = hdsgd.simulate(small, times[-1], times=times, key=key, seeds=16, progress=False,
                        method="projected")
    assert np.median(mc["excess_risk"][:, -1]) > 10 * mc["excess_risk"][0, 0]


def test_projected_sampler_is_the_same_process():
    # Exact in distribution: at d = 6 (every O(1) term visible) it matches the exact recursion
    # as the data sampler does, and with momentum 0 it runs plain SGD.
    lam = np.array([2.0, 1.5, 1.0, 0.7, 0.4, 0.2])
    for momentum, noise in ((0.5, 0.5), (0.0, 0.0)):
        setup = hdsgd.StreamingLeastSquares(lam, initial_error=np.full(6, 0.5), noise_std=noise,
                                            step_size=1.0, batch_size=3, momentum=momentum)
        times = np.arange(26) / setup.dim
        th = hdsgd.predict(setup, times[-1], times=times)
        mc = hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(8), seeds=6000,
                            progress=False, dtype=np.float64, method="projected")
        assert mc.meta["method"] == "projected"
        assert hdsgd.compare(th, mc, "risk").ok(sem_tol=4.0)
    with pytest.raises(ValueError, match="method"):
        hdsgd.simulate(setup, 1.0, key=jax.random.key(0), method="fast")


@pytest.mark.slow
@pytest.mark.parametrize("batch_size, step_size, momentum, sampler",
                         [(1, 0.5, 0.6, "data"), (8, 1.0, 0.9, "projected")])
def test_large_dimension_agreement(batch_size, step_size, momentum, sampler):
    setup = _setup(2000, batch_size=batch_size, step_size=step_size, momentum=momentum)
    assert step_size < 0.8 * hdsgd.lstsq.critical_step_size(setup)
    th = hdsgd.predict(setup, 4.0)
    mc = hdsgd.simulate(setup, 4.0, key=jax.random.key(7), seeds=64, progress=False, method=sampler)
    agreement = hdsgd.compare(th, mc, "risk")
    assert agreement.ok(sem_tol=4.5), agreement.summary()
    assert agreement["risk"].max_rel_gap < 0.01


@pytest.mark.slow
def test_volterra_and_effective_step_one_over_d_to_16000():
    gaps_vol, gaps_eff = [], []
    for d in (1000, 4000, 16000):
        setup = _setup(d, step_size=0.4, momentum=0.7)
        times = np.linspace(0, 2.0, 21)
        rec = hdsgd.predict(setup, 2.0, times=times)
        gaps_vol.append(_max_rel_gap(hdsgd.predict(setup, 2.0, times=times, method="volterra"), rec))
        sgd = dataclasses.replace(setup, momentum=0.0, step_size=theory.effective_step_size(setup))
        gaps_eff.append(_max_rel_gap(hdsgd.predict(sgd, 2.0, times=times), rec))
    for gaps in (gaps_vol, gaps_eff):
        ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
        assert np.all((ratios > 3.5) & (ratios < 4.5)), (gaps, ratios)


@pytest.mark.slow
def test_acceleration_at_larger_dimension_with_many_seeds():
    lam = np.linspace(1.0, 0.04, 400)
    gamma, beta = theory.accelerated_hyperparameters(lam)
    batch = int(np.ceil(4 * theory.accelerated_critical_batch_size(lam)))
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.1, step_size=gamma,
                                        batch_size=batch, momentum=beta)
    times = np.arange(0, 41, 2) / setup.dim
    th = hdsgd.predict(setup, times[-1], times=times)
    mc = hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(5), seeds=512,
                        progress=False, dtype=np.float64, method="projected")
    assert hdsgd.compare(th, mc, "excess_risk").ok(sem_tol=4.0)
    rate_sgd, _ = _best_plain_rate(setup)
    assert theory.asymptotic_rate(setup) < rate_sgd - 0.15
