"""Streaming least squares: theory against Monte Carlo, and the three equivalents against each other."""

import jax
import numpy as np
import pytest

import hdsgd
from hdsgd import spectra
from hdsgd import lstsq as theory
from hdsgd.odes import lstsq as odes_lstsq


def _gap_message(agreement, limit):
    """A failure message that leads with the largest gap in standard errors."""
    return f"largest gap {agreement.worst[2]:.3g} SE (limit {limit})\n{agreement.summary()}"


def _setup(d=400, **kw):
    base = dict(initial_error=1.0, noise_std=0.3, step_size=1.5, batch_size=1)
    base.update(kw)
    return hdsgd.StreamingLeastSquares(spectra.ramp(d, 0.25, 1.75), **base)


@pytest.mark.parametrize("batch_size, step_size", [(1, 1.5), (4, 5.0)])
def test_recursion_matches_monte_carlo_early_and_late(batch_size, step_size):
    setup = _setup(400, batch_size=batch_size, step_size=step_size)
    steps = np.concatenate([np.arange(0, 11), [50, 200, 400, 1000, 2000]])
    times = steps / setup.dim
    th = hdsgd.predict(setup, times[-1], times=times)
    mc = hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(11), seeds=48,
                        progress=False)
    agreement = hdsgd.compare(th, mc, "risk")
    assert agreement.ok(sem_tol=4.0), _gap_message(agreement, 4.0)
    # The curve moves by many standard errors over the run, so agreement is not vacuous.
    sem = mc.sem()["risk"][-1]
    assert th["risk"][0] - th["risk"][-1] > 50 * sem


def _mutant_psi(setup, n_steps, *, second_order_factor, coupling_factor):
    """The recursion with its (1 + 1/B) eta^2 lambda^2 term or its coupling perturbed."""
    lam, rho = setup.eigenvalues, setup.initial_error.copy()
    eta = setup.step_size / setup.dim
    a = 1 - 2 * eta * lam + second_order_factor * eta**2 * lam**2
    b = coupling_factor * eta**2 * lam / setup.batch_size
    out = []
    for _ in range(n_steps + 1):
        psi = setup.noise_std**2 + lam @ rho
        out.append(psi)
        rho = a * rho + b * psi
    return 0.5 * np.array(out)


def test_recursion_is_exact_at_small_dimension_and_mutants_are_rejected():
    # At d = 6 with eta * lambda ~ 0.3 the O(eta^2) terms are large, so dropping the
    # (1 + 1/B) factor or doubling the noise coupling is visible to the Monte Carlo.
    lam = np.array([2.0, 1.5, 1.0, 0.7, 0.4, 0.2])
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=np.full(6, 0.5), noise_std=0.5,
                                        step_size=1.0, batch_size=2)
    n = 25
    times = np.arange(n + 1) / setup.dim
    th = hdsgd.predict(setup, times[-1], times=times)
    mc = hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(3), seeds=6000,
                        progress=False, dtype=np.float64)
    good = hdsgd.compare(th, mc, "risk")
    assert good.ok(sem_tol=4.0), _gap_message(good, 4.0)
    np.testing.assert_allclose(_mutant_psi(setup, n, second_order_factor=1 + 1 / 2, coupling_factor=1),
                               th["risk"], rtol=1e-10)
    mean, sem = mc.mean()["risk"], mc.sem()["risk"]
    for mutant in (dict(second_order_factor=1.0, coupling_factor=1.0),   # homogenized a_i
                   dict(second_order_factor=1.5, coupling_factor=2.0),   # factor 2 on noise
                   dict(second_order_factor=2.0, coupling_factor=1.0)):  # 1 + 1/B -> 2
        gap = np.abs(_mutant_psi(setup, n, **mutant) - mean) / np.maximum(sem, 1e-12)
        assert gap.max() > 8.0, mutant


def _max_rel_gap(a, b):
    return float(np.max(np.abs(a["risk"] / b["risk"] - 1.0)))


