"""Label-noise SGD with momentum (issue 6, spec momentum.md): theory vs Monte Carlo on the
two-parameter model f = w1 w2 in the three regimes of 1 - beta = C eta^gamma."""

import dataclasses
import functools
import math

import jax
import numpy as np
import pytest

import hdsgd
from hdsgd import LabelNoiseMomentum, compare, predict, simulate
from hdsgd.odes import momentum as th

# Separated timescales (gamma = 1/2 < 2/3): tau_2 / tau_1 ~ 13, S ~ 5e-3.
SEPARATED = dict(step_size=2.2e-3, exponent=0.5, constant=0.05 / 2.2e-3**0.5, label_noise=0.5)
# Critical scaling gamma = 2/3 at the critical-damping constant C* = (4 delta^2)^(1/3) (spec §7b).
CRITICAL = dict(step_size=1e-3, exponent=2.0 / 3.0, constant=0.711, label_noise=0.3)
# Ballistic (gamma = 0.85 > 2/3): under-damped motion along the manifold.
BALLISTIC = dict(step_size=1e-3, exponent=0.85, constant=1.0, label_noise=0.15)

OBS = ("manifold_coordinate", "trace_hessian", "train_loss", "distance_to_flattest")


def _grid(horizon, n=28):
    return np.unique(np.concatenate([[0, 1, 3, 10], np.geomspace(20, horizon, n).round()]))


@functools.lru_cache(maxsize=None)
def _mc(name, horizon, seeds, key):
    setup = LabelNoiseMomentum(**globals()[name])
    return simulate(setup, horizon, key=jax.random.PRNGKey(key), seeds=seeds,
                    times=_grid(horizon), progress=False)


def _theory(name, horizon, method, **kw):
    setup = LabelNoiseMomentum(**globals()[name])
    return predict(setup, horizon, times=_grid(horizon), method=method, **kw)


# ----------------------------------------------------------------- the three regimes
def test_separated_regime_recursion_matches_monte_carlo():
    mc = _mc("SEPARATED", 8000, 1000, 1)
    agreement = compare(_theory("SEPARATED", 8000, "recursion"), mc, OBS, t_min=1)
    assert agreement.ok(sem_tol=5.0), agreement.summary()
    # the drift really happened: s went from 1 to ~0.04
    assert mc.mean()["manifold_coordinate"][-1] < 0.1
    # mutation: doubling delta^2 (a missing 1/2 in the drift and in S) is rejected
    setup = LabelNoiseMomentum(**SEPARATED)
    wrong = predict(dataclasses.replace(setup, label_noise=setup.label_noise * math.sqrt(2)),
                    8000, times=_grid(8000))
    assert compare(wrong, mc, "manifold_coordinate", t_min=1)["manifold_coordinate"].max_sem_gap > 20


def test_separated_regime_first_order_flow():
    """The leading-order flow (§3a) is right up to the O(tau_1) start-up shift; a flow whose
    rate has (1 - beta) instead of (1 - beta)^2 is far off."""
    setup = LabelNoiseMomentum(**SEPARATED)
    mc = _mc("SEPARATED", 8000, 1000, 1).mean()
    late = mc.time >= 1000
    s_mc = mc["manifold_coordinate"][late]
    flow = th.flow_closed_form(setup, mc.time[late])
    assert np.max(np.abs(flow - s_mc)) < 0.05
    rate_wrong = setup.step_size**2 * setup.noise_var / setup.one_minus_beta
    wrong = 0.5 * np.arcsinh(np.sinh(2.0) * np.exp(-rate_wrong * mc.time[late]))
    assert np.max(np.abs(wrong - s_mc)) > 0.3


def test_critical_regime_sde_matches_and_closure_does_not():
    """At gamma = 2/3 with one normal mode the energy noise is O(1) (§3b): the reduced SDE
    agrees with the Monte Carlo, its deterministic closure and the uniform recursion decay
    too fast in the tail (spec §7b)."""
    mc = _mc("CRITICAL", 3000, 2000, 2)
    sde = _theory("CRITICAL", 3000, "sde", paths=2000, key=jax.random.PRNGKey(7))
    agreement = compare(sde, mc, ("manifold_coordinate", "trace_hessian", "train_loss",
                                  "distance_to_flattest"), t_min=300)
    assert agreement.ok(sem_tol=5.0), agreement.summary()
    for method in ("closure", "recursion"):
        gap = compare(_theory("CRITICAL", 3000, method), mc, "manifold_coordinate", t_min=300)
        assert gap["manifold_coordinate"].max_sem_gap > 8, method


