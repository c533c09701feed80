"""CurveGrid: what `predict_grid` returns, one point per setting, each Curve built on access.

A system whose theory runs a whole grid as one vmapped call would otherwise spend as long again
building a `Curve` per setting (an equinox Module with the Setup's fields as metadata: ~0.14 ms
a point on a CPU, against 0.08 ms a point for the vmapped least-squares recursion at d = 500,
2000 steps). Such a system hands its finished values here, stacked (one row per setting); the
tuner scores the rows directly (`CurveGrid.values`) and a point's Curve is built the first time
it is asked for. A grid predicted point by point is a CurveGrid of built Curves: the same
reading either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, NamedTuple

import numpy as np
from jaxtyping import Bool, Float

from .curve import Curve, check_observable


class PointValues(NamedTuple):
    """One observable of one grid point, as the tuner's objectives read it.

    Attributes:
        samples: cumulative fresh samples, shape ``(T,)``.
        steps: optimizer steps at each time, ``(T,)``; None where the curve cannot say (time in
            units of ``t`` without ``meta["dim"]``).
        values: the observable (the seed mean for Monte Carlo), ``(T,)``, inf from the first
            diverged or non-finite point on (nothing after a divergence counts).
    """

    samples: Float[np.ndarray, " T"]
    steps: Float[np.ndarray, " T"] | None
    values: Float[np.ndarray, " T"]


def cleaned(values, diverged) -> np.ndarray:
    """``values`` (float64 copy) set to inf from the first point that is diverged or not finite."""
    y = np.array(values, dtype=np.float64)
    bad = np.asarray(diverged, dtype=bool) | ~np.isfinite(y)
    if bad.any():
        y[np.argmax(bad):] = np.inf
    return y


def curve_steps(curve: Curve) -> np.ndarray | None:
    """Optimizer steps at the curve's times: ``time`` itself, or ``t * d`` for a time in units
    of ``t`` (None when the curve has no ``meta["dim"]``)."""
    if curve.time_unit == "step":
        return curve.time
    dim = curve.meta.get("dim")
    return None if dim is None else curve.time * float(dim)


def point_values(curve: Curve, observable: str) -> PointValues:
    """`PointValues` of a built Curve (Monte Carlo: its seed mean)."""
    c = curve.mean()
    check_observable(observable, c.observables)
    return PointValues(c.samples, curve_steps(c), cleaned(c.observables[observable],
                                                          c.diverged_mask))


class _Stack:
    """Finished values of V settings on one time grid (row v: setting v), and the builder of
    row v's Curve, kept once built."""

    __slots__ = ("time", "steps", "samples", "observables", "diverged", "build", "built")

    def __init__(self, time, steps, samples, observables, diverged, build):
        self.time, self.steps, self.samples = time, steps, samples
        self.observables, self.diverged, self.build = observables, diverged, build
        self.built: dict[int, Curve] = {}

    def curve(self, row: int) -> Curve:
        if row not in self.built:
            self.built[row] = self.build(row)
        return self.built[row]

    def values(self, row: int, observable: str) -> PointValues:
        check_observable(observable, self.observables)
        return PointValues(self.samples[row], self.steps,
                           cleaned(self.observables[observable][row], self.diverged[row]))


class CurveGrid(Sequence):
    """The predictions of a grid of settings: a sequence of ``Curve | None`` (None where the
    setting failed validation), read like a list.

    ``grid[g]`` is point g's Curve (built on first access when the grid was predicted
    stacked); ``grid.values(g, observable)`` reads point g without building it.
    """

    def __init__(self, points: Sequence = ()):
        # each point: a Curve, None, or (stack, row) of a stacked prediction
        self._points = list(points)

    @classmethod
    def stacked(cls, present: Sequence[bool], *, time: Float[np.ndarray, " T"],
                steps: Float[np.ndarray, " T"], samples: Float[np.ndarray, "V T"],
                observables: dict[str, np.ndarray], diverged: Bool[np.ndarray, "V T"],
                build: Callable[[int], Curve]) -> "CurveGrid":
        """A grid predicted in one call: ``present[g]`` says whether point g has a prediction;
        the arrays hold one row per present point, in order (``observables`` finished: inf
        where ``diverged``, as `hdsgd.curve.finished_values` leaves them), and ``build(v)``
        makes row v's Curve with the same values."""
        stack = _Stack(np.asarray(time), np.asarray(steps, dtype=np.float64), samples,
                       observables, diverged, build)
        rows = iter(range(samples.shape[0]))
        return cls([(stack, next(rows)) if p else None for p in present])

    def __len__(self) -> int:
        return len(self._points)

    def __getitem__(self, g):
        if isinstance(g, slice):
            return [self[i] for i in range(len(self))[g]]
        p = self._points[g]
        return p[0].curve(p[1]) if isinstance(p, tuple) else p

    def __repr__(self) -> str:
        built = sum(1 for p in self._points if isinstance(p, Curve))
        missing = sum(1 for p in self._points if p is None)
        return (f"CurveGrid({len(self)} points, {len(self) - missing - built} stacked, "
                f"{built} built, {missing} invalid)")

    def point(self, g: int):
        """Point g as stored (a Curve, None or a stacked row), to place in another grid."""
        return self._points[g]

    def values(self, g: int, observable: str) -> PointValues | None:
        """Point g's ``observable`` as `PointValues` (None for an invalid setting), read from
        the stacked rows without building a Curve."""
        p = self._points[g]
        if p is None:
            return None
        if isinstance(p, tuple):
            return p[0].values(p[1], observable)
        return point_values(p, observable)