@pytest.mark.parametrize("dim, block", [(6, 16), (300, 4), (300, 8), (300, 16), (5000, 8), (40000, 16)])
@pytest.mark.parametrize("batch_size, edge_fraction", [(1, 0.5), (3, 0.97), (1, 1.3)])
def test_blocked_recursion_equals_step_by_step(dim, block, batch_size, edge_fraction):
    """k steps a pass (the default for d <= 12288) is the same recursion as one step a pass, to
    rounding, at every step: below the edge, just below it and past it (a diverging run), with
    label noise, a step count that is not a multiple of k, and a non-uniform start."""
    lam = spectra.power_law(dim, 1.0)
    rho0 = np.linspace(2.0, 0.5, dim)
    gamma = edge_fraction * theory.critical_step_size(
        hdsgd.StreamingLeastSquares(lam, batch_size=batch_size))
    n = 4 * dim + 5 if dim < 5000 else 3 * block + 1
    args = (lam, rho0, 0.09, gamma, float(batch_size), n)
    with jax.enable_x64(True):
        stepwise = np.asarray(odes_lstsq.recursion_psi(*args, block=1))
        blocked = np.asarray(odes_lstsq.recursion_psi(*args, block=block))
    assert stepwise.dtype == np.float64
    assert blocked.shape == stepwise.shape == (n + 1,)
    finite = stepwise < 1e100
    assert finite[: min(n, 200)].all()
    np.testing.assert_allclose(blocked[finite], stepwise[finite], rtol=1e-12)
    if edge_fraction > 1 and dim < 5000:  # the run diverges, and the blocked form says so too
        assert stepwise[-1] > 10 * stepwise.min() and blocked[-1] > 10 * blocked.min()
    assert odes_lstsq.recursion_block(dim) in (8, 16)


@pytest.mark.parametrize("block", [4, 8])
@pytest.mark.parametrize("momentum, batch_size, edge_fraction",
                         [(0.5, 1, 0.5), (0.9, 3, 0.97), (0.7, 1, 1.3)])
def test_blocked_heavy_ball_recursion_equals_step_by_step(block, momentum, batch_size,
                                                          edge_fraction):
    """The heavy-ball moment recursion taken k steps a pass (its 3 x 3 per-mode matrix and psi
    feed read off `moment_step`) equals one step a pass at every step, to rounding: below, near
    and past its edge, with label noise and a step count that is not a multiple of k."""
    dim = 200
    lam = spectra.power_law(dim, 1.0)
    rho0 = np.linspace(2.0, 0.5, dim)
    gamma = edge_fraction * theory.critical_step_size(
        hdsgd.StreamingLeastSquares(lam, batch_size=batch_size, momentum=momentum))
    n = 6 * dim + 3
    args = (lam, rho0, 0.09, gamma, float(batch_size), momentum, n)
    with jax.enable_x64(True):
        stepwise = np.asarray(odes_lstsq.momentum_recursion_psi(*args, block=1))
        blocked = np.asarray(odes_lstsq.momentum_recursion_psi(*args, block=block))
    assert stepwise.dtype == np.float64 and blocked.shape == (n + 1,)
    finite = stepwise < 1e100
    assert finite[:200].all()
    np.testing.assert_allclose(blocked[finite], stepwise[finite], rtol=1e-12)
    if edge_fraction > 1:
        assert stepwise[-1] > 10 * stepwise.min() and blocked[-1] > 10 * blocked.min()


def test_ode_and_volterra_approach_recursion_like_one_over_d():
    gaps_ode, gaps_vol = [], []
    for d in (250, 1000, 4000):
        setup = _setup(d, step_size=1.2, batch_size=1)
        times = np.linspace(0, 3.0, 31)
        rec = hdsgd.predict(setup, 3.0, times=times)
        ode = hdsgd.predict(setup, 3.0, times=times, method="ode", exact_steps=0)
        vol = hdsgd.predict(setup, 3.0, times=times, method="volterra")
        gaps_ode.append(_max_rel_gap(ode, rec))
        gaps_vol.append(_max_rel_gap(vol, rec))
    for gaps in (gaps_ode, gaps_vol):
        ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
        assert np.all((ratios > 3.0) & (ratios < 5.5)), (gaps, ratios)
    # ODE and Volterra are the same continuous-time object: they agree far better than 1/d.
    assert abs(gaps_ode[-1] - gaps_vol[-1]) < 0.2 * gaps_ode[-1]


