"""Curve: what every prediction and every simulation returns.

A Curve is a time grid, named observables on it, and bookkeeping: the time unit, the
cumulative number of fresh samples used, an optional seed axis (Monte Carlo), a per-point
divergence flag and free-form metadata (the Setup's fields, the package version, the
method). Theory and Monte Carlo meet only here, which is why `compare`, `tune` and
`plot` work for every system without knowing any of them.

Shapes: ``time`` and ``samples`` are ``(T,)``; each observable and ``diverged`` is ``(T,)``
for a theory curve and ``(S, T)`` for a Monte Carlo curve with ``S = seeds``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Mapping

import equinox as eqx
import numpy as np
from jaxtyping import Bool, Float

from ._numerics import sticky
from ._version import __version__

TIME_UNITS = ("step", "t")


def _as_float_array(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x


def _observables(obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {str(k): np.asarray(v) for k, v in obs.items()}


class Metadata(dict):
    """A plain dict of a Curve's metadata that JAX's tree utilities see as one leaf.

    Every `Curve` stores the Setup's fields here, arrays included as lists (the eigenvalues of
    a d = 500 Setup are 1000 numbers with the initial error); as a plain dict, equinox would walk
    every number each time a Curve is built (0.43 of 0.47 ms at d = 500, measured). A dict
    subclass is not a registered pytree node, so the walk stops here (pass one to ``Curve``:
    its converter only runs after equinox has looked at the arguments). It is still a dict
    (JSON, equality, ``meta[key] = value`` all unchanged).
    """


class UnknownObservable(KeyError, ValueError):
    """An observable name a Curve does not have: a KeyError for ``curve[name]`` (mapping
    style) and a ValueError for the library's bad-input convention, so the CLI reports it as
    an error message, not a traceback."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def check_observable(name: str, names) -> None:
    """Raise `UnknownObservable` naming ``name`` and the observables there are, unless
    ``name`` is one of ``names``."""
    if name not in names:
        raise UnknownObservable(f"observable={name!r} is not in the curve; it has "
                                f"{tuple(names)}")


