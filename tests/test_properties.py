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
    """Finite where not diverged, +inf where diverged, never NaN; t = 0 finite (clocks, another
    reading of time, stay finite throughout)."""
    for name, values in curve.observables.items():
        if name in curve.meta.get("clocks", ()):
            assert np.all(np.isfinite(np.asarray(values))), name
            continue
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


# ----------------------------------------------------------------- the other four systems
# Each system: a strategy of valid fields (small dimensions, so a draw costs well under a second),
# a horizon in the system's time unit, and a strategy of (field, invalid value) pairs.
# Fewer draws for the systems whose every new shape compiles a new program (seconds each); the
# dimensions come from small sets so that draws share compilations.
SETTINGS_HEAVY = settings(SETTINGS, max_examples=5)


def _valid_then_run(setup, horizon, seeds=2):
    _check_curve(hdsgd.predict(setup, horizon))
    _check_curve(hdsgd.simulate(setup, horizon, key=jax.random.key(1), seeds=seeds,
                                progress=False))


spiked_valid = st.fixed_dictionaries({
    "dim": st.sampled_from([8, 32]),
    "spike": st.floats(0.0, 5.0),
    "link": st.sampled_from(["he2", "he3", "he2+he4", "he1"]),
    "student": st.sampled_from([None, "he2", "he3"]),
    "loss": st.sampled_from(["square", "correlation"]),
    "normalization": st.sampled_from(["none", "sphere", "covariance"]),
    "step_size": st.floats(1e-3, 50.0),
    "label_noise": st.floats(0.0, 2.0),
    "initial_overlap": st.one_of(st.floats(-0.3, 0.3), st.just("random")),
})


@SETTINGS_HEAVY
@given(fields=spiked_valid)
def test_spiked_valid_fields_give_finite_or_flagged_curves(fields):
    _valid_then_run(hdsgd.SpikedSingleIndex(**fields), 1.0)


spiked_invalid = st.one_of(
    st.tuples(st.just("dim"), st.sampled_from([0, 2, -5, 3.5, "x", None])),
    st.tuples(st.just("spike"), st.sampled_from([-0.5, math.nan, math.inf])),
    st.tuples(st.just("link"), st.sampled_from(["he9x", "", [], [math.nan, 1.0], 3])),
    st.tuples(st.just("loss"), st.sampled_from(["hinge", "", None])),
    st.tuples(st.just("normalization"), st.sampled_from(["ball", "", 1])),
    st.tuples(st.just("step_size"), st.sampled_from([0.0, -1.0, math.nan, math.inf])),
    st.tuples(st.just("label_noise"), st.sampled_from([-0.1, math.nan, math.inf])),
    st.tuples(st.just("initial_overlap"), st.sampled_from([1.5, -2.0, math.nan, "middle"])),
)


@SETTINGS
@given(bad=spiked_invalid)
def test_spiked_invalid_fields_name_the_field(bad):
    name, value = bad
    with pytest.raises(ValueError, match=name):
        hdsgd.SpikedSingleIndex(**{name: value})


proxlinear_valid = st.fixed_dictionaries({
    "dim_left": st.sampled_from([3, 20]),
    "dim_right": st.sampled_from([5, 20]),
    "batch_size": st.sampled_from([1, 7, 60]),
    "step_size": st.floats(1e-3, 1e3),
    "noise_std": st.floats(0.0, 2.0),
    "initial_state": st.tuples(st.floats(0.05, 2.0), st.floats(0.0, 2.0), st.floats(0.05, 2.0),
                               st.floats(0.0, 2.0)),
})


@SETTINGS_HEAVY
@given(fields=proxlinear_valid)
def test_proxlinear_valid_fields_give_finite_or_flagged_curves(fields):
    _valid_then_run(hdsgd.ProxLinearSensing(**fields), 8)


proxlinear_invalid = st.one_of(
    st.tuples(st.just("dim_left"), st.sampled_from([0, 2, -1, 4.5, "a"])),
    st.tuples(st.just("dim_right"), st.sampled_from([0, 2, math.nan, None])),
    st.tuples(st.just("batch_size"), st.sampled_from([0, -2, 1.5, True])),
    st.tuples(st.just("step_size"), st.sampled_from([0.0, -1.0, math.nan, math.inf])),
    st.tuples(st.just("noise_std"), st.sampled_from([-1.0, math.nan, math.inf])),
    st.tuples(st.just("initial_state"), st.sampled_from([(1.0, 1.0), (1.0, -1.0, 1.0, 1.0),
                                                         (0.0, 1.0, 1.0, 1.0),
                                                         (1.0, 1.0, math.nan, 1.0), "x"])),
)