def test_isotropic_closed_form():
    d, gamma, batch, sigma = 500, 1.3, 2, 0.4
    setup = hdsgd.StreamingLeastSquares(spectra.isotropic(d), initial_error=2.0, noise_std=sigma,
                                        step_size=gamma, batch_size=batch)
    times = np.linspace(0, 4, 41)
    closed = theory.isotropic_risk(times, step_size=gamma, batch_size=batch, noise_std=sigma,
                                   initial_risk=setup.initial_risk)
    ode = hdsgd.predict(setup, 4.0, times=times, method="ode", exact_steps=0)
    gap = _max_rel_gap(ode, {"risk": closed})
    assert gap < 1e-6, f"the ODE is {gap:.3g} (relative) off the closed form"
    vol = hdsgd.predict(setup, 4.0, times=times, method="volterra")
    gap = _max_rel_gap(vol, {"risk": closed})
    assert gap < 1e-9, f"the Volterra solution is {gap:.3g} (relative) off the closed form"
    rec = hdsgd.predict(setup, 4.0, times=times)
    assert _max_rel_gap(rec, {"risk": closed}) < 5.0 / d
    # Closed-form threshold and floor: gamma_c = 2B in the homogenized limit.
    assert abs(theory.homogenized_critical_step_size(setup) - 2 * batch) < 1e-12


@pytest.mark.parametrize("batch_size", [1, 8])
def test_exact_threshold_is_where_the_growth_factor_crosses_one(batch_size):
    rng = np.random.default_rng(0)
    lam = np.sort(rng.uniform(0.05, 3.0, 40))[::-1]
    setup = hdsgd.StreamingLeastSquares(lam, step_size=1.0, batch_size=batch_size)
    gamma_c = hdsgd.lstsq.critical_step_size(setup)

    def radius(gamma):
        import dataclasses
        m = theory.recursion_matrix(dataclasses.replace(setup, step_size=gamma))
        return np.max(np.abs(np.linalg.eigvals(m)))

    assert radius(gamma_c * (1 - 1e-6)) < 1.0 < radius(gamma_c * (1 + 1e-6))
    assert abs(radius(gamma_c) - 1.0) < 1e-9
    # Bounded by the homogenized threshold 2B/lambda_bar and the curvature limit.
    assert gamma_c <= 2 * setup.dim / ((1 + 1 / batch_size) * lam.max()) + 1e-9
    assert gamma_c < 2 * batch_size / lam.mean()


def test_threshold_limits_small_and_large_batch():
    flat = spectra.ramp(2000, 0.5, 1.5)
    small = hdsgd.StreamingLeastSquares(flat, batch_size=1)
    assert abs(hdsgd.lstsq.critical_step_size(small) / (2 / flat.mean()) - 1) < 2e-3
    lam = spectra.power_law(2000, 1.0)
    large = hdsgd.StreamingLeastSquares(lam, batch_size=100_000)
    assert abs(hdsgd.lstsq.critical_step_size(large) / (2 * lam.size / lam.max()) - 1) < 0.01
    assert abs(hdsgd.lstsq.critical_batch_size(large) - lam.sum()) < 1e-9


def test_supercritical_step_is_flagged_as_diverged():
    setup = _setup(100, step_size=1.0)
    gamma_c = hdsgd.lstsq.critical_step_size(setup)
    import dataclasses
    bad = dataclasses.replace(setup, step_size=1.05 * gamma_c)
    curve = hdsgd.predict(bad, 400.0)
    assert curve.any_diverged and "warning" in curve.meta
    assert not curve.diverged[0] and curve.diverged[-1]
    mc = hdsgd.simulate(dataclasses.replace(setup, step_size=3 * gamma_c), 200.0,
                        key=jax.random.key(0), seeds=4, progress=False)
    assert mc.diverged[:, -1].all()
    assert np.all(np.isinf(mc["risk"][mc.diverged]))
    ok = hdsgd.predict(dataclasses.replace(setup, step_size=0.9 * gamma_c), 50.0)
    assert not ok.any_diverged


