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
