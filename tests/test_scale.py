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


_SHARDED = textwrap.dedent("""
    import sys, threading, jax, numpy as np, hdsgd
    from hdsgd.cli import SYSTEMS

    out = {}
    chosen = sys.argv[2].split(",")
    for name, system in SYSTEMS.items():
        if name not in chosen and chosen != ["all"]:
            continue
        for model, cls in system.models.items():
            setup = cls()
            horizon = 0.2 * system.default_horizon(setup)
            # "auto" runs one of the named methods: only the full check repeats it
            methods = [m for m in system.simulate_methods if m != "auto" or chosen == ["all"]]
            for method in methods or (None,):
                options = {} if method is None else {"method": method}
                mc = hdsgd.simulate(setup, horizon, key=jax.random.key(3), seeds=4,
                                    progress=False, **options)
                for k in mc.names:
                    out[f"{name}/{model}/{method}/{k}"] = np.asarray(mc[k])
    # the prox-linear Monte Carlo (a Cholesky per seed) from two threads at once
    prox = hdsgd.ProxLinearSensing()
    def run(i):
        out[f"thread{i}"] = np.asarray(hdsgd.simulate(prox, 5.0, key=jax.random.key(i), seeds=4,
                                                      progress=False)["error_sq"])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    np.savez(sys.argv[1], **out)
    from hdsgd._segments import seed_threads, shard_seeds
    print(len(jax.devices()), len(shard_seeds(jax.numpy.zeros((4, 3))).sharding.device_set),
          seed_threads(4))
""")


