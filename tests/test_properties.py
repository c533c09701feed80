"""Property-based tests over every Setup: random valid fields give finite or flagged-diverged
curves (never NaN), random invalid fields give a ValueError naming the field."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hdsgd

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
positive = st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)


def _check_curve(curve, seeds=None):
    """Finite where not diverged, +inf where diverged, never NaN; t = 0 finite."""
    for name, values in curve.observables.items():
        values = np.asarray(values)
        assert not np.isnan(values).any(), name
        div = curve.diverged_mask
        assert np.all(np.isfinite(values[~div])), name
        assert np.all(np.isinf(values[div])), name
        assert np.all(np.isfinite(values[..., 0])), name
    if curve.any_diverged and curve.seeds is None:
        assert "warning" in curve.meta


# ----------------------------------------------------------------- least squares
lstsq_valid = st.fixed_dictionaries({
    "eigenvalues": st.sampled_from(["power_law:20:1.0", "ramp:20:0.1:3", "3,2,1"]),
    "initial_error": st.floats(0.0, 10.0),
    "noise_std": st.floats(0.0, 3.0),
    "step_size": positive,
    "batch_size": st.sampled_from([1, 3, 64]),
    "momentum": st.floats(0.0, 0.99),
})


@SETTINGS
@given(fields=lstsq_valid)
def test_lstsq_valid_fields_give_finite_or_flagged_curves(fields):
    setup = hdsgd.StreamingLeastSquares(**fields)
    _check_curve(hdsgd.predict(setup, 2.0))
    _check_curve(hdsgd.simulate(setup, 0.5, key=jax.random.key(0), seeds=2, progress=False))


lstsq_invalid = st.one_of(
    st.tuples(st.just("step_size"), st.sampled_from([0.0, -1.0, math.nan, math.inf, "x", None])),
    st.tuples(st.just("batch_size"), st.sampled_from([0, -3, 1.5, math.nan, "2", True])),
    st.tuples(st.just("noise_std"), st.sampled_from([-0.1, math.inf, math.nan, "a"])),
    st.tuples(st.just("momentum"), st.sampled_from([-0.1, 1.0, 2.0, math.nan])),
    st.tuples(st.just("initial_error"), st.sampled_from([-1.0, math.nan, [1.0, 2.0]])),
    st.tuples(st.just("eigenvalues"), st.sampled_from([[], [1.0, -1.0], [0.0], "power_law",
                                                       "magic:10", [[1.0]]])),
)


@SETTINGS
@given(bad=lstsq_invalid)
def test_lstsq_invalid_fields_name_the_field(bad):
    name, value = bad
    with pytest.raises(ValueError, match=name):
        hdsgd.StreamingLeastSquares(**{name: value})
