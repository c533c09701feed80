"""What the teaching page shows of a system: a `View` (which fields get sliders, their ranges,
the fields held fixed, the time grid, the stability edge) and how a slider position becomes the
Setup a user could build by hand.

A view is plain data; everything else is read from the system itself: the Setup class (an
attribute of ``hdsgd``, its constructor defaults and, through the injected ``field_docs``, its
docstring's ``Attributes:`` section) and the system's face ``hdsgd.<system>`` (the stability
edge and the other derived quantities, called by name). Names are resolved when the page asks
for a view, never at import, so a view whose system is missing from this installation is
listed as unavailable instead of breaking the package (docs/teach.md, "Adding a system").

Shapes stay fixed per view: the dimension and every other field that sizes an array are in
``fixed`` (never a slider), and the horizon is one of a few ``horizons``, so a slider move
changes only traced numbers and the theory is compiled once per view and horizon.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import re
import string
from typing import Any, Callable, Mapping

SCALES = ("log", "linear")
KINDS = ("system", "dimension", "lesson")


class FieldError(ValueError):
    """A bad value in a request, naming the field (or argument) it came from."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field


@dataclasses.dataclass(frozen=True)
class Slider:
    """One slider.

    Attributes:
        name: a Setup field, or a parameter of a ``{name}`` template in `View.fixed` (e.g. the
            exponent of a power-law spectrum).
        low, high: the slider's window, inside the range the Setup documents and accepts
            (the tests build the Setup at both ends); values typed outside it are still sent
            to the Setup, which has the last word.
        scale: "log" or "linear" spacing of the slider's positions.
        integer: the value is a whole number.
        default: the starting value; None: the Setup constructor's default.
        symbol: a short mathematical name shown beside the field's (e.g. "γ").
        help: the explanation shown under a template parameter (fields take theirs from the
            Setup's docstring).
    """

    name: str
    low: float
    high: float
    scale: str = "log"
    integer: bool = False
    default: float | None = None
    symbol: str = ""
    help: str = ""

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale={self.scale!r} is invalid; allowed: {SCALES}")
        if not self.low < self.high or (self.scale == "log" and self.low <= 0):
            raise ValueError(f"slider {self.name!r}: low={self.low}, high={self.high} is invalid; "
                             "allowed: low < high (and low > 0 on a log scale)")


@dataclasses.dataclass(frozen=True)
class Quantity:
    """A number derived from the Setup by the system's face, shown beside the plot.

    Attributes:
        label: what it is, in words.
        compute: the name of a function of ``hdsgd.<system>`` called as ``fn(setup)``, or a
            callable ``(face, setup) -> value``.
        pick: an index or attribute name to take from the result (a tuple or a named tuple).
        python: how the copied code computes it (default: ``hdsgd.<system>.<compute>(setup)``).
    """

    label: str
    compute: str | Callable[[Any, Any], Any]
    pick: int | str | None = None
    python: str = ""

    def value(self, face, setup) -> float:
        fn = getattr(face, self.compute) if isinstance(self.compute, str) else None
        out = fn(setup) if fn is not None else self.compute(face, setup)
        if isinstance(self.pick, int):
            out = out[self.pick]
        elif isinstance(self.pick, str):
            out = getattr(out, self.pick)
        return float(out)

    def code(self, system: str) -> str:
        if self.python:
            return self.python
        if isinstance(self.compute, str):
            tail = ("" if self.pick is None else
                    f"[{self.pick}]" if isinstance(self.pick, int) else f".{self.pick}")
            return f"hdsgd.{system}.{self.compute}(setup){tail}"
        return ""


@dataclasses.dataclass(frozen=True)
class Edge:
    """The stability edge: the value of ``field`` past which training diverges.

    Attributes:
        field: the slider it is a value of (``step_size``).
        compute: the face's function, ``fn(setup) -> float``.
        label: its name on the page.
    """

    field: str = "step_size"
    compute: str = "critical_step_size"
    label: str = "stability edge"