def test_ballistic_regime_sde_matches_monte_carlo():
    mc = _mc("BALLISTIC", 3000, 2000, 3)
    sde = _theory("BALLISTIC", 3000, "sde", paths=2000, key=jax.random.PRNGKey(8))
    agreement = compare(sde, mc, ("manifold_coordinate", "trace_hessian", "train_loss",
                                  "distance_to_flattest"), t_min=400)
    assert agreement.ok(sem_tol=5.0), agreement.summary()
    gap = compare(_theory("BALLISTIC", 3000, "recursion"), mc, "manifold_coordinate", t_min=400)
    assert gap["manifold_coordinate"].max_sem_gap > 8


# ----------------------------------------------------------------- closed forms
def test_closed_form_first_order_flow():
    """diffrax + retraction in the ambient coordinates reproduces sinh 2s_k = sinh 2s_0 e^{-rk}."""
    setup = LabelNoiseMomentum(step_size=1e-2, momentum=0.9, label_noise=1.0, initial_coordinate=1.3)
    steps = np.array([0.0, 50, 200, 500, 1000, 2000])
    w, ok = th.flow_ambient(setup, steps)
    w = np.asarray(w)
    assert bool(ok)
    np.testing.assert_allclose(w[:, 0] * w[:, 1], 1.0, atol=1e-9)  # stays on the manifold
    s = 0.5 * np.log(w[:, 0] / w[:, 1])
    np.testing.assert_allclose(s, th.flow_closed_form(setup, steps), rtol=1e-6, atol=1e-9)
    # rate eta^2 delta^2 / (1 - beta)^2: at k = (1-beta)^2/(eta^2 delta^2) sinh 2s dropped by e
    k = setup.one_minus_beta**2 / (setup.step_size**2 * setup.noise_var)
    assert math.isclose(np.sinh(2 * th.flow_closed_form(setup, [k])[0]), np.sinh(2.6) / math.e,
                        rel_tol=1e-12)


def test_stationary_loss():
    """From the flattest point the loss is stationary at 1/2 lambda S(lambda) (spec §6a)."""
    # reference number of the spec: E(w1 w2 - 1)^2 = 0.1005 at eta=.01, beta=.9, delta=1, s=0
    ref = LabelNoiseMomentum(step_size=0.01, momentum=0.9, label_noise=1.0, initial_coordinate=0.0)
    assert abs(2 * th.stationary_train_loss(ref) - 0.1005) < 5e-5
    setup = LabelNoiseMomentum(step_size=2e-3, momentum=0.9, label_noise=1.0, initial_coordinate=0.0)
    times = np.arange(300, 901, 10)
    mc = simulate(setup, 900, key=jax.random.PRNGKey(4), seeds=2000, times=times, progress=False)
    per_seed = mc["train_loss"].mean(axis=1)  # time average per seed, then over seeds
    mean, sem = per_seed.mean(), per_seed.std(ddof=1) / np.sqrt(per_seed.size)
    leading = th.stationary_train_loss(setup)
    assert abs(mean - leading) < 0.03 * leading + 4 * sem
    assert abs(mean - 2 * leading) > 20 * sem  # the spec's "lambda S" is twice the loss
    theory = predict(setup, 900, times=times)["train_loss"].mean()
    assert abs(mean - theory) < 4 * sem


def test_timescales_and_regime():
    setup = LabelNoiseMomentum(**CRITICAL)
    ts = th.timescales(setup)
    omb = setup.one_minus_beta
    assert math.isclose(ts["tau_2"], omb**2 / (setup.step_size**2 * setup.noise_var * 4.0))
    assert math.isclose(ts["tau_1"], max(omb / (2 * setup.step_size), 2 / omb))
    assert math.isclose(ts["optimal_constant"], (4 * 0.09) ** (1 / 3))
    assert th.regime(setup) == "critical"
    assert th.regime(LabelNoiseMomentum(**SEPARATED)) == "separated"
    assert th.regime(LabelNoiseMomentum(**BALLISTIC)) == "ballistic"
    # along the family, tau_2 / tau_1 grows as eta -> 0 only below 2/3
    def ratio(gamma, eta):
        return th.timescales(LabelNoiseMomentum(step_size=eta, exponent=gamma, constant=1.0,
                                                label_noise=0.3))["ratio"]
    assert ratio(0.5, 1e-5) > 10 * ratio(0.5, 1e-3)
    assert ratio(0.8, 1e-5) < ratio(0.8, 1e-3)


