"""spiked single-index model: limit ODEs (docs/spiked.md, "The limit ODEs") against full-d
Monte Carlo; divergence, input checks, the command line and compile-once."""

import dataclasses
import math

import jax
import numpy as np
import pytest

import hdsgd
from hdsgd.spiked import SpikedSingleIndex

CASES = {
    # (N), correlation loss, k = 3 (the docs' He3 instance)
    "N_he3": dict(spike=4.0, link="he3", loss="correlation", normalization="covariance",
                  step_size=0.05, initial_overlap=0.15, horizon=2.0),
    # (S), correlation loss, k = 2, a step where the O(c^2) term matters
    "S_he2": dict(spike=1.0, link="he2", loss="correlation", normalization="sphere",
                  step_size=0.5, initial_overlap=0.3, horizon=1.0),
    # (P), square loss, k = 2, label noise of variance 0.1
    "P_he2": dict(spike=1.0, link="he2", loss="square", normalization="none",
                  step_size=0.2, label_noise=math.sqrt(0.1), initial_overlap=0.3, horizon=1.0),
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
    assert not mc.diverged.any() and not theory.diverged.any()
    assert "warning" not in theory.meta
    agreement = hdsgd.compare(theory, mc, ("overlap", "orthogonal_norm_sq", "risk"), t_min=0.05)
    assert agreement.ok(sem_tol=4.0), agreement.summary()
    if name != "N_he3":
        # mutation: without the O(c^2) Ito/normalisation term the Monte Carlo rejects the ODE
        bad = hdsgd.compare(hdsgd.predict(setup, horizon, correction_scale=0.0), mc,
                            ("overlap", "orthogonal_norm_sq"), t_min=0.05)
        assert max(a.max_sem_gap for a in bad.observables.values()) > 10.0, bad.summary()
    # the prediction moves: a constant curve would not pass
    assert max(abs(theory[k][-1] - theory[k][0]) for k in ("overlap", "orthogonal_norm_sq")) > 0.1


def _blow_up_setup(step_size):
    # (P), square loss, He2: dq/dt ~ c^2 E[G^2] grows like q^3, a finite-time blow-up
    return SpikedSingleIndex(dim=400, spike=1.0, link="he2", loss="square", normalization="none",
                             step_size=step_size, label_noise=math.sqrt(0.1), initial_overlap=0.3)


def _check_diverged(curve):
    """inf (never NaN) from the first diverged time on, the finite known start at t = 0."""
    flags = np.atleast_2d(curve.diverged)
    assert flags[:, -1].all() and not flags[:, 0].any()
    assert np.array_equal(flags, np.maximum.accumulate(flags, axis=1))
    for name in curve.names:
        values = np.atleast_2d(curve[name])
        assert not np.isnan(values).any()
        assert np.isinf(values[flags]).all() and np.isfinite(values[~flags]).all()
    assert curve.time[0] == 0.0 and "diverged" in curve.meta["warning"]


def test_blow_up_is_flagged_not_nan():
    # c = 1: the ODE blows up near t = 0.05; the prediction stops there (rate event) and every
    # curve reports it through `diverged`, with inf (never NaN) values from then on.
    setup = _blow_up_setup(1.0)
    theory = hdsgd.predict(setup, 0.5)
    _check_diverged(theory)
    for method in hdsgd.spiked.SIMULATE_METHODS:
        _check_diverged(hdsgd.simulate(setup, 0.5, key=jax.random.key(0), seeds=8, method=method,
                                       progress=False))
    first = theory.time[theory.diverged.argmax()]
    assert 0.02 < first < 0.1, first
    # the same setup at a small step is stable (no false alarm)
    assert not hdsgd.predict(dataclasses.replace(setup, step_size=0.2), 0.5).diverged.any()


def test_immediate_blow_up_keeps_the_initial_state_at_t0():
    # a step so large that the ODE leaves every scale within the first output interval: t = 0
    # still reports the known start (never inf), everything after it is inf
    setup = _blow_up_setup(1e6)
    theory = hdsgd.predict(setup, 0.5)
    _check_diverged(theory)
    assert theory.diverged[1]
    start = SpikedSingleIndex(**{**_fields(setup), "step_size": 0.1})
    assert theory["risk"][0] == pytest.approx(hdsgd.predict(start, 0.5)["risk"][0], rel=1e-14)


def _fields(setup):
    return {f.name: getattr(setup, f.name) for f in dataclasses.fields(setup)}


def test_bad_input_names_the_field():
    for field, value in [("dim", 2), ("spike", -1.0), ("step_size", 0.0), ("label_noise", -0.1),
                         ("loss", "hinge"), ("normalization", "batch"), ("link", "relu"),
                         ("link", [1.0]), ("link", "he0"), ("student", "he"),
                         ("initial_overlap", 1.5), ("initial_overlap", "zero")]:
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
    with pytest.raises(ValueError, match="unknown option"):
        hdsgd.predict(setup, 1.0, tolerance=1e-3)
    with pytest.raises(ValueError, match="method"):
        hdsgd.simulate(setup, 1.0, key=jax.random.key(0), method="exact")
    with pytest.raises(ValueError, match="unknown option"):
        hdsgd.simulate(setup, 1.0, key=jax.random.key(0), sampler="chain")
    with pytest.raises(ValueError, match="normalization"):
        hdsgd.spiked.critical_step_size(SpikedSingleIndex(normalization="none"))
    with pytest.raises(ValueError, match="threshold"):
        hdsgd.spiked.escape_time(setup, threshold=-1.0)


def test_link_names_and_exponents():
    s = SpikedSingleIndex(link="he2+he4")
    assert (s.information_exponent, s.degree) == (2, 4)
    np.testing.assert_allclose(s.link, [0, 0, 1 / np.sqrt(2), 0, 1 / np.sqrt(2)])
    assert s.fields()["link_name"] == "he2+he4" and s.fields()["student_name"] == "he2+he4"
    s = SpikedSingleIndex(link=[0.0, 0.5, 0.0, 0.5])
    assert (s.information_exponent, s.degree) == (1, 3)
    assert s.fields()["link"] == [0.0, 0.5, 0.0, 0.5] and s.fields()["link_name"] is None
    # a replaced Setup keeps its link (and so its name)
    assert SpikedSingleIndex(link="he3").replace(step_size=0.2).fields()["link_name"] == "he3"


def _plain_linear(step_size, label_noise=2.0):
    # (P), square loss, linear link and student: least squares in the limit, with
    # dq/dt = -c (2 - c) q + c^2 ((1 - a)^2 + Delta): the edge is c = 2
    return SpikedSingleIndex(dim=2000, spike=1.0, link="he1", loss="square", normalization="none",
                             step_size=step_size, label_noise=label_noise, initial_overlap=0.0)


def test_label_noise_is_a_standard_deviation():
    # the risk's floor is label_noise^2 / 2
    clean = SpikedSingleIndex(dim=200, label_noise=0.0)
    th0, th1 = hdsgd.predict(clean, 0.5), hdsgd.predict(clean.replace(label_noise=0.5), 0.5)
    assert th1["risk"][0] - th0["risk"][0] == pytest.approx(0.125, rel=1e-12)
    # the Monte Carlo draws the noise with the same meaning: q settles at
    # c ((1 - a)^2 + Delta) / (2 - c) = 3 Delta at c = 1.5, a -> 1; Delta = 4 at label_noise = 2,
    # and a draw of variance 2 (label_noise read as a variance) would give half of it
    setup = _plain_linear(1.5)
    times = np.array([0.0, 2.5, 5.0, 10.0])
    theory = hdsgd.predict(setup, 10.0, times=times)
    assert theory["orthogonal_norm_sq"][-1] == pytest.approx(12.0, rel=1e-3)
    chain = hdsgd.simulate(setup, 10.0, key=jax.random.key(4), seeds=32, times=times,
                           method="chain", progress=False)
    good = hdsgd.compare(theory, chain, "orthogonal_norm_sq", t_min=1.0)
    assert good.ok(sem_tol=4.0), good.summary()
    variance = hdsgd.predict(setup.replace(label_noise=math.sqrt(2.0)), 10.0, times=times)
    bad = hdsgd.compare(variance, chain, "orthogonal_norm_sq", t_min=1.0, same_setup=False)
    assert bad["orthogonal_norm_sq"].max_sem_gap > 10.0, bad.summary()


def test_plain_variant_edge_for_a_linear_student_in_theory_and_chain():
    assert hdsgd.spiked.critical_step_size(_plain_linear(1.0)) == 2.0
    assert hdsgd.spiked.critical_step_size(SpikedSingleIndex(
        student=[0.3, 0.5], loss="square", normalization="none")) == pytest.approx(8.0)
    times = np.array([0.0, 10.0, 20.0])
    below, above = _plain_linear(1.8), _plain_linear(2.2)
    th_below, th_above = (hdsgd.predict(s, 20.0, times=times) for s in (below, above))
    assert "warning" not in th_below.meta
    assert "critical step size 2 " in th_above.meta["warning"]
    assert th_below["orthogonal_norm_sq"][-1] < 40.0 < 1e4 < th_above["orthogonal_norm_sq"][-1]
    for s, grows in ((below, False), (above, True)):
        q = hdsgd.simulate(s, 20.0, key=jax.random.key(5), seeds=8, times=times, method="chain",
                           progress=False)["orthogonal_norm_sq"]
        assert np.all(q[:, -1] > 1e4) if grows else np.all(q[:, -1] < 60.0), q[:, -1]


def test_cli_default_predict_is_the_default_setup(tmp_path):
    from hdsgd.cli import SYSTEMS, main

    out = tmp_path / "spiked.npz"
    assert main(["spiked", "predict", "--out", str(out)]) == 0
    curve = hdsgd.Curve.load(out)
    horizon = SYSTEMS["spiked"].default_horizon(SpikedSingleIndex())
    expected = hdsgd.predict(SpikedSingleIndex(), horizon)
    np.testing.assert_array_equal(curve.time, expected.time)
    for name in expected.names:
        np.testing.assert_allclose(curve[name], expected[name], rtol=1e-12)


def test_cli_reads_numbers_names_and_random(capsys):
    from hdsgd.cli import SYSTEMS, build_parser, main, setup_from

    parser = build_parser()
    args = parser.parse_args(["spiked", "predict", "--initial-overlap", "random", "--link",
                              "0,0.5,0,0.5", "--student", "he1+he3", "--label-noise", "0.5"])
    setup = setup_from(args, SYSTEMS["spiked"])
    assert setup.initial_overlap == "random" and setup.label_noise == 0.5
    np.testing.assert_allclose(setup.link, [0.0, 0.5, 0.0, 0.5])
    np.testing.assert_allclose(setup.student, [0.0, 1 / np.sqrt(2), 0.0, 1 / np.sqrt(2)])
    args = parser.parse_args(["spiked", "predict", "--initial-overlap", "0.2"])
    assert setup_from(args, SYSTEMS["spiked"]).initial_overlap == 0.2
    assert main(["spiked", "predict", "--initial-overlap", "zero"]) == 2
    assert "--initial-overlap" in capsys.readouterr().err


def test_repeated_calls_compile_nothing(count_compiles):
    setup = SpikedSingleIndex(dim=64, spike=1.0, link="he2", step_size=0.5, initial_overlap=0.2)
    key = jax.random.key(0)

    def calls(s, k):
        hdsgd.predict(s, 1.0)
        hdsgd.spiked.escape_time(s, threshold=0.5)
        hdsgd.spiked.critical_step_size(s)
        hdsgd.spiked.fixed_points(s)
        for method in hdsgd.spiked.SIMULATE_METHODS:
            hdsgd.simulate(s, 1.0, key=k, seeds=3, method=method, progress=False)
        hdsgd.spiked.escape_samples(s, key=k, seeds=3, threshold=0.5, max_samples=2000)

    calls(setup, key)
    with count_compiles() as compiles:
        calls(setup, jax.random.key(1))
        # changed numbers (step size, spike, label noise, start) are traced: nothing to compile
        calls(setup.replace(step_size=0.3, spike=2.0, label_noise=0.2, initial_overlap=0.1),
              jax.random.key(2))
    assert compiles() == 0


def test_demo_agrees_and_writes_a_figure(tmp_path):
    from hdsgd.cli import SYSTEMS

    demo = SYSTEMS["spiked"].demo(tmp_path, jax.random.key(0))
    assert demo.agreement.ok() and demo.figure.exists()
    assert demo.agreement.theory["overlap"][-1] > 0.5  # the demo shows the escape
