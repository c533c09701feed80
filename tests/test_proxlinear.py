"""Prox-linear rank-one sensing: the one-step map against Monte Carlo, the ODE, the
quadrature, floor and rate, stability, tuning through `hdsgd.tune`, input validation, the
command line and compile-once (docs/proxlinear.md)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd import compare, predict, simulate
from hdsgd import proxlinear as P
from hdsgd.proxlinear import ProxLinearSensing

START = (0.7, 0.6, 0.8, 0.5)  # docs/proxlinear.md, "Reference values": E_0^2 = 0.6365
# m = d1 + d2 and m > d1 + d2 at eta = 1e8 (the kernel and the primal solve); the tests share
# these shapes (and so their compilations)
HUGE_STEP_KERNEL = ProxLinearSensing(dim_left=10, dim_right=10, batch_size=20, step_size=1e8,
                                     noise_std=0.5, initial_state=START)
HUGE_STEP_PRIMAL = HUGE_STEP_KERNEL.replace(batch_size=30)
#: the largest gap theory - Monte Carlo mean allowed, in Monte Carlo standard errors
SEM_TOL = 4.5


def _agreement(setup, horizon, seed, seeds=32):
    theory = predict(setup, horizon, method="map")
    mc = simulate(setup, horizon, key=jax.random.key(seed), seeds=seeds, progress=False)
    assert not theory.any_diverged, f"the map diverged: {theory.meta['warning']}"
    assert not mc.any_diverged, mc.meta["warning"]
    return theory, mc, compare(theory, mc)


def _assert_agrees(agreement, sem_tol=SEM_TOL):
    """``agreement.ok(sem_tol=...)``, failing with the worst gap in standard errors first (the
    line `benchmarks/mutants.py` reports)."""
    name, time, gap = agreement.worst
    assert agreement.ok(sem_tol=sem_tol), (
        f"{name} off by {gap:.1f} SE at t = {time:g} (limit {sem_tol})\n{agreement.summary()}")


def _sem_gap(curve, mc, name):
    """max over t > 0 of |curve - MC mean| / SE, for a prediction of another Setup than the
    Monte Carlo's (which `compare` refuses): how far a wrong prediction is from the data."""
    keep = mc.time > 0
    gap = curve.at(mc.time)[name][keep] - mc.mean()[name][keep]
    return float(np.max(np.abs(gap) / mc.sem()[name][keep]))


# ------------------------------------------------------------------ reference values
@pytest.mark.parametrize("fields, checks", [
    (dict(dim_left=1000, dim_right=1000, batch_size=1000, step_size=1.0, noise_std=0.0),
     {5: 0.1274, 10: 1.869e-2, 14: 3.807e-3}),
    (dict(dim_left=1000, dim_right=1000, batch_size=1000, step_size=1.0, noise_std=0.5),
     {5: 0.2441, 12: 0.1449}),
    (dict(dim_left=400, dim_right=1000, batch_size=500, step_size=1.5, noise_std=0.2),
     {4: 0.2416, 10: 6.82e-2}),
])
def test_map_reproduces_reference_values(fields, checks):
    setup = ProxLinearSensing(initial_state=START, **fields)
    assert abs(setup.initial_error_sq - 0.6365) < 1e-4
    curve = predict(setup, max(checks), times=np.array(sorted(checks), float), method="map")
    got = dict(zip(curve.time.astype(int), curve["error_sq"]))
    for t, ref in checks.items():
        assert abs(got[t] - ref) <= 2e-3 * ref, (t, got[t], ref)


def test_map_small_batch_reference_values():
    setup = ProxLinearSensing(dim_left=1000, dim_right=1000, batch_size=20, step_size=0.02,
                              noise_std=0.1, initial_state=START)
    curve = predict(setup, 400, times=np.array([100.0, 200.0, 400.0]), method="map")
    np.testing.assert_allclose(curve["error_sq"], [0.3612, 0.1947, 5.29e-2], rtol=3e-3)


