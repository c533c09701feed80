"""Label-noise SGD with momentum on matrix sensing (docs/momentum.md, "Matrix sensing"): the moment
closure at small damping, and the 1 - beta ~ eta^(2/3) law of the best momentum, against the
Monte Carlo.

Setting: d = 8, r = 1, n = 20, delta_0 = 0.02 (small, so the fluctuation floor of the distance
stays far below the target 0.15), start at an interpolant at distance 1.77 from X*."""

import dataclasses
import math

import jax
import numpy as np
import pytest

from hdsgd import LogRange, MatrixSensingMomentum, compare, predict, simulate, tune
from hdsgd.odes import momentum as th
from hdsgd.setups.momentum import settling_time

BASE = dict(dim=8, rank=1, n_samples=20, label_noise=0.02)
TARGET = 0.15
OBS = ("distance_to_flattest", "trace_hessian", "manifold_coordinate")


def _setup(eta, gap):
    return MatrixSensingMomentum(**BASE, step_size=eta, momentum=1.0 - gap)


def _closure_at_small_damping(horizon, factors):
    """eta = 0.04, 1 - beta = 2.2e-3 (near the Monte Carlo's best), 48 seeds. During the drift
    (k <= 550) the closure is held to 4 s.e. on the distance, tr H and ln ||U||^2 (measured
    2.4 / 2.2 / 2.1). From the steep part on it runs ahead of the Monte Carlo: it leaves out
    the energy noise, which self-averages only over many normal modes (20 here). That bias is
    measured here, not hidden by a wide tolerance: the closure is below the Monte Carlo (never
    above it by 4 s.e.; measured: at most 1.7 s.e. above, down to 5.7 / 6.5 / 8.4 s.e. below at
    k = 750-850), tr H within 8% at every step (measured 6.8%), the settling time of the
    distance within 10% (measured 729 vs 777, 6% early); halving or doubling delta^2 is off by
    > 25 s.e."""
    setup = _setup(0.04, 2.2e-3)
    times = np.arange(0, horizon + 1, 50.0)
    mc = simulate(setup, horizon, key=jax.random.PRNGKey(41), seeds=48, times=times,
                  progress=False)
    theory = predict(setup, horizon, times=times)
    agreement = compare(theory, mc, OBS, t_min=1)
    for name in OBS:
        a = agreement[name]
        z = np.asarray(a.gap) / np.maximum(np.asarray(a.sem), 1e-12)  # theory - MC, in s.e.
        drift = np.asarray(a.time) <= 550
        assert np.max(np.abs(z[drift])) < 4.0, \
            f"{name}: {np.max(np.abs(z[drift])):.3g} SE during the drift (limit 4.0)"
        assert np.max(z[~drift]) < 4.0, f"{name}: the closure lags by {np.max(z[~drift]):.3g} SE"
    rel = agreement["trace_hessian"].max_rel_gap
    assert rel < 0.08, f"tr H is {rel:.3g} (relative) off the Monte Carlo (limit 0.08)"
    for factor in factors:
        wrong = predict(dataclasses.replace(setup, label_noise=BASE["label_noise"] * factor),
                        horizon, times=times)
        gaps = compare(wrong, mc, OBS, t_min=1, same_setup=False)
        assert min(gaps[k].max_sem_gap for k in OBS) > 25, gaps.summary()
    t_mc = settling_time(mc.time, mc.mean()["distance_to_flattest"], TARGET)
    t_theory = settling_time(theory.time, theory["distance_to_flattest"], TARGET)
    assert abs(t_theory / t_mc - 1) < 0.1, (t_theory, t_mc)
    # label noise drives the run to X*: the distance falls from 1.77 below the target
    assert mc.mean()["distance_to_flattest"][-1] < TARGET


def test_closure_at_small_damping_matches_monte_carlo_then_runs_ahead():
    """Through the drift, the steep part and the settling (k <= 1200; doubled delta^2)."""
    _closure_at_small_damping(1200, (math.sqrt(2.0),))


@pytest.mark.slow
def test_closure_at_small_damping_to_the_floor():
    """The same to k = 3000 (the floor), halved and doubled delta^2."""
    _closure_at_small_damping(3000, (math.sqrt(2.0), math.sqrt(0.5)))