@dataclasses.dataclass(frozen=True)
class Diagram:
    """The edge drawn against a second slider (``x``): the stability diagram.

    Attributes:
        x: the slider on the diagram's horizontal axis (the edge's field is the vertical one).
        marks: quantities drawn as vertical lines at their value of ``x`` (e.g. the critical
            batch size).
        points: how many values of ``x`` the edge is computed at.
    """

    x: str
    marks: tuple[Quantity, ...] = ()
    points: int = 41


@dataclasses.dataclass(frozen=True)
class View:
    """One page of ``hdsgd teach``: a system, its sliders and what the plot shows.

    Attributes:
        id: the page's address (``#lstsq``).
        title: its heading.
        system: the face ``hdsgd.<system>`` (also the Setup's ``system``).
        setup: the Setup class, an attribute of ``hdsgd``.
        sliders: the fields (or template parameters) that move.
        fixed: constructor arguments held fixed (fields that size arrays, such as the dimension,
            belong here), and values of template parameters. A string value may hold
            ``{name}`` templates, filled from the other values (``"power_law:{dim}:{exponent}"``).
        dim: the name (field or template parameter) that carries the dimension, or None.
        horizons: the horizons offered, in the Setup's time unit (the first is the default);
            each is compiled once.
        observables: the observables offered (the first is the default); ``"a+b"`` draws both.
        x_scale, y_scale: the default axes ("log" or "linear").
        method: the ``predict`` method (None: the system's default).
        simulate_methods: the Monte Carlo variants offered (the first is the default); empty:
            the system's default.
        mc_dims: the dimensions the "simulate" control offers (system and lesson views).
        dims: the dimensions of a "dimension" view, run side by side.
        seeds: the default number of Monte Carlo seeds.
        chunk_seeds: the most seeds simulated at once (a job stops between chunks).
        edge: the stability edge, or None.
        diagram: the edge against a second slider, or None.
        readouts: quantities listed beside the plot.
        marks: quantities drawn as vertical lines on the time axis (same unit as the curve).
        kind: "system", "dimension" or "lesson".
        text: sentences shown above the controls (a lesson's explanation).
        menu: the name in the page's menu.
    """

    id: str
    title: str
    system: str
    setup: str
    sliders: tuple[Slider, ...]
    horizons: tuple[float, ...]
    observables: tuple[str, ...]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    dim: str | None = None
    x_scale: str = "log"
    y_scale: str = "log"
    method: str | None = None
    simulate_methods: tuple[str, ...] = ()
    mc_dims: tuple[int, ...] = ()
    dims: tuple[int, ...] = ()
    seeds: int = 16
    chunk_seeds: int = 8
    edge: Edge | None = None
    diagram: Diagram | None = None
    readouts: tuple[Quantity, ...] = ()
    marks: tuple[Quantity, ...] = ()
    kind: str = "system"
    text: tuple[str, ...] = ()
    menu: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind={self.kind!r} is invalid; allowed: {KINDS}")
        names = [s.name for s in self.sliders]
        if len(set(names)) != len(names) or set(names) & set(self.fixed):
            raise ValueError(f"view {self.id!r}: a name is a slider twice or both a slider and "
                             "fixed")
        if self.kind == "dimension" and not self.dims:
            raise ValueError(f"view {self.id!r}: a dimension view needs dims")
        if (self.dims or self.mc_dims) and self.dim is None:
            raise ValueError(f"view {self.id!r}: dims need the name of the dimension (dim=)")

    def slider(self, name: str) -> Slider:
        for s in self.sliders:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def theory_dim(self):
        """The dimension the theory is drawn at (the fixed one), or None."""
        return None if self.dim is None else self.fixed.get(self.dim)


