"""The ``hdsgd`` command's persistent compilation cache (hdsgd/_cache.py)."""

import os
import subprocess
import sys
from pathlib import Path

from hdsgd._cache import cache_directory, use_compilation_cache


def test_the_cache_folder_comes_from_the_environment(tmp_path):
    assert cache_directory({"HDSGD_CACHE_DIR": str(tmp_path / "c")}) == tmp_path / "c"
    assert cache_directory({"HDSGD_CACHE_DIR": "~/x"}) == Path.home() / "x"
    for off in ("off", "OFF", "none", "0", " false "):
        assert cache_directory({"HDSGD_CACHE_DIR": off}) is None
    assert cache_directory({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "hdsgd" / "jax"
    assert cache_directory({"HDSGD_CACHE_DIR": "", "XDG_CACHE_HOME": str(tmp_path)}) == (
        tmp_path / "hdsgd" / "jax")
    assert cache_directory({}) == Path.home() / ".cache" / "hdsgd" / "jax"


def test_no_cache_when_off_when_jax_has_one_or_when_the_folder_cannot_be_made(tmp_path):
    # (each returns before touching JAX's settings, so this process is unchanged)
    import jax

    before = jax.config.jax_compilation_cache_dir
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for env in ({"HDSGD_CACHE_DIR": "off"},
                {"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-own"),
                 "HDSGD_CACHE_DIR": str(tmp_path / "ours")},
                {"HDSGD_CACHE_DIR": str(blocker / "sub")}):
        assert use_compilation_cache(env) is None
    assert not (tmp_path / "ours").exists()
    assert jax.config.jax_compilation_cache_dir == before


_RUN = """
import sys
from hdsgd._cache import use_compilation_cache
folder = use_compilation_cache()
import jax, numpy as np, hdsgd
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: event.endswith("compilation_cache/cache_hits") and hits.append(event))
c = hdsgd.predict(hdsgd.StreamingLeastSquares("power_law:64:1.0", step_size=2.0), 3.0)
print(folder, repr(float(np.sum(c["risk"]))), len(hits))
"""


def test_the_command_keeps_compiled_programs_and_reuses_them(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    folder = tmp_path / "cache"

    def run(extra):
        out = subprocess.run([sys.executable, "-c", _RUN], capture_output=True, text=True,
                             env={**env, **extra}, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "persistent compilation cache" not in out.stderr, out.stderr[-2000:]
        return out.stdout.split()

    first = run({"HDSGD_CACHE_DIR": str(folder)})
    assert first[0] == str(folder)
    kept = sorted(p.name for p in folder.iterdir())
    assert kept   # the recursion's programs compile in more than MIN_COMPILE_SECONDS
    second = run({"HDSGD_CACHE_DIR": str(folder)})
    off = run({"HDSGD_CACHE_DIR": "off"})
    assert second[1] == first[1] == off[1] and off[0] == "None"   # the same numbers
    # the second run reads every program the first one kept, and compiles nothing new
    programs = [n for n in kept if n.endswith("-cache")]
    assert first[2] == "0" and int(second[2]) == len(programs) > 0 and off[2] == "0"
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith("-cache")) == programs