# ------------------------------------------------------------------ map vs Monte Carlo
REGIMES = {
    # m << d, with noise: error from 0.64 down to where the label noise dominates (the
    # noiseless map ends at 0.011, the noisy one at 0.032)
    "small_batch": (dict(dim_left=100, dim_right=100, batch_size=4, step_size=0.04,
                         noise_std=0.2), 300),
    # m = d, noiseless: error over four decades
    "m_eq_d": (dict(dim_left=100, dim_right=100, batch_size=100, step_size=1.0,
                    noise_std=0.0), 25),
    # m > d1 + d2 (primal solve), noisy
    "m_gt_d1_plus_d2": (dict(dim_left=30, dim_right=40, batch_size=150, step_size=2.0,
                             noise_std=0.1), 8),
    # d1 != d2, noisy
    "unequal_dims": (dict(dim_left=50, dim_right=120, batch_size=80, step_size=1.5,
                          noise_std=0.2), 10),
    # a large step at m = d, noisy (E^2 0.64 -> its floor 0.23): kappa is large, so the
    # T1 z^2 + T2 x^2 part of res^2 and the T1-T2 coupling of (F3, F4) move the floor by
    # 20-30 % (dropping either: 9-19 SE)
    "large_step_noisy": (dict(dim_left=100, dim_right=100, batch_size=100, step_size=10.0,
                              noise_std=0.3), 15),
}


@pytest.mark.parametrize("name", list(REGIMES))
def test_map_agrees_with_monte_carlo(name):
    fields, horizon = REGIMES[name]
    setup = ProxLinearSensing(initial_state=START, **fields)
    theory, mc, agreement = _agreement(setup, horizon, seed=1)
    # The standard error scales with the error itself (docs/proxlinear.md, "Measured
    # agreement"), so a bound in standard errors stays tight at every order of magnitude.
    _assert_agrees(agreement)
    e = theory["error_sq"]
    if setup.noise_std == 0.0:
        assert e[-1] < 1e-3 * e[0]  # the check covers several decades
    assert agreement["error_sq"].max_rel_gap < 0.12


def test_monte_carlo_rejects_perturbed_maps():
    """A missing factor 2 in (F1, F2) (delta = m/d) or in the noise variance is caught.
    (Every term of the map is perturbed one at a time by `benchmarks/mutants.py`.)"""
    setup = ProxLinearSensing(dim_left=80, dim_right=80, batch_size=80, step_size=1.0,
                              noise_std=0.3, initial_state=START)
    horizon = 8
    theory, mc, agreement = _agreement(setup, horizon, seed=2)
    _assert_agrees(agreement)
    # delta doubled = the map at half the dimensions; sigma^2 doubled = sigma * sqrt(2)
    for wrong in (setup.replace(dim_left=40, dim_right=40),
                  setup.replace(noise_std=0.3 * np.sqrt(2.0))):
        gap = _sem_gap(predict(wrong, horizon, method="map"), mc, "error_sq")
        assert gap > 8.0, (wrong, gap)


def test_gap_shrinks_with_dimension():
    """theory - MC mean (bias O(1/d) plus fluctuations O(E/sqrt(d))) shrinks with d at fixed
    (delta, eta)."""
    rel = []
    for d in (16, 128):
        setup = ProxLinearSensing(dim_left=d, dim_right=d, batch_size=d, step_size=1.0,
                                  noise_std=0.1, initial_state=START)
        theory = predict(setup, 4, method="map")
        mc = simulate(setup, 4, key=jax.random.key(3), seeds=48, progress=False)
        a = compare(theory, mc, "error_sq")
        _assert_agrees(a)
        rel.append(a["error_sq"].max_rel_gap)
    assert rel[1] < 0.5 * rel[0], rel


def test_delta_convention_at_small_dimension():
    """delta_j = m/d_j, not m/(d_j - 2) (docs/proxlinear.md, "Where a reference derivation
    differs"): at d = m = 16, 1024 seeds, the first three steps of E^2 agree with m/d and miss
    m/(d - 2) by about 15 standard errors. Only E^2: the Monte Carlo mean of the norms beta_j
    sits below the limit by Jensen's inequality, O(1/d) (+1.5 % at d = 16, measured)."""
    setup = ProxLinearSensing(dim_left=16, dim_right=16, batch_size=16, step_size=1.0,
                              noise_std=0.1, initial_state=START)
    times = np.arange(4.0)
    theory = predict(setup, 3, times=times, method="map")
    mc = simulate(setup, 3, times=times, key=jax.random.key(21), seeds=1024, progress=False)
    _assert_agrees(compare(theory, mc, "error_sq"))
    # the map with delta = m/(d - 2): the same as m/d at the dimensions d - 2
    bulk = predict(setup.replace(dim_left=14, dim_right=14), 3, times=times, method="map")
    assert _sem_gap(bulk, mc, "error_sq") > 8.0