def derive(base: View, **changes) -> View:
    """A view made from another (a lesson, or the dimension view of a system's view).

    ``sliders`` may name the base's sliders; a base slider left out is held fixed at its value
    in ``values`` (else its default: the Setup's own default for a field); ``values`` sets
    starting values; ``drop`` removes template parameters no longer used; ``fixed`` adds to
    (and overrides) the base's fixed values; everything else replaces the base's attribute.
    """
    values = dict(changes.pop("values", {}))
    drop = set(changes.pop("drop", ()))
    sliders = changes.pop("sliders", base.sliders)
    sliders = tuple(base.slider(s) if isinstance(s, str) else s for s in sliders)
    extra_fixed = dict(changes.pop("fixed", {}))
    kept = {s.name for s in sliders}
    fixed = {k: v for k, v in base.fixed.items() if k not in drop}
    for s in base.sliders:
        if s.name in kept or s.name in drop or s.name in extra_fixed:
            continue
        value = values.get(s.name, s.default)
        if value is not None:
            fixed[s.name] = value
    fixed.update(extra_fixed)
    sliders = tuple(dataclasses.replace(s, default=values[s.name]) if s.name in values else s
                    for s in sliders)
    return dataclasses.replace(base, sliders=sliders, fixed=fixed, **changes)


# ---------------------------------------------------------------------------- resolving
@dataclasses.dataclass(frozen=True)
class Resolved:
    """A view with its Setup class and face imported."""

    view: View
    cls: type
    face: Any
    defaults: Mapping[str, Any]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(self.defaults)


def constructor_defaults(cls) -> dict[str, Any]:
    """Constructor argument -> its default, in order (the Setup's own defaults)."""
    out = {}
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        out[name] = None if param.default is inspect.Parameter.empty else param.default
    return out


def _template_names(value) -> set[str]:
    if not isinstance(value, str) or "{" not in value:
        return set()
    return {name for _, name, _, _ in string.Formatter().parse(value) if name}


def resolve(view: View) -> Resolved:
    """Import the view's Setup class and face; ValueError saying what is missing."""
    import hdsgd

    missing = []
    cls = getattr(hdsgd, view.setup, None)
    if not isinstance(cls, type):
        missing.append(f"hdsgd.{view.setup}")
    try:
        face = importlib.import_module(f"hdsgd.{view.system}")
    except ImportError:
        face = None
        missing.append(f"hdsgd.{view.system}")
    if missing:
        raise ValueError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in "
                         "this installation")
    wanted = [q.compute for q in view.readouts + view.marks if isinstance(q.compute, str)]
    if view.edge is not None:
        wanted.append(view.edge.compute)
    if view.diagram is not None:
        wanted += [q.compute for q in view.diagram.marks if isinstance(q.compute, str)]
    absent = sorted({n for n in wanted if not callable(getattr(face, n, None))})
    if absent:
        raise ValueError(f"hdsgd.{view.system} has no {', '.join(absent)}")
    defaults = constructor_defaults(cls)
    params = set().union(*(_template_names(v) for v in view.fixed.values()))
    unknown = sorted({s.name for s in view.sliders} - set(defaults) - params)
    unknown += sorted(set(view.fixed) - set(defaults) - params - {view.dim})
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not arguments of hdsgd.{view.setup} nor "
                         "template parameters of the view")
    return Resolved(view, cls, face, defaults)


# ---------------------------------------------------------------------------- values
def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(name, f"{name}={value!r} is invalid; allowed: a number")
    if not math.isfinite(float(value)):
        raise FieldError(name, f"{name}={value!r} is invalid; allowed: a finite number")
    return value


def slider_defaults(r: Resolved) -> dict[str, Any]:
    """Slider -> its starting value (the view's, else the Setup constructor's)."""
    out = {}
    for s in r.view.sliders:
        out[s.name] = s.default if s.default is not None else r.defaults.get(s.name)
    return out


