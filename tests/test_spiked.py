"""spiked single-index model: limit ODEs (spec spiked.md §4) against full-d Monte Carlo."""

import dataclasses

import jax
import numpy as np
import pytest

import hdsgd
from hdsgd import SpikedSingleIndex

CASES = {
    # (N), correlation loss, k = 3 (spec §7's instance)
    "N_he3": dict(spike=4.0, link="he3", loss="correlation", normalization="covariance",
                  step_size=0.05, initial_overlap=0.15, horizon=2.0),
    # (S), correlation loss, k = 2, a step where the O(c^2) term matters
    "S_he2": dict(spike=1.0, link="he2", loss="correlation", normalization="sphere",
                  step_size=0.5, initial_overlap=0.3, horizon=1.0),
    # (P), square loss, k = 2, label noise
    "P_he2": dict(spike=1.0, link="he2", loss="square", normalization="none",
                  step_size=0.2, label_noise=0.1, initial_overlap=0.3, horizon=1.0),
}


# the other variant/exponent pairs (slow: one more ODE and Monte Carlo compilation each)
MORE_CASES = {
    "S_he3": dict(spike=4.0, link="he3", loss="correlation", normalization="sphere",
                  step_size=0.05, initial_overlap=0.3, horizon=2.0),
    "N_he2": dict(spike=1.0, link="he2", loss="correlation", normalization="covariance",
                  step_size=0.5, initial_overlap=0.2, horizon=1.0),
}


def _setup(name, dim):
    kw = dict({**CASES, **MORE_CASES}[name])
    horizon = kw.pop("horizon")
    return SpikedSingleIndex(dim=dim, **kw), horizon


@pytest.mark.parametrize("name", list(CASES))
def test_ode_matches_full_monte_carlo(name):
    _check_agreement(name, 800)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES) + list(MORE_CASES))
def test_ode_matches_full_monte_carlo_larger_d(name):
    _check_agreement(name, 3200)


def _check_agreement(name, dim):
    setup, horizon = _setup(name, dim)
    theory = hdsgd.predict(setup, horizon)
    mc = hdsgd.simulate(setup, horizon, key=jax.random.key(1), seeds=24, progress=False)
    # (Agreement.ok does not fail on inf gaps: check divergence explicitly)
    assert not mc.diverged.any() and not theory.diverged.any()
    agreement = hdsgd.compare(theory, mc, ("overlap", "orthogonal_norm_sq", "risk"), t_min=0.05)
    assert agreement.ok(sem_tol=4.0), agreement.summary()
    if name != "N_he3":
        # mutation: without the O(c^2) Ito/normalisation term the Monte Carlo rejects the ODE
        bad = hdsgd.compare(hdsgd.predict(setup, horizon, correction_scale=0.0), mc,
                            ("overlap", "orthogonal_norm_sq"), t_min=0.05)
        assert max(a.max_sem_gap for a in bad.observables.values()) > 10.0, bad.summary()
    # the prediction moves: a constant curve would not pass
    assert max(abs(theory[k][-1] - theory[k][0]) for k in ("overlap", "orthogonal_norm_sq")) > 0.1


def test_blow_up_is_flagged_not_nan():
    # (P), square loss, He2, c = 1: dq/dt ~ c^2 E[G^2] grows like q^3, a finite-time blow-up
    # (near t = 0.05 in the ODE); the prediction stops there (rate event) and both curves
    # report it through `diverged`, with inf (never NaN) values from then on.
    setup = SpikedSingleIndex(dim=400, spike=1.0, link="he2", loss="square", normalization="none",
                              step_size=1.0, label_noise=0.1, initial_overlap=0.3)
    theory = hdsgd.predict(setup, 0.5)
    mc = hdsgd.simulate(setup, 0.5, key=jax.random.key(0), seeds=8, progress=False)
    for curve in (theory, mc):
        assert curve.diverged[..., -1].all()
        assert not np.isnan(curve["risk"]).any()
        assert np.isinf(curve["risk"][curve.diverged]).all()
        assert np.isfinite(curve["risk"][~curve.diverged]).all()
    first = theory.time[theory.diverged.argmax()]
    assert 0.02 < first < 0.1, first
    # the same setup at a small step is stable (no false alarm)
    assert not hdsgd.predict(dataclasses.replace(setup, step_size=0.2), 0.5).diverged.any()


def test_bad_input_names_the_field():
    for field, value in [("dim", 2), ("spike", -1.0), ("step_size", 0.0), ("label_noise", -0.1),
                         ("loss", "hinge"), ("normalization", "batch"), ("link", "relu"),
                         ("link", [1.0]), ("student", "he"), ("initial_overlap", 1.5),
                         ("initial_overlap", "zero")]:
        with pytest.raises(ValueError, match=field):
            SpikedSingleIndex(**{field: value})
    # for (N), ||w0||_Sigma = 1 bounds m0 by 1/sqrt(1+theta)
    with pytest.raises(ValueError, match="initial_overlap"):
        SpikedSingleIndex(spike=3.0, normalization="covariance", initial_overlap=0.6)
    setup = SpikedSingleIndex()
    with pytest.raises(ValueError, match="step_size"):
        dataclasses.replace(setup, step_size=-1.0)
    with pytest.raises(ValueError, match="method"):
        hdsgd.predict(setup, 1.0, method="euler")
    with pytest.raises(TypeError):
        hdsgd.predict(setup, 1.0, tolerance=1e-3)
    with pytest.raises(ValueError, match="method"):
        hdsgd.simulate(setup, 1.0, key=jax.random.key(0), method="exact")


def test_link_names_and_exponents():
    s = SpikedSingleIndex(link="he2+he4")
    assert (s.information_exponent, s.degree) == (2, 4)
    np.testing.assert_allclose(s.link, [0, 0, 1 / np.sqrt(2), 0, 1 / np.sqrt(2)])
    s = SpikedSingleIndex(link=[0.0, 0.5, 0.0, 0.5])
    assert (s.information_exponent, s.degree) == (1, 3)
    assert s.fields()["link"] == [0.0, 0.5, 0.0, 0.5]