def test_noise_floor_matches_long_recursion():
    setup = _setup(200, step_size=2.0, batch_size=2, noise_std=0.5)
    floor = theory.limit_excess_risk(setup)
    curve = hdsgd.predict(setup, 400.0)
    assert abs(curve["excess_risk"][-1] / floor - 1) < 1e-6
    lam_bar = setup.eigenvalues.mean()
    homogenized = 2.0 * lam_bar * 0.25 / (2 * (2 * 2 - 2.0 * lam_bar))
    assert abs(floor / homogenized - 1) < 5.0 / setup.dim


def test_ode_with_exact_start_tracks_recursion_closely():
    setup = _setup(500, step_size=1.5, batch_size=2)
    rec = hdsgd.predict(setup, 40.0)
    ode = hdsgd.predict(setup, 40.0, method="ode")
    assert ode.meta["exact_steps"] == 2000
    early = rec.time * setup.dim <= 2000
    np.testing.assert_allclose(ode["risk"][early], rec["risk"][early], rtol=1e-12)
    # The homogenized ODE drops O(1/d) terms; past the exact start it stays within ~1/d.
    assert _max_rel_gap(ode, rec) < 1.5 / setup.dim


def test_same_key_same_numbers_and_dtype_policy():
    setup = _setup(64)
    a = hdsgd.simulate(setup, 2.0, key=jax.random.key(5), seeds=3, progress=False)
    b = hdsgd.simulate(setup, 2.0, key=jax.random.key(5), seeds=3, progress=False)
    c = hdsgd.simulate(setup, 2.0, key=jax.random.key(6), seeds=3, progress=False)
    np.testing.assert_array_equal(a["risk"], b["risk"])
    assert not np.allclose(a["risk"][:, -1], c["risk"][:, -1])
    assert a.meta["dtype"] == "float32"
    d64 = hdsgd.simulate(setup, 2.0, key=jax.random.key(5), seeds=3, progress=False, dtype=np.float64)
    assert d64.meta["dtype"] == "float64"
    assert a.samples[-1] == round(2.0 * 64) * setup.batch_size


@pytest.mark.parametrize("kwargs, field", [
    (dict(eigenvalues=[1.0, -1.0]), "eigenvalues"),
    (dict(eigenvalues=[1.0, 0.0]), "eigenvalues"),
    (dict(eigenvalues=[]), "eigenvalues"),
    (dict(eigenvalues=[1.0, np.nan]), "eigenvalues"),
    (dict(eigenvalues=[[1.0]]), "eigenvalues"),
    (dict(eigenvalues=[1.0], step_size=0.0), "step_size"),
    (dict(eigenvalues=[1.0], step_size=-1.0), "step_size"),
    (dict(eigenvalues=[1.0], step_size=np.nan), "step_size"),
    (dict(eigenvalues=[1.0], batch_size=0), "batch_size"),
    (dict(eigenvalues=[1.0], batch_size=1.5), "batch_size"),
    (dict(eigenvalues=[1.0], noise_std=-0.1), "noise_std"),
    (dict(eigenvalues=[1.0], noise_std=np.inf), "noise_std"),
    (dict(eigenvalues=[1.0], initial_error=-1.0), "initial_error"),
    (dict(eigenvalues=[1.0, 2.0], initial_error=[1.0, 2.0, 3.0]), "initial_error"),
])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        hdsgd.StreamingLeastSquares(**kwargs)


def test_bad_call_arguments():
    setup = _setup(20)
    with pytest.raises(ValueError, match="method"):
        hdsgd.predict(setup, 1.0, method="magic")
    with pytest.raises(ValueError, match="horizon"):
        hdsgd.predict(setup, -1.0)
    with pytest.raises(ValueError, match="horizon"):
        hdsgd.simulate(setup, float("nan"), key=jax.random.key(0))
    with pytest.raises(ValueError, match="seeds"):
        hdsgd.simulate(setup, 1.0, key=jax.random.key(0), seeds=0)
    with pytest.raises(ValueError, match="times"):
        hdsgd.predict(setup, 1.0, times=[0.5, 0.2])
    with pytest.raises(ValueError, match="unknown option"):
        hdsgd.predict(setup, 1.0, tolerance=3)


