"""`Setup`: the base every system's Setup derives from (data only: no theory, no simulation).

A Setup is an immutable `equinox.Module` holding one system's problem, algorithm and
hyperparameters, validated on construction. The base gives every system the same small
protocol, so that `predict`, `simulate`, `compare`, `tune` and the command line treat them
alike:

* ``system`` (class constant): the system's name (``"lstsq"``), also the CLI's and the face's.
* ``time_unit`` (class constant): ``"step"`` or ``"t"`` (a scaled time: samples / dim with one
  sample a step, steps / d for mini-batch least squares); ``time_label`` says which, and
  labels the time axis of figures and the command line's ``--horizon``.
* `fields`: the Setup as plain data (written into ``Curve.meta``).
* `output_steps`: the whole steps at which theory and Monte Carlo report.
* `replace`: a copy with some fields changed, validated again (what tuning moves along).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import numpy as np


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, eqx.Module) and callable(getattr(value, "fields", None)):
        return value.fields()  # a structured field value (a step-size `Schedule`)
    return value


def cast_value(old, value):
    """``value`` cast to the kind of a field now holding ``old`` (what `Setup.replace` passes to
    the constructor): a grid's float 4.0 becomes 4 for an integer field, an integer becomes a
    float for a real one; anything else (4.5, nan, inf, 1j, text) goes through as given, for the
    constructor's check to name."""
    if (isinstance(old, bool) or isinstance(value, (str, np.ndarray, list, tuple, eqx.Module))
            or value is None):
        return value
    if isinstance(old, (int, np.integer)) and not isinstance(value, (int, np.integer)):
        try:
            integral = float(value).is_integer()
        except (TypeError, ValueError, OverflowError):
            integral = False
        return int(float(value)) if integral else value
    if isinstance(old, float) and isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return value


class Setup(eqx.Module):
    """Base class of the five systems' Setups (see the module docstring).

    Subclasses set the class constants ``system``, ``time_unit`` and ``time_label``, declare
    their fields, and validate them in ``__init__`` (each bad field raises ``ValueError``
    naming the field, its value and the allowed range).
    """

    system: ClassVar[str] = ""
    time_unit: ClassVar[str] = "step"
    time_label: ClassVar[str] = "steps"
    #: derived coordinates `replace` (and so `tune`) accepts besides the fields, each read as a
    #: property ``<name>`` and set by a method ``_set_<name>(value) -> dict of field changes``
    #: (e.g. prox-linear's eta_bar, momentum's damping 1 - beta).
    coordinates: ClassVar[tuple[str, ...]] = ()
    #: scalar fields whose check does not depend on any other field: name -> the check
    #: ``__init__`` itself runs on it (value -> validated value, or ValueError naming the
    #: field). `api.grid_columns` validates a grid over such fields value by value, without a
    #: Setup per point.
    grid_checks: ClassVar[dict] = {}

    # ------------------------------------------------------------ plain data
    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``): every field, plus ``system``."""
        out = {"system": self.system}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    # ------------------------------------------------------------ time
    @property
    def samples_per_step(self) -> float:
        """Fresh samples drawn per step (``batch_size`` where the Setup has one, else 1)."""
        return float(getattr(self, "batch_size", 1))

    @property
    def steps_per_unit(self) -> float:
        """Steps per unit of ``time_unit``: 1 for ``"step"``, ``dim`` for ``"t"``."""
        return 1.0 if self.time_unit == "step" else float(getattr(self, "dim"))

    def output_steps(self, horizon: float, times=None) -> np.ndarray:
        """The whole steps at which a curve is reported: ``round(times * steps_per_unit)`` for
        explicit ``times`` (checked against ``horizon``), else step 0 and ~100 log-spaced steps
        up to ``round(horizon * steps_per_unit)``. The horizon must cover at least one step."""
        from ..api import output_steps

        return output_steps(horizon, times, steps_per_unit=self.steps_per_unit)

    # ------------------------------------------------------------ copies
    def replace(self, **changes) -> "Setup":
        """A copy with ``changes`` applied and validated again.

        Names are fields or the Setup's derived ``coordinates`` (applied after the fields, so a
        coordinate may depend on a changed field). Values are cast to the field's kind (an
        integer field accepts 4.0, not 4.5). An unknown name raises ``ValueError`` listing the
        names that can change.
        """
        names = self.field_names()
        unknown = sorted(set(changes) - set(names) - set(self.coordinates))
        if unknown:
            allowed = ", ".join(names + self.coordinates)
            raise ValueError(f"{', '.join(map(repr, unknown))} "
                             f"{'is not a field' if len(unknown) == 1 else 'are not fields'} "
                             f"of {type(self).__name__}; allowed: {allowed}")
        cast = {name: cast_value(getattr(self, name), value) for name, value in changes.items()
                if name not in self.coordinates}
        out = dataclasses.replace(self, **cast) if cast else self
        for name in self.coordinates:
            if name in changes:
                out = dataclasses.replace(out, **getattr(out, f"_set_{name}")(changes[name]))
        return out