# ------------------------------------------------------------------ ODE and quadrature
def test_ode_agrees_with_monte_carlo_small_batch_noisy():
    """The small-batch ODE against the Monte Carlo where its noise terms show
    (docs/proxlinear.md, "The small-batch ODE"): m = 2 << d1 = 200 != d2 = 400, eta_bar = 1,
    sigma = 0.4, over 16 d samples, E^2 from 0.64 down to the floor ~0.09 that the label noise
    sets. Compared every 0.4 d samples (the ODE's time scale), 48 seeds. m = 2 and d1 != d2 so
    that a lost 1/m or a d1 <-> d2 swap changes the prediction."""
    setup = ProxLinearSensing(dim_left=200, dim_right=400, batch_size=2, noise_std=0.4,
                              initial_state=START).replace(eta_bar=1.0)
    horizon = 2263  # 16 d samples, d = sqrt(d1 d2)
    times = np.linspace(0.0, horizon, 41).round()
    theory = predict(setup, horizon, times=times, method="ode")
    assert theory.meta["solver_ok"] and not theory.any_diverged, theory.meta["warning"]
    mc = simulate(setup, horizon, times=times, key=jax.random.key(1), seeds=48, progress=False)
    _assert_agrees(compare(theory, mc))
    # the label noise is visible: the noiseless ODE ends far below the data
    quiet = predict(setup.replace(noise_std=0.0), horizon, times=times, method="ode")
    assert quiet["error_sq"][-1] < 0.05 * theory["error_sq"][-1]
    assert _sem_gap(quiet, mc, "error_sq") > 50.0


def test_small_batch_map_matches_ode():
    setup = ProxLinearSensing(dim_left=200, dim_right=200, batch_size=1, step_size=1 / 200,
                              noise_std=0.1, initial_state=START)
    times = np.array([300.0, 600.0, 1200.0])  # up to 6 d samples
    m = predict(setup, 1200, times=times, method="map")
    o = predict(setup, 1200, times=times, method="ode")
    assert o.meta["solver_ok"] and not o.any_diverged
    assert m["error_sq"][-1] < 0.2 * setup.initial_error_sq
    np.testing.assert_allclose(o["error_sq"], m["error_sq"], rtol=3e-3)
    np.testing.assert_allclose(o["alpha_left"], m["alpha_left"], rtol=3e-3)
    assert predict(setup, 10).meta["method"] == "ode"  # m <= d/100 picks the ODE
    assert P.default_method(setup) == "ode"
    # linear scaling: at fixed eta_bar, error vs samples does not depend on m
    double = setup.replace(batch_size=2, eta_bar=setup.eta_bar)
    assert double.step_size == pytest.approx(2 / 200)
    o2 = predict(double, 600, times=times / 2, method="ode")
    np.testing.assert_allclose(o2.samples, o.samples)
    np.testing.assert_allclose(o2["error_sq"], o["error_sq"], rtol=1e-6)


def test_polar_rule_accurate_where_gauss_hermite_fails():
    """E[W^2 z^2] with W = 1/(1 + kappa (x^2 + z^2)), kappa = 1e3 (eta/delta ~ 1e3): the noise
    term of (F3). Polar rule vs a 4e6-sample estimate vs 40x40 Gauss-Hermite."""
    kappa = 1e3

    def f(g1, g2):
        W = 1.0 / (1.0 + kappa * (g1**2 + g2**2))
        return W**2 * g2**2

    polar = np.sum(P.polar_rule()[2] * f(*P.polar_rule()[:2]))
    gh = np.sum(P.gauss_hermite_rule(40)[2] * f(*P.gauss_hermite_rule(40)[:2]))
    rng = np.random.default_rng(0)
    g = rng.standard_normal((2, 4_000_000))
    vals = f(g[0], g[1])
    mc, sem = vals.mean(), vals.std() / np.sqrt(vals.size)
    assert abs(polar - mc) < 4 * sem
    assert abs(gh - mc) > 20 * sem


