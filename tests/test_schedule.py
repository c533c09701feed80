"""Step-size schedules for least squares: the Schedule, its prediction and Monte Carlo, the
gradient through the scheduled recursion, and tuning a schedule (docs/lstsq.md, "Schedules")."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd.api import pure_prediction
from hdsgd.autotune import bootstrap_objective, smooth_objective
from hdsgd.odes.lstsq import recursion_state


def _setup(**changes):
    base = dict(eigenvalues="power_law:100:1.0", initial_error=1.0, noise_std=0.5, step_size=1.0)
    return hdsgd.StreamingLeastSquares(**{**base, **changes})


# ----------------------------------------------------------------- the Schedule
@pytest.mark.parametrize("kwargs, message", [
    (dict(step_sizes=[1.0, -1.0], boundaries=[3]), "step_sizes=.*entries > 0"),
    (dict(step_sizes=[1.0, float("nan")], boundaries=[3]), "step_sizes=.*finite"),
    (dict(step_sizes=[], boundaries=[]), "step_sizes=.*non-empty"),
    (dict(step_sizes=[1.0, 2.0], boundaries=[]), "boundaries=.*0 entries; allowed: 1"),
    (dict(step_sizes=[1.0, 2.0, 3.0], boundaries=[5, 5]), "boundaries=.*strictly increasing"),
    (dict(step_sizes=[1.0, 2.0], boundaries=[0]), r"boundaries=.*integers in \[1, 9007199254740992\]"),
    (dict(step_sizes=[1.0, 2.0], boundaries=[2.5]), r"boundaries=.*integers in \[1, 9007199254740992\]"),
    (dict(step_sizes=[1.0, 2.0], boundaries="x"), "boundaries="),
])
def test_schedule_validation_names_the_parameter_value_and_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hdsgd.Schedule(**kwargs)


def test_schedule_values_follow_the_boundaries():
    sched = hdsgd.Schedule([3.0, 2.0, 1.0], [2, 5])
    np.testing.assert_array_equal(sched.values(7), [3, 3, 2, 2, 2, 1, 1])
    np.testing.assert_array_equal(sched.starts, [0, 2, 5])
    assert hdsgd.Schedule(0.5).values(3).tolist() == [0.5, 0.5, 0.5]
    even = hdsgd.Schedule.even([4.0, 3.0, 2.0, 1.0], 10)
    assert even.boundaries.tolist() == [2, 5, 8] and even.pieces == 4
    with pytest.raises(ValueError, match="n_steps=2 is invalid"):
        hdsgd.Schedule.even([4.0, 3.0, 2.0], 2)
    setup = _setup(step_size=sched)
    assert setup.scheduled and setup.fields()["step_size"] == sched.fields()
    assert setup.replace(step_size=0.5).step_size == 0.5
    assert setup.replace(step_size=0.5).replace(step_size=sched).step_size is sched
    with pytest.raises(ValueError, match="is a Schedule; feedback is defined for a constant"):
        hdsgd.lstsq.feedback(setup)
    with pytest.raises(ValueError, match="method='spectral' is invalid for a step-size Schedule"):
        hdsgd.predict(setup, 1.0, method="spectral")
    with pytest.raises(ValueError, match="unknown option"):
        hdsgd.predict(setup, 1.0, n_grid=64)


# ----------------------------------------------------------------- prediction and Monte Carlo
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_a_constant_schedule_is_the_constant_step(momentum):
    setup = _setup(step_size=1.5, momentum=momentum)
    one = setup.replace(step_size=hdsgd.Schedule([1.5]))
    two = setup.replace(step_size=hdsgd.Schedule([1.5, 1.5], [137]))
    exact = hdsgd.predict(setup, 10.0, method="recursion").observables["risk"]
    for s in (one, two):
        np.testing.assert_allclose(hdsgd.predict(s, 10.0).observables["risk"], exact, rtol=1e-13)
    key = jax.random.key(0)
    mc = hdsgd.simulate(setup, 10.0, key=key, seeds=4, progress=False).observables["risk"]
    for s in (one, two):
        np.testing.assert_array_equal(
            hdsgd.simulate(s, 10.0, key=key, seeds=4, progress=False).observables["risk"], mc)


def test_scheduled_recursion_is_the_constant_recursion_piece_by_piece():
    # rho after each piece from the constant-step recursion started where the last piece ended
    setup = _setup(noise_std=0.3, batch_size=2)
    sched = hdsgd.Schedule([6.0, 0.4, 3.0, 1.0], [150, 151, 400])
    n = 700
    curve = hdsgd.predict(setup.replace(step_size=sched), n / setup.dim,
                          times=np.arange(n + 1) / setup.dim)
    with jax.enable_x64(True):
        rho = jnp.asarray(setup.initial_error)
        lam = jnp.asarray(setup.eigenvalues)
        ends = list(sched.boundaries) + [n]
        for gamma, a, b in zip(sched.step_sizes, sched.starts, ends):
            rho = recursion_state(lam, rho, setup.noise_var, gamma, 2.0, int(b - a))
            risk = 0.5 * (setup.noise_var + float(jnp.dot(lam, rho)))
            assert curve.observables["risk"][b] == pytest.approx(risk, rel=1e-12)


def test_schedule_prediction_matches_monte_carlo_and_a_shifted_schedule_does_not():
    # Alternating large and small steps: the risk jumps at every boundary, so a prediction that
    # gives a piece its neighbour's step size is many standard errors off the Monte Carlo.
    setup = _setup(noise_std=0.4)
    sched = hdsgd.Schedule([12.0, 0.6, 12.0, 0.6], [100, 250, 300])
    shifted = hdsgd.Schedule([0.6, 12.0, 0.6, 12.0], [100, 250, 300])
    times = np.arange(0, 501, 10) / setup.dim
    right = hdsgd.predict(setup.replace(step_size=sched), 5.0, times=times)
    wrong = hdsgd.predict(setup.replace(step_size=shifted), 5.0, times=times)
    mc = hdsgd.simulate(setup.replace(step_size=sched), 5.0, times=times,
                        key=jax.random.key(11), seeds=96, progress=False)
    agreement = hdsgd.compare(right, mc).observables["risk"]
    assert agreement.max_sem_gap < 4.0, agreement.max_sem_gap
    off = np.abs(wrong.observables["risk"] - agreement.mc_mean) / agreement.sem
    assert np.nanmax(off) > 20.0, np.nanmax(off)
    # and the prediction moves with the schedule: the excess risk jumps back up within ten
    # steps of the boundary 250 (the large step's noise), then decays on the small step
    excess = right.observables["excess_risk"]
    assert excess[26] > 1.25 * excess[25] and excess[31] < 0.97 * excess[30]


def test_a_piece_past_the_edge_flags_divergence_from_its_first_step():
    setup = _setup()
    gamma_c = hdsgd.lstsq.critical_step_size(setup)
    sched = hdsgd.Schedule([1.0, 1.2 * gamma_c, 1.0], [200, 300])
    curve = hdsgd.predict(setup.replace(step_size=sched), 10.0)
    steps = np.round(curve.time * setup.dim)
    assert "piece 1 (from step 200)" in curve.meta["warning"]
    np.testing.assert_array_equal(curve.diverged, steps > 200)
    assert np.all(np.isinf(curve.observables["risk"][steps > 200]))
    # a constant step past the edge: everything after t = 0, as before
    const = hdsgd.predict(setup.replace(step_size=1.2 * gamma_c), 10.0)
    np.testing.assert_array_equal(const.diverged, const.time > 0)
    # an unstable piece beyond the horizon is never run
    assert "warning" not in hdsgd.predict(setup.replace(step_size=sched), 1.5).meta


def test_scheduled_prediction_and_simulation_compile_once(count_compiles):
    setup = _setup(step_size=hdsgd.Schedule([2.0, 1.0], [300]))
    hdsgd.predict(setup, 5.0)
    hdsgd.simulate(setup, 5.0, key=jax.random.key(0), seeds=2, progress=False)
    other = setup.replace(step_size=hdsgd.Schedule([3.0, 0.5], [200]))
    with count_compiles() as n:
        hdsgd.predict(other, 5.1)
        hdsgd.simulate(other, 5.1, key=jax.random.key(1), seeds=2, progress=False)
    assert n() == 0


# ----------------------------------------------------------------- gradients and tuning
def test_schedule_gradient_matches_finite_differences():
    setup = _setup(step_size=hdsgd.Schedule.even([3.0, 2.0, 1.0, 0.5], 800))
    objective = hdsgd.value_at_budget(steps=800, observable="excess_risk")
    with jax.enable_x64(True):
        pure = pure_prediction(setup, ("step_size",), "excess_risk", 800)
        assert pure.upper == pytest.approx([hdsgd.lstsq.critical_step_size(setup)] * 4)

        def score(theta):
            return smooth_objective(objective, pure.fn(theta), pure.samples_per_step(theta))

        theta = jnp.asarray(setup.step_size.step_sizes)
        grad = np.asarray(jax.grad(score)(theta))
        value = float(score(theta))

    def via_predict(gammas):  # independent route: predict() and the objective itself
        s = setup.replace(step_size=setup.step_size.with_step_sizes(gammas))
        return objective(hdsgd.predict(s, 8.0))

    gammas = setup.step_size.step_sizes
    assert value == pytest.approx(via_predict(gammas), rel=1e-10)
    h = 1e-5
    fd = [(via_predict(gammas + h * e) - via_predict(gammas - h * e)) / (2 * h)
          for e in np.eye(4)]
    np.testing.assert_allclose(grad, fd, rtol=1e-5)
    assert np.all(np.abs(grad) > 0)


def test_tuned_schedule_beats_the_best_constant_step_in_theory_and_monte_carlo():
    setup = _setup()
    n = 30 * setup.dim
    objective = hdsgd.value_at_budget(steps=n, observable="excess_risk")
    gamma_c = hdsgd.lstsq.critical_step_size(setup)
    constant = hdsgd.tune(setup, {"step_size": hdsgd.LogRange(1e-3 * gamma_c, 0.99 * gamma_c, 12)},
                          objective, horizon=n / setup.dim)
    tuned = hdsgd.tune_schedule(setup, objective, steps=n, pieces=8)
    sched = tuned.setup.step_size
    assert isinstance(sched, hdsgd.Schedule) and sched.pieces == 8
    assert np.all(sched.step_sizes < gamma_c)
    # predicted: at least 15 % below the best constant step; the schedule decays
    assert tuned.objective_value < 0.85 * constant.objective_value
    assert sched.step_sizes[-1] < 0.5 * sched.step_sizes[0]
    # Monte Carlo at both: each within 3 standard errors of its prediction, and the gain far
    # beyond the noise
    measured = []
    for i, s in enumerate((constant.setup, tuned.setup)):
        mc = hdsgd.simulate(s, n / setup.dim, key=jax.random.fold_in(jax.random.key(7), i),
                            seeds=64, progress=False)
        measured.append(bootstrap_objective(objective, mc))
    (mc_const, se_const), (mc_sched, se_sched) = measured
    assert abs(mc_const - constant.objective_value) < 3 * se_const, measured
    assert abs(mc_sched - tuned.objective_value) < 3 * se_sched, measured
    assert mc_const - mc_sched > 5 * math.hypot(se_const, se_sched), measured
    check = tuned.verify(jax.random.key(8), seeds=8, progress=False)
    assert len(check.points) == 1 and check.points[0].setup is tuned.setup


def test_tune_schedule_checks_its_arguments():
    setup = _setup()
    objective = hdsgd.value_at_budget(steps=100, observable="excess_risk")
    with pytest.raises(ValueError, match="steps=0 is invalid"):
        hdsgd.tune_schedule(setup, objective, steps=0)
    with pytest.raises(ValueError, match="pieces=0 is invalid"):
        hdsgd.tune_schedule(setup, objective, steps=100, pieces=0)
    with pytest.raises(ValueError, match="settle"):
        hdsgd.tune_schedule(setup, hdsgd.steps_to_target(0.1, settle=True), steps=100)
    with pytest.raises(ValueError, match="boundaries=.* allowed: boundaries < steps=100"):
        hdsgd.tune_schedule(setup, objective, steps=100, boundaries=[50, 120])
    with pytest.raises(ValueError, match="needs 200 steps"):
        hdsgd.tune_schedule(setup, hdsgd.value_at_budget(samples=200), steps=100)
    with pytest.raises(ValueError, match="does not accept a step-size Schedule"):
        hdsgd.tune_schedule(hdsgd.SpikedSingleIndex(dim=100), objective, steps=100)
