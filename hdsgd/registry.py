"""The list of systems the command line and `hdsgd demo` know about.

A system registers itself once (in its ``hdsgd/setups/<system>.py``) with the options the
CLI exposes, a function building its Setup from them, and a small demo. Nothing else in
the CLI or the demo needs to change when a system is added.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Option:
    """One command-line option, mapped to a keyword of the system's ``build`` function.

    Attributes:
        name: the keyword (``step_size``); the flag is ``--step-size``.
        type: ``float``, ``int`` or ``str`` (parses the flag's text).
        default: used when the flag is absent.
        help: what the value means, with its unit and range.
        choices: allowed values for a ``str`` option.
    """

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class System:
    """A system as the command line sees it.

    Attributes:
        name: the CLI name (``hdsgd NAME predict``).
        setup_type: the Setup class.
        summary: one line shown by ``hdsgd --help``.
        options: the Setup-building options.
        build: ``build(**options) -> Setup``.
        default_horizon: horizon used when ``--horizon`` is absent, in the system's time unit.
        time_unit: ``"step"`` or ``"t"``, shown in help.
        methods: the ``predict`` methods, the first being the default.
        demo: ``demo(out_dir: Path, key) -> str``: runs a small theory-vs-Monte-Carlo
            comparison, writes its figures under ``out_dir`` and returns a summary line.
        tune: optional ``tune(setup, args) -> str`` behind ``hdsgd NAME tune``.
        simulate_methods: the Monte Carlo variants ``simulate(..., method=...)`` accepts (the
            first being the default), exposed as ``--mc-method``; empty when there is one.
    """

    name: str
    setup_type: type
    summary: str
    options: tuple[Option, ...]
    build: Callable[..., Any]
    default_horizon: float
    time_unit: str
    methods: tuple[str, ...]
    demo: Callable[[Path, Any], str]
    tune: Callable[..., str] | None = None
    simulate_methods: tuple[str, ...] = ()


SYSTEMS: dict[str, System] = {}


def register_system(system: System) -> System:
    if system.name in SYSTEMS and SYSTEMS[system.name].setup_type is not system.setup_type:
        raise ValueError(f"a different system is already registered as {system.name!r}")
    SYSTEMS[system.name] = system
    return system