def test_map_quadrature_converged_at_large_eta_over_delta():
    """At eta/delta = 400 the map is unchanged by refining the polar rule, unlike with GH."""
    setup = ProxLinearSensing(dim_left=1000, dim_right=1000, batch_size=50, step_size=20.0,
                              noise_std=0.2, initial_state=START)
    base = predict(setup, 4, method="map")["error_sq"]
    fine = predict(setup, 4, method="map",
                   rule=P.polar_rule(n_radial=400, n_angles=96, u_min=-30.0))["error_sq"]
    gh = predict(setup, 4, method="map", rule=P.gauss_hermite_rule(40))["error_sq"]
    np.testing.assert_allclose(base, fine, rtol=1e-6)
    assert np.max(np.abs(gh - fine) / fine) > 1e-2


# ------------------------------------------------------------------ floor and rate
def test_rate_and_floor_match_small_batch_table():
    """docs/proxlinear.md, "Floor and rate" (eta_bar = 1: rho = 0.365 per d samples,
    E_inf^2 / sigma^2 = 0.526)."""
    setup = ProxLinearSensing(dim_left=1000, dim_right=1000, batch_size=5, step_size=0.005,
                              noise_std=0.1, initial_state=(1.0, 0.05, 1.0, 0.05))
    assert abs(P.local_rate(setup) * 1000 / 5 - 0.365) < 2e-3
    assert abs(P.noise_floor(setup, burn_in=200) / 0.01 - 0.526) < 3e-3


def test_floor_is_the_limit_of_the_trajectory():
    setup = ProxLinearSensing(dim_left=200, dim_right=200, batch_size=200, step_size=1.0,
                              noise_std=0.2, initial_state=START)
    floor = P.noise_floor(setup)
    assert isinstance(floor, float)
    curve = predict(setup, 60, method="map")
    assert abs(curve["error_sq"][-1] - floor) < 1e-6 * floor
    rate = P.local_rate(setup)
    assert isinstance(rate, float) and 0.0 < rate < np.inf
    noiseless = setup.replace(noise_std=0.0)
    assert P.noise_floor(noiseless) == 0.0
    # after 40 steps (E^2 ~ 1e-7) the map's E^2 decays per step by the local rate, to 1e-5: the
    # slowest mode is the betas' (q_par^2 < q_perp in every setting measured)
    e = predict(noiseless, 40, times=np.arange(41.0), method="map")["error_sq"]
    decay = -np.log(e[-1] / e[-2])
    assert abs(decay - rate) < 1e-3 * rate, f"E^2 decays by {decay:.5f} per step, rate {rate:.5f}"


# ------------------------------------------------------------------ stability
@pytest.mark.parametrize("dims, batch_size", [((100, 100), 20), ((100, 100), 100),
                                              ((100, 100), 250), ((40, 160), 60)])
def test_no_stability_edge_in_the_step_size(dims, batch_size):
    """docs/proxlinear.md, "Stability": the local rate at the truth is positive and grows with
    eta up to eta = 1e8 (the undamped Gauss-Newton step), so there is no critical step size;
    the map stays finite at eta = 1e8 (where it may converge to a spurious fixed point, but
    does not blow up)."""
    rates = [P.local_rate(ProxLinearSensing(dim_left=dims[0], dim_right=dims[1],
                                            batch_size=batch_size, step_size=eta))
             for eta in (0.1, 1.0, 10.0, 1e3, 1e8)]
    assert np.all(np.array(rates) > 0) and np.all(np.diff(rates) > -1e-9), rates
    huge = ProxLinearSensing(dim_left=dims[0], dim_right=dims[1], batch_size=batch_size,
                             step_size=1e8, noise_std=0.1, initial_state=START)
    curve = predict(huge, 40, method="map")
    assert not curve.any_diverged and "warning" not in curve.meta
    assert np.all(np.isfinite(curve["error_sq"])) and curve["error_sq"][-1] < 1e3


