"""Bad arguments to the public functions of `hdsgd.momentum` raise a ValueError that names the
parameter, its value and the allowed range, before any JAX work; valid calls keep their
numbers."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd import LogRange, momentum
from hdsgd.curve import finish_curve
from hdsgd.momentum import (InnerProductMomentum, MatrixSensingMomentum,
                            TwoParameterMomentum)

NAN = float("nan")
TWO = TwoParameterMomentum(step_size=0.01, momentum=0.9, label_noise=0.5, initial_coordinate=0.3)
FAMILY = TwoParameterMomentum(step_size=1e-3, exponent=2 / 3, constant=0.7)
INNER = InnerProductMomentum(step_size=0.01, momentum=0.9, dim=4)
SENSING = MatrixSensingMomentum(dim=4)
LSTSQ = hdsgd.StreamingLeastSquares("power_law:10:1.0", noise_std=0.1, step_size=1.0)
SPACE = LogRange(0.3, 1.0, 5)


def _curve(seeds=8):
    """A synthetic two-parameter Monte Carlo Curve (seeds = None: a theory Curve)."""
    rng = np.random.default_rng(0)
    t = np.arange(0.0, 200.0, 10.0)
    s = 0.3 * np.exp(-t / 50.0) + 0.05 * rng.standard_normal((seeds or 1, t.size))
    s = s if seeds else s[0]
    obs = {k: s if k == "manifold_coordinate" else np.abs(s) for k in TWO.observable_names}
    return finish_curve(TWO, t, obs, method="sgd" if seeds else "recursion", samples=t,
                        seeds=seeds)


CURVE = _curve()


def _ttt(**kw):
    return momentum.time_to_target(**{"setup": TWO, "target": 0.1, **kw})


def _settle(**kw):
    return momentum.settling_time(**{"time": np.arange(5.0), "values": np.ones(5),
                                     "level": 0.5, **kw})


def _cases():
    methods = ("abc", NAN, None, True, 0)
    counts = ("abc", NAN, math.inf, 2.5, True, 1, 0, -1, 10**6 + 1, 2**40)
    setups = (None, "abc", 2.5, LSTSQ)
    return [
        # the scan ranges: any method was accepted, num=2.5 became 2, num=1 was LogRange's error
        *[(lambda v: momentum.damping_range(TWO, method=v), "method", v) for v in methods],
        *[(lambda v: momentum.constant_range(FAMILY, method=v), "method", v) for v in methods],
        *[(lambda v: momentum.damping_range(TWO, num=v), "num", v) for v in counts],
        *[(lambda v: momentum.constant_range(FAMILY, num=v), "num", v) for v in (2.5, 1, math.inf)],
        *[(lambda v: momentum.damping_range(v), "setup", v) for v in (*setups, SENSING)],
        *[(lambda v: momentum.constant_range(v), "setup", v) for v in (*setups, SENSING, INNER)],
        # common_dt
        *[(lambda v: momentum.common_dt(v, "constant", SPACE), "setup", v)
          for v in (*setups, SENSING)],
        *[(lambda v: momentum.common_dt(FAMILY, v, SPACE), "name", v) for v in (None, "bogus", 3)],
        *[(lambda v: momentum.common_dt(FAMILY, "constant", v), "space", v)
          for v in (None, "abc", (0.3, 1.0))],
        *[(lambda v: momentum.common_dt(FAMILY, "constant", SPACE, v), "method", v)
          for v in (*methods, "recursion")],
        # one-Setup functions
        *[(lambda v: momentum.critical_step_size(v), "setup", v) for v in setups],
        *[(lambda v: momentum.timescales(v), "setup", v) for v in (*setups, SENSING)],
        *[(lambda v: momentum.regime(v), "setup", v) for v in setups],
        *[(lambda v: momentum.matrix_sensing_problem(v), "setup", v) for v in (*setups, TWO)],
        *[(lambda v: momentum.regime(TWO, tolerance=v), "tolerance", v)
          for v in ("abc", None, NAN, math.inf, -1, -1e-9, [0.1])],
        *[(lambda v: momentum.stationary_train_loss(v), "setup", v) for v in (*setups, SENSING)],
        *[(lambda v: momentum.stationary_train_loss(TWO, v), "s", v)
          for v in ("abc", None, NAN, math.inf, 2**40, 5.5, -6.0, [0.1])],
        # the flow's closed form: the two-parameter model; steps are times >= 0
        *[(lambda v: momentum.flow_closed_form(v, [0.0, 1.0]), "setup", v)
          for v in (*setups, SENSING, INNER)],
        *[(lambda v: momentum.flow_closed_form(TWO, v), "steps", v)
          for v in (NAN, None, -1, True, "abc", [0.0, math.inf], [0.0, -1.0], [[1.0, NAN]],
                    np.array([0, 1, 2]) > 0)],
        # the time to target
        *[(lambda v: momentum.time_to_target(v), "setup", v) for v in setups],
        *[(lambda v: _ttt(target=v), "target", v) for v in ("abc", NAN, math.inf, 0, -1, True)],
        *[(lambda v: _ttt(method=v), "method", v) for v in methods],
        (lambda v: momentum.time_to_target(INNER, 0.1, method=v), "method", "recursion"),
        (lambda v: momentum.time_to_target(SENSING, 0.5, method=v), "method", "sde"),
        *[(lambda v: _ttt(method="recursion", horizon=v), "horizon", v)
          for v in ("abc", NAN, 0, -1, True, 2**40)],
        *[(lambda v: _ttt(bogus=v), "bogus", v) for v in (1, None)],
        *[(lambda v: _ttt(method="sde", key=v), "key", v)
          for v in (0, "abc", jax.random.split(jax.random.key(0), 2))],
        *[(lambda v: _ttt(method="sde", paths=v), "paths", v) for v in (2.5, 0, 2**40, 10**5)],
        *[(lambda v: _ttt(method="sde", points=v), "points", v) for v in (0, None, 10**7)],
        *[(lambda v: _ttt(method="sde", horizon=100, dt=v), "dt", v) for v in ("abc", 0, 1e-30)],
        (lambda v: _ttt(method="recursion", paths=v), "paths", 10),
        (lambda v: momentum.time_to_target(SENSING, 0.5, key=v), "key", jax.random.key(0)),
        (lambda v: momentum.time_to_target(SENSING, 0.5, horizon=v), "horizon", 2**40),
        (lambda v: momentum.time_to_target(SENSING, 0.5, points=v), "points", 2.5),
        # without label noise the default horizon is infinite (was 'horizon=4e+302 is invalid')
        (lambda v: momentum.time_to_target(SENSING.replace(label_noise=0.0), 0.5, horizon=v),
         "horizon", None),
        # its objective for tune: checked at construction, not at the first candidate
        *[(lambda v: momentum.time_objective(v), "target", v) for v in ("abc", NAN, 0, -1)],
        *[(lambda v: momentum.time_objective(0.1, method=v), "method", v)
          for v in ("abc", NAN, True, 0, 2.5, [1.0])],
        *[(lambda v: momentum.time_objective(0.1, horizon=v), "horizon", v) for v in ("abc", -1)],
        (lambda v: momentum.time_objective(0.1, paths=v), "paths", 2.5),
        (lambda v: momentum.time_objective(0.1, bogus=v), "bogus", 1),
        # the settling time
        *[(lambda v: _settle(time=v), "time", v)
          for v in ("abc", None, np.arange(5.0)[::-1], -np.arange(5.0), [0, 1, NAN, 3, 4],
                    np.zeros((5, 1)), [])],
        *[(lambda v: _settle(values=v), "values", v)
          for v in (np.ones(4), np.ones((5, 2)), "abcde", None, [])],
        *[(lambda v: _settle(level=v), "level", v)
          for v in ("abc", None, NAN, math.inf, -1, 0, [0.5, 0.5])],
        # measured from a Monte Carlo Curve
        *[(lambda v: momentum.measured_time_to_target(v), "curve", v)
          for v in (None, "abc", _curve(None))],
        *[(lambda v: momentum.measured_time_to_target(CURVE, v), "target", v)
          for v in ("abc", NAN, 0, -1, [1.0])],
        *[(lambda v: momentum.measured_time_to_target(CURVE, resamples=v), "resamples", v)
          for v in ("abc", NAN, 2.5, None, True, 1, 0, -1, 2**40)],
        *[(lambda v: momentum.measured_time_to_target(CURVE, seed=v), "seed", v)
          for v in ("abc", NAN, 2.5, None, -1, 2**40)],
    ]


CASES = _cases()


@pytest.mark.parametrize("call, name, value", CASES,
                         ids=[f"{i}-{c[1]}={str(c[2])[:20]}" for i, c in enumerate(CASES)])
def test_bad_input_is_a_named_value_error(call, name, value):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}=.* is invalid; allowed: "):
        call(value)


def _valid():
    """Valid calls of every public function (the reference values below were computed by
    these same calls on the code before the input checks, commit 1c4d311)."""
    return {
        "damping_range": momentum.damping_range(TWO, method="sde", num=5),
        "constant_range": momentum.constant_range(FAMILY),
        "constant_range_num": momentum.constant_range(FAMILY, method="flow", num=4.0),
        "common_dt": momentum.common_dt(INNER, "damping",
                                        LogRange(0.05, 0.2, 3), "closure"),
        "critical_two": momentum.critical_step_size(TWO),
        "critical_family": momentum.critical_step_size(FAMILY),
        "flow": momentum.flow_closed_form(TWO, np.arange(0, 1001, 200)).tolist(),
        "regime": (momentum.regime(TWO), momentum.regime(FAMILY),
                   momentum.regime(TWO, tolerance=0.5), momentum.regime(SENSING)),
        "loss": momentum.stationary_train_loss(TWO, 0.3),
        "timescales": momentum.timescales(INNER),
        "ttt_recursion": momentum.time_to_target(TWO, 0.1, method="recursion"),
        "ttt_flow": momentum.time_to_target(INNER, 0.1, method="flow"),
        "ttt_start": momentum.time_to_target(TWO, 2.5, method="flow"),
        "objective": momentum.time_objective(0.1, method="flow")(TWO),
        "settle": momentum.settling_time(np.arange(6.0), [4, 3, 0.5, 2, 0.5, 0.2], 1.0),
        "measured": momentum.measured_time_to_target(CURVE, 0.1, resamples=20, seed=3),
        "problem": float(np.sum(momentum.matrix_sensing_problem(SENSING)["u0"])),
    }


EXPECTED = {  # LogRange as (low, high, num)
    "damping_range": (0.005801986042015974, 0.37132710668902236, 5),
    "constant_range": (0.08892233261225158, 5.691029287184101, 61),
    "constant_range_num": (0.08892233261225158, 5.691029287184101, 4),
    "common_dt": 0.25,
    "critical_two": 1.6027463064814327,
    "critical_family": 0.4262263931446985,
    "flow": [0.3, 0.18857267184080673, 0.11606083520961921, 0.07079155871354509,
             0.04302771952440277, 0.026117975026306594],
    "regime": ("separated", "critical", "critical", "separated"),
    "loss": 0.01491135148350562,
    "timescales": {"tau_1": 20.000000000000004, "tau_2": 277.77777777777766,
                   "ratio": 13.88888888888888, "stationary_variance": 0.0045238095238095246,
                   "overdamped": False, "optimal_constant": 0.7113786608980126},
    "ttt_recursion": 467.7945541808775,
    "ttt_flow": 3981.2641274271464,
    "ttt_start": 0.0,
    "objective": 460.50020549139737,
    "settle": 3.6666666666666665,
    "measured": (73.92694296432187, 10.673188503465063),
    "problem": 1.1802405139884269,
}


def test_valid_calls_keep_their_numbers():
    got = _valid()
    for name, want in EXPECTED.items():
        value = got[name]
        if isinstance(value, LogRange):
            value = (value.low, value.high, value.num)
        assert value == want, name


def test_array_inputs_numpy_jnp_and_lists_agree():
    steps = [0.0, 10.0, 250.5, 1000.0]
    ref = momentum.flow_closed_form(TWO, np.asarray(steps))
    np.testing.assert_array_equal(momentum.flow_closed_form(TWO, jnp.asarray(steps)), ref)
    np.testing.assert_array_equal(momentum.flow_closed_form(TWO, steps), ref)
    assert momentum.flow_closed_form(TWO, 250.5) == ref[2]  # a scalar time
    t, values = np.arange(6.0), np.array([4, 3, 0.5, 2, 0.5, 0.2])
    ref = momentum.settling_time(t, values, 1.0)
    assert momentum.settling_time(jnp.asarray(t), jnp.asarray(values), jnp.asarray(1.0)) == ref
    assert momentum.settling_time(list(t), list(values), np.float32(1.0)) == ref
    # a diverged point (NaN or inf) counts as above the level: a documented result, not an error
    assert math.isinf(momentum.settling_time(t, [0.5, 0.5, 0.5, 0.5, 0.5, NAN], 1.0))
    assert momentum.settling_time(t, [math.inf, 0.5, 0.5, 0.5, 0.5, 0.5], 1.0) == 1.0


@pytest.mark.parametrize("model, options, name", [
    ("two", {}, "horizon"),                                   # the recursion: out of memory
    ("two", {"method": "sde", "paths": 2**30}, "paths"),     # paths x times kept at once
    ("two", {"method": "sde", "dt": 1e-30}, "dt"),           # Euler steps past diffrax's int32
    ("sensing", {}, "horizon"),                               # the closure, ~0.6 ms a step
])
def test_predict_refuses_runs_past_what_its_step_methods_hold(model, options, name):
    # predict at 2^40 steps: a JAX out-of-memory error (recursion), or a run for years (closure)
    setup = (hdsgd.TwoParameterMomentum(step_size=0.01, momentum=0.99) if model == "two"
             else hdsgd.MatrixSensingMomentum())
    horizon = 2.0**40 if name == "horizon" else 1e6
    with pytest.raises(ValueError, match=rf"^{name}=.* is invalid"):
        hdsgd.predict(setup, horizon, **options)
    if model == "two" and name == "horizon":  # the flow, an ODE, takes it
        assert hdsgd.predict(setup, horizon, method="flow").meta["method"] == "flow"