def test_tune_step_size_from_predictions_and_verify():
    setup = hdsgd.StreamingLeastSquares(spectra.power_law(200, 0.8), initial_error=1.0,
                                        noise_std=0.05, step_size=1.0, batch_size=2)
    target = setup.initial_risk / 10
    tuned = hdsgd.tune(setup, {"step_size": hdsgd.LogRange(1.0, 60.0, 8)},
                       hdsgd.samples_to_target(target, "risk"), horizon=60.0)
    grid_scores = [row["score"] for row in tuned.table if "refined" not in row]
    assert tuned.objective_value <= min(grid_scores)
    assert np.isfinite(tuned.objective_value)
    assert tuned.setup.step_size < hdsgd.lstsq.critical_step_size(tuned.setup)
    check = tuned.verify(jax.random.key(2), seeds=16, progress=False)
    assert abs(check.objective_value / tuned.objective_value - 1) < 0.1


@pytest.mark.slow
def test_large_dimension_agreement_and_one_over_d_to_16000():
    setup = _setup(2000, batch_size=2, step_size=2.5)
    th = hdsgd.predict(setup, 5.0)
    mc = hdsgd.simulate(setup, 5.0, key=jax.random.key(7), seeds=64, progress=False)
    assert hdsgd.compare(th, mc, "risk").ok(sem_tol=4.5)
    gaps = []
    for d in (1000, 4000, 16000):
        s = _setup(d, step_size=1.2)
        times = np.linspace(0, 3.0, 31)
        rec = hdsgd.predict(s, 3.0, times=times)
        gaps.append(_max_rel_gap(hdsgd.predict(s, 3.0, times=times, method="ode", exact_steps=0), rec))
    ratios = np.array(gaps[:-1]) / np.array(gaps[1:])
    assert np.all((ratios > 3.5) & (ratios < 4.5)), (gaps, ratios)


def test_vmapped_grid_equals_one_prediction_per_point():
    from hdsgd import predict_grid
    setup = _setup(60, noise_std=0.2)
    grid = {"step_size": np.array([0.5, 1.0, 2.0, 500.0]), "batch_size": np.array([1, 2, 4, 1])}
    curves = predict_grid(setup, grid, 3.0)
    for g, curve in enumerate(curves):
        import dataclasses
        one = hdsgd.predict(dataclasses.replace(setup, step_size=float(grid["step_size"][g]),
                                                batch_size=int(grid["batch_size"][g])), 3.0)
        np.testing.assert_allclose(curve["risk"], one["risk"], rtol=1e-12)
        np.testing.assert_array_equal(curve.diverged, one.diverged)
    assert curves[-1].any_diverged and not curves[0].any_diverged
    bad = predict_grid(setup, {"step_size": np.array([-1.0, 1.0])}, 1.0)
    assert bad[0] is None and bad[1] is not None


def test_repeated_calls_compile_nothing(count_compiles):
    setup = _setup(64, noise_std=0.2)
    for method in ("spectral", "recursion", "ode", "volterra"):
        hdsgd.predict(setup, 2.0, method=method)
    hdsgd.simulate(setup, 2.0, key=jax.random.key(0), seeds=3, progress=False)
    hdsgd.simulate(setup, 2.0, key=jax.random.key(0), seeds=3, progress=False, method="projected")
    with count_compiles() as compiles:
        for method in ("spectral", "recursion", "ode", "volterra"):
            hdsgd.predict(setup, 2.0, method=method)
        hdsgd.simulate(setup, 2.0, key=jax.random.key(1), seeds=3, progress=False)
        hdsgd.simulate(setup, 2.0, key=jax.random.key(1), seeds=3, progress=False,
                       method="projected")
        # a different step size and noise level are traced numbers: still nothing to compile
        hdsgd.predict(setup.replace(step_size=0.7, noise_std=0.1), 2.0)
        hdsgd.predict(setup.replace(step_size=0.7, noise_std=0.1), 2.0, method="spectral")
        hdsgd.simulate(setup.replace(step_size=0.7), 2.0, key=jax.random.key(2), seeds=3,
                       progress=False)
    assert compiles() == 0