class Curve(eqx.Module):
    """Observables of one system on a time grid, from theory or from Monte Carlo.

    Attributes:
        time: the time grid, shape ``(T,)``, in units of ``time_unit``.
        observables: name -> values, ``(T,)`` (theory) or ``(S, T)`` (Monte Carlo).
        time_unit: ``"step"`` (iterations) or ``"t"`` (a scaled time: samples / dim for one-pass
            SGD with one sample a step, steps / d for mini-batch least squares; the Setup's
            ``time_label`` says which).
        samples: cumulative number of fresh samples used at each time, shape ``(T,)``.
        seeds: number of Monte Carlo seeds (the leading axis), or ``None`` for theory.
        diverged: boolean, same shape as the observables: True where the run or the
            prediction blew up (non-finite, or past the system's divergence threshold).
        meta: the Setup's fields, the method, the package version, anything else
            (``meta["time_label"]``, when present, labels the time axis of figures).
    """

    time: Float[np.ndarray, " T"] = eqx.field(converter=_as_float_array)
    observables: dict[str, np.ndarray] = eqx.field(converter=_observables)
    time_unit: str = eqx.field(static=True)
    samples: Float[np.ndarray, " T"] = eqx.field(converter=_as_float_array)
    seeds: int | None = eqx.field(static=True, default=None)
    diverged: Bool[np.ndarray, "*S T"] | None = None
    meta: dict = eqx.field(static=True, default_factory=Metadata, converter=Metadata)

    def __check_init__(self):
        if self.time.ndim != 1:
            raise ValueError(f"time must be one-dimensional, got shape {self.time.shape}")
        if self.time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit={self.time_unit!r}; allowed: {TIME_UNITS}")
        if self.samples.shape != self.time.shape:
            raise ValueError(
                f"samples has shape {self.samples.shape}, time has {self.time.shape}"
            )
        expected = self.time.shape if self.seeds is None else (self.seeds,) + self.time.shape
        for name, values in self.observables.items():
            if values.shape != expected:
                raise ValueError(
                    f"observable {name!r} has shape {values.shape}, expected {expected}"
                )
        if self.diverged is not None and np.shape(self.diverged) != expected:
            raise ValueError(f"diverged has shape {np.shape(self.diverged)}, expected {expected}")

    # ------------------------------------------------------------------ access
    def __getitem__(self, name: str) -> np.ndarray:
        check_observable(name, self.observables)
        return self.observables[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.observables)

    @property
    def is_monte_carlo(self) -> bool:
        return self.seeds is not None

    @property
    def diverged_mask(self) -> np.ndarray:
        """``diverged`` as an array (all False when it was not set)."""
        if self.diverged is None:
            shape = self.time.shape if self.seeds is None else (self.seeds,) + self.time.shape
            return np.zeros(shape, dtype=bool)
        return np.asarray(self.diverged, dtype=bool)

    @property
    def any_diverged(self) -> bool:
        return bool(self.diverged_mask.any())

    # ------------------------------------------------------------ seed statistics
    def _reduce(self, fn, kind: str) -> "Curve":
        if self.seeds is None:
            return self
        obs = {k: fn(v) for k, v in self.observables.items()}
        return Curve(
            time=self.time,
            observables=obs,
            time_unit=self.time_unit,
            samples=self.samples,
            seeds=None,
            diverged=self.diverged_mask.any(axis=0),
            meta=Metadata({**self.meta, "reduced": kind, "n_seeds": self.seeds}),
        )

    def mean(self) -> "Curve":
        """Mean over the seed axis (the identity for theory curves)."""
        return self._reduce(lambda v: v.mean(axis=0), "mean")

    def sem(self) -> "Curve":
        """Standard error of the mean over seeds, std(ddof=1)/sqrt(S); zeros for theory."""
        if self.seeds is None:
            return self._replace_observables({k: np.zeros_like(v) for k, v in self.observables.items()})
        if self.seeds < 2:
            raise ValueError(f"sem needs at least 2 seeds, this curve has seeds={self.seeds}")
        return self._reduce(lambda v: v.std(axis=0, ddof=1) / np.sqrt(v.shape[0]), "sem")

    def quantile(self, q: float) -> "Curve":
        """The q-quantile over seeds, 0 <= q <= 1 (the identity for theory curves)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q={q} must lie in [0, 1]")
        return self._reduce(lambda v: np.quantile(v, q, axis=0), f"quantile {q}")

    def _replace_observables(self, obs: dict) -> "Curve":
        return Curve(
            time=self.time,
            observables=obs,
            time_unit=self.time_unit,
            samples=self.samples,
            seeds=self.seeds,
            diverged=self.diverged,
            meta=self.meta,
        )

    @classmethod
    def concatenate(cls, curves) -> "Curve":
        """Monte Carlo curves of the same run stacked along the seed axis (same time grid)."""
        curves = list(curves)
        if not curves or any(c.seeds is None for c in curves):
            raise ValueError("curves must be one or more Monte Carlo curves (with a seed axis)")
        first = curves[0]
        for c in curves[1:]:
            if not np.array_equal(c.time, first.time) or c.names != first.names:
                raise ValueError("curves have different time grids or observables; allowed: "
                                 "pieces of one run")
        return cls(time=first.time,
                   observables={k: np.concatenate([c.observables[k] for c in curves])
                                for k in first.names},
                   time_unit=first.time_unit, samples=first.samples,
                   seeds=sum(c.seeds for c in curves),
                   diverged=np.concatenate([c.diverged_mask for c in curves]),
                   meta=Metadata({**first.meta, "seed_chunks": len(curves)}))

    # ---------------------------------------------------------------- grids
    def at(self, times) -> "Curve":
        """Linear interpolation of every observable (and samples) onto ``times``.

        Times outside the curve's range raise ValueError rather than extrapolate.
        """
        try:
            times = np.atleast_1d(np.asarray(times, dtype=np.float64))
        except (TypeError, ValueError):
            times = np.array([np.nan])
        if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)):
            raise ValueError(f"times={times!r} is invalid; allowed: finite numbers within the "
                             f"curve's range [{self.time[0]}, {self.time[-1]}]")
        lo, hi = self.time[0], self.time[-1]
        span = max(abs(hi), 1.0)
        if times.min() < lo - 1e-9 * span or times.max() > hi + 1e-9 * span:
            raise ValueError(
                f"times must lie within the curve's range [{lo}, {hi}]; "
                f"got [{times.min()}, {times.max()}]"
            )
        times = np.clip(times, lo, hi)

        def interp(v):
            if v.ndim == 1:
                return np.interp(times, self.time, v)
            return np.stack([np.interp(times, self.time, row) for row in v])

        idx = np.clip(np.searchsorted(self.time, times, side="right") - 1, 0, len(self.time) - 1)
        div = self.diverged_mask[..., idx]
        return Curve(
            time=times,
            observables={k: interp(v) for k, v in self.observables.items()},
            time_unit=self.time_unit,
            samples=np.interp(times, self.time, self.samples),
            seeds=self.seeds,
            diverged=div,
            meta=self.meta,
        )

    # ---------------------------------------------------------------- save / load
    def save(self, path: str | Path) -> Path:
        """Write the curve to ``path`` (.npz). ``Curve.load`` gives it back exactly."""
        path = Path(path)
        if not path.expanduser().resolve().parent.is_dir():
            raise ValueError(f"path={str(path)!r} is invalid: its folder does not exist")
        arrays = {"time": self.time, "samples": self.samples}
        for k, v in self.observables.items():
            arrays[f"obs::{k}"] = v
        if self.diverged is not None:
            arrays["diverged"] = np.asarray(self.diverged)
        header = {
            "time_unit": self.time_unit,
            "seeds": self.seeds,
            "meta": self.meta,
            "observable_order": list(self.observables),
        }
        arrays["header"] = np.array(json.dumps(header, default=_json_default))
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Curve":
        """Read a curve written by `Curve.save` (never loads pickles).

        Raises ``ValueError`` naming the path when the file is missing, truncated, empty or not
        an hdsgd curve file.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path={str(path)!r} is invalid: no such file (allowed: a .npz "
                             "written by Curve.save)")
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise KeyError("a single array, not an archive")
            with data:
                if "header" not in data.files:
                    raise KeyError("no hdsgd header")
                header = json.loads(str(data["header"]))
                obs = {k: data[f"obs::{k}"] for k in header["observable_order"]}
                return cls(
                    time=data["time"],
                    observables=obs,
                    time_unit=header["time_unit"],
                    samples=data["samples"],
                    seeds=header["seeds"],
                    diverged=data["diverged"] if "diverged" in data.files else None,
                    meta=Metadata(header["meta"]),
                )
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            reason = ("not a numpy archive; numpy would have to unpickle it, which hdsgd never does"
                      if "pickle" in str(err) else f"{type(err).__name__}: {err}")
            raise ValueError(f"path={str(path)!r} is not an hdsgd curve file ({reason}); allowed: "
                             "a .npz written by Curve.save") from None

    def table(self, names: tuple[str, ...] | None = None, rows: int = 12) -> str:
        """A short text table of the (seed-mean) observables at ~``rows`` times."""
        c = self.mean()
        names = names or c.names
        idx = np.unique(np.linspace(0, len(c.time) - 1, min(rows, len(c.time))).astype(int))
        head = f"{c.time_unit:>12} {'samples':>12} " + " ".join(f"{n:>16}" for n in names)
        lines = [head]
        for i in idx:
            flag = " (diverged)" if c.diverged_mask[i] else ""
            vals = " ".join(f"{c.observables[n][i]:>16.6g}" for n in names)
            lines.append(f"{c.time[i]:>12.6g} {c.samples[i]:>12.6g} {vals}{flag}")
        return "\n".join(lines)


