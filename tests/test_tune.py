"""Tuning from predictions alone: gradients through the prediction, and the choice checked
against a Monte Carlo grid."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd.api import pure_prediction
from hdsgd.autotune import bootstrap_objective, smooth_objective


def _setup():
    return hdsgd.StreamingLeastSquares("power_law:120:0.8", initial_error=1.0, noise_std=0.05,
                                       step_size=1.0, batch_size=2)


@pytest.mark.parametrize("objective", [
    hdsgd.value_at_budget(samples=1500, observable="risk"),
    hdsgd.samples_to_target(0.012, "risk"),
])
def test_gradient_through_the_prediction_matches_finite_differences(objective):
    setup = _setup()
    n = int(round(12.0 * setup.dim))
    with jax.enable_x64(True):
        pure = pure_prediction(setup, ("step_size", "momentum"), "risk", n)

        def score(theta):
            return smooth_objective(objective, pure.fn(theta), pure.samples_per_step(theta))

        theta = jnp.array([6.0, 0.3])
        grad = np.asarray(jax.jacfwd(score)(theta))
        value = float(score(theta))
    # independent route: predict() curves at every step, scored by the objective itself
    def via_predict(step, beta):
        s = setup.replace(step_size=step, momentum=beta)
        curve = hdsgd.predict(s, n / setup.dim, times=np.arange(n + 1) / setup.dim)
        return objective(curve)

    assert value == pytest.approx(via_predict(6.0, 0.3), rel=1e-9)
    h = 1e-4
    fd = [(via_predict(6.0 + h, 0.3) - via_predict(6.0 - h, 0.3)) / (2 * h),
          (via_predict(6.0, 0.3 + h) - via_predict(6.0, 0.3 - h)) / (2 * h)]
    np.testing.assert_allclose(grad, fd, rtol=1e-4)
    assert np.all(np.abs(grad) > 0)


def test_gradient_refinement_finds_the_scan_optimum():
    setup = _setup()
    objective = hdsgd.value_at_budget(samples=1500, observable="risk")
    tuned = hdsgd.tune(setup, {"step_size": hdsgd.LogRange(1.0, 80.0, 6)}, objective,
                       budget=1500)
    assert tuned.table[-1]["refined"] == "gradient"
    grid_best = min(r["score"] for r in tuned.table if "refined" not in r)
    assert tuned.objective_value < grid_best
    dense = np.geomspace(1.0, 80.0, 400)
    curves = hdsgd.predict_grid(setup, {"step_size": dense}, 1500 / 2 / setup.dim)
    scores = np.array([objective(c) for c in curves])
    assert tuned.objective_value <= scores.min() * (1 + 1e-6)
    assert tuned.setup.step_size == pytest.approx(dense[np.argmin(scores)], rel=0.02)


def test_tuned_step_is_confirmed_by_a_monte_carlo_grid():
    # The Monte Carlo objective at the tuned step is within 3 standard errors of the best
    # Monte Carlo objective over a coarse grid around it.
    setup = _setup()
    objective = hdsgd.samples_to_target(0.012, "risk")
    tuned = hdsgd.tune(setup, {"step_size": hdsgd.LogRange(1.0, 80.0, 8)}, objective,
                       horizon=40.0)
    key = jax.random.key(5)
    grid = [0.4, 0.7, 1.0, 1.4, 2.0]
    measured = []
    for i, factor in enumerate(grid):
        s = tuned.setup.replace(step_size=factor * tuned.setup.step_size)
        if s.step_size >= hdsgd.lstsq.critical_step_size(s):
            continue
        mc = hdsgd.simulate(s, 40.0, key=jax.random.fold_in(key, i), seeds=24, progress=False)
        measured.append((factor, *bootstrap_objective(objective, mc)))
    chosen = next(m for m in measured if m[0] == 1.0)
    best = min(measured, key=lambda m: m[1])
    assert chosen[1] <= best[1] + 3 * math.hypot(chosen[2], best[2]), measured
    # and the grid has power: the smallest step is clearly worse
    assert measured[0][1] > chosen[1] + 3 * math.hypot(measured[0][2], chosen[2])


def test_batch_tradeoff_has_the_critical_batch_shape(tmp_path):
    # Below B_crit = tr H / lambda_max the best steps fall like 1/B at a flat sample cost;
    # well above it the steps stop falling and samples are wasted.
    setup = hdsgd.StreamingLeastSquares("power_law:200:0.5", noise_std=0.0)
    b_crit = hdsgd.lstsq.critical_batch_size(setup)

    def space(s):
        gamma_c = hdsgd.lstsq.critical_step_size(s)
        return hdsgd.LogRange(1e-2 * gamma_c, 0.99 * gamma_c, 8)

    batches = [1, 2, 4, 8, int(4 * b_crit), int(16 * b_crit)]
    tr = hdsgd.batch_tradeoff(setup, 0.1 * setup.initial_risk, batches, space,
                              observable="excess_risk", horizon=40.0)
    small = tr.batch_sizes <= 8
    assert np.all(np.abs(tr.samples[small] / tr.samples[0] - 1) < 0.1)
    np.testing.assert_allclose(tr.steps[small] * tr.batch_sizes[small], tr.steps[0], rtol=0.1)
    assert tr.samples[-1] > 2.5 * tr.samples[0] and tr.steps[-1] > 3 * tr.steps[0] / tr.batch_sizes[-1]
    assert tr.plot(tmp_path / "tradeoff.png", critical_batch=b_crit).stat().st_size > 1000


def test_proxlinear_and_spiked_choices_are_confirmed_by_monte_carlo_neighbours():
    # The choice's Monte Carlo score is within 3 standard errors of the best of the choice and
    # its two grid neighbours, each simulated (Tuned.verify).
    prox = hdsgd.ProxLinearSensing(dim_left=40, dim_right=40, batch_size=20, step_size=1.0,
                                   noise_std=0.1, initial_state=(0.7, 0.6, 0.8, 0.5))
    tuned = hdsgd.tune(prox, {"eta_bar": list(np.geomspace(0.25, 16.0, 7))},
                       hdsgd.samples_to_target(0.05, "error_sq"), budget=20 * 40)
    check = tuned.verify(jax.random.key(3), seeds=24, progress=False)
    assert len(check.points) == 3 and check.ok(), check.summary()
    # d = 20 000 (the exact chain costs O(1) a step): at d = 2000 the runs' plateau sits above
    # the ODE's at these steps (a finite-d correction) and He2 being even, a run may escape to
    # -m. The target 0.3 is well below the plateau, so the seed mean meets it at every step.
    spiked = hdsgd.SpikedSingleIndex(dim=20_000, spike=1.0, link="he2", step_size=0.5,
                                     initial_overlap=0.05)
    edge = hdsgd.spiked.critical_step_size(spiked)
    tuned = hdsgd.tune(spiked, {"step_size": list(np.geomspace(0.05, 0.6, 6) * edge)},
                       hdsgd.samples_to_target(0.3, "overlap", reach="above"), horizon=10.0)
    check = tuned.verify(jax.random.key(4), seeds=32, progress=False, method="chain")
    assert check.ok() and check.agreement.ok(), check.summary()
    # the smallest step escapes much later: the grid has power
    assert tuned.table[0]["score"] > 2 * tuned.objective_value


def test_cli_tune_for_every_system(capsys):
    from hdsgd.cli import main

    runs = {
        "spiked": ["--dim", "300", "--horizon", "30"],
        "grokking": ["--dim", "12", "--n-samples", "36", "--width", "64", "--horizon", "400"],
        "momentum": ["--horizon", "1500"],
        "proxlinear": ["--dim-left", "20", "--dim-right", "20", "--batch-size", "10"],
        "lstsq": ["--eigenvalues", "power_law:50", "--horizon", "10"],
    }
    for system, args in runs.items():
        assert main([system, "tune", "--seeds", "0", *args]) == 0, system
        assert "chosen" in capsys.readouterr().out, system


def test_a_verification_with_unbounded_standard_errors_decides_nothing():
    from hdsgd.autotune import VerifiedPoint, Verification

    def point(measured, sem):
        return VerifiedPoint(setup=None, predicted=1.0, measured=measured, measured_sem=sem,
                             mc=None)

    sure = Verification(mc=None, objective_value=1.0, objective_sem=0.1, agreement=None,
                        points=[point(10.0, 1.0), point(12.0, 1.0), point(9.0, 1.0)])
    assert sure.decided() and sure.ok()
    worse = Verification(mc=None, objective_value=1.0, objective_sem=0.1, agreement=None,
                         points=[point(20.0, 1.0), point(12.0, 1.0)])
    assert worse.decided() and not worse.ok()
    unsure = Verification(mc=None, objective_value=1.0, objective_sem=math.inf, agreement=None,
                          points=[point(10.0, math.inf), point(12.0, 1.0)])
    assert not unsure.decided() and not unsure.ok()


def test_a_setup_objective_scores_setups_directly():
    # Scoring each Setup by the objective of its own prediction gives the same grid as the
    # Curve objective; refinement then runs the bracketing search on Setups alone.
    setup = _setup()
    objective = hdsgd.value_at_budget(samples=1500, observable="risk")
    horizon = 1500 / 2 / setup.dim
    space = {"step_size": hdsgd.LogRange(1.0, 80.0, 6)}
    by_curve = hdsgd.tune(setup, space, objective, horizon=horizon, refine=False)
    calls = []

    def score(s):
        calls.append(s.step_size)
        return objective(hdsgd.predict(s, horizon))

    by_setup = hdsgd.setup_objective(score, "risk after 1500 samples")
    plain = hdsgd.tune(setup, space, by_setup, refine=False)
    # (the grid's vmapped recursion and one predict() agree to rounding)
    assert [r["score"] for r in plain.table] == pytest.approx([r["score"] for r in by_curve.table],
                                                              rel=1e-12)
    # six grid points, then the cliff guard's two nudges of the choice (x and / 1.02)
    assert plain.curve is None and plain.horizon is None and len(calls) == 8
    assert calls[6:] == pytest.approx([plain.setup.step_size * 1.02, plain.setup.step_size / 1.02])
    assert plain.notes == ()
    refined = hdsgd.tune(setup, space, by_setup)
    assert refined.table[-1]["refined"] == "step_size"
    assert refined.objective_value < plain.objective_value
    with pytest.raises(ValueError, match="scores Setups, not curves"):
        refined.verify(jax.random.key(0), seeds=2)
    with pytest.raises(ValueError, match="option.*method.*invalid with a SetupObjective"):
        hdsgd.tune(setup, space, by_setup, method="recursion")
    with pytest.raises(ValueError, match="no candidate has a finite score"):
        hdsgd.tune(setup, space, hdsgd.setup_objective(lambda s: math.inf))
    with pytest.raises(ValueError, match="fn=3 is invalid"):
        hdsgd.setup_objective(3)


# ----------------------------------------------------------------- the cliff guard
def _scored(fn):
    return hdsgd.setup_objective(lambda s: fn(s.step_size), "a score with a jump")


@pytest.mark.parametrize("side", ["above", "below"])
def test_the_cliff_guard_backs_a_refinement_off_a_jump(side):
    # The score improves towards an edge and is infinite past it (a divergence edge). The
    # bracketing search walks onto the edge itself; the guard steps back by one margin, on the
    # side the score is finite (above: the edge is a largest step, below: a smallest).
    setup, edge = _setup(), 37.0
    space = {"step_size": hdsgd.LogRange(1.0, 100.0, 9)}
    if side == "above":
        objective = _scored(lambda g: 1.0 / g if g < edge else math.inf)
    else:
        objective = _scored(lambda g: g if g > edge else math.inf)
    raw = hdsgd.tune(setup, space, objective, margin=0)
    assert abs(math.log(raw.setup.step_size / edge)) < 1e-3 and raw.notes == ()
    tuned = hdsgd.tune(setup, space, objective)
    g = tuned.setup.step_size
    if side == "above":
        assert g * 1.02 < edge < g * 1.02**2
    else:
        assert g / 1.02 > edge > g / 1.02**2
    assert len(tuned.notes) == 1 and "backed off" in tuned.notes[0], tuned.notes
    assert tuned.objective_value == pytest.approx(objective(tuned.setup), rel=1e-12)
    # the table says which refined point was not kept, and where the choice came from
    assert tuned.table[-2]["refined"] == "step_size, on a cliff: not kept"
    assert tuned.table[-1] == {"step_size": g, "score": tuned.objective_value,
                               "refined": "one margin back"}
    assert tuned.table_str().splitlines()[-1].endswith("  one margin back")


def test_the_cliff_guard_passes_over_grid_points_and_leaves_smooth_optima_alone():
    setup = _setup()
    space = {"step_size": hdsgd.LogRange(1.0, 100.0, 9)}   # 31.62 is a grid point
    # a finite jump (x3 at 31.7) is a cliff too; the grid point 0.25 % below it is passed over
    jump = _scored(lambda g: 1.0 / g if g < 31.7 else 3.0 / 31.7)
    tuned = hdsgd.tune(setup, space, jump)
    assert tuned.setup.step_size * 1.02 < 31.7 < tuned.setup.step_size * 1.02**2
    assert tuned.notes[0].startswith("passed over step_size=31.6228"), tuned.notes
    assert "backed off" in tuned.notes[1]
    # a smooth optimum: the nudges move the score by O(margin^2), the choice is unchanged
    smooth = _scored(lambda g: 1.0 + math.log(g / 20.0) ** 2)
    plain, guarded = hdsgd.tune(setup, space, smooth, margin=0), hdsgd.tune(setup, space, smooth)
    assert guarded.notes == () and guarded.setup.step_size == plain.setup.step_size
    assert guarded.setup.step_size == pytest.approx(20.0, rel=1e-3)
    for bad in (-0.1, 1.0, True, "0.02"):
        with pytest.raises(ValueError, match="margin="):
            hdsgd.tune(setup, space, smooth, margin=bad)


def test_the_cliff_guard_keeps_grokking_tuning_where_its_monte_carlo_agrees():
    # hdsgd grokking tune's default: steps until the test loss stays below 0.6 of its start.
    # Past eta ~ 6.3 the late plateau of the test loss rises through the target, so the score
    # jumps from ~30 steps to infinity there; unguarded, the refinement ends 0.06 % below the
    # jump, where the 16-seed Monte Carlo mean crosses the target late (measured: 1740 +- 270
    # steps against 30 predicted). One margin back, prediction and Monte Carlo agree.
    setup = hdsgd.GrokkingTwoLayer()
    edge = hdsgd.grokking.critical_step_size(setup)
    space = {"step_size": hdsgd.LogRange(0.02 * edge, 0.95 * edge, 10)}
    start = float(hdsgd.predict(setup, 1.0, times=[0.0])["test_loss"][0])
    objective = hdsgd.steps_to_target(0.6 * start, "test_loss", settle=True)
    raw = hdsgd.tune(setup, space, objective, horizon=2000.0, margin=0)
    guarded = hdsgd.tune(setup, space, objective, horizon=2000.0)
    assert "backed off" in guarded.notes[0], guarded.notes
    assert guarded.objective_value < 1.05 * raw.objective_value   # the margin costs ~4 %
    key = jax.random.key(0)
    mc_raw = raw.verify(key, seeds=16, neighbours=False, progress=False)
    mc_guarded = guarded.verify(key, seeds=16, neighbours=False, progress=False)
    assert mc_raw.objective_value > 5 * raw.objective_value, mc_raw.summary()
    gap = abs(mc_guarded.objective_value - guarded.objective_value) / mc_guarded.objective_sem
    assert gap < 4.0, mc_guarded.summary()


def test_lstsq_tune_defaults_reach_their_target_and_tuning_says_what_the_prediction_warns(capsys):
    from hdsgd.autotune import lowest_reached
    from hdsgd.cli import main

    # The default target sits halfway (log scale) between the start and the lowest value any
    # candidate reaches within the budget: a tenth of the start lies below every candidate's
    # curve at the default setting (d = 500, sigma = 0.1, t = 10).
    assert main(["lstsq", "tune", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    setup = hdsgd.StreamingLeastSquares()
    gamma_c = hdsgd.lstsq.critical_step_size(setup)
    space = {"step_size": hdsgd.LogRange(1e-3 * gamma_c, 0.99 * gamma_c, 16)}
    start, lowest = lowest_reached(setup, space, "excess_risk", budget=10.0 * setup.dim)
    assert start == pytest.approx(setup.initial_risk - 0.5 * setup.noise_var, rel=1e-12)
    assert lowest > 0.1 * start
    assert f"excess_risk <= {math.sqrt(start * lowest):g}," in out and "# chosen" in out
    # brute force: the lowest of every candidate's own prediction
    brute = min(float(np.min(hdsgd.predict(setup.replace(step_size=g), 10.0)["excess_risk"]))
                for g in space["step_size"].values())
    assert lowest == pytest.approx(brute, rel=1e-9)
    with pytest.raises(ValueError, match="exactly one of them"):
        lowest_reached(setup, space, "excess_risk")
    # momentum's default: the recursion's choice carries its regime warning into Tuned.notes
    assert main(["momentum", "tune", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "# note: the chosen prediction warns: method='recursion' leaves out" in out