@SETTINGS
@given(bad=proxlinear_invalid)
def test_proxlinear_invalid_fields_name_the_field(bad):
    name, value = bad
    with pytest.raises(ValueError, match=name):
        hdsgd.ProxLinearSensing(**{name: value})


grokking_valid = st.fixed_dictionaries({
    "dim": st.sampled_from([2, 8]),
    "n_samples": st.sampled_from([2, 5, 24]),
    "width": st.sampled_from([8, 64]),
    "output_scale": st.floats(0.05, 20.0),
    "quadratic_strength": st.floats(0.05, 2.0),
    "step_size": st.floats(1e-3, 10.0),
    "centered": st.booleans(),
    "data_seed": st.integers(0, 10),
})


@SETTINGS_HEAVY
@given(fields=grokking_valid)
def test_grokking_valid_fields_give_finite_or_flagged_curves(fields):
    _valid_then_run(hdsgd.GrokkingTwoLayer(**fields), 20)


grokking_invalid = st.one_of(
    st.tuples(st.just("dim"), st.sampled_from([0, -1, 2.5, "x"])),
    st.tuples(st.just("n_samples"), st.sampled_from([0, 1, -4, 1.5, None])),
    st.tuples(st.just("width"), st.sampled_from([0, -8, 2.5, "wide"])),
    st.tuples(st.just("output_scale"), st.sampled_from([0.0, -1.0, math.nan, math.inf])),
    st.tuples(st.just("quadratic_strength"), st.sampled_from([0.0, -0.5, math.nan])),
    st.tuples(st.just("step_size"), st.sampled_from([0.0, -1.0, math.nan, math.inf])),
    st.tuples(st.just("data_seed"), st.sampled_from([-1, 1.5, "s"])),
)


@SETTINGS
@given(bad=grokking_invalid)
def test_grokking_invalid_fields_name_the_field(bad):
    name, value = bad
    with pytest.raises(ValueError, match=name):
        hdsgd.GrokkingTwoLayer(**{name: value})


momentum_common = {
    "step_size": st.floats(1e-3, 0.2),
    "momentum": st.floats(0.0, 0.99),
    "label_noise": st.floats(0.0, 1.0),
}
momentum_valid = st.one_of(
    st.tuples(st.just(hdsgd.TwoParameterMomentum), st.fixed_dictionaries({
        **momentum_common, "batch_size": st.integers(1, 8),
        "initial_coordinate": st.floats(-2.0, 2.0)})),
    st.tuples(st.just(hdsgd.InnerProductMomentum), st.fixed_dictionaries({
        **momentum_common, "batch_size": st.integers(1, 8),
        "initial_coordinate": st.floats(-2.0, 2.0), "dim": st.sampled_from([4, 16]),
        "initial_cosine": st.floats(0.05, 0.95)})),
    st.tuples(st.just(hdsgd.MatrixSensingMomentum), st.fixed_dictionaries({
        **momentum_common, "dim": st.just(3), "rank": st.just(1),
        "init_scale": st.floats(0.2, 2.0), "data_seed": st.integers(0, 5)})),
)


@SETTINGS_HEAVY
@given(drawn=momentum_valid)
def test_momentum_valid_fields_give_finite_or_flagged_curves(drawn):
    cls, fields = drawn
    _valid_then_run(cls(**fields), 60)


momentum_invalid = st.one_of(
    st.tuples(st.just("step_size"), st.sampled_from([0.0, -0.1, math.nan, math.inf])),
    st.tuples(st.just("momentum"), st.sampled_from([-0.1, 1.0, 1.5, math.nan])),
    st.tuples(st.just("exponent"), st.sampled_from([0.0, -1.0, 5.0, math.nan])),
    st.tuples(st.just("constant"), st.sampled_from([0.0, -2.0, math.nan])),
    st.tuples(st.just("label_noise"), st.sampled_from([-0.3, math.nan, math.inf])),
    st.tuples(st.just("batch_size"), st.sampled_from([0, -1, 2.5])),
    st.tuples(st.just("initial_coordinate"), st.sampled_from([6.0, -9.0, math.nan])),
)


@SETTINGS
@given(bad=momentum_invalid, cls=st.sampled_from([hdsgd.TwoParameterMomentum,
                                                  hdsgd.InnerProductMomentum]))
def test_momentum_invalid_fields_name_the_field(bad, cls):
    name, value = bad
    fields = {name: value}
    if name in ("exponent", "constant"):   # the pair is set together
        fields = {"exponent": 1.0, "constant": 1.0, name: value}
    with pytest.raises(ValueError, match=name):
        cls(**fields)
