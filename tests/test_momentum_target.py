"""Label-noise SGD with momentum (docs/momentum.md, "Time to target", "Optimal momentum"):
time-to-target T(eta, gamma, C) from the reduced equations against the Monte Carlo, and the
numerically optimal constant C."""

import dataclasses
import math

import jax
import numpy as np
import pytest

from hdsgd import TwoParameterMomentum, simulate
from hdsgd.momentum import measured_time_to_target
from hdsgd.odes import momentum as th
from hdsgd.setups.momentum import settling_time

TARGET = 0.1  # sqrt(E s^2) <= 0.1, from s_0 = 1
SEPARATED = dict(step_size=2.2e-3, exponent=0.5, constant=0.05 / 2.2e-3**0.5, label_noise=0.5)
CRITICAL = dict(step_size=1e-3, exponent=2.0 / 3.0, label_noise=0.3)


def test_settling_time_definition():
    t = np.arange(6.0)
    assert settling_time(t, [4, 3, 0.5, 2, 0.5, 0.2], 1.0) == pytest.approx(3 + 1 / 1.5)
    assert settling_time(t, [0.5] * 6, 1.0) == 0.0
    assert math.isinf(settling_time(t, [4, 3, 2, 1.5, 1.2, 1.1], 1.0))


def test_time_to_target_separated_regime():
    """gamma = 1/2: the uniform recursion and the first-order flow's closed form
    T = (1-beta)^2/(eta^2 delta^2) ln[sinh 2 s_0 / sinh 2 target] both give the Monte Carlo's
    settling time; a flow with (1 - beta) instead of (1 - beta)^2 is far off."""
    setup = TwoParameterMomentum(**SEPARATED)
    times = np.concatenate([[0, 1000, 2000, 3000], np.arange(4000, 8001, 50)])
    mc = simulate(setup, 8000, key=jax.random.PRNGKey(21), seeds=500, times=times, progress=False)
    t_mc, err = measured_time_to_target(mc, TARGET)
    for method in ("recursion", "flow"):
        t_th = th.time_to_target(setup, TARGET, method=method)
        assert abs(t_th - t_mc) < 4 * err + 0.005 * t_mc, (method, t_th, t_mc, err)
    wrong = th.time_to_target(setup, TARGET, method="flow") * setup.one_minus_beta
    assert abs(wrong - t_mc) > 50 * err


@pytest.mark.parametrize("constant, seed", [
    (0.35, 22), pytest.param(0.711, 23, marks=pytest.mark.slow)])
def test_time_to_target_critical_regime_sde(constant, seed):
    """gamma = 2/3 below and at the critical-damping constant C* = 0.711:
    the reduced SDE's T agrees with the Monte Carlo's; the deterministic closure and the
    uniform recursion, which miss the O(1) energy noise of a single normal mode, do not."""
    setup = TwoParameterMomentum(**CRITICAL, constant=constant)
    times = np.arange(0, 3501, 25)
    mc = simulate(setup, 3500, key=jax.random.PRNGKey(seed), seeds=1000, times=times,
                  progress=False)
    t_mc, err = measured_time_to_target(mc, TARGET)
    t_sde = th.time_to_target(setup, TARGET, method="sde", paths=2000, horizon=6000, dt=4.0,
                              key=jax.random.PRNGKey(seed))
    assert abs(t_sde - t_mc) < 4 * err, (constant, t_sde, t_mc, err)
    # (the closure's own compilation costs seconds: checked in the slow case only)
    for method in ("closure", "recursion") if constant > 0.5 else ("recursion",):
        t_det = th.time_to_target(setup, TARGET, method=method, horizon=6000)
        assert abs(t_det - t_mc) > 6 * err, (constant, method, t_det, t_mc, err)


def test_optimal_constant_against_brute_force_scan():
    """The numerical optimum of C (scan + Brent) agrees with a brute-force scan of the same
    reduced equation, and beats the critical-damping estimate C* (only a start)."""
    setup = TwoParameterMomentum(**CRITICAL, constant=1.0)
    c_opt, t_opt = th.optimal_constant(setup, TARGET)
    c_star = th.timescales(setup)["optimal_constant"]
    scan = np.geomspace(c_star / 8, 8 * c_star, 121)
    t_scan = np.array([th.time_to_target(dataclasses.replace(setup, constant=c), TARGET,
                                         method="recursion") for c in scan])
    best = int(np.argmin(t_scan))
    spacing = math.log(scan[1] / scan[0])
    assert abs(math.log(c_opt / scan[best])) <= 1.5 * spacing, (c_opt, scan[best])
    assert t_opt <= t_scan[best] * 1.002
    t_star = th.time_to_target(dataclasses.replace(setup, constant=c_star), TARGET,
                               method="recursion")
    assert t_opt < 0.9 * t_star
    # optimal_momentum at the same eta finds the same point (1 - beta = C eta^gamma)
    gap, t_gap = th.optimal_momentum(setup, TARGET)
    assert math.isclose(gap, c_opt * setup.step_size ** (2 / 3), rel_tol=0.03)
    assert math.isclose(t_gap, t_opt, rel_tol=0.01)