def test_float32_blow_up_at_huge_step_is_round_off():
    """m > d1 + d2 at eta = 1e8: the float32 Monte Carlo blows up (round-off along the null
    direction (mu, -nu) of J^T J, amplified by eta/m), the float64 one does not."""
    f32 = simulate(HUGE_STEP_PRIMAL, 30, key=jax.random.key(0), seeds=8, progress=False)
    f64 = simulate(HUGE_STEP_PRIMAL, 30, key=jax.random.key(0), seeds=8, progress=False,
                   dtype=jnp.float64)
    assert f32.meta["method"] == "primal"
    assert f32.diverged[:, -1].all() and "float64" in f32.meta["warning"]
    assert not f64.any_diverged and "warning" not in f64.meta


def _check_diverged(curve, reason):
    """inf from the first diverged point on, a finite start, a warning saying why."""
    div = curve.diverged_mask
    assert div.any() and not div[..., 0].any()
    first = np.argmax(div, axis=-1)
    for row, (d, f) in enumerate(zip(np.atleast_2d(div), np.atleast_1d(first))):
        if d.any():
            assert d[f:].all()
            for name in curve.names:
                values = np.atleast_2d(curve[name])[row]
                assert np.all(np.isinf(values[f:])) and np.all(np.isfinite(values[:f]))
    assert not any(np.isnan(curve[n]).any() for n in curve.names)
    assert reason in curve.meta["warning"], curve.meta["warning"]


def test_grid_rows_are_what_the_built_curves_hold():
    """The map's grid comes back stacked: each row read without a Curve (what `tune` scores)
    equals the Curve built from it, divergence included, at a stable point, one past the
    blow-up bound (the interpolation peak m = d1 + d2 at eta = 1e8), one whose map fails (a
    quadrature with a NaN weight), and a setting that fails validation."""
    grid = {"step_size": np.array([1.0, 1e8, -1.0]), "noise_std": np.array([0.5, 0.5, 0.1])}
    g1, g2, w = P.polar_rule()
    w = w.copy()
    w[5] = np.nan
    for rule, broken in ((None, (1,)), ((g1, g2, w), (0, 1))):
        curves = hdsgd.predict_grid(HUGE_STEP_KERNEL, grid, 10, rule=rule)
        assert curves[2] is None and curves.values(2, "error_sq") is None
        names = ("error_sq", "alpha_left", "beta_left", "alpha_right", "beta_right")
        rows = {name: [curves.values(g, name) for g in (0, 1)] for name in names}
        assert "0 built" in repr(curves)
        for g in (0, 1):
            c = curves[g]
            assert c.any_diverged == (g in broken)
            np.testing.assert_array_equal(rows["error_sq"][g].samples, c.samples)
            for name in names:
                np.testing.assert_array_equal(rows[name][g].values,
                                              np.where(c.diverged_mask, np.inf, c[name]))
            one = predict(HUGE_STEP_KERNEL.replace(step_size=grid["step_size"][g],
                                                   noise_std=grid["noise_std"][g]), 10,
                          method="map", rule=rule if rule is not None
                          else P.polar_rule(**P.GRID_RULE))
            np.testing.assert_array_equal(c.diverged, one.diverged)
            np.testing.assert_allclose(c["error_sq"], one["error_sq"], rtol=1e-10)
        assert ("the map failed" in curves[0].meta.get("warning", "")) == (rule is not None)


def test_failures_of_the_map_are_flagged_for_every_method():
    # map: at m = d1 + d2 with eta = 1e8 the noise is amplified past the blow-up bound
    # (the interpolation peak), at step 1
    peak = HUGE_STEP_KERNEL
    curve = predict(peak, 10, method="map")
    _check_diverged(curve, "blow-up bound")
    assert curve.diverged[1]
    # the same through the vmapped grid
    grid = hdsgd.predict_grid(peak, {"step_size": np.array([1.0, 1e8])}, 10)
    assert not grid[0].any_diverged
    _check_diverged(grid[1], "blow-up bound")
    # a failed step of the map (here: a quadrature with a NaN weight, so the (F1, F2) solve
    # cannot converge) is flagged from that step, with the reason
    g1, g2, w = P.polar_rule()
    w = w.copy()
    w[5] = np.nan
    setup = ProxLinearSensing(dim_left=50, dim_right=50, batch_size=50, initial_state=START)
    _check_diverged(predict(setup, 5, method="map", rule=(g1, g2, w)),
                    "the map failed at step 1: the (kappa1, kappa2) solve")
    # ode: a huge noise drives E^2 past the bound; the solve stops at its event
    loud = ProxLinearSensing(dim_left=1000, dim_right=1000, batch_size=1, step_size=1.0,
                             noise_std=1e4, initial_state=START)
    ode = predict(loud, 100, method="ode")
    _check_diverged(ode, "small-batch ODE passed the blow-up bound")
    assert not ode.meta["solver_ok"]