def _json_default(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if hasattr(x, "tolist"):
        return np.asarray(x).tolist()
    return str(x)


def finished_values(time, observables: Mapping[str, Any], shape: tuple[int, ...], blown=None,
                    clocks: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The divergence rule of `finish_curve` on values of any leading shape (a Monte Carlo's
    seeds, a grid's settings): returns the observables broadcast to ``shape`` (float64 copies)
    and the sticky ``diverged`` mask, with every observable but the ``clocks`` set to inf where
    diverged. A point is diverged where ``blown`` or any non-clock observable is non-finite, and
    stays diverged along the last (time) axis; a finite point at t = 0 never is."""
    obs = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), shape).copy()
           for k, v in observables.items()}
    bad = np.zeros(shape, dtype=bool) if blown is None else np.broadcast_to(
        np.asarray(blown, dtype=bool), shape).copy()
    state = {k: v for k, v in obs.items() if k not in clocks}
    for v in state.values():
        bad |= ~np.isfinite(v)
    start = np.asarray(time) == 0
    if start.any():
        finite_start = np.ones(shape[:-1] + (int(start.sum()),), dtype=bool)
        for v in state.values():
            finite_start &= np.isfinite(v[..., start])
        bad[..., start] &= ~finite_start
    diverged = sticky(bad)
    for k in state:
        obs[k] = np.where(diverged, np.inf, obs[k])
    return obs, diverged


def finish_curve(setup, time, observables: Mapping[str, Any], *, method: str, samples,
                 seeds: int | None = None, blown=None, warnings=(), extra: Mapping | None = None,
                 free_fields: tuple[str, ...] = (), clocks: tuple[str, ...] = (),
                 auxiliary: tuple[str, ...] = ()) -> Curve:
    """The one way every prediction and every simulation becomes a `Curve`.

    Divergence: a point is diverged where ``blown`` (the system's own criterion, e.g. a value
    past 10^12 times its start) or any observable is non-finite, and stays diverged from then on
    (per seed for Monte Carlo). Diverged values become ``inf`` (never NaN, never finite
    nonsense). The initial state at t = 0 is known, so a finite point at t = 0 is never flagged.

    Metadata: the Setup's fields, ``method``, the package version, the time label, ``extra``,
    and ``meta["warning"]``: the given ``warnings`` (e.g. a step size past the system's
    stability edge, saying which edge), plus a note of where the curve diverged.

    Args:
        setup: the Setup (a `hdsgd.setups.Setup`).
        time: the time grid (T,), in ``setup.time_unit``.
        observables: name -> values, (T,) for theory or (S, T) for Monte Carlo.
        method: which deterministic equivalent or Monte Carlo variant produced the values.
        samples: cumulative fresh samples (T,).
        seeds: the number of Monte Carlo seeds (the leading axis), or None for theory.
        blown: optional boolean mask (same shape as the observables) from the system.
        warnings: strings for ``meta["warning"]``.
        extra: more metadata.
        free_fields: Setup fields the values do not depend on (e.g. ``("dim",)`` for a
            d -> infinity limit), so that `compare` accepts a Monte Carlo at another value.
        clocks: observables that are another reading of time (e.g. grokking's tau): never
            flagged, never set to inf.
        auxiliary: observables that figures and `compare` leave out unless named (clocks, and
            statistics a theory only claims in a limit); stored in ``meta["auxiliary"]``.
    """
    time = np.asarray(time, dtype=np.float64)
    shape = time.shape if seeds is None else (int(seeds),) + time.shape
    obs, diverged = finished_values(time, observables, shape, blown, clocks)
    notes = [w for w in warnings if w]
    if diverged.any():
        if seeds is None:
            first = float(time[np.argmax(diverged)])
            notes.append(f"the prediction diverged at {setup.time_unit} = {first:.6g}")
        else:
            runs = int(diverged.any(axis=-1).sum())
            notes.append(f"{runs} of {seeds} Monte Carlo runs diverged")
    meta = Metadata({**setup.fields(), "method": method, "version": __version__,
            "time_label": setup.time_label, "setup_fields": list(setup.field_names()),
            "free_fields": list(free_fields), "clocks": list(clocks),
            "auxiliary": list(dict.fromkeys((*clocks, *auxiliary))),
            **(dict(extra) if extra else {})})
    if notes:
        meta["warning"] = "; ".join(notes)
    return Curve(time=time, observables=obs, time_unit=setup.time_unit,
                 samples=np.asarray(samples, dtype=np.float64), seeds=seeds, diverged=diverged,
                 meta=meta)
