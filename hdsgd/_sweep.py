"""Sweeps: many `predict` or `simulate` calls, through any executor, resumable from disk.

``sweep(setups, task, executor=None, directory=None)`` runs ``task`` (a `Task`: predict or
simulate, with its horizon and options) on every Setup. With ``executor`` (any
``concurrent.futures.Executor``: a process pool, or a Dask ``distributed.Client(...).get_executor()``,
or Ray's) the calls run there; nothing in hdsgd schedules work by hand. With ``directory``, each
finished Curve is written there as soon as it completes, under a name made from a hash of the
Setup's fields and the task, so an interrupted sweep, run again, loads what is done and computes
only the rest. A Monte Carlo task draws each setting's key from the task's seed and the setting's
hash, so a result does not depend on the order, the executor or the other settings.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import equinox as eqx
import jax
import numpy as np
from tqdm.auto import tqdm

from .api import check_horizon, check_seeds, check_setup, predict, simulate
from .curve import Curve, _json_default

TASK_KINDS = ("predict", "simulate")


class Task(eqx.Module):
    """What a sweep does to each Setup.

    Attributes:
        kind: ``"predict"`` or ``"simulate"``.
        horizon: the horizon, in the system's time unit.
        seeds: Monte Carlo runs per setting (``"simulate"``).
        seed: the integer seed every setting's key derives from (``"simulate"``).
        options: more keyword arguments of `predict` / `simulate` (``method=``, ``times=``, ...).
    """

    kind: str = eqx.field(static=True)
    horizon: float
    seeds: int = 16
    seed: int = 0
    options: dict = eqx.field(static=True, default_factory=dict)

    def __check_init__(self):
        if self.kind not in TASK_KINDS:
            raise ValueError(f"kind={self.kind!r} is invalid; allowed: {TASK_KINDS}")
        check_horizon(self.horizon)
        check_seeds(self.seeds)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} is invalid; allowed: an integer >= 0")

    def describe(self) -> dict:
        out = {"kind": self.kind, "horizon": float(self.horizon), "options": self.options}
        if self.kind == "simulate":
            out.update(seeds=int(self.seeds), seed=int(self.seed))
        return out


def setting_hash(setup, task: Task) -> str:
    """A stable hex digest of the Setup's fields and the task (the result's file name)."""
    text = json.dumps({"setup": setup.fields(), "task": task.describe()}, sort_keys=True,
                      default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def run_task(setup, task: Task) -> Curve:
    """One setting of a sweep (a module-level function, so executors can pickle it)."""
    if task.kind == "predict":
        return predict(setup, task.horizon, **task.options)
    digest = int(setting_hash(setup, task)[:8], 16)
    key = jax.random.fold_in(jax.random.key(task.seed), digest)
    return simulate(setup, task.horizon, key=key, seeds=task.seeds, **task.options)


def _save_atomically(curve: Curve, path: Path) -> None:
    tmp = path.with_name(path.stem + ".partial.npz")
    curve.save(tmp)
    os.replace(tmp, path)


def sweep(setups: Sequence[Any], task: Task, *, executor: concurrent.futures.Executor | None = None,
          directory: str | Path | None = None, progress: bool | None = None) -> list[Curve]:
    """Run ``task`` on every Setup and return the Curves in the same order.

    Args:
        setups: the Setups (any systems).
        task: a `Task`.
        executor: where to run the calls; default: here, one after the other.
        directory: where finished results are written (and read back on a rerun).
        progress: a progress bar over settings (default: on for more than one setting).
    """
    setups = list(setups)
    if not setups:
        raise ValueError("setups is empty; allowed: one or more Setups")
    for s in setups:
        check_setup(s, "sweep")
    if not isinstance(task, Task):
        raise ValueError(f"task={task!r} is invalid; allowed: hdsgd.Task(kind, horizon, ...)")
    folder = None if directory is None else Path(directory)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    results: list[Curve | None] = [None] * len(setups)
    todo = []
    for i, s in enumerate(setups):
        path = None if folder is None else folder / f"{s.system}-{setting_hash(s, task)}.npz"
        if path is not None and path.is_file():
            results[i] = Curve.load(path)
        else:
            todo.append((i, path))
    bar = tqdm(total=len(setups), initial=len(setups) - len(todo), unit="setting",
               desc=f"sweep ({task.kind})",
               disable=not (len(setups) > 1 if progress is None else progress))
    try:
        if executor is None:
            for i, path in todo:
                results[i] = _finish(run_task(setups[i], task), path, bar)
        else:
            futures = {executor.submit(run_task, setups[i], task): (i, path) for i, path in todo}
            for future in concurrent.futures.as_completed(futures):
                i, path = futures[future]
                results[i] = _finish(future.result(), path, bar)
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def _finish(curve: Curve, path: Path | None, bar) -> Curve:
    if path is not None:
        _save_atomically(curve, path)
    bar.update(1)
    return curve


def grid(setup, space: dict) -> list:
    """The Setups of the Cartesian product of ``space`` (field -> values) around ``setup``."""
    import itertools

    names = list(space)
    values = [np.atleast_1d(np.asarray(v.values() if hasattr(v, "values") and not isinstance(
        v, dict) else v)) for v in space.values()]
    return [setup.replace(**dict(zip(names, point))) for point in itertools.product(*values)]