@pytest.mark.parametrize("setup, method", [(HUGE_STEP_KERNEL, "kernel"),
                                           (HUGE_STEP_PRIMAL, "primal")])
def test_monte_carlo_divergence_is_flagged_not_nan(setup, method):
    # m >= d1 + d2 with a huge step: the float32 iterates blow up
    mc = simulate(setup, 10, key=jax.random.key(0), seeds=2 if method == "kernel" else 8,
                  progress=False, method=method)
    assert mc.meta["method"] == method
    assert mc.diverged.any() and not np.any(np.isnan(mc["error_sq"]))
    assert np.all(np.isinf(mc["error_sq"][mc.diverged]))
    _check_diverged(mc, "Monte Carlo runs diverged")


# ------------------------------------------------------------------ validation and API
@pytest.mark.parametrize("field, value", [
    ("dim_left", 2), ("dim_right", 1.5), ("batch_size", 0), ("step_size", 0.0),
    ("step_size", float("inf")), ("noise_std", -0.1), ("initial_state", (1.0, -0.1, 1.0, 0.0)),
    ("initial_state", (0.0, 0.0, 1.0, 0.0)), ("initial_state", (1.0, 0.0, 1.0)),
])
def test_bad_input_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ProxLinearSensing(**{field: value})
    setup = ProxLinearSensing()
    with pytest.raises(ValueError, match=field):
        setup.replace(**{field: value})


def test_eta_bar_is_a_coordinate():
    setup = ProxLinearSensing(dim_left=100, dim_right=400, batch_size=10, step_size=0.05)
    assert setup.eta_bar == pytest.approx(0.05 * 200 / 10)
    moved = setup.replace(batch_size=40, eta_bar=2.0)  # the fields first, then eta_bar
    assert moved.batch_size == 40 and moved.step_size == pytest.approx(2.0 * 40 / 200)
    with pytest.raises(ValueError, match="eta_bar"):
        setup.replace(eta_bar=-1.0)


def test_api_errors_and_curve_contract():
    setup = ProxLinearSensing(dim_left=20, dim_right=20, batch_size=10, step_size=1.0)
    with pytest.raises(ValueError, match="method"):
        predict(setup, 5, method="exact")
    with pytest.raises(ValueError, match="unknown option"):
        predict(setup, 5, tolerance=1.0)
    with pytest.raises(ValueError, match="rtol"):
        predict(setup, 5, method="map", rtol=1e-9)
    with pytest.raises(ValueError, match="horizon"):
        predict(setup, -1)
    with pytest.raises(ValueError, match="method"):
        simulate(setup, 5, key=jax.random.key(0), method="dual")
    with pytest.raises(ValueError, match="unknown option"):
        simulate(setup, 5, key=jax.random.key(0), form="kernel")
    c = predict(setup, 5)
    assert c.time_unit == "step" and c.meta["method"] == "map"
    np.testing.assert_array_equal(c.samples, 10 * c.time)
    assert set(c.names) == {"error_sq", "alpha_left", "beta_left", "alpha_right", "beta_right"}
    mc = simulate(setup, 5, key=jax.random.key(0), seeds=2, progress=False)
    assert mc["error_sq"].shape == (2, len(mc.time)) and mc["error_sq"].dtype == np.float64
    assert mc.meta["dtype"] == "float32" and mc.meta["method"] == "kernel"
    assert P.PREDICT_METHODS == ("auto", "map", "ode")
    assert P.SIMULATE_METHODS == ("auto", "kernel", "primal")


def test_random_start_hits_the_requested_error():
    setup = ProxLinearSensing.random_start(initial_error_sq=0.3, key=jax.random.key(5),
                                           dim_left=50, dim_right=70, batch_size=10)
    assert abs(setup.initial_error_sq - 0.3) < 1e-10
    assert setup.initial_state[1] > 0 and setup.initial_state[3] > 0