def test_optimal_momentum_scales_as_eta_to_two_thirds():
    """The optimal 1 - beta from the uniform recursion, over two decades of eta, follows
    eta^gamma with gamma near 2/3; the time at the optimum scales as eta^{-2/3}."""
    etas = np.geomspace(1e-4, 1e-2, 5)
    best = [th.optimal_momentum(TwoParameterMomentum(step_size=eta, momentum=0.9,
                                                     label_noise=0.3), TARGET) for eta in etas]
    gaps, times = np.array([b[0] for b in best]), np.array([b[1] for b in best])
    slope = np.polyfit(np.log(etas), np.log(gaps), 1)[0]
    assert abs(slope - 2 / 3) < 0.05, slope
    time_slope = np.polyfit(np.log(etas), np.log(times), 1)[0]
    assert abs(time_slope + 2 / 3) < 0.05, time_slope


def test_time_to_target_input_checks():
    setup = TwoParameterMomentum(**CRITICAL, constant=0.711)
    with pytest.raises(ValueError, match="target"):
        th.time_to_target(setup, 0.0)
    with pytest.raises(ValueError, match="method"):
        th.time_to_target(setup, TARGET, method="euler")
    with pytest.raises(ValueError, match="paths"):
        th.time_to_target(setup, TARGET, method="recursion", paths=10)
    with pytest.raises(ValueError, match="exponent"):
        th.optimal_constant(TwoParameterMomentum(momentum=0.9))
    assert th.time_to_target(dataclasses.replace(setup, initial_coordinate=0.05), TARGET) == 0.0
    assert math.isinf(th.time_to_target(setup, TARGET, method="recursion", horizon=100))


@pytest.mark.slow
def test_sde_optimal_constant_against_monte_carlo_scan():
    """The optimum C from the reduced SDE against a brute-force Monte Carlo scan of C: the
    Monte Carlo's T at the SDE optimum is within errors of the scan's best, and so is T at the
    recursion's optimum (the recursion puts the optimum in the right place, C ~ 0.5, but its
    T there is far too short: it misses the energy noise of one normal mode)."""
    setup = TwoParameterMomentum(**CRITICAL, constant=0.711)
    c_star = th.timescales(setup)["optimal_constant"]
    c_sde, t_sde = th.optimal_constant(setup, TARGET, method="sde", paths=1000,
                                       bounds=(c_star / 4, 3 * c_star), grid=9)
    c_rec, t_rec = th.optimal_constant(setup, TARGET)
    times = np.arange(0, 6001, 25)

    def t_mc(c, seed):
        mc = simulate(dataclasses.replace(setup, constant=c), 6000, key=jax.random.PRNGKey(seed),
                      seeds=2000, times=times, progress=False)
        return measured_time_to_target(mc, TARGET)

    scan = [t_mc(c, 30 + i) for i, c in enumerate(np.geomspace(c_star / 3, 2 * c_star, 7))]
    best = min(scan, key=lambda te: te[0])
    at_sde, at_rec = t_mc(c_sde, 40), t_mc(c_rec, 41)
    assert at_sde[0] < best[0] + 3 * math.hypot(at_sde[1], best[1]), (c_sde, at_sde, scan)
    assert at_rec[0] < best[0] + 3 * math.hypot(at_rec[1], best[1]), (c_rec, at_rec, scan)
    assert abs(t_sde - at_sde[0]) < 0.05 * at_sde[0], (t_sde, at_sde)
    assert t_rec < 0.7 * at_rec[0], (t_rec, at_rec)
    # the critical-damping estimate C* = 0.711 is clearly slower than the optimum
    at_star = t_mc(c_star, 42)
    assert at_star[0] > at_sde[0] + 5 * math.hypot(at_sde[1], at_star[1]), (at_star, at_sde)
