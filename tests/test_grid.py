"""Grids of settings predicted as one vmapped theory (least squares), chunked by memory, equal
to the per-point predictions they replace."""

import numpy as np
import pytest

import hdsgd
from hdsgd.odes.lstsq import _predict as lstsq_predict


def _per_point(setup, grid, horizon):
    n = len(next(iter(grid.values())))
    return [hdsgd.predict(setup.replace(**{k: v[g] for k, v in grid.items()}), horizon,
                          method="recursion") for g in range(n)]


@pytest.mark.parametrize("grid", [
    {"step_size": np.array([0.5, 2.0, 6.0])},
    {"momentum": np.array([0.0, 0.3, 0.8]), "step_size": np.array([1.0, 1.0, 0.4])},
    {"batch_size": np.array([1, 4, 2]), "noise_std": np.array([0.0, 0.3, 0.1])},
])
def test_lstsq_grid_is_the_per_point_recursion(grid, monkeypatch):
    setup = hdsgd.StreamingLeastSquares("power_law:64:1.0", noise_std=0.2, step_size=1.0,
                                        momentum=0.5 if "momentum" not in grid else 0.0)
    expected = _per_point(setup, grid, 5.0)
    got = hdsgd.predict_grid(setup, grid, 5.0)
    # a memory budget of one setting per chunk: three chunks, the same numbers
    monkeypatch.setattr(lstsq_predict, "GRID_MEMORY", 1)
    chunked = hdsgd.predict_grid(setup, grid, 5.0)
    for e, g, c in zip(expected, got, chunked):
        np.testing.assert_allclose(g["risk"], e["risk"], rtol=1e-12)
        np.testing.assert_allclose(c["risk"], g["risk"], rtol=1e-12)  # vector width: rounding
        assert g.meta["critical_step_size"] == e.meta["critical_step_size"]
        assert g.meta.get("warning") == e.meta.get("warning")


def test_lstsq_grid_chunks_are_powers_of_two_within_the_memory_budget():
    chunk = lstsq_predict.grid_chunk
    assert chunk(1000, 2000, 500, False) == 1024          # 2.5e6 values: one chunk
    big = chunk(1000, 10**6, 10**4, True)
    assert big & (big - 1) == 0 and big * (10**6 + 1 + 3 * 10**4) <= lstsq_predict.GRID_MEMORY
    assert chunk(1000, 10**9, 10, False) == 1               # never below one setting
    assert chunk(3, 100, 10, False) == 4                    # never above the grid's power of two
    assert chunk(1000, 2000, 500, True, cap=8) == 8         # the CPU's cache-sized cap


@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_stacked_rows_are_what_the_built_curves_hold(momentum):
    """A least-squares grid comes back stacked: every row read without a Curve
    (`CurveGrid.values`, what `tune` scores) equals the Curve built from it, observables,
    samples and divergence included, at a stable point, one past the stability edge, one at a
    second batch size and noise level, and a setting that fails validation; each objective
    scores both readings alike."""
    setup = hdsgd.StreamingLeastSquares("power_law:48:1.0", noise_std=0.2, step_size=1.0,
                                        momentum=momentum)
    gamma_c = hdsgd.lstsq.critical_step_size(setup)
    grid = {"step_size": np.array([0.3 * gamma_c, 1.2 * gamma_c, -1.0, 0.9 * gamma_c]),
            "batch_size": np.array([1, 1, 1, 4]), "noise_std": np.array([0.2, 0.2, 0.2, 0.0])}
    curves = hdsgd.predict_grid(setup, grid, 6.0)
    assert isinstance(curves, hdsgd.CurveGrid) and len(curves) == 4 and curves[2] is None
    assert curves.values(2, "risk") is None
    # scoring reads rows: no Curve is built for it
    target = 0.3 * (setup.initial_risk - 0.5 * setup.noise_var)  # reached by the stable rows
    objectives = [hdsgd.samples_to_target(target), hdsgd.steps_to_target(target, settle=True),
                  hdsgd.value_at_budget(samples=100), hdsgd.value_at_budget(steps=50,
                                                                             observable="risk")]
    scores = [[o.score(curves.values(g, o.observable)) for g in (0, 1, 3)] for o in objectives]
    assert "0 built" in repr(curves)
    for g in (0, 1, 3):
        curve = curves[g]
        assert curves[g] is curve  # built once
        one = hdsgd.predict(setup.replace(**{k: v[g] for k, v in grid.items()}), 6.0,
                            method="recursion")
        np.testing.assert_array_equal(curve.samples, one.samples)
        np.testing.assert_array_equal(curve.diverged, one.diverged)
        for name in ("risk", "excess_risk"):
            np.testing.assert_allclose(curve[name], one[name], rtol=1e-12)
            row = curves.values(g, name)
            np.testing.assert_array_equal(row.values, curve[name])
            np.testing.assert_array_equal(row.samples, curve.samples)
            np.testing.assert_array_equal(row.steps, curve.time * setup.dim)
    assert curves[1].any_diverged and not curves[0].any_diverged
    assert not np.isfinite(curves.values(1, "risk").values[1:]).any()
    for o, row in zip(objectives, scores):
        assert row == [o(curves[g]) for g in (0, 1, 3)]
        assert np.isfinite(row[0]) and row[1] == np.inf