@pytest.mark.slow
def test_kernel_and_primal_methods_agree():
    setup = ProxLinearSensing(dim_left=15, dim_right=20, batch_size=30, step_size=1.0,
                              noise_std=0.1, initial_state=START)
    k = simulate(setup, 2, key=jax.random.key(4), seeds=2, method="kernel", dtype=jnp.float64)
    p = simulate(setup, 2, key=jax.random.key(4), seeds=2, method="primal", dtype=jnp.float64)
    np.testing.assert_allclose(k["error_sq"], p["error_sq"], rtol=1e-8)
    again = simulate(setup, 2, key=jax.random.key(4), seeds=2, method="primal", dtype=jnp.float64)
    np.testing.assert_array_equal(p["error_sq"], again["error_sq"])  # same key, same numbers


def test_repeated_calls_compile_nothing(count_compiles):
    kernel = ProxLinearSensing(dim_left=20, dim_right=20, batch_size=10, step_size=1.0,
                               noise_std=0.1, initial_state=START)
    primal = HUGE_STEP_PRIMAL.replace(step_size=1.0, noise_std=0.1)
    small = ProxLinearSensing(dim_left=200, dim_right=200, batch_size=1, step_size=1 / 200,
                              noise_std=0.1, initial_state=START)

    def run(key, **change):
        predict(kernel.replace(**change), 12, method="map")
        predict(small.replace(**change), 40, method="ode")
        hdsgd.predict_grid(kernel.replace(**change), {"step_size": np.array([0.5, 1.0, 2.0])}, 12)
        simulate(kernel.replace(**change), 12, key=key, seeds=2, progress=False)
        simulate(primal.replace(**change), 12, key=key, seeds=8, progress=False)

    run(jax.random.key(0))
    with count_compiles() as compiles:
        run(jax.random.key(1))
        # other step sizes and noise levels are traced numbers: still nothing to compile
        run(jax.random.key(2), step_size=0.02, noise_std=0.2)
    assert compiles() == 0


# ------------------------------------------------------------------ grids and tuning
def test_grid_batches_are_cache_sized_on_a_cpu_and_whole_grids_elsewhere(monkeypatch):
    """The map's grid runs 32 settings a batch on a CPU (a wider vmap is slower there) and up
    to 1024 on an accelerator, always a power of two of at least 8."""
    from hdsgd.odes.proxlinear import _grid
    assert [_grid.grid_batch(g) for g in (1, 9, 32, 1000)] == [8, 16, 32, 32]
    monkeypatch.setattr(_grid.jax, "default_backend", lambda: "gpu")
    assert [_grid.grid_batch(g) for g in (1, 9, 1000, 5000)] == [8, 16, 1024, 1024]


def test_predict_grid_is_the_vmapped_map():
    setup = ProxLinearSensing(dim_left=100, dim_right=150, batch_size=40, step_size=1.0,
                              noise_std=0.1, initial_state=START)
    grid = {"batch_size": np.array([20, 40, 200]), "step_size": np.array([0.5, 2.0, 1.0]),
            "noise_std": np.array([0.0, 0.1, 0.3])}
    curves = hdsgd.predict_grid(setup, grid, 12)
    assert all(c.meta["rule"] == "grid" for c in curves)
    for g, c in enumerate(curves):
        one = predict(setup.replace(batch_size=int(grid["batch_size"][g]),
                                    step_size=float(grid["step_size"][g]),
                                    noise_std=float(grid["noise_std"][g])), 12, method="map")
        rel = np.max(np.abs(c["error_sq"] - one["error_sq"]) / one["error_sq"])
        assert rel < 1e-7, f"grid and predict differ by {rel:.3g} relative in E^2 (setting {g})"
        np.testing.assert_array_equal(c.samples, one.samples)
    # invalid settings give None; the general tuner goes through this path
    assert hdsgd.predict_grid(setup, {"step_size": np.array([-1.0, 1.0])}, 3)[0] is None
    tuned = hdsgd.tune(setup, {"step_size": [0.3, 1.0, 3.0]},
                       hdsgd.steps_to_target(0.05, "error_sq"), horizon=30)
    scores = [row["score"] for row in tuned.table]
    assert np.isfinite(tuned.objective_value) and tuned.objective_value == min(scores)
    assert scores[0] > tuned.objective_value  # the smallest step is slower


