"""Scale: sweeps through executors that resume, checkpointed Monte Carlo, seeds sharded
over devices with the same numbers as one device."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

import hdsgd
from hdsgd.api import finished_seeds
from hdsgd._sweep import Task, grid, setting_hash, sweep


def _setups():
    base = hdsgd.StreamingLeastSquares("ramp:40:0.5:1.5", noise_std=0.2)
    return grid(base, {"step_size": [0.5, 1.0, 1.5], "batch_size": [1, 2]})


def test_sweep_in_process_equals_direct_calls_and_resumes_from_disk(tmp_path):
    setups = _setups()
    task = Task("simulate", 1.0, seeds=3, seed=7, options={"progress": False})
    curves = sweep(setups, task, directory=tmp_path, progress=False)
    assert len(list(tmp_path.glob("lstsq-*.npz"))) == len(setups)
    # each setting's key depends only on the task's seed and the setting
    again = sweep(setups[::-1], task, progress=False)[::-1]
    for a, b in zip(curves, again):
        np.testing.assert_array_equal(a["risk"], b["risk"])
    # a rerun loads every result instead of computing it
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")}
    loaded = sweep(setups, task, directory=tmp_path, progress=False)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")} == mtimes
    np.testing.assert_array_equal(loaded[2]["risk"], curves[2]["risk"])
    predicted = sweep(setups, Task("predict", 1.0), progress=False)
    assert predicted[0].meta["method"] == "recursion"
    assert setting_hash(setups[0], task) != setting_hash(setups[1], task)


def test_sweep_killed_halfway_resumes_without_recomputing(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        import hdsgd
        from hdsgd._sweep import Task, grid, sweep
        base = hdsgd.StreamingLeastSquares("ramp:40:0.5:1.5", noise_std=0.2)
        setups = grid(base, {{"step_size": [0.3, 0.5, 0.7, 0.9, 1.1, 1.3]}})
        import hdsgd._sweep as sw
        original = sw.run_task
        def slow(setup, task):
            out = original(setup, task)
            print("done", flush=True)
            time.sleep(1.0 if setup.step_size > 0.6 else 0.0)
            return out
        sw.run_task = slow
        sweep(setups, Task("predict", 1.0), directory=sys.argv[1], progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    for _ in range(3):  # three settings finished, then kill it mid-sweep
        assert proc.stdout.readline().strip() == "done"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = sorted(tmp_path.glob("lstsq-*.npz"))
    assert 2 <= len(saved) < 6
    stamps = {p: p.stat().st_mtime_ns for p in saved}
    base = hdsgd.StreamingLeastSquares("ramp:40:0.5:1.5", noise_std=0.2)
    setups = grid(base, {"step_size": [0.3, 0.5, 0.7, 0.9, 1.1, 1.3]})
    curves = sweep(setups, Task("predict", 1.0), directory=tmp_path, progress=False)
    assert len(list(tmp_path.glob("lstsq-*.npz"))) == 6
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # not recomputed
    for s, c in zip(setups, curves):
        np.testing.assert_allclose(c["risk"], hdsgd.predict(s, 1.0)["risk"], rtol=1e-12)


def test_sweep_on_a_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    setups = _setups()[:3]
    task = Task("predict", 1.0)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        curves = sweep(setups, task, executor=client.get_executor(), directory=tmp_path,
                       progress=False)
    for s, c in zip(setups, curves):
        np.testing.assert_allclose(c["risk"], hdsgd.predict(s, 1.0)["risk"], rtol=1e-12)
    assert len(list(tmp_path.glob("*.npz"))) == 3


def test_checkpointed_simulate_resumes_and_refuses_another_run(tmp_path):
    setup = _setups()[0]
    key = jax.random.key(3)
    full = hdsgd.simulate(setup, 1.0, key=key, seeds=10, checkpoint=tmp_path / "c",
                          chunk_seeds=4, progress=False)
    assert full.seeds == 10 and finished_seeds(tmp_path / "c") == 10
    # a chunk lost (an interrupted run) is recomputed, the rest loaded, numbers unchanged
    chunk = sorted((tmp_path / "c").glob("seeds-*.npz"))[1]
    chunk.unlink()
    assert finished_seeds(tmp_path / "c") == 6
    again = hdsgd.simulate(setup, 1.0, key=key, seeds=10, checkpoint=tmp_path / "c",
                           chunk_seeds=4, progress=False)
    np.testing.assert_array_equal(again["risk"], full["risk"])
    with pytest.raises(ValueError, match="another run"):
        hdsgd.simulate(setup.replace(step_size=0.7), 1.0, key=key, seeds=10,
                       checkpoint=tmp_path / "c", chunk_seeds=4, progress=False)
    with pytest.raises(ValueError, match="chunk_seeds"):
        hdsgd.simulate(setup, 1.0, key=key, seeds=10, chunk_seeds=4)


def test_cli_sweep_and_interrupted_simulate_resume(tmp_path, capsys):
    from hdsgd.cli import main

    args = ["lstsq", "sweep", "--eigenvalues", "ramp:30", "--space", "step_size=0.5,1.0",
            "--space", "batch_size=1:4:log:2", "--dir", str(tmp_path / "sw"), "--horizon", "1",
            "--plot", str(tmp_path / "sweep.png")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "4 settings" in out and (tmp_path / "sweep.png").stat().st_size > 1000
    assert len(list((tmp_path / "sw").glob("*.npz"))) == 4
    assert main(["lstsq", "sweep", "--space", "stepsize=1,2", "--dir", str(tmp_path / "x")]) == 2
    assert "stepsize" in capsys.readouterr().err


def test_seeds_sharded_over_two_devices_give_the_same_numbers(tmp_path):
    code = textwrap.dedent("""
        import sys, jax, numpy as np, hdsgd
        setup = hdsgd.StreamingLeastSquares("ramp:40:0.5:1.5", noise_std=0.2, step_size=1.0)
        mc = hdsgd.simulate(setup, 1.0, key=jax.random.key(4), seeds=6, progress=False)
        np.save(sys.argv[1], mc["risk"])
        print(len(jax.devices()))
    """)
    outs = {}
    for devices in (1, 2):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        path = tmp_path / f"risk{devices}.npy"
        res = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True,
                             text=True)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.strip() == str(devices)
        outs[devices] = np.load(path)
    np.testing.assert_allclose(outs[2], outs[1], rtol=1e-6)


def test_lstsq_samplers_agree_in_distribution():
    # "auto" (the projected sampler at B >= 2) draws the batch gradient exactly in law: the
    # distribution over seeds of the risk after 40 steps matches the literal data sampler's
    # (two-sample Kolmogorov-Smirnov), while a sampler that forgot the projection's noise
    # direction would not.
    import scipy.stats

    setup = hdsgd.StreamingLeastSquares("ramp:12:0.5:2.0", noise_std=0.5, step_size=2.0,
                                        batch_size=4)
    times = [0.0, 40 / 12]
    runs = {m: hdsgd.simulate(setup, times[-1], times=times, key=jax.random.key(i), seeds=3000,
                              progress=False, method=m, dtype=np.float64)
            for i, m in enumerate(("data", "auto"))}
    assert runs["auto"].meta["method"] == "projected"
    a, b = (runs[m]["risk"][:, -1] for m in ("data", "auto"))
    assert scipy.stats.ks_2samp(a, b).pvalue > 1e-3
    # the test has power: a plain SGD with a 1.5x step is rejected
    other = hdsgd.simulate(setup.replace(step_size=3.0), times[-1], times=times,
                           key=jax.random.key(9), seeds=3000, progress=False, dtype=np.float64)
    assert scipy.stats.ks_2samp(a, other["risk"][:, -1]).pvalue < 1e-6
