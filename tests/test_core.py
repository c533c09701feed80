"""Curve, compare, the precision policy, the tuner's objectives and the command line."""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd import Curve, spectra
from hdsgd.cli import main


def _mc_curve(seeds=50, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 11)
    vals = 1.0 + t[None, :] + 0.1 * rng.standard_normal((seeds, t.size))
    return Curve(time=t, observables={"risk": vals}, time_unit="t", samples=10 * t, seeds=seeds,
                 meta={"dim": 10})


def test_curve_statistics_and_interpolation():
    mc = _mc_curve()
    m, s = mc.mean(), mc.sem()
    np.testing.assert_allclose(m["risk"], mc["risk"].mean(0))
    np.testing.assert_allclose(s["risk"], mc["risk"].std(0, ddof=1) / np.sqrt(50))
    np.testing.assert_allclose(mc.quantile(0.5)["risk"], np.median(mc["risk"], 0))
    half = m.at([0.05, 0.5])
    np.testing.assert_allclose(half["risk"], [np.interp(0.05, m.time, m["risk"]), m["risk"][5]])
    with pytest.raises(ValueError, match="range"):
        m.at([2.0])
    with pytest.raises(ValueError, match="q="):
        mc.quantile(1.5)
    with pytest.raises(ValueError, match="shape"):
        Curve(time=[0, 1], observables={"x": [1, 2, 3]}, time_unit="t", samples=[0, 1])
    with pytest.raises(ValueError, match="time_unit"):
        Curve(time=[0, 1], observables={"x": [1, 2]}, time_unit="seconds", samples=[0, 1])


def test_save_load_round_trip_is_exact(tmp_path):
    setup = hdsgd.StreamingLeastSquares(spectra.ramp(30), noise_std=0.2, step_size=1.0)
    for curve in (hdsgd.predict(setup, 2.0),
                  hdsgd.simulate(setup, 2.0, key=jax.random.key(0), seeds=3, progress=False)):
        path = curve.save(tmp_path / "c.npz")
        back = Curve.load(path)
        np.testing.assert_array_equal(back.time, curve.time)
        np.testing.assert_array_equal(back.samples, curve.samples)
        for k in curve.names:
            np.testing.assert_array_equal(back[k], curve[k])
        np.testing.assert_array_equal(back.diverged, curve.diverged)
        assert back.seeds == curve.seeds and back.time_unit == curve.time_unit
        assert back.meta["version"] == hdsgd.__version__
        assert back.meta["step_size"] == 1.0 and back.meta["eigenvalues"] == setup.eigenvalues.tolist()


def test_compare_measures_gaps_in_standard_errors():
    mc = _mc_curve(seeds=400)
    exact = Curve(time=mc.time, observables={"risk": 1.0 + mc.time}, time_unit="t", samples=mc.samples)
    good = hdsgd.compare(exact, mc)
    assert good.ok(sem_tol=4.0) and good["risk"].max_sem_gap < 4.0
    shifted = Curve(time=mc.time, observables={"risk": 1.05 + mc.time}, time_unit="t", samples=mc.samples)
    bad = hdsgd.compare(shifted, mc)
    assert not bad.ok(sem_tol=4.0) and bad["risk"].max_sem_gap > 8.0
    assert abs(bad["risk"].max_abs_gap - 0.05) < 0.03
    # a diverged Monte Carlo run (inf) never passes, whatever the tolerances
    blown = np.array(mc["risk"])
    blown[3, 5:] = np.inf
    diverged_mc = Curve(time=mc.time, observables={"risk": blown}, time_unit="t",
                        samples=mc.samples, seeds=mc.seeds)
    with np.errstate(invalid="ignore"):  # inf - inf in the seed spread, on purpose
        broken = hdsgd.compare(exact, diverged_mc)
    assert not broken.ok(sem_tol=4.0)
    assert not broken.ok(sem_tol=None, abs_tol=1e9) and not broken.ok(sem_tol=None, rel_tol=1e9)
    with pytest.raises(ValueError, match="seed"):
        hdsgd.compare(exact, exact)
    with pytest.raises(ValueError, match="observable"):
        hdsgd.compare(exact, mc, "test_loss")