def _check_sharded_runs(tmp_path, runs):
    outs = {}
    for name, (devices, threads, systems) in runs.items():
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
               "HDSGD_CPU_THREADS": threads}
        path = tmp_path / f"mc{devices}{threads}.npz"
        res = subprocess.run([sys.executable, "-c", _SHARDED, str(path), systems], env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        # devices, devices used, threads of a 4-seed run
        assert res.stdout.strip() == f"{devices} {min(devices, 2)} {threads or 1}"
        outs[name] = dict(np.load(path))
    systems = {k.split("/")[0] for k in outs["one"]}
    assert systems >= {"lstsq", "proxlinear", "spiked", "grokking", "momentum"}, systems
    for name in runs:
        if name == "one":
            continue
        # a run on fewer systems is compared on the keys it has
        keys = outs[name].keys()
        assert keys and keys <= outs["one"].keys(), name
        if runs[name][2] == runs["one"][2]:
            assert keys == outs["one"].keys(), name
        for k in keys:
            # float32 summation order: 2e-5 relative, or 1e-6 absolute where a quantity is a
            # difference of O(1) ones (momentum's manifold coordinate moves by 1.2e-7, one
            # float32 step, when the 4 seeds run as 4 one-seed groups)
            np.testing.assert_allclose(outs[name][k], outs["one"][k], rtol=2e-5, atol=1e-6,
                                       err_msg=f"{k}: {name}")


def test_seeds_sharded_over_two_devices_give_the_same_numbers(tmp_path):
    # Every system's Monte Carlo (each model, each named sampler) with its seeds sharded over two
    # CPU devices, or split into 4 groups run from 4 threads on one device, gives what one
    # execution on one device gives: each seed draws from its own key, so only float32
    # summation order may differ. The prox-linear Monte Carlo (batched LAPACK) is kept on one
    # device, unthreaded, and run one at a time: sharded, or from two threads, it used to
    # deadlock in XLA's CPU thread pool; the timeout turns a deadlock into a failure. On three
    # devices the 4 seeds go to two of them (the most devices that divide the seeds). Here every
    # system on two devices, least squares and momentum from threads and on three devices (the
    # slow test: every system in every arrangement, and "auto" too).
    every = "lstsq,proxlinear,spiked,grokking,momentum"
    _check_sharded_runs(tmp_path, {"one": (1, "1", every), "threads": (1, "4", "lstsq,momentum"),
                                   "2 devices": (2, "", every),
                                   "3 devices": (3, "", "lstsq,momentum")})


@pytest.mark.slow
def test_seeds_sharded_over_devices_every_system_and_sampler(tmp_path):
    _check_sharded_runs(tmp_path, {"one": (1, "1", "all"), "threads": (1, "4", "all"),
                                   "2 devices": (2, "", "all"), "3 devices": (3, "", "all")})


_GRIDS = textwrap.dedent("""
    import sys, numpy as np, hdsgd
    lstsq = hdsgd.StreamingLeastSquares("power_law:100:1.0", noise_std=0.1, momentum=0.5)
    prox = hdsgd.ProxLinearSensing(dim_left=50, dim_right=50, batch_size=25, noise_std=0.1)
    out = {}
    for name, setup, grid, horizon in (
            ("lstsq", lstsq, {"step_size": list(np.geomspace(0.01, 1.0, 40))}, 2.0),
            ("lstsq_plain", lstsq.replace(momentum=0.0),
             {"step_size": list(np.geomspace(0.01, 1.0, 40))}, 2.0),
            ("proxlinear", prox, {"step_size": list(np.geomspace(0.05, 1.0, 80))}, 10.0)):
        curves = hdsgd.predict_grid(setup, grid, horizon)
        out[name] = np.stack([c[c.names[0]] for c in curves])
    np.savez(sys.argv[1], **out)
""")


def test_grid_chunks_in_threads_give_the_same_numbers(tmp_path):
    # predict_grid's vmapped chunks (least squares, plain and heavy ball; prox-linear's batches)
    # run from one thread per core on a CPU: 4 threads give what 1 gives. Both theories call
    # small batched LAPACK kernels (8 x 8 triangular solves, 2 x 2 and 4 x 4 LU), which jaxlib
    # runs inline at these sizes; the timeout would turn a thread-pool deadlock into a failure.
    outs = {}
    for threads in ("1", "4"):
        path = tmp_path / f"grid{threads}.npz"
        res = subprocess.run([sys.executable, "-c", _GRIDS, str(path)],
                             env={**os.environ, "HDSGD_CPU_THREADS": threads},
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        outs[threads] = dict(np.load(path))
    for name, one in outs["1"].items():
        np.testing.assert_allclose(outs["4"][name], one, rtol=1e-12, err_msg=name)


def test_seed_threads_split_the_seeds_and_keep_the_numbers(monkeypatch):
    # on one CPU device the seeds run in equal groups from threads (as many as cores, or
    # HDSGD_CPU_THREADS); the progress-bar path (one call per output step) too; work started
    # inside a worker thread is not threaded again
    from hdsgd._segments import map_in_threads, seed_threads

    if len(jax.devices()) > 1:
        pytest.skip("several devices: seeds are sharded, not threaded")
    setup = hdsgd.StreamingLeastSquares("ramp:30:0.5:1.5", noise_std=0.3, step_size=1.2)
    curves = {}
    for threads, progress in (("1", False), ("3", False), ("3", True)):
        monkeypatch.setenv("HDSGD_CPU_THREADS", threads)
        assert seed_threads(6) == int(threads) and seed_threads(7) == 1
        curves[threads, progress] = hdsgd.simulate(setup, 2.0, key=jax.random.key(4), seeds=6,
                                                   progress=progress)["risk"]
    for other in (("3", False), ("3", True)):
        np.testing.assert_allclose(curves[other], curves["1", False], rtol=2e-5)
    monkeypatch.setenv("HDSGD_CPU_THREADS", "4")
    assert seed_threads(6) == 3  # the most groups <= 4 that divide 6
    assert map_in_threads(lambda i: (i, seed_threads(6)), [0, 1]) == [(0, 1), (1, 1)]
    for bad in ("0", "two"):
        monkeypatch.setenv("HDSGD_CPU_THREADS", bad)
        with pytest.raises(ValueError, match=f"HDSGD_CPU_THREADS='{bad}' is invalid; allowed"):
            hdsgd.simulate(setup, 1.0, key=jax.random.key(0), seeds=2, progress=False)


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


def test_the_hdsgd_command_gives_jax_one_cpu_device_per_core():
    # `hdsgd.cli.console` (the executable) calls use_cpu_cores first: one CPU device per core
    # unless the user chose a count; importing hdsgd alone changes nothing.
    from hdsgd._devices import available_cores

    probe = ("import sys, jax, hdsgd.cli\n"
             "from hdsgd._devices import use_cpu_cores\n"
             "if 'late' in sys.argv: jax.numpy.zeros(1)\n"
             "print(use_cpu_cores(), len(jax.devices()))")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "HDSGD_CPU_DEVICES")}

    def run(*args, **env):
        res = subprocess.run([sys.executable, "-c", probe, *args], env={**clean, **env},
                             capture_output=True, text=True, timeout=120)
        return res.stdout.strip() or res.stderr[-400:]

    cores = available_cores()
    assert run() == f"{cores} {cores}"
    assert run(HDSGD_CPU_DEVICES="3") == "3 3"
    assert run(HDSGD_CPU_DEVICES="") == f"{cores} {cores}"
    assert run(XLA_FLAGS="--xla_force_host_platform_device_count=3") == "None 3"
    assert run("late") == "None 1"  # JAX already computed: the count stays
    bad = subprocess.run(
        [sys.executable, "-c", "import sys; from hdsgd.cli import console; "
         "sys.argv = ['hdsgd', '--help']; sys.exit(console())"],
        env={**clean, "HDSGD_CPU_DEVICES": "0"}, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "HDSGD_CPU_DEVICES='0' is invalid; allowed: an integer >= 1" in bad.stderr


def test_cpu_monte_carlo_kernels_take_wide_vectors_with_the_same_numbers(monkeypatch):
    # On a CPU the Monte Carlo kernels are compiled with CPU_MONTE_CARLO_OPTIONS (512-bit
    # vectors: a B = 1 least-squares step runs ~17 % faster on AVX-512); theory kernels are not.
    # The numbers are those of the default compilation up to float32 summation order.
    from hdsgd import _segments

    assert jax.default_backend() == "cpu"
    assert _segments._kernels(batched=True) is _segments._CPU_MONTE_CARLO_KERNELS
    assert _segments._kernels(batched=False) is _segments._DEFAULT_KERNELS
    setup = hdsgd.StreamingLeastSquares("power_law:300:1.0", noise_std=0.1, step_size=1.0)
    run = lambda: hdsgd.simulate(setup, 3.0, key=jax.random.key(2), seeds=4,  # noqa: E731
                                 progress=False)["risk"]
    wide = run()
    monkeypatch.setattr(_segments, "_CPU_MONTE_CARLO_KERNELS", _segments._DEFAULT_KERNELS)
    assert _segments._kernels(batched=True) is _segments._DEFAULT_KERNELS
    np.testing.assert_allclose(run(), wide, rtol=1e-5)