def test_gap_shrinks_as_step_size_decreases():
    """The small parameter is eta: the first-order flow's gap to the Monte Carlo, at the same
    fraction of tau_2 along 1 - beta = C eta^(1/2), shrinks as eta decreases."""
    gaps = []
    for eta in (8e-3, 2e-3):
        setup = LabelNoiseMomentum(step_size=eta, exponent=0.5, constant=1.0, label_noise=0.5)
        unit = setup.one_minus_beta**2 / (setup.step_size**2 * setup.noise_var)
        times = np.round(np.array([0.5, 1.0, 1.5]) * unit)
        mc = simulate(setup, times[-1], key=jax.random.PRNGKey(5), seeds=400, times=times,
                      progress=False).mean()
        gaps.append(np.max(np.abs(mc["manifold_coordinate"] - th.flow_closed_form(setup, times))))
    assert gaps[1] < 0.6 * gaps[0], gaps


# ----------------------------------------------------------------- input checks
@pytest.mark.parametrize("field, value", [
    ("step_size", 0.0), ("step_size", float("nan")), ("momentum", 1.0), ("momentum", -0.1),
    ("label_noise", -1.0), ("batch_size", 0), ("initial_coordinate", 8.0), ("model", "mlp"),
])
def test_bad_field_raises_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        LabelNoiseMomentum(**{field: value})


def test_scaling_pair_and_replace():
    with pytest.raises(ValueError, match="exponent"):
        LabelNoiseMomentum(exponent=0.5)
    with pytest.raises(ValueError, match="constant"):
        LabelNoiseMomentum(step_size=0.01, exponent=0.5, constant=20.0)  # 1 - beta = 2
    setup = LabelNoiseMomentum(step_size=1e-3, exponent=2 / 3, constant=0.5)
    assert math.isclose(setup.one_minus_beta, 0.005)
    moved = dataclasses.replace(setup, step_size=8e-3)  # re-validates, moves along the family
    assert math.isclose(moved.one_minus_beta, 0.5 * 8e-3 ** (2 / 3))
    with pytest.raises(ValueError, match="step_size"):
        dataclasses.replace(setup, step_size=-1.0)
    direct = LabelNoiseMomentum(momentum=0.95)
    assert direct.exponent is None and math.isclose(direct.one_minus_beta, 0.05)


def test_bad_options_and_divergence_flag():
    setup = LabelNoiseMomentum(step_size=0.01, momentum=0.9)
    with pytest.raises(TypeError):
        predict(setup, 10, tolerance=1e-3)
    with pytest.raises(ValueError, match="method"):
        predict(setup, 10, method="euler")
    with pytest.raises(ValueError, match="horizon"):
        predict(setup, -1)
    with pytest.raises(ValueError, match="paths"):
        predict(setup, 10, method="sde", paths=0)
    # beyond the transverse stability edge eta trH < 2(1 + beta): flagged, never NaN
    unstable = LabelNoiseMomentum(step_size=0.6, momentum=0.0, initial_coordinate=0.5)
    curve = predict(unstable, 50)
    assert curve.diverged[-1] and np.all(np.isinf(curve["trace_hessian"][curve.diverged]))
    mc = simulate(unstable, 50, key=jax.random.PRNGKey(0), seeds=4, progress=False)
    assert mc.diverged[:, -1].all()
    assert not np.isnan(mc["manifold_coordinate"]).any()


def test_registered_for_the_cli():
    system = hdsgd.SYSTEMS["momentum"]
    assert system.time_unit == "step" and system.methods[0] == "recursion"
    built = system.build(step_size=1e-3, exponent=2 / 3, constant=0.711)
    assert built.exponent == 2 / 3 and math.isclose(built.one_minus_beta, 0.711e-2)
    curve = predict(built, 100)
    assert set(curve.names) == set(OBS) and curve.time_unit == "step"
    assert curve.meta["regime"] == "critical"