def _stable_at_very_small_damping(steps):
    """1 - beta = 6e-4 at eta = 0.04 (about a quarter of the best): the Gauss-Newton closure
    blew up here; the statistically linearised, orbit-projected one settles at the floor
    (measured distance 0.1336 / 0.1092 / 0.1095 / 0.1097 at k = 2000 / 4000 / 6000 / 12000)."""
    setup = _setup(0.04, 6e-4)
    with jax.enable_x64(True):
        out = th.sensing_closure(setup, np.asarray(steps))
    dist = out["distance_to_flattest"]
    assert np.isfinite(dist).all()
    assert dist[-1] < TARGET and abs(dist[-1] - dist[-2]) < 0.01, dist  # settled at its floor
    assert (out["train_loss"] > 0).all()


def test_closure_stays_stable_at_very_small_damping():
    _stable_at_very_small_damping([0, 2000, 4000, 6000])


@pytest.mark.slow
def test_closure_stays_stable_at_very_small_damping_long():
    _stable_at_very_small_damping([0, 4000, 8000, 12000])


def test_momentum_search_on_matrix_sensing_checks_its_input():
    setup = _setup(0.04, 2e-3)
    with pytest.raises(ValueError, match="no closed-form C.*explicit hdsgd.LogRange"):
        th.damping_range(setup)
    with pytest.raises(ValueError, match="method"):
        tune(setup, {"damping": LogRange(1e-3, 3e-3, 3)}, th.time_objective(TARGET, method="sde"))
    with pytest.raises(ValueError, match="0 < low < high"):
        LogRange(3e-3, 1e-3, 5)


def _mc_best(eta, gaps, seeds):
    """The Monte Carlo's best 1 - beta on a grid of absolute 1 - beta (settling time of the
    seed-mean distance below the target)."""
    horizon = 6000.0 * (0.04 / eta) ** (2 / 3)
    times = np.unique(np.round(np.linspace(0, horizon, 301)))
    found = []
    for i, gap in enumerate(gaps):
        mc = simulate(_setup(eta, gap), horizon, key=jax.random.PRNGKey(100 + i), seeds=seeds,
                      times=times, progress=False)
        found.append(settling_time(mc.time, mc["distance_to_flattest"].mean(axis=0), TARGET))
    found = np.asarray(found)
    k = int(np.argmin(np.where(np.isfinite(found), found, np.inf)))
    assert 0 < k < len(gaps) - 1, found  # an interior optimum
    return gaps[k], found[k]


@pytest.mark.slow
def test_best_momentum_scales_as_eta_to_the_two_thirds():
    """Monte Carlo brute force over the same absolute grid of 1 - beta at eta = 0.04 and 0.01:
    the best 1 - beta scales with exponent 2/3 within the grid's resolution, T at the best as
    eta^(-2/3); the closure's optimum (`hdsgd.tune` over damping) has T within 15% of the Monte
    Carlo's best. Measured (64 seeds): best 1 - beta 2.21e-3 / 8.14e-4 (exponent 0.72), T 764 /
    1850 (exponent -0.64); closure T 686 / 1634."""
    gaps = np.geomspace(4e-4, 4e-3, 19)  # ratio 1.137: exponent resolved to +-0.09
    spacing = math.log(gaps[1] / gaps[0]) / math.log(4.0)
    (g_hi, t_hi), (g_lo, t_lo) = (_mc_best(eta, gaps, 64) for eta in (0.04, 0.01))
    exponent = math.log(g_hi / g_lo) / math.log(4.0)
    assert abs(exponent - 2 / 3) <= spacing + 1e-9, exponent
    t_exponent = math.log(t_lo / t_hi) / math.log(4.0)
    assert abs(t_exponent - 2 / 3) < 0.1, t_exponent
    for eta, t_mc in ((0.04, t_hi), (0.01, t_lo)):
        centre = 0.0133 * eta ** (2 / 3)
        t_closure = tune(_setup(eta, centre), {"damping": LogRange(0.6 * centre, 1.5 * centre, 5)},
                         th.time_objective(TARGET, method="closure")).objective_value
        assert abs(t_closure / t_mc - 1) < 0.15, (eta, t_closure, t_mc)


def test_cli_uses_each_models_default_method(capsys):
    """`hdsgd momentum predict` without --method takes the model's own default (the closure
    for matrix sensing), and an explicit method the model lacks is a clear error."""
    from hdsgd.cli import main

    assert main(["momentum", "predict", "--model", "matrix_sensing", "--n-samples", "20",
                 "--step-size", "0.02", "--momentum", "0.9", "--horizon", "20"]) == 0
    assert "prediction (closure)" in capsys.readouterr().out
    assert main(["momentum", "predict", "--model", "matrix_sensing", "--n-samples", "20",
                 "--method", "sde", "--horizon", "20"]) == 2
    assert "allowed: ('closure',)" in capsys.readouterr().err