def test_a_grid_predicted_point_by_point_reads_the_same_way():
    """The loop fallback (a field the vmapped recursion does not take) returns a CurveGrid of
    built Curves with the same `values` reading."""
    setup = hdsgd.StreamingLeastSquares("power_law:32:1.0", noise_std=0.2, step_size=1.0)
    curves = hdsgd.predict_grid(setup, {"initial_error": np.array([1.0, 2.0])}, 2.0)
    assert isinstance(curves, hdsgd.CurveGrid) and "2 built" in repr(curves)
    row = curves.values(1, "excess_risk")
    np.testing.assert_array_equal(row.values, curves[1]["excess_risk"])
    assert row.values[0] > curves.values(0, "excess_risk").values[0]
    with pytest.raises(ValueError, match="observable='nope' is not in the curve"):
        curves.values(0, "nope")


def test_grid_columns_accept_and_cast_exactly_what_the_setups_do():
    """`api.grid_columns` validates a least-squares grid value by value with the checks
    `__init__` runs (`grid_checks`), without a Setup per point: on awkward values (integral
    floats for the batch, 4.5, zero, negatives, nan, inf, past 1e30, text, momentum at 1) it
    accepts, rejects and casts exactly as `grid_setups` (one Setup per point) does."""
    from hdsgd.api import grid_columns, grid_setups
    setup = hdsgd.StreamingLeastSquares("power_law:16:1.0", noise_std=0.2, step_size=1.0)
    awkward = [1, 4.0, np.float32(2.0), 4.5, 0, -1, 0.3, np.nan, np.inf, 1e31, 2**40, "2", 1.0 - 1e-16]
    for name in ("step_size", "batch_size", "noise_std", "momentum"):
        grid = {name: np.array(awkward, dtype=object)}
        valid, columns = grid_columns(setup, grid)
        setups = grid_setups(setup, grid)
        assert valid.tolist() == [s is not None for s in setups], name
        assert 0 < valid.sum() < len(awkward), name
        kind = "i" if isinstance(getattr(setup, name), int) else "f"
        assert columns[name].dtype.kind == kind, (name, columns[name].dtype)
        for g, s in enumerate(setups):
            if s is not None:
                assert columns[name][g] == getattr(s, name), (name, awkward[g], columns[name][g])
    # a field with no independent check (the spectrum) is left to grid_setups
    assert grid_columns(setup, {"initial_error": np.array([1.0, 2.0])}) is None
    assert grid_columns(hdsgd.SpikedSingleIndex(), {"step_size": np.array([0.1])}) is None


def test_a_long_horizon_grid_takes_the_closed_form_as_predict_does(monkeypatch):
    # 3e6 steps at d = 50: past RECURSION_WORK mode-steps and 160 d steps, so `predict` takes
    # the spectral solution. The grid ran the recursion anyway (109 s for three settings at
    # 2e8 steps), and past ~2^31 steps its psi at every step aborted the process inside XLA.
    setup = hdsgd.StreamingLeastSquares("power_law:50:1.0", noise_std=0.1, step_size=1.0)
    grid = {"step_size": np.array([0.1, 1.0])}

    def no_recursion(*args, **kwargs):
        raise AssertionError("the grid ran the recursion")

    monkeypatch.setattr(lstsq_predict, "grid_psi", no_recursion)
    got = hdsgd.predict_grid(setup, grid, 6e4)
    for g, gamma in zip(got, grid["step_size"]):
        expected = hdsgd.predict(setup.replace(step_size=gamma), 6e4)
        assert g.meta["method"] == expected.meta["method"] == "spectral"
        np.testing.assert_allclose(g["risk"], expected["risk"], rtol=1e-12)


@pytest.mark.parametrize("how", ["recursion", "schedule", "exact_steps", "grid"])
def test_the_recursion_refuses_more_steps_than_it_can_hold(how):
    setup = hdsgd.StreamingLeastSquares("power_law:50:1.0", noise_std=0.1, step_size=1.0)
    horizon = 2.0 * lstsq_predict.RECURSION_MAX_STEPS / setup.dim
    limit = rf"allowed: at most {lstsq_predict.RECURSION_MAX_STEPS} steps"
    with pytest.raises(ValueError, match=rf"^horizon=.* is invalid for .*{limit}"
                       if how != "exact_steps" else r"^exact_steps=.* is invalid"):
        if how == "recursion":
            hdsgd.predict(setup, horizon, method="recursion")
        elif how == "schedule":
            hdsgd.predict(setup.replace(step_size=hdsgd.Schedule([1.0, 0.5], [100])), horizon)
        elif how == "exact_steps":
            hdsgd.predict(setup, horizon, method="ode",
                          exact_steps=lstsq_predict.RECURSION_MAX_STEPS + 1)
        else:
            hdsgd.predict_grid(setup, {"step_size": np.array([0.5, 1.0])}, horizon,
                               method="recursion")