def test_compare_honours_where_the_theory_states_an_observable():
    """``meta["valid_from"]``: an observable the theory claims only from some time on is
    compared from there (and the summary says so); the others at every time."""
    mc = _mc_curve(seeds=400)
    late = float(mc.time[len(mc.time) // 2])
    # right after `late`, far off before it (a transient the theory does not claim)
    wrong_early = np.where(mc.time >= late, 1.0 + mc.time, 5.0 + mc.time)
    theory = Curve(time=mc.time, observables={"risk": wrong_early}, time_unit="t",
                   samples=mc.samples, meta={"valid_from": {"risk": late}})
    agreement = hdsgd.compare(theory, mc)
    assert agreement.ok() and agreement["risk"].time.min() >= late
    assert f"risk from t = {late:.4g}" in agreement.summary()
    # the same curve without the claim is compared everywhere, and fails
    unclaimed = Curve(time=mc.time, observables={"risk": wrong_early}, time_unit="t",
                      samples=mc.samples)
    assert not hdsgd.compare(unclaimed, mc).ok()
    # a claim past every compared time: an explicit request is refused, naming the observable
    never = Curve(time=mc.time, observables={"risk": wrong_early}, time_unit="t",
                  samples=mc.samples, meta={"valid_from": {"risk": 1e9}})
    with pytest.raises(ValueError, match="'risk' is claimed by the theory only from"):
        hdsgd.compare(never, mc, "risk")


def test_import_leaves_jax_precision_alone_and_theory_is_float64():
    # In a fresh interpreter: importing hdsgd does not flip JAX's global x64 switch, yet the
    # theory runs in float64 (it matches a numpy float64 recursion to 1e-13) and the Monte
    # Carlo follows its dtype option; the user's own arrays stay float32.
    code = """
import jax, jax.numpy as jnp, numpy as np
before = jax.config.jax_enable_x64
import hdsgd
assert jax.config.jax_enable_x64 == before == False
s = hdsgd.StreamingLeastSquares([2.0, 1.0, 0.5], initial_error=1.0, noise_std=0.3, step_size=0.3)
c = hdsgd.predict(s, 4.0, times=np.arange(13) / 3)
lam, rho = s.eigenvalues, s.initial_error.copy()
eta = s.step_size / 3
out = []
for k in range(13):
    psi = s.noise_var + lam @ rho
    out.append(0.5 * psi)
    rho = (1 - 2 * eta * lam + 2 * eta**2 * lam**2) * rho + eta**2 * lam * psi
assert c["risk"].dtype == np.float64
assert np.max(np.abs(c["risk"] / np.array(out) - 1)) < 1e-13
m = hdsgd.simulate(s, 1.0, key=jax.random.key(0), seeds=2, dtype=jnp.float64, progress=False)
assert m.meta["dtype"] == "float64"
assert jnp.zeros(1).dtype == jnp.float32 and not jax.config.jax_enable_x64
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "HDSGD_X64")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_objectives():
    t = np.array([0.0, 1.0, 2.0, 3.0])
    c = Curve(time=t, observables={"risk": np.array([1.0, 0.5, 0.25, 0.125])}, time_unit="step",
              samples=4 * t)
    assert hdsgd.steps_to_target(0.25, "risk")(c) == pytest.approx(2.0)
    assert hdsgd.samples_to_target(0.25, "risk")(c) == pytest.approx(8.0)
    # geometric interpolation between grid points
    assert hdsgd.steps_to_target(np.sqrt(0.5 * 0.25), "risk")(c) == pytest.approx(1.5)
    assert hdsgd.steps_to_target(0.01, "risk")(c) == np.inf
    assert hdsgd.value_at_budget(samples=6.0, observable="risk")(c) == pytest.approx(0.375)
    assert hdsgd.value_at_budget(samples=100.0, observable="risk")(c) == np.inf
    diverged = Curve(time=t, observables={"risk": np.array([1.0, 2.0, 0.1, 0.1])}, time_unit="step",
                     samples=t, diverged=np.array([False, True, True, True]))
    assert hdsgd.steps_to_target(0.2, "risk")(diverged) == np.inf
    with pytest.raises(ValueError, match="samples"):
        hdsgd.value_at_budget(samples=-1)
    # reaching a level from below (an overlap), and settling: an overshoot does not count
    rising = Curve(time=t, observables={"overlap": np.array([0.1, 0.6, 0.4, 0.7])},
                   time_unit="step", samples=t)
    assert hdsgd.steps_to_target(0.5, "overlap", reach="above")(rising) == pytest.approx(0.8)
    assert hdsgd.steps_to_target(0.5, "overlap", reach="above", settle=True)(rising) == \
        pytest.approx(2 + 1 / 3)
    assert hdsgd.steps_to_target(0.8, "overlap", reach="above", settle=True)(rising) == np.inf
    with pytest.raises(ValueError, match="reach"):
        hdsgd.steps_to_target(0.5, "overlap", reach="up")


def test_cli_predict_compare_and_errors(tmp_path, capsys):
    assert main(["lstsq", "predict", "--eigenvalues", "power_law:50", "--horizon", "1", "--out", str(tmp_path / "p.npz")]) == 0
    assert Curve.load(tmp_path / "p.npz").meta["dim"] == 50
    assert main(["lstsq", "compare", "--eigenvalues", "power_law:40", "--horizon", "1", "--seeds", "4",
                 "--plot", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "max gap/sem" in out
    assert main(["lstsq", "predict", "--step-size", "-1"]) == 2
    assert "step_size=-1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lstsq", "predict", "--help"])
    assert "--batch-size" in capsys.readouterr().out


def test_lstsq_demo_writes_a_figure(tmp_path):
    from hdsgd.cli import SYSTEMS
    demo = SYSTEMS["lstsq"].demo(tmp_path, jax.random.key(0))
    assert "standard errors" in demo.line and demo.agreement.ok()
    assert (tmp_path / "lstsq.png").exists()


def test_grid_over_an_executor_equals_the_loop():
    from concurrent.futures import ThreadPoolExecutor

    from hdsgd import predict_grid
    setup = hdsgd.StreamingLeastSquares(spectra.ramp(30), noise_std=0.2, step_size=1.0)
    grid = {"step_size": np.array([0.5, 1.0]), "initial_error": np.array([1.0, 2.0])}
    with ThreadPoolExecutor(2) as pool:
        pooled = predict_grid(setup, grid, 1.0, executor=pool)
    looped = predict_grid(setup, grid, 1.0)
    for a, b in zip(pooled, looped):
        np.testing.assert_array_equal(a["risk"], b["risk"])
    assert looped[1].meta["initial_error"][0] == pytest.approx(2.0 / 30)


def test_cli_tune_honours_every_flag(tmp_path, capsys):
    assert main(["lstsq", "tune", "--eigenvalues", "power_law:60", "--noise-std", "0",
                 "--horizon", "20", "--seeds", "4", "--objective", "steps_to_target",
                 "--plot", str(tmp_path / "t.png"), "--out", str(tmp_path / "t.npz")]) == 0
    out = capsys.readouterr().out
    assert "chosen step_size" in out and "Monte Carlo check" in out
    assert (tmp_path / "t.png").stat().st_size > 1000 and Curve.load(tmp_path / "t.npz")
    # a joint space and a sample budget
    assert main(["lstsq", "tune", "--eigenvalues", "power_law:60", "--space",
                 "step_size=1:30:log:4", "--space", "batch_size=1,4", "--objective",
                 "value_at_budget", "--budget", "600", "--seeds", "0"]) == 0
    assert "chosen step_size" in capsys.readouterr().out
    assert main(["lstsq", "tune", "--eigenvalues", "power_law:60", "--objective", "value_at_budget"]) == 2
    assert "budget" in capsys.readouterr().err
    assert main(["lstsq", "tune", "--target", "100"]) == 2
    assert "already met at the start" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lstsq", "tune", "--t-min", "1"])


@pytest.mark.parametrize("system", ["lstsq", "proxlinear", "grokking", "momentum"])
def test_cli_tune_names_an_unknown_observable(system, capsys):
    # checked from a t = 0 prediction before any grid is predicted (prox-linear's grid took
    # 30 s to reach the same error) and before a default target reads it (a KeyError
    # traceback from momentum's and grokking's)
    assert main([system, "tune", "--observable", "nope"]) == 2
    err = capsys.readouterr().err
    assert "observable='nope' is not in the curve" in err and "Traceback" not in err


def test_reading_a_missing_observable_names_what_there_is():
    curve = hdsgd.predict(hdsgd.StreamingLeastSquares("ramp:10", step_size=0.5), 1.0)
    for error in (KeyError, ValueError):  # mapping-style access and the bad-input convention
        with pytest.raises(error, match=r"observable='nope' is not in the curve; it has "
                                        r"\('risk', 'excess_risk'\)"):
            curve["nope"]


# ----------------------------------------------------------------- edges of the generic API
def _lstsq(**kw):
    return hdsgd.StreamingLeastSquares("ramp:30:0.5:1.5", **{"noise_std": 0.2, **kw})


@pytest.mark.parametrize("key", [0, "abc", None, jnp.zeros(3), jax.random.split(jax.random.key(0), 2)])
def test_bad_key_names_the_argument_and_says_how_to_make_one(key):
    with pytest.raises(ValueError, match=r"key=.*jax\.random\.key\(0\)"):
        hdsgd.simulate(_lstsq(), 1.0, key=key, seeds=2)


@pytest.mark.parametrize("seeds", [None, float("nan"), 0, -1, 2.5, True, "4"])
def test_bad_seeds(seeds):
    with pytest.raises(ValueError, match="seeds="):
        hdsgd.simulate(_lstsq(), 1.0, key=jax.random.key(0), seeds=seeds)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "four", 2**31])
def test_a_bad_integer_field_names_one_range_whatever_is_wrong(batch_size):
    # 0 and 2.5 used to name different ranges ("[1, 2147483647]" and ">= 1")
    with pytest.raises(ValueError, match=r"batch_size=.* is invalid; allowed: an integer in "
                                         r"\[1, 2147483647\]$"):
        _lstsq(step_size=0.1, batch_size=batch_size)


def _option_call(system, option, value):
    from hdsgd.odes.momentum import time_to_target
    if system == "momentum sde":
        setup = hdsgd.TwoParameterMomentum(step_size=0.01, momentum=0.99)
        return lambda: hdsgd.predict(setup, 10.0, method="sde", **{option: value})
    if system == "momentum target":
        setup = hdsgd.TwoParameterMomentum(step_size=0.01, momentum=0.99)
        return lambda: time_to_target(setup, 0.1, method="sde", **{option: value})
    if system == "sensing target":
        return lambda: time_to_target(hdsgd.MatrixSensingMomentum(), 0.1, **{option: value})
    setup = hdsgd.GrokkingTwoLayer(width=64)
    if system == "grokking dmft":
        return lambda: hdsgd.predict(setup, 1.0, method="dmft", **{option: value})
    return lambda: hdsgd.simulate(setup, 1.0, key=jax.random.key(0), seeds=2, **{option: value})


@pytest.mark.parametrize("system, option, value, allowed", [
    ("momentum sde", "paths", "abc", "an integer in"),  # was int()'s own message
    ("momentum sde", "paths", float("nan"), "an integer in"),
    ("momentum sde", "paths", 2**40, "an integer in"),  # was an out-of-memory JaxRuntimeError
    ("momentum sde", "dt", "abc", "a real number"),  # was a TypeError from np.isfinite
    ("momentum target", "paths", 2**40, "an integer in"),
    ("momentum target", "points", 0, "an integer in"),  # was accepted
    ("sensing target", "points", 2.5, "an integer in"),  # was accepted
    ("grokking simulate", "n_test", 2**40, "an integer in"),
    ("grokking simulate", "n_test", float("nan"), "an integer in"),
    ("grokking dmft", "dt", "abc", "a real number"),
    ("grokking dmft", "damping", 1.0, r"\[0.0, 1.0\)"),
    ("grokking dmft", "paths", 1, r"an integer in \[2, "),
    ("grokking dmft", "z_nodes", 2.5, "an integer in"),
])
def test_a_method_option_is_checked_before_jax_and_named(system, option, value, allowed):
    with pytest.raises(ValueError, match=rf"^{option}=.* is invalid; allowed: {allowed}"):
        _option_call(system, option, value)()


@pytest.fixture(scope="module")
def lstsq_pair():
    setup = _lstsq(step_size=0.5)
    return setup, hdsgd.predict(setup, 1.0), hdsgd.simulate(setup, 1.0, key=jax.random.key(0),
                                                            seeds=2, progress=False)


@pytest.mark.parametrize("call, name", [
    (lambda s, th, mc: hdsgd.samples_to_target(0.1, observable=None), "observable"),
    (lambda s, th, mc: hdsgd.steps_to_target(0.1, settle="yes"), "settle"),   # was truthy
    (lambda s, th, mc: hdsgd.value_at_budget(samples=10.0, observable=3), "observable"),
    (lambda s, th, mc: hdsgd.tune(s, {"step_size": [0.5]}, hdsgd.value_at_budget(samples=9.0),
                                  horizon=1.0, refine="no"), "refine"),
    (lambda s, th, mc: hdsgd.tune(s, {"step_size": [0.5]}, hdsgd.value_at_budget(samples=9.0),
                                  budget=True), "budget"),
    (lambda s, th, mc: hdsgd.predict(s, True), "horizon"),                    # was t = 1
    (lambda s, th, mc: hdsgd.batch_tradeoff(s, 0.1, 4, [0.5], observable="excess_risk",
                                            horizon=1.0), "batch_sizes"),   # was a TypeError
    (lambda s, th, mc: hdsgd.batch_tradeoff(s, 0.1, [2.5], [0.5], observable="excess_risk",
                                            horizon=1.0), "batch_sizes"),
    (lambda s, th, mc: hdsgd.compare(th, mc, observable=3), "observable"),  # was a TypeError
    (lambda s, th, mc: hdsgd.compare(th, mc, same_setup="no"), "same_setup"),
    (lambda s, th, mc: hdsgd.compare(th, mc, sem_floor=True), "sem_floor"),
    (lambda s, th, mc: hdsgd.plot_curves(th, mc="abc"), "mc"),             # AttributeError
    (lambda s, th, mc: hdsgd.plot_curves(th, names=3), "names"),
    (lambda s, th, mc: hdsgd.plot_curves(th, labels="ab"), "labels"),
    (lambda s, th, mc: hdsgd.plot_curves(th, logx="yes"), "logx"),
    (lambda s, th, mc: hdsgd.plot_curves(th, title=3), "title"),
    # an observable no curve has was drawn as a panel reading "diverged from the start"
    (lambda s, th, mc: hdsgd.plot_curves(th, mc, names=["nope"]), "observable"),
])
def test_top_level_arguments_name_themselves(call, name, lstsq_pair):
    with pytest.raises(ValueError, match=rf"^{name}=.* is (invalid|not in the curve)"):
        call(*lstsq_pair)


@pytest.mark.parametrize("dtype", [jnp.int32, np.int64, "int8", jnp.float16, "banana"])
def test_only_float_dtypes(dtype):
    with pytest.raises(ValueError, match="dtype="):
        hdsgd.simulate(_lstsq(), 1.0, key=jax.random.key(0), seeds=2, dtype=dtype)


def test_horizon_must_cover_one_step_and_setup_must_be_a_setup():
    setup = _lstsq()  # d = 30: one step is t = 1/30
    with pytest.raises(ValueError, match="shorter than one step"):
        hdsgd.predict(setup, 0.01)
    with pytest.raises(ValueError, match="shorter than one step"):
        hdsgd.simulate(setup, 0.01, key=jax.random.key(0), seeds=2)
    assert hdsgd.predict(setup, 1 / 30).time[-1] == pytest.approx(1 / 30)
    with pytest.raises(ValueError, match="setup="):
        hdsgd.predict({"step_size": 1.0}, 1.0)


def test_compare_refuses_curves_that_do_not_belong_together():
    setup = _lstsq()
    theory = hdsgd.predict(setup, 1.0)
    mc = hdsgd.simulate(setup.replace(step_size=3.0), 1.0, key=jax.random.key(0), seeds=4,
                        progress=False)
    with pytest.raises(ValueError, match=r"step_size \(theory 1.0, mc 3.0\)"):
        hdsgd.compare(theory, mc)
    other = Curve(time=theory.time, observables={"risk": theory["risk"][None].repeat(3, 0)},
                  time_unit="t", samples=theory.samples, seeds=3, meta={"system": "spiked"})
    with pytest.raises(ValueError, match="'lstsq' curve and mc a 'spiked' curve"):
        hdsgd.compare(theory, other)
    good = hdsgd.simulate(setup, 1.0, key=jax.random.key(0), seeds=4, progress=False)
    with pytest.raises(ValueError, match="t_min"):
        hdsgd.compare(theory, good, t_min=5.0)


def test_compare_gives_a_verdict_with_a_caveat_for_few_seeds_and_no_warnings(recwarn):
    setup = _lstsq(step_size=1.5)
    theory = hdsgd.predict(setup, 2.0)
    few = hdsgd.compare(theory, hdsgd.simulate(setup, 2.0, key=jax.random.key(1), seeds=4,
                                               progress=False))
    assert few.caveat and "4 Monte Carlo seeds" in few.caveat
    assert few.threshold == pytest.approx(32.6, abs=0.1)
    many = hdsgd.compare(theory, hdsgd.simulate(setup, 2.0, key=jax.random.key(1), seeds=64,
                                                progress=False))
    assert many.caveat is None and many.ok() and many.verdict.startswith("theory and Monte Carlo agree")
    assert "agree" in many.summary() and "standard errors" in many.summary()
    name, time, gap = many.worst
    assert name in ("risk", "excess_risk") and gap == many[name].max_sem_gap
    # a diverged Monte Carlo against a finite theory: a verdict, no RuntimeWarning
    blown = setup.replace(step_size=30.0)
    mc = hdsgd.simulate(blown, 2.0, key=jax.random.key(1), seeds=4, progress=False)
    assert mc.any_diverged and not np.isnan(mc["risk"]).any()
    both = hdsgd.compare(hdsgd.predict(blown, 2.0), mc)
    assert not both.ok() and "both diverged" in both.verdict
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_figures_are_a_grid_of_at_most_three_panels_and_survive_divergence(tmp_path):
    import matplotlib.image

    names = [f"obs{i}" for i in range(5)]
    t = np.linspace(0, 1, 11)
    curve = Curve(time=t, observables={n: 1 + t * (i + 1) for i, n in enumerate(names)} | {"tau": t},
                  time_unit="step", samples=t, meta={"auxiliary": ["tau"], "system": "demo"})
    path = hdsgd.plot_curves(curve, path=tmp_path / "grid.png")
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width < 1.9 * height  # two rows of three, not a 5-panel strip
    fig = hdsgd.plot_curves(curve)
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == names  # the clock is not drawn
    # an all-inf prediction and a late-diverged one still give a figure
    dead = hdsgd.predict(_lstsq(step_size=500.0), 1.0)
    assert np.all(np.isinf(dead["risk"][1:]))
    assert hdsgd.plot_curves(dead, path=tmp_path / "dead.png").stat().st_size > 1000
    assert main(["lstsq", "predict", "--eigenvalues", "ramp:30", "--step-size", "500",
                 "--horizon", "1", "--plot", str(tmp_path / "cli.png")]) == 0
    assert (tmp_path / "cli.png").stat().st_size > 1000


def test_tune_refuses_met_unreachable_targets_and_unknown_fields():
    setup = _lstsq(noise_std=0.0)
    space = {"step_size": hdsgd.LogRange(0.2, 5.0, 4)}
    start = setup.initial_risk
    with pytest.raises(ValueError, match="already met at the start"):
        hdsgd.tune(setup, space, hdsgd.samples_to_target(2 * start, "risk"), horizon=2.0)
    with pytest.raises(ValueError, match="met by no candidate"):
        hdsgd.tune(setup, space, hdsgd.samples_to_target(1e-30, "risk"), horizon=0.5)
    with pytest.raises(ValueError, match=r"'stepsize'.*allowed: eigenvalues, initial_error"):
        hdsgd.tune(setup, {"stepsize": [1.0]}, hdsgd.samples_to_target(0.1, "risk"), horizon=2.0)
    with pytest.raises(ValueError, match="horizon=None and budget=None"):
        hdsgd.tune(setup, space, hdsgd.samples_to_target(0.1, "risk"))
    # a user callable on a Curve, and a step budget
    tuned = hdsgd.tune(setup, {"step_size": [0.5, 1.0, 1.5]}, lambda c: float(c["risk"][-1]),
                       horizon=2.0)
    assert tuned.setup.step_size == 1.0  # 1.5 is near the edge (1.86) and slower
    by_steps = hdsgd.tune(setup, {"step_size": [0.5, 1.0, 1.5]},
                          hdsgd.value_at_budget(steps=30, observable="risk"), horizon=2.0)
    assert by_steps.setup.step_size == 1.0
    with pytest.raises(ValueError, match="exactly one"):
        hdsgd.value_at_budget(samples=10, steps=10)


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04truncated"])
def test_curve_load_names_the_path_and_never_unpickles(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.npz.*not an hdsgd curve file"):
        Curve.load(path)


def test_curve_load_refuses_foreign_and_pickled_archives(tmp_path):
    np.savez(tmp_path / "foreign.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="foreign.npz.*not an hdsgd curve file"):
        Curve.load(tmp_path / "foreign.npz")
    np.savez(tmp_path / "pickled.npz", header=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz.*not an hdsgd curve file"):
        Curve.load(tmp_path / "pickled.npz")
    with pytest.raises(ValueError, match="no such file"):
        Curve.load(tmp_path / "missing.npz")


def test_cli_errors_name_the_subcommand_and_flag_and_check_outputs_first(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["lstsq", "predict", "--not-a-flag", "3"])
    err = capsys.readouterr().err
    assert "hdsgd lstsq predict" in err and "--not-a-flag" in err
    assert main(["lstsq", "simulate", "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "hdsgd lstsq simulate: error: --batch-size: batch_size=0" in err
    assert main(["lstsq", "predict", "--out", str(tmp_path / "missing" / "x.npz")]) == 2
    assert "--out" in capsys.readouterr().err


def test_cli_compare_exit_status_follows_the_verdict(tmp_path, capsys):
    args = ["lstsq", "compare", "--eigenvalues", "ramp:40", "--horizon", "1", "--seeds", "8"]
    assert main(args) == 0
    assert "theory and Monte Carlo agree" in capsys.readouterr().out
    assert main(args + ["--step-size", "300"]) == 1


_LS = hdsgd.StreamingLeastSquares("power_law:30:1.0")
_GROK = hdsgd.GrokkingTwoLayer(dim=5, n_samples=10, width=8)
_PROX = hdsgd.ProxLinearSensing(dim_left=20, dim_right=20, batch_size=20)
_SPIKED = hdsgd.SpikedSingleIndex(dim=50, step_size=0.5)


@pytest.mark.parametrize("name, call", [
    # sizes past what a run can hold: named, before JAX sees them (a horizon of 9e18 steps
    # aborted the process inside XLA; a boundary of 1e30 wrapped to a negative int64)
    ("horizon", lambda: hdsgd.predict(_LS, 3.1e17)),
    ("horizon", lambda: hdsgd.simulate(_LS, 1e19, key=jax.random.key(0), seeds=2)),
    ("seeds", lambda: hdsgd.simulate(_LS, 1.0, key=jax.random.key(0), seeds=10**20)),
    ("budget", lambda: hdsgd.tune(_LS, {"step_size": hdsgd.LogRange(0.5, 10, 3)},
                                  hdsgd.value_at_budget(samples=1e19))),
    ("budget", lambda: hdsgd.tune(_LS, {"step_size": hdsgd.LogRange(0.5, 10, 3)},
                                  hdsgd.samples_to_target(0.01), budget=0.5)),
    ("boundaries", lambda: hdsgd.Schedule([1.0, 2.0], [1e30])),
    ("boundaries", lambda: hdsgd.Schedule([1.0, 2.0], [[5]])),
    ("boundaries", lambda: hdsgd.Schedule([1.0, 2.0], "5")),
    ("boundaries", lambda: hdsgd.Schedule([1.0, 2.0], [True])),
    ("step_sizes", lambda: hdsgd.Schedule.even([1.0, "a"], 10)),
    ("data_seed", lambda: hdsgd.GrokkingTwoLayer(data_seed=2**32)),   # would repeat seed 0
    ("batch_size", lambda: hdsgd.StreamingLeastSquares("power_law:30", batch_size=10**30)),
    ("batch_size", lambda: _LS.replace(batch_size=float("inf"))),
    ("batch_size", lambda: _LS.replace(batch_size=float("nan"))),
    ("batch_size", lambda: _LS.replace(batch_size=1j)),
    ("step_size", lambda: _LS.replace(step_size=1j)),
    ("eigenvalues", lambda: hdsgd.StreamingLeastSquares("isotropic:10:1:2:3")),
    # solver options and keys: named, never a curve that reads as diverged
    ("rtol", lambda: hdsgd.predict(_SPIKED, 2.0, rtol=float("nan"))),
    ("correction_scale", lambda: hdsgd.predict(_SPIKED, 2.0, correction_scale=float("inf"))),
    ("rtol", lambda: hdsgd.predict(_GROK, 20, solver="ode", rtol=-1)),
    ("init_key", lambda: hdsgd.predict(_GROK, 20, init_key=0)),
    ("dmft_key", lambda: hdsgd.predict(_GROK, 20, method="dmft", dmft_key=0)),
    ("dt", lambda: hdsgd.predict(_GROK, 20, method="dmft", dt=1e-4)),  # 1.6 PiB of Jacobians
    ("n_quad", lambda: hdsgd.predict(hdsgd.GrokkingTwoLayer(centered=True), 10, method="lazy",
                                     n_quad=float("nan"))),
    ("rtol", lambda: hdsgd.predict(_PROX, 5, method="ode", rtol=float("nan"))),
    ("rule", lambda: hdsgd.predict(_PROX, 5, rule="nope")),
    ("key", lambda: hdsgd.ProxLinearSensing.random_start(initial_error_sq=0.5, key=0,
                                                         dim_left=20, dim_right=20)),
    ("key", lambda: hdsgd.predict(hdsgd.TwoParameterMomentum(), 50, method="sde", key=0)),
    ("exact_steps", lambda: hdsgd.predict(_LS, 1.0, method="ode", exact_steps="a")),
    ("tolerance", lambda: hdsgd.predict(_LS, 1.0, method="ode", tolerance="x")),
    ("n_grid", lambda: hdsgd.predict(_LS, 1.0, method="ode", n_grid=2.5)),
])
def test_out_of_range_sizes_options_and_keys_name_the_argument(name, call):
    with pytest.raises(ValueError, match=rf"^(method='dmft' would need .*allowed: .*larger dt|{name}=)"):
        call()


def test_in_range_extremes_still_run():
    # the new bounds sit far past any real run: 2^50 steps of the spectral solution, a grid's
    # float batch size, the largest seed
    assert np.isfinite(hdsgd.predict(_LS, 2.0**50 / 30)["risk"][-1])
    assert _LS.replace(batch_size=4.0).batch_size == 4
    assert hdsgd.GrokkingTwoLayer(data_seed=2**32 - 1).data_seed == 2**32 - 1


def test_the_dmft_reports_an_allocator_refusal_as_a_value_error(monkeypatch):
    # (a real refusal needs ~27 GB asked of a smaller machine; a bigger one would run it for
    # minutes, so XLA's refusal is stood in for)
    from hdsgd.odes.grokking import _dmft

    def refuse(*args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 26679407120 bytes.")

    monkeypatch.setattr(_dmft, "solve_jit", refuse)
    with pytest.raises(ValueError, match="^method='dmft' needs more memory .* smaller width"):
        hdsgd.predict(_GROK, 20, method="dmft")


def test_a_monte_carlo_past_the_stability_edge_says_so():
    # its runs may not have overflowed yet (risk 1.7e8 at 3 gamma_c, t = 1): the edge the theory
    # knows is in meta["warning"], as in predict's curve; none below the edge
    gamma_c = hdsgd.lstsq.critical_step_size(_LS)
    past = hdsgd.simulate(_LS.replace(step_size=3 * gamma_c), 1.0, key=jax.random.key(0),
                          seeds=2, progress=False)
    assert "critical step size" in past.meta["warning"] and not past.any_diverged
    assert "warning" not in hdsgd.simulate(_LS, 1.0, key=jax.random.key(0), seeds=2,
                                           progress=False).meta
    momentum = hdsgd.simulate(hdsgd.TwoParameterMomentum(step_size=5.0), 20,
                              key=jax.random.key(0), seeds=2, progress=False)
    assert "critical step size" in momentum.meta["warning"]
    assert "warning" not in hdsgd.simulate(_PROX, 2, key=jax.random.key(0), seeds=2,
                                           progress=False).meta  # no edge: no warning


def test_cli_seed_and_seeds_are_checked_before_anything_runs(capsys):
    for argv, text in ((["lstsq", "simulate", "--seed", "99999999999999999999"], "--seed"),
                       (["lstsq", "compare", "--seeds", "1"], "[2, 2147483647]")):  # two for a s.e.
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and text in capsys.readouterr().err


@pytest.mark.parametrize("name, call", [
    ("space", lambda: hdsgd.tune(_LS, {"step_size": 2.0}, hdsgd.samples_to_target(0.01),
                                 horizon=5.0)),
    # Schedules as candidates: refused by name (a TypeError from the result table before)
    ("space", lambda: hdsgd.tune(_LS, {"step_size": [hdsgd.Schedule([1.0, 0.5], [10])]},
                                 hdsgd.value_at_budget(steps=20), horizon=1.0)),
    ("refine_evals", lambda: hdsgd.tune(_LS, {"step_size": [1.0, 2.0]},
                                        hdsgd.samples_to_target(0.01), horizon=5.0,
                                        refine_evals=-1)),
    ("LogRange num", lambda: hdsgd.LogRange(1, 2, 2.5)),
    ("LogRange", lambda: hdsgd.LogRange("a", 2)),
    ("grid", lambda: hdsgd.predict_grid(_LS, {"step_size": 2.0}, 1.0)),
    ("maxiter", lambda: hdsgd.tune_schedule(_LS, hdsgd.value_at_budget(steps=200), steps=200,
                                            pieces=2, maxiter=-1)),
    # a target met before any step: refused as tune refuses it (it returned a schedule of
    # step sizes ~1e-12 with objective 0)
    ("target", lambda: hdsgd.tune_schedule(_LS, hdsgd.samples_to_target(10.0), steps=200,
                                           pieces=2)),
])
def test_tuning_arguments_name_themselves(name, call):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}"):
        call()


@pytest.mark.parametrize("name, call", [
    # magnitudes whose squares overflow Python floats (an OverflowError deep in a property)
    ("noise_std", lambda: hdsgd.StreamingLeastSquares("power_law:10", noise_std=1e200)),
    ("label_noise", lambda: hdsgd.SpikedSingleIndex(label_noise=1e200)),
    ("initial_state", lambda: hdsgd.ProxLinearSensing(initial_state=(1e200, 1e200, 1, 1))),
    ("step_size", lambda: hdsgd.TwoParameterMomentum(step_size=1e300, exponent=4,
                                                     constant=1e-300)),
    ("link", lambda: hdsgd.SpikedSingleIndex(dim=50, link=[0, 0, 1e200])),
    # arguments checked at the door
    ("progress", lambda: hdsgd.simulate(_LS, 1.0, key=jax.random.key(0), progress="x")),
    ("times", lambda: hdsgd.predict(_LS, 1.0).at([np.nan])),
    ("max_samples", lambda: hdsgd.spiked.escape_samples(hdsgd.SpikedSingleIndex(dim=50),
                                                        key=jax.random.key(0),
                                                        max_samples=np.inf)),
])
def test_huge_values_and_door_arguments_name_themselves(name, call):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}="):
        call()


def test_a_checkpoint_that_is_a_file_and_bad_cli_values_are_refused(tmp_path, capsys):
    path = tmp_path / "file.npz"
    path.write_text("x")
    with pytest.raises(ValueError, match="^checkpoint=.* is a file"):
        hdsgd.simulate(_LS, 1.0, key=jax.random.key(0), checkpoint=path)
    assert main(["lstsq", "predict", "--step-size", "abc"]) == 2
    assert "allowed: a number" in capsys.readouterr().err
    assert main(["lstsq", "sweep", "--space", "step_size=1:2:lin:0"]) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["lstsq", "sweep", "--space", "step_size=1,2", "--workers", "-1"])
    assert "--workers" in capsys.readouterr().err


def test_a_panel_is_logarithmic_only_where_its_values_span_a_decade():
    time = np.linspace(0.0, 2.0, 21)
    flat = Curve(time=time, observables={"risk": 0.99 - 0.01 * time}, time_unit="t", samples=time)
    steep = Curve(time=time, observables={"risk": np.exp(-4.0 * time)}, time_unit="t",
                  samples=time)
    for curve, scale in ((flat, "linear"), (steep, "log")):
        fig = hdsgd.plot_curves(curve)
        assert fig.axes[0].get_yscale() == scale
        import matplotlib.pyplot as plt

        plt.close(fig)