def _grid_table(tuned, names):
    """The tuner's grid rows (no refinement) as arrays, in the order of the space."""
    rows = [r for r in tuned.table if "refined" not in r]
    return [np.array([r[n] for r in rows]) for n in names]


def test_tune_finds_interior_optimum_and_linear_scaling():
    """docs/proxlinear.md, "Grids and tuning": at fixed eta_bar the sample cost hardly depends
    on m << d (eta ~ m), and the optimum in eta_bar is interior (the rate rises with eta_bar,
    but so does the floor)."""
    from hdsgd.cli.proxlinear import floor_and_rate, tuning_report

    setup = ProxLinearSensing(dim_left=100, dim_right=100, batch_size=10, step_size=0.05,
                              noise_std=0.15, initial_state=START)
    eta_bars = np.geomspace(0.2, 20.0, 7)
    tuned = hdsgd.tune(setup, {"batch_size": [1, 4], "eta_bar": eta_bars},
                       hdsgd.samples_to_target(0.05, "error_sq"), budget=12 * 100)
    ms, ebs, scores = _grid_table(tuned, ("batch_size", "eta_bar", "score"))
    floors = P.floor_grid(setup, ms, ebs * ms / 100.0, np.full(ms.size, 0.15))
    scores, floors = scores.reshape(2, 7), floors.reshape(2, 7)
    best = np.argmin(scores, axis=1)
    assert np.all((best > 0) & (best < 6))  # interior in eta_bar
    assert np.all(np.isinf(scores[:, -1]))  # the largest eta_bar's floor is above the target
    assert np.all(floors[:, -1] > 0.05) and np.all(np.diff(floors, axis=1) > 0)
    finite = np.isfinite(scores[0])
    np.testing.assert_allclose(scores[1][finite], scores[0][finite], rtol=0.05)  # eta ~ m
    assert tuned.setup.eta_bar == pytest.approx(eta_bars[best[np.argmin(scores.min(axis=1))]])
    floor, rate = floor_and_rate(tuned)
    assert 0 < floor < 0.05 and rate > 0
    assert rate == P.local_rate(tuned.setup)
    assert "noise floor" in tuning_report(tuned)


def test_tuned_choice_confirmed_by_monte_carlo():
    setup = ProxLinearSensing(dim_left=40, dim_right=40, batch_size=20, step_size=1.0,
                              noise_std=0.1, initial_state=START)
    tuned = hdsgd.tune(setup, {"batch_size": [40], "eta_bar": [0.5, 2.0, 8.0]},
                       hdsgd.samples_to_target(0.03, "error_sq"), budget=15 * 40)
    check = tuned.verify(jax.random.key(7), seeds=32, progress=False)
    _assert_agrees(check.agreement)
    assert abs(check.objective_value - tuned.objective_value) < 0.1 * tuned.objective_value


# ------------------------------------------------------------------ command line
def test_cli_predict_without_flags_is_the_default_setup(tmp_path, capsys):
    from hdsgd.cli import main
    from hdsgd.cli.proxlinear import default_horizon

    out = tmp_path / "default.npz"
    assert main(["proxlinear", "predict", "--out", str(out)]) == 0
    assert "error_sq" in capsys.readouterr().out
    got = hdsgd.Curve.load(out)
    want = predict(ProxLinearSensing(), default_horizon(ProxLinearSensing()))
    np.testing.assert_array_equal(got.time, want.time)
    for name in want.names:
        np.testing.assert_array_equal(got[name], want[name])
    assert got.meta == want.meta


def test_cli_predict_and_tune(capsys):
    from hdsgd.cli import main

    assert main(["proxlinear", "predict", "--dim-left", "50", "--dim-right", "50",
                 "--batch-size", "25", "--horizon", "5", "--initial-state", "0.7,0.6,0.8,0.5"]) == 0
    assert "error_sq" in capsys.readouterr().out
    assert main(["proxlinear", "tune", "--dim-left", "20", "--dim-right", "20",
                 "--batch-size", "10", "--noise-std", "0.1", "--horizon", "10",
                 "--target", "0.1", "--seeds", "0"]) == 0
    text = capsys.readouterr().out
    assert "chosen batch_size=" in text and "noise floor" in text and "local rate" in text
    assert main(["proxlinear", "predict", "--step-size", "-1"]) == 2
    assert "--step-size" in capsys.readouterr().err