def check_values(r: Resolved, given) -> dict[str, Any]:
    """The slider values of a request (missing ones at their defaults), each checked to be a
    number (a whole number for integer sliders; template parameters within their window);
    FieldError naming the first bad one. The Setup checks the fields' ranges itself."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise FieldError("values", f"values={given!r} is invalid; allowed: an object mapping "
                         "slider names to numbers")
    names = [s.name for s in r.view.sliders]
    unknown = sorted(set(given) - set(names))
    if unknown:
        what = ("held fixed in this view" if set(unknown) & (set(r.view.fixed) | set(r.defaults))
                else "not a slider of this view")
        raise FieldError(unknown[0], f"{', '.join(map(repr, unknown))}: {what} "
                         f"({r.view.id!r}); allowed: {', '.join(names)}")
    values = slider_defaults(r)
    for s in r.view.sliders:
        if s.name not in given:
            continue
        x = _number(s.name, given[s.name])
        if s.integer:
            if float(x) != round(float(x)):
                raise FieldError(s.name, f"{s.name}={x!r} is invalid; allowed: an integer")
            x = int(round(float(x)))
        else:
            x = float(x)
        if s.name not in r.defaults and not s.low <= x <= s.high:
            raise FieldError(s.name, f"{s.name}={x!r} is invalid; allowed: [{s.low}, {s.high}]")
        values[s.name] = x
    return values


def setup_arguments(r: Resolved, values: Mapping[str, Any], dim=None) -> dict[str, Any]:
    """The Setup constructor's keyword arguments for slider ``values`` (templates filled),
    at dimension ``dim`` (default: the view's)."""
    merged = {**dict(r.view.fixed), **dict(values)}
    if dim is not None:
        merged[r.view.dim] = int(dim)
    filled = {k: _fill(v, merged) for k, v in merged.items()}
    return {k: filled[k] for k in r.defaults if k in filled}


def _fill(value, values: Mapping[str, Any]):
    """A template filled in: ``"{name}"`` alone gives the value itself (a number stays a
    number), a longer template gives text."""
    names = _template_names(value)
    if not names:
        return value
    if len(names) == 1 and value == "{" + next(iter(names)) + "}":
        return values[next(iter(names))]
    return value.format_map(values)


_FIELD_IN_ERROR = re.compile(r"^'?(\w+)'?(=| )")


def build_setup(r: Resolved, values: Mapping[str, Any], dim=None):
    """The Setup of a slider position; FieldError naming the field the Setup rejected."""
    kwargs = setup_arguments(r, values, dim)
    try:
        return r.cls(**kwargs)
    except (ValueError, TypeError) as err:
        text = str(err)
        match = _FIELD_IN_ERROR.match(text)
        names = set(r.defaults) | {s.name for s in r.view.sliders}
        field = match.group(1) if match and match.group(1) in names else None
        if field is not None and field not in [s.name for s in r.view.sliders]:
            # a field built from a template: name the slider that fills it, where one does
            template = r.view.fixed.get(field)
            used = sorted(_template_names(template) & {s.name for s in r.view.sliders})
            field = used[0] if used else field
        raise FieldError(field, text) from None


# ---------------------------------------------------------------------------- description
def describe(r: Resolved, field_docs: Callable[[type], Mapping[str, str]] | None) -> dict:
    """The view as the page needs it (plain JSON data)."""
    view = r.view
    docs = dict(field_docs(r.cls)) if field_docs is not None else {}
    defaults = slider_defaults(r)
    sliders = []
    for s in view.sliders:
        sliders.append({"name": s.name, "low": s.low, "high": s.high, "scale": s.scale,
                        "integer": s.integer, "default": defaults[s.name], "symbol": s.symbol,
                        "help": s.help or docs.get(s.name, ""),
                        "field": s.name in r.defaults})
    fixed = {k: v for k, v in setup_arguments(r, defaults).items() if k in view.fixed}
    return {
        "id": view.id, "title": view.title, "system": view.system, "setup": view.setup,
        "kind": view.kind, "menu": view.menu or view.title, "text": list(view.text),
        "sliders": sliders, "fixed": {k: _plain(v) for k, v in fixed.items()},
        "fixed_help": {k: docs.get(k, "") for k in fixed},
        "horizons": list(view.horizons), "observables": list(view.observables),
        "x_scale": view.x_scale, "y_scale": view.y_scale,
        "time_unit": r.cls.time_unit, "time_label": r.cls.time_label,
        "simulate_methods": list(view.simulate_methods),
        "mc_dims": list(view.mc_dims), "dims": list(view.dims), "theory_dim": view.theory_dim,
        "seeds": view.seeds,
        "edge": None if view.edge is None else {"field": view.edge.field, "label": view.edge.label},
        "diagram": None if view.diagram is None else {"x": view.diagram.x},
    }


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return repr(value)


# ---------------------------------------------------------------------------- code
def _arguments_code(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _simulate_code(setup_name: str, horizon: float, seeds: int, chunk: int, method) -> str:
    """``simulate`` in seed chunks, chunk c with the key ``fold_in(key, c)``: the numbers of
    ``simulate(setup, horizon, key=key, seeds=seeds, checkpoint=FOLDER, chunk_seeds=chunk)``."""
    n_chunks = -(-seeds // chunk)
    count = str(chunk) if seeds % chunk == 0 else f"min({chunk}, {seeds} - {chunk} * c)"
    option = "" if not method else f", method={method!r}"
    return (f"hdsgd.Curve.concatenate([hdsgd.simulate({setup_name}, {horizon!r}, "
            f"key=jax.random.fold_in(key, c), seeds={count}{option}) for c in range({n_chunks})])")


def python_code(r: Resolved, values: Mapping[str, Any], horizon: float, *,
                observable: str | None = None, simulation: Mapping[str, Any] | None = None
                ) -> str:
    """The code that computes what the page shows for these slider values: the same Setup,
    the same `hdsgd.predict` call and, after a simulation, the same `hdsgd.simulate` calls
    (seeds in chunks, chunk c with the key ``jax.random.fold_in(key, c)``, exactly as
    ``hdsgd.simulate(..., checkpoint=FOLDER, chunk_seeds=chunk)`` draws them).

    ``observable``: the one(s) drawn (``"a+b"`` for two); ``simulation``: ``{"dims": [...],
    "seeds": S, "seed": k, "method": m or None, "chunk_seeds": {dim: chunk}}`` of a finished
    Monte Carlo job.
    """
    view = r.view
    method = "" if view.method is None else f", method={view.method!r}"
    name = r.cls.__name__
    sim = simulation
    lines = (["import jax"] if sim else []) + ["import hdsgd", ""]
    if sim:
        lines.append(f"key = jax.random.key({sim['seed']})")
    if view.kind == "dimension":
        dims = list(sim["dims"]) if sim else list(view.dims)
        lines.append("theory, mc = {}, {}")
        for d in dims:
            lines.append(f"setup = hdsgd.{name}({_arguments_code(setup_arguments(r, values, d))})")
            lines.append(f"theory[{d}] = hdsgd.predict(setup, {horizon!r}{method})")
            if sim:
                lines.append(f"mc[{d}] = " + _simulate_code("setup", horizon, sim["seeds"],
                                                            sim["chunk_seeds"][d], sim["method"]))
        return "\n".join(lines) + "\n"
    lines.append(f"setup = hdsgd.{name}({_arguments_code(setup_arguments(r, values))})")
    lines.append(f"theory = hdsgd.predict(setup, {horizon!r}{method})")
    if view.edge is not None:
        lines.append(f"edge = hdsgd.{view.system}.{view.edge.compute}(setup)  "
                     f"# the {view.edge.label}, a value of {view.edge.field}")
    for q in view.readouts:
        code = q.code(view.system)
        if code:
            lines.append(f"print({q.label!r}, {code})")
    names = (observable or view.observables[0]).split("+")
    if sim:
        dim = sim["dims"][0]
        setup_name, theory = "setup", "theory"
        if dim != view.theory_dim:
            setup_name, theory = "mc_setup", "mc_theory"
            lines.append(f"mc_setup = hdsgd.{name}("
                         f"{_arguments_code(setup_arguments(r, values, dim))})")
            lines.append(f"mc_theory = hdsgd.predict(mc_setup, {horizon!r}{method})")
        lines.append("mc = " + _simulate_code(setup_name, horizon, sim["seeds"],
                                              sim["chunk_seeds"][dim], sim["method"]))
        lines.append(f"hdsgd.plot_curves({theory}, mc, names={names!r}, path='teach.png')")
    else:
        lines.append(f"hdsgd.plot_curves(theory, names={names!r}, path='teach.png')")
    return "\n".join(lines) + "\n"
