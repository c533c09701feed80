"""Streaming least squares: the closed-form (spectral) solution against the exact recursion, its
derivatives, and the d -> infinity equivalents' own error reports on a stiff spectrum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd import lstsq as theory
from hdsgd import spectra
from hdsgd.odes import lstsq as odes_lstsq

D = 200  # one size (one compilation) for the spectra below


def _spectrum(name):
    rng = np.random.default_rng(1)
    return {
        "ramp": spectra.ramp(D, 0.25, 1.75),
        "power_law": spectra.power_law(D, 1.0),
        "isotropic": spectra.isotropic(D),
        # three distinct eigenvalues, each repeated: grouped, not left to the root finder
        "repeated": np.repeat([1.5, 0.6, 0.1], [40, 100, 60]),
        # pairs equal to one rounding error (4 eps apart at most) and clusters 1e-12 apart
        "near_equal": np.sort(np.concatenate([
            np.repeat(rng.uniform(0.2, 2.0, 50), 2) * (1 + np.tile([0.0, 2e-16], 50)),
            np.repeat(rng.uniform(0.2, 2.0, 25), 4) * (1 + np.tile([0, 1e-12, 2e-12, 3e-12], 25)),
        ]))[::-1],
    }[name]


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a / b - 1.0)))


def _compare(setup, n_steps, method="spectral"):
    times = np.arange(n_steps + 1) / setup.dim
    rec = hdsgd.predict(setup, times[-1], times=times, method="recursion")
    spec = hdsgd.predict(setup, times[-1], times=times, method=method)
    return spec, rec


@pytest.mark.parametrize("name", ["ramp", "power_law", "isotropic", "repeated", "near_equal"])
@pytest.mark.parametrize("batch_size, noise_std", [(1, 0.3), (7, 0.0)])
def test_spectral_equals_recursion_at_every_step(name, batch_size, noise_std):
    lam = _spectrum(name)
    rho0 = np.random.default_rng(2).uniform(0.0, 2.0 / lam.size, lam.size)
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=rho0, noise_std=noise_std,
                                        step_size=1.0, batch_size=batch_size)
    setup = setup.replace(step_size=0.5 * theory.critical_step_size(setup))
    spec, rec = _compare(setup, 20_000)
    # (the check first: past it predict falls back to the recursion, which then matches)
    assert spec.meta["spectral_check_error"] <= 1e-12, \
        f"the closed form is {spec.meta['spectral_check_error']:.3g} (relative) off the recursion"
    assert spec.meta["method"] == "spectral" and "spectral_fallback" not in spec.meta
    assert _rel(spec["risk"], rec["risk"]) <= 1e-8
    # The decay spans many orders of magnitude without noise: relative accuracy, not absolute.
    if noise_std == 0.0 and name != "power_law":
        assert rec["risk"][-1] < 1e-12 * rec["risk"][0]


@pytest.mark.parametrize("fraction", [0.999, 1.0 - 1e-6])
def test_spectral_at_the_stability_edge(fraction):
    lam = spectra.ramp(D, 0.25, 1.75)
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.3, step_size=1.0,
                                        batch_size=2)
    setup = setup.replace(step_size=fraction * theory.critical_step_size(setup))
    spec, rec = _compare(setup, 20_000)
    assert _rel(spec["risk"], rec["risk"]) <= 1e-8
    assert 0 < 1.0 - spec.meta["asymptotic_factor"] < 1e-4
    assert not spec.any_diverged


def test_top_root_crosses_one_at_the_critical_step_size():
    lam = spectra.power_law(D, 1.0)
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.1, step_size=1.0,
                                        batch_size=3)
    gamma_c = theory.critical_step_size(setup)
    factor = {}
    for fraction in (1 - 1e-7, 1.0, 1 + 1e-7):
        curve = hdsgd.predict(setup.replace(step_size=fraction * gamma_c), 100.0, method="spectral")
        factor[fraction] = curve.meta["asymptotic_factor"]
        assert curve.any_diverged == (fraction >= 1.0)
    assert factor[1 - 1e-7] < 1.0 < factor[1 + 1e-7]
    assert abs(factor[1.0] - 1.0) < 1e-12
    # Beyond the edge the closed form still equals the recursion (it grows), and is flagged.
    bad = setup.replace(step_size=1.05 * gamma_c)
    assert hdsgd.predict(bad, 50.0, method="spectral").meta["warning"]


@pytest.mark.slow
def test_spectral_at_a_million_steps_and_long_decay():
    # 10^6 steps against the float64 recursion: roots within ~1e-6 of 1, noise floor and a
    # noiseless power-law decay (no floor to hide behind).
    lam = spectra.power_law(50, 4.0)  # lambda_min = 1.6e-7: the slowest root is 1 - 1e-7
    steps = np.unique(np.round(np.geomspace(1, 1e6, 60)).astype(int))
    for noise in (0.2, 0.0):
        setup = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=noise,
                                            step_size=20.0, batch_size=1)
        spec = hdsgd.predict(setup, 2e4, times=steps / 50, method="spectral")
        rec = hdsgd.predict(setup, 2e4, times=steps / 50, method="recursion")
        assert _rel(spec["risk"], rec["risk"]) <= 1e-8
    assert rec["risk"][-1] < 1e-3 * rec["risk"][0]


def test_fast_sums_match_the_recursion():
    # Above 4096 poles the far field is summed by the sum-of-exponentials scheme.
    lam = spectra.power_law(4200, 2.0)
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=lam**0.3, noise_std=0.01,
                                        step_size=0.5 * 4200 / lam.sum(), batch_size=1)
    steps = np.unique(np.concatenate([np.arange(30), np.geomspace(30, 5000, 30).astype(int)]))
    spec = hdsgd.predict(setup, 5000 / 4200, times=steps / 4200, method="spectral")
    rec = hdsgd.predict(setup, 5000 / 4200, times=steps / 4200, method="recursion")
    assert spec.meta["spectral_sums"] == "fast"
    assert _rel(spec["risk"], rec["risk"]) <= 1e-8


@pytest.mark.parametrize("batch_size, momentum, fraction", [(1, 0.6, 0.5), (2, 0.7, 0.999),
                                                          pytest.param(8, 0.9, 0.5, marks=pytest.mark.slow),
                                                          pytest.param(1, 0.95, 0.3, marks=pytest.mark.slow)])
def test_heavy_ball_spectral_equals_moment_recursion(batch_size, momentum, fraction):
    for name in ("ramp", "power_law", "repeated"):
        lam = _spectrum(name)
        setup = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.2, step_size=1.0,
                                            batch_size=batch_size, momentum=momentum)
        setup = setup.replace(step_size=fraction * theory.critical_step_size(setup))
        spec, rec = _compare(setup, 20_000)
        check = spec.meta.get("spectral_check_error", 0.0)
        assert "spectral_fallback" not in spec.meta, \
            f"{name}: the closed form is {check:.3g} (relative) off the recursion"
        assert spec.meta["exact_steps"] < 20_000
        assert _rel(spec["risk"], rec["risk"]) <= 1e-8, name


@pytest.mark.slow
def test_heavy_ball_large_batch_and_beyond_the_edge():
    # The accelerated pair at a large batch: most modes underdamped (the background), few
    # secular poles; then past the edge, flagged.
    lam = np.linspace(1.0, 0.04, D)
    gamma, beta = theory.accelerated_hyperparameters(lam)
    batch = int(np.ceil(4 * theory.accelerated_critical_batch_size(lam)))
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=1.0, noise_std=0.0, step_size=gamma,
                                        batch_size=batch, momentum=beta)
    spec, rec = _compare(setup, 1000)
    assert spec.meta["spectral_secular_poles"] < 0.2 * D
    assert _rel(spec["risk"][:400], rec["risk"][:400]) <= 1e-8
    over = setup.replace(batch_size=batch // 16)
    assert hdsgd.predict(over, 30.0, method="spectral").any_diverged


def _gradients(beta, gamma, reverse):
    """d(risk)/d(step_size) and d(risk)/d(batch_size) (a float) of the closed form, through the
    implicit function theorem at the roots, against central differences and against autodiff of
    the step-by-step recursion (and reverse mode against forward mode)."""
    steps = np.array([1, 5, 50, 500, 2000])
    with jax.enable_x64(True):
        lam = jnp.asarray(spectra.power_law(40, 1.0))
        rho0 = jnp.full(40, 1 / 40)

        def risk(g, b):
            return odes_lstsq.spectral_risk(lam, rho0, 0.04, g, b, beta, jnp.asarray(steps))

        def exact(g, b):
            if beta == 0.0:
                psi = odes_lstsq.recursion_psi(lam, rho0, 0.04, g, b, 2000)
            else:
                psi = odes_lstsq.momentum_recursion_psi(lam, rho0, 0.04, g, b, beta, 2000)
            return 0.5 * psi[steps]

        fwd = np.asarray(jax.jit(jax.jacfwd(risk, argnums=(0, 1)))(gamma, 2.0))
        auto = np.asarray(jax.jit(jax.jacfwd(exact, argnums=(0, 1)))(gamma, 2.0))
        value = jax.jit(risk)
        h = 1e-6
        fd = np.stack([(value(gamma * (1 + h), 2.0) - value(gamma * (1 - h), 2.0)) / (2 * h * gamma),
                       (value(gamma, 2.0 * (1 + h)) - value(gamma, 2.0 * (1 - h))) / (4 * h)])
        if reverse:
            rev = jax.jit(jax.grad(lambda g, b: jnp.sum(risk(g, b)), argnums=(0, 1)))(gamma, 2.0)
            np.testing.assert_allclose(np.asarray(rev), fwd.sum(axis=1), rtol=1e-8)
    assert fwd.dtype == np.float64
    np.testing.assert_allclose(fwd, auto, rtol=1e-7, atol=1e-15)
    np.testing.assert_allclose(fwd, fd, rtol=1e-5, atol=1e-12)
    assert np.all(np.abs(fwd) > 1e-7)  # not vacuous: the risk moves with both


def test_spectral_risk_gradients_match_finite_differences_and_autodiff():
    _gradients(0.0, 1.5, reverse=True)


@pytest.mark.slow
def test_heavy_ball_spectral_risk_gradients():
    _gradients(0.7, 0.5, reverse=True)


def _stiff(d=D, n_steps=100_000, noise_std=0.0):
    """Eigenvalues j^-3, target coefficients j^-0.7, per-step rate 0.5 / tr H (stiff: the top
    mode moves 0.42 per step, the slowest 5e-8)."""
    j = np.arange(1, d + 1)
    lam = j**-3.0
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=j**-1.4, noise_std=noise_std,
                                        step_size=0.5 * d / lam.sum(), batch_size=1)
    steps = np.unique(np.concatenate([np.arange(0, 30), np.geomspace(30, n_steps, 50).astype(int)]))
    return setup, steps / d


def test_ode_and_volterra_report_their_error_on_a_stiff_spectrum():
    setup, times = _stiff()
    exact = hdsgd.predict(setup, times[-1], times=times, method="spectral")
    for method in ("ode", "volterra"):
        curve = hdsgd.predict(setup, times[-1], times=times, method=method)
        true_gap = _rel(curve["risk"], exact["risk"])
        # The reported gap is the truth, and past the default tolerance it is a warning: the
        # homogenized equations drop the O(eta lambda) terms, large for the top modes here.
        assert curve.meta["gap_to_exact"] == pytest.approx(true_gap, rel=1e-6)
        assert true_gap > 0.01 and "warning" in curve.meta and method in curve.meta["warning"]
        # ... and stays a homogenization error (here O(1): eta lambda_1 = 0.42), not a failure of
        # the solver (the uniform-grid Volterra solver this replaced was off by factors ~300).
        assert true_gap < 1.0
        quiet = hdsgd.predict(setup, times[-1], times=times, method=method, tolerance=1.0)
        assert "warning" not in quiet.meta
    # The ODE's own error: against the closed-form solution of the same continuous equation
    # (Volterra, from the same start), the step-doubling estimate is the right size.
    vol = hdsgd.predict(setup, times[-1], times=times, method="volterra")
    for n_grid, bad in ((2048, False), (16, True)):
        ode = hdsgd.predict(setup, times[-1], times=times, method="ode", exact_steps=0,
                            n_grid=n_grid, tolerance=1e-4)
        truth = _rel(ode["risk"][1:], vol["risk"][1:])
        estimate = ode.meta["error_estimate"]
        assert truth / 2 <= estimate <= 2 * truth, (n_grid, truth, estimate)
        assert (truth > 1e-4) == bad
        assert ("raise n_grid" in ode.meta["warning"]) == bad
    assert vol.meta["error_estimate"] < 1e-12


def test_default_method_is_the_cheaper_exact_one():
    setup, _ = _stiff()
    assert odes_lstsq.default_method(setup, 100) == "recursion"
    assert odes_lstsq.default_method(setup, 10**6) == "spectral"
    assert hdsgd.predict(setup, 10**6 / D).meta["method"] == "spectral"
    heavy = setup.replace(momentum=0.9)
    assert odes_lstsq.default_method(heavy, 10**4) == "recursion"
    assert odes_lstsq.default_method(heavy, 10**7) == "spectral"


@pytest.mark.slow
def test_spectral_at_a_million_modes():
    j = np.arange(1, 10**6 + 1)
    lam = j**-2.0
    setup = hdsgd.StreamingLeastSquares(lam, initial_error=j**-1.4, noise_std=0.0,
                                        step_size=0.5 * lam.size / lam.sum(), batch_size=1)
    steps = np.unique(np.round(np.geomspace(1, 10**6, 200)).astype(int))
    curve = hdsgd.predict(setup, 1.0, times=steps / lam.size, method="spectral")
    rec = hdsgd.predict(setup, 2000 / lam.size, times=steps[steps <= 2000] / lam.size,
                        method="recursion")
    assert _rel(curve["risk"][steps <= 2000], rec["risk"]) <= 1e-8
    assert np.all(np.diff(curve["risk"]) < 0)
