"""Curve, compare, the precision policy, the tuner's objectives and the command line."""

import os
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


def test_cli_tune(capsys):
    assert main(["lstsq", "tune", "--eigenvalues", "power_law:60", "--noise-std", "0", "--horizon", "20",
                 "--seeds", "4", "--objective", "steps_to_target"]) == 0
    out = capsys.readouterr().out
    assert "chosen step_size" in out and "Monte Carlo (4 seeds)" in out
    assert main(["lstsq", "tune", "--eigenvalues", "power_law:60", "--objective", "value_at_budget"]) == 2
    assert "budget" in capsys.readouterr().err
