"""JAX's persistent compilation cache, for processes hdsgd owns (the ``hdsgd`` command).

A short command spends much of its time compiling: ``hdsgd proxlinear tune --seeds 0`` took
21.7 s, of which ~12 s compiling the map, its Newton polish for the noise floor and the grid
batches; with the compiled programs kept on disk the same command takes 8.7 s the next time
(``hdsgd lstsq compare``: 5.6 -> 4.8 s; measured on the project's 2-core CPU). The numbers are
the same: a cached program is the one XLA compiled.

The folder is ``$HDSGD_CACHE_DIR``, else ``$XDG_CACHE_HOME/hdsgd/jax``, else
``~/.cache/hdsgd/jax``; ``HDSGD_CACHE_DIR=off`` turns the cache off, and a folder the user gave
JAX itself (``JAX_COMPILATION_CACHE_DIR``) is left alone. Programs that took at least
`MIN_COMPILE_SECONDS` to compile are kept, up to `MAX_BYTES` (JAX evicts the least recently
used). Like the device count (`hdsgd._devices`), this is a process-wide JAX setting:
importing hdsgd never changes it; only the ``hdsgd`` command calls `use_compilation_cache`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: the environment variable naming the cache folder (``off``: no cache)
CACHE_ENV_VAR = "HDSGD_CACHE_DIR"
MIN_COMPILE_SECONDS = 0.1   # most of hdsgd's programs compile in 0.1-1 s (JAX's default: 1 s)
MAX_BYTES = 512 << 20       # a few hundred programs of a few hundred KiB to a few MiB each
_OFF = ("off", "none", "no", "0", "false")


def cache_directory(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The cache folder the environment asks for, or None when it turns the cache off."""
    text = environ.get(CACHE_ENV_VAR)
    if text is not None and text.strip().lower() in _OFF:
        return None
    if text and text.strip():
        return Path(text.strip()).expanduser()
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hdsgd" / "jax"


def use_compilation_cache(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Point JAX's persistent compilation cache at `cache_directory`.

    Returns the folder, or None when nothing was changed: the cache is off, the user set JAX's
    own folder, or the folder cannot be created or written (the command then runs uncached,
    as before).
    """
    if environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    folder = cache_directory(environ)
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return folder
