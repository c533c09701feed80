"""A system as the command line sees it, and the list of them.

Each ``hdsgd/cli/<system>.py`` registers one `CliSystem`: the Setup class(es), the predict and
Monte Carlo methods, the default horizon, a demo and its tuning defaults. Field options come
from the Setup itself (`hdsgd.cli._fields`), so nothing here repeats a default.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Demo:
    """What one system's demo produced.

    Attributes:
        line: a one-line summary in words.
        agreement: the `hdsgd.Agreement` the demo's verdict is read from.
        figure: the written figure.
    """

    line: str
    agreement: Any
    figure: Path


@dataclasses.dataclass(frozen=True)
class CliSystem:
    """One system's command line.

    Attributes:
        name: ``hdsgd NAME ...`` (also the face ``hdsgd.NAME``).
        summary: one line for ``hdsgd --help``.
        models: model name -> Setup class; with several, ``--model`` chooses (the first is the
            default) and the options are the union of their fields.
        default_horizon: ``setup -> horizon`` used when ``--horizon`` is absent.
        methods: the ``predict`` methods (``--method``; absent: the Setup's own default).
        method_help: which method ``predict`` uses when ``--method`` is absent, in words.
        simulate_methods: the Monte Carlo variants (``--mc-method``), the first the default;
            empty when there is one.
        demo: ``demo(out_dir, key) -> Demo``: a small theory-vs-Monte-Carlo comparison.
        parsers: per-field text -> value overrides (e.g. a spectrum written as text).
        observable: the headline observable (tables, tuning's default objective).
        tune_space: ``setup -> {field: values or LogRange}``, the default search space of
            ``hdsgd NAME tune`` (documented in its help); None: no tune command.
        tune_target: ``(setup, observable, space, run) -> float``, the default target of the
            ``*_to_target`` objectives (``space``: the search space of this run; ``run``: its
            ``{"budget": samples}`` or ``{"horizon": t}``).
        tune_report: optional ``Tuned -> str``: system-specific lines after the choice.
        tune_help: one line describing the default space and target, for ``--help``.
        tune_objective: the default objective kind (``"samples_to_target"``, ...).
        tune_reach: the default direction of the target (``"below"`` or ``"above"``).
        tune_settle: whether the default target must be met for good (a settling time).
        tune_horizon: optional ``setup -> horizon`` for tuning (default: ``default_horizon``).
        default_seeds: ``--seeds`` when absent (Monte Carlo runs of simulate, compare, sweep and
            tune's check).
    """

    name: str
    summary: str
    models: dict[str, type]
    default_horizon: Callable[[Any], float]
    methods: tuple[str, ...]
    demo: Callable[[Path, Any], Demo]
    simulate_methods: tuple[str, ...] = ()
    method_help: str = "the Setup's own default"
    parsers: dict[str, Callable[[str], Any]] = dataclasses.field(default_factory=dict)
    observable: str | None = None
    tune_space: Callable[[Any], dict] | None = None
    tune_target: Callable[[Any, str, dict, dict], float] | None = None
    tune_report: Callable[[Any], str] | None = None
    tune_help: str = ""
    tune_objective: str = "samples_to_target"
    tune_reach: str = "below"
    tune_settle: bool = False
    tune_horizon: Callable[[Any], float] | None = None
    default_seeds: int = 16

    @property
    def time_unit(self) -> str:
        return next(iter(self.models.values())).time_unit


SYSTEMS: dict[str, CliSystem] = {}


def register(system: CliSystem) -> CliSystem:
    if system.name in SYSTEMS and SYSTEMS[system.name] != system:
        raise ValueError(f"a different system is already registered as {system.name!r}")
    SYSTEMS[system.name] = system
    return system
