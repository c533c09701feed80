"""Input checks of the public helpers of `hdsgd.proxlinear`: every bad argument raises a
ValueError of the form "name=value is invalid; allowed: ...", before any computation, and
valid calls give the numbers the unchecked internals give."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd import proxlinear as P
from hdsgd.odes.proxlinear import _floor, _grid, _map

SETUP = P.ProxLinearSensing(dim_left=20, dim_right=30, batch_size=10, noise_std=0.1)
QUIET = SETUP.replace(noise_std=0.0)
#: a small rule, so that the valid calls below compile quickly
RULE = P.polar_rule(n_radial=12, n_angles=4)
G1, G2, W = RULE
NAN_W = W.copy()
NAN_W[3] = np.nan
KEY = jax.random.key(0)
GRID = dict(batch_sizes=[10], step_sizes=[1.0], noise_stds=[0.1])

BAD_RULES = [
    "nope", 3.0, (G1, G2), (G1, G2, W, W), (G1, G2, W[:-1]),
    (G1[:, None], G2[:, None], W[:, None]), ([], [], []), (G1, G2, -W), (G1, G2, 2.0 * W),
    (G1, G2, np.where(np.arange(W.size) == 0, -1e-3, W + 1e-3 / W.size)),
    (G1.astype(str), G2, W),
]


def _map_grid(**k):
    return P.map_grid(SETUP, **{**GRID, "steps": 2, "rule": RULE, **k})


def _floor_grid(**k):
    return P.floor_grid(SETUP, **{**GRID, "burn_in": 2, "rule": RULE, **k})


def _noise_floor(**k):
    return P.noise_floor(SETUP, **{"burn_in": 2, "rule": RULE, "polish_rule": RULE, **k})


def _random_state(**k):
    return P.random_initial_state(**{**dict(dim_left=5, dim_right=6, error_sq=0.5, key=KEY),
                                     **k})


CASES = [
    # polar_rule
    *[(lambda v: P.polar_rule(n_radial=v), "n_radial", v)
      for v in ["abc", np.nan, 0, 1, -3, 2.5, 2**40, 10**6, None, True]],
    *[(lambda v: P.polar_rule(n_angles=v), "n_angles", v)
      for v in ["abc", np.nan, 0, 6, -4, 2.5, 2**40, None, False]],
    (lambda v: P.polar_rule(n_angles=v, quadrant=False), "n_angles", 0),
    (lambda v: P.polar_rule(n_angles=v, quadrant=False, n_radial=10), "n_angles", 10**6),
    *[(lambda v: P.polar_rule(u_min=v), "u_min", v)
      for v in ["abc", np.nan, -np.inf, None, -1e4, 7.0, 1e12, True]],
    *[(lambda v: P.polar_rule(u_max=v), "u_max", v)
      for v in ["abc", np.nan, np.inf, None, 7.0, 1e12, -22.0, -30.0]],
    (lambda v: P.polar_rule(u_min=1.0, u_max=v, n_radial=1000), "u_max", 1.0 + 1e-15),
    *[(lambda v: P.polar_rule(quadrant=v), "quadrant", v)
      for v in ["abc", np.nan, 1, 0, 2.5, None]],
    # gauss_hermite_rule
    *[(lambda v: P.gauss_hermite_rule(v), "n", v)
      for v in ["abc", np.nan, 0, -1, 2.5, 2**40, 400, None, True]],
    # map_grid
    *[(lambda v: P.map_grid(v, **GRID, steps=2), "setup", v)
      for v in [None, "abc", 1.0, P.SIMULATE_METHODS]],
    *[(lambda v: _map_grid(batch_sizes=v), "batch_sizes", v)
      for v in ["abc", None, [], [0], [-10], [2.5], [np.nan], [2.0**40], [[10]], 10]],
    *[(lambda v: _map_grid(step_sizes=v), "step_sizes", v)
      for v in ["abc", None, [], [0.0], [-1.0], [np.nan], [np.inf], [1.0, 2.0], 1.0]],
    *[(lambda v: _map_grid(noise_stds=v), "noise_stds", v)
      for v in ["abc", None, [-0.1], [np.nan], [np.inf], [0.1, 0.2]]],
    *[(lambda v: _map_grid(steps=v), "steps", v)
      for v in ["abc", None, np.nan, -1, 2.5, True, 2**40, 10**8, [], [1, 0], [0.5], [-1],
                [2**31], [0, np.inf], [[0, 1]]]],
    *[(lambda v: _map_grid(rule=v), "rule", v) for v in BAD_RULES],
    # floor_grid
    (lambda v: P.floor_grid(v, **GRID), "setup", None),
    (lambda v: _floor_grid(batch_sizes=v), "batch_sizes", [0]),
    (lambda v: _floor_grid(step_sizes=v), "step_sizes", [1.0, 2.0]),
    (lambda v: _floor_grid(noise_stds=v), "noise_stds", [-1.0]),
    *[(lambda v: _floor_grid(burn_in=v), "burn_in", v)
      for v in ["abc", None, np.nan, -1, 2.5, True, 2**40]],
    *[(lambda v: _floor_grid(starts=v), "starts", v)
      for v in ["abc", 1.0, [1.0, 2.0, 3.0], [[1.0, 0.5, 1.0, 0.5]] * 2,
                [[1.0, 0.5, 1.0]]]],
    *[(lambda v: _floor_grid(rule=v), "rule", v) for v in BAD_RULES[:4]],
    # noise_floor
    (lambda v: P.noise_floor(v), "setup", "abc"),
    *[(lambda v: _noise_floor(burn_in=v), "burn_in", v)
      for v in ["abc", np.nan, -1, 2.5, True, 2**40]],
    *[(lambda v: _noise_floor(rule=v), "rule", v) for v in BAD_RULES[:4]],
    *[(lambda v: _noise_floor(polish_rule=v), "polish_rule", v) for v in BAD_RULES[:4]],
    (lambda v: P.noise_floor(QUIET, rule=v), "rule", "nope"),  # checked without noise too
    # local_rate
    (lambda v: P.local_rate(v), "setup", None),
    *[(lambda v: P.local_rate(SETUP, rule=RULE, eps=v), "eps", v)
      for v in ["abc", None, np.nan, np.inf, -1.0, 0.0, 1e-30, 0.5, 2.5, True]],
    *[(lambda v: P.local_rate(SETUP, rule=v), "rule", v)
      for v in [*BAD_RULES[:4], (G1, G2, NAN_W)]],
    # default_method
    *[(lambda v: P.default_method(v), "setup", v) for v in [None, "abc", 3]],
    # random_initial_state
    *[(lambda v: _random_state(dim_left=v), "dim_left", v)
      for v in ["abc", None, np.nan, 2, 2.5, True, 2**40]],
    *[(lambda v: _random_state(dim_right=v), "dim_right", v) for v in [None, 0, 10**9]],
    *[(lambda v: _random_state(error_sq=v), "error_sq", v) for v in [None, np.nan, 0.0, 1.0]],
    *[(lambda v: _random_state(key=v), "key", v)
      for v in [None, 0, "abc", jax.random.split(KEY)]],
    # error_sq_of_state
    *[(lambda v: P.error_sq_of_state(v), "state", v)
      for v in ["abc", "abcd", np.nan, None, True, 2**40, (1.0, 2.0, 3.0),
                (1.0, 2.0, 3.0, 4.0, 5.0), ("a", "b", "c", "d"), (None, 1.0, 1.0, 1.0),
                (1.0, [1.0, 2.0], [1.0, 2.0, 3.0], 1.0), (1j, 1.0, 1.0, 1.0),
                (True, 1.0, 1.0, 1.0), (10**400, 1.0, 1.0, 1.0), np.zeros((3, 2))]],
]


@pytest.mark.parametrize("call, parameter, value", CASES,
                         ids=[f"{i}-{c[1]}" for i, c in enumerate(CASES)])
def test_bad_input_raises(call, parameter, value):
    with pytest.raises(ValueError, match=rf"^{parameter}=.* is invalid; allowed: "):
        call(value)


def test_valid_calls_give_the_same_numbers(monkeypatch):
    """Each function on a valid call equals its unchecked internals (or the formula its
    docstring states), and numpy, list and jnp inputs give the same numbers."""
    # polar_rule: the trapezoid in u = log(R^2/2) times midpoint angles, normalised
    u = np.linspace(-22.0, 3.6, 172)
    wu = (u[1] - u[0]) * np.exp(u - np.exp(u))
    wu[[0, -1]] *= 0.5
    theta = ((np.arange(48) + 0.5) * (2.0 * np.pi / 48))[:12]
    radius = np.sqrt(2.0 * np.exp(u))
    w = np.repeat(wu / 12, 12)
    expected = ((radius[:, None] * np.cos(theta)).ravel(),
                (radius[:, None] * np.sin(theta)).ravel(), w / w.sum())
    for got in (P.polar_rule(), P.polar_rule(np.int64(172), 48.0, np.float64(-22.0), 3.6,
                                             np.True_)):
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
    full = P.polar_rule(n_radial=12, n_angles=6, quadrant=False)
    assert full[0].size == 72 and abs(full[2].sum() - 1.0) < 1e-14
    # gauss_hermite_rule: the flattened tensor rule
    from hdsgd._numerics import gauss_hermite
    x, wx = gauss_hermite(5)
    g1, g2, gw = P.gauss_hermite_rule(5)
    np.testing.assert_array_equal(g1, np.repeat(x, 5))
    np.testing.assert_array_equal(g2, np.tile(x, 5))
    np.testing.assert_array_equal(gw, np.outer(wx, wx).ravel())
    # map_grid: the batched map of the internal driver, whatever the input types
    params = _grid.grid_params(SETUP, [10, 20], [1.0, 2.0], [0.1, 0.0])
    with jax.enable_x64(True):
        records = _grid.grid_records(SETUP, params, np.arange(3), RULE)
    states, good = P.map_grid(SETUP, [10, 20], [1.0, 2.0], [0.1, 0.0], 2, rule=RULE)
    np.testing.assert_array_equal(states, _map.states_of(records))
    np.testing.assert_array_equal(good, records["status"] == 0)
    again, _ = P.map_grid(SETUP, np.array([10.0, 20.0]), jnp.array([1.0, 2.0]),
                          (0.1, 0.0), jnp.arange(3), rule=tuple(a.tolist() for a in RULE))
    np.testing.assert_array_equal(again, states)
    # floor_grid, noise_floor, local_rate: their compiled kernels (stubbed: they take ~10 s
    # to compile; their numbers are tested in test_proxlinear.py) get the arguments they got
    # before the checks, and what they return comes back
    calls = {}

    def stub(name, result):
        def kernel(*args):
            calls.setdefault(name, []).append(args)
            return result(*args)
        return kernel

    def floors(params, starts, rule):
        return np.asarray(params).sum(axis=1) + np.asarray(starts).sum(axis=1) ** 2

    def padded(a):  # the floor kernel's batches of 16 settings
        return np.concatenate([a, np.repeat(a[-1:], 16 - len(a), axis=0)])

    def same_rule(rule):
        for a, b in zip(rule, RULE):
            assert a.dtype == np.float64
            np.testing.assert_array_equal(np.asarray(a), b)

    end = np.array([0.9, 0.1, 0.95, 0.2])  # the map's state after the burn-in
    monkeypatch.setattr(_floor, "_floors", stub("floors", floors))
    monkeypatch.setattr(_floor, "run_map", stub("map", lambda *a: ({"status": [0]}, (end,))))
    monkeypatch.setattr(_floor, "_local_rate_jit",
                        stub("rate", lambda params, rule, eps: np.sum(params) + eps))
    got = P.floor_grid(SETUP, [10, 20], [1.0, 2.0], [0.1, 0.0], burn_in=2, rule=RULE)
    np.testing.assert_array_equal(got, floors(padded(params), padded(states[:, -1]), RULE)
                                  [:2] * [1.0, 0.0])
    np.testing.assert_array_equal(got, P.floor_grid(SETUP, jnp.array([10, 20]), (1.0, 2.0),
                                                    np.array([0.1, 0.0]),
                                                    starts=states[:, -1], rule=RULE))
    one = _grid.grid_params(SETUP, [10], [1.0], [0.1])
    assert P.noise_floor(SETUP, burn_in=2, rule=RULE, polish_rule=RULE) == floors(
        padded(one), padded(end[None]), RULE)[0]
    (start, map_params, steps, rule), = calls["map"]
    assert start == SETUP.initial_state and map_params == _map.map_params(SETUP)
    assert list(steps) == [2] and type(steps[0]) is int
    for rule in [rule] + [args[2] for args in calls["floors"]]:
        same_rule(rule)
    assert P.noise_floor(QUIET) == 0.0 and len(calls["map"]) == 1
    quiet = np.asarray(_map.map_params(SETUP, noise_std=0.0))
    assert P.local_rate(SETUP, rule=RULE, eps=1e-6) == quiet.sum() + 1e-6
    (params, rule, eps), = calls["rate"]
    np.testing.assert_array_equal(np.asarray(params), quiet)
    same_rule(rule)
    assert eps.dtype == np.float64 and float(eps) == 1e-6
    # default_method: the ODE when m <= d/100
    assert P.default_method(SETUP) == "map"
    assert P.default_method(P.ProxLinearSensing(dim_left=1000, dim_right=3000,
                                                batch_size=10)) == "ode"
    # random_initial_state: mu0 = mu* + tau u at the asked error, u from the key
    state = P.random_initial_state(5, 6, 0.5, KEY)
    assert abs(P.error_sq_of_state(state) - 0.5) < 1e-12
    u = np.asarray(jax.random.normal(jax.random.split(KEY)[0], (5,)), dtype=np.float64)
    c1 = u[0] / np.linalg.norm(u)
    tau = (state[0] - 1.0) / c1
    np.testing.assert_allclose(state[1], tau * np.sqrt(1.0 - c1**2), rtol=1e-12)
    assert P.random_initial_state(5.0, np.int64(6), np.float64(0.5), KEY) == state
    # error_sq_of_state: (|mu|^2)(|nu|^2) - 2 a1 a2 + 1, for numbers, arrays, under jit
    s = np.array([[0.7, 1.0, 2.0], [0.6, 0.0, 1.0], [0.8, 1.0, -1.0], [0.5, 0.0, 3.0]])
    expanded = (s[0] ** 2 + s[1] ** 2) * (s[2] ** 2 + s[3] ** 2) - 2 * s[0] * s[2] + 1
    np.testing.assert_allclose(P.error_sq_of_state(s), expanded, rtol=1e-14, atol=1e-15)
    first = P.error_sq_of_state(tuple(float(c) for c in s[:, 0]))
    assert type(first) is float and first == P.error_sq_of_state(s)[0]
    np.testing.assert_allclose(np.asarray(jax.jit(P.error_sq_of_state)(jnp.asarray(s))),
                               expanded, rtol=1e-6)
    with np.errstate(invalid="ignore"):  # a diverged (non-finite) state has a non-finite E^2
        assert np.isnan(P.error_sq_of_state((np.nan, 0.5, 1.0, 0.5)))


@pytest.mark.parametrize("grid", [False, True])
def test_predict_refuses_a_map_horizon_past_its_int32_step_counter(grid):
    # 2^40 steps gave a JAX while_loop type error (the map's failure step is int32)
    setup = hdsgd.ProxLinearSensing(dim_left=50, dim_right=50, batch_size=10, noise_std=0.1)
    with pytest.raises(ValueError, match=r"^horizon=.* is invalid for method='map': .* allowed: "
                                         r"at most 2147483646 steps"):
        if grid:
            hdsgd.predict_grid(setup, {"step_size": np.array([0.5, 1.0])}, 2.0**40)
        else:
            hdsgd.predict(setup, 2.0**40, method="map")
