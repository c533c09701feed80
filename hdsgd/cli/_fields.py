"""Command-line options read from a Setup class: its fields, defaults and docstring.

Every option of ``hdsgd SYSTEM COMMAND`` that sets a Setup field is derived here from the
Setup itself (one source for each default): the flag is the field's name, the default is the
default of the Setup's constructor, the help text is the field's entry in the class
docstring's ``Attributes:`` section. A flag that is not given leaves the Setup's own default in
place, so ``hdsgd SYSTEM predict`` with no flags predicts ``SystemSetup()``.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class FieldOption:
    """One Setup field as a command-line option.

    Attributes:
        name: the field (``step_size``); the flag is ``--step-size``.
        default: the Setup constructor's default (shown in help; not passed when absent).
        help: the field's docstring entry.
        parse: text -> value.
        metavar: how the value is written.
    """

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    metavar: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_SECTION = re.compile(r"^\s*(Attributes|Observables|References|Args|Returns|Notes|Time unit)\s*:")


def attribute_docs(cls) -> dict[str, str]:
    """Field name -> its text in the ``Attributes:`` section of ``cls``'s docstring.

    An entry starts at the section's first indentation level (``name: text``, or several names
    ``a, b: text``) and continues on deeper-indented lines.
    """
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    current: list[str] | None = None
    indent = None
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        if _SECTION.match(line) and (indent is None or len(line) - len(line.lstrip()) < indent):
            break
        level = len(line) - len(line.lstrip())
        if indent is None:
            indent = level
        if level < indent:
            break
        if level == indent and ":" in line:
            names, text = line.strip().split(":", 1)
            current = [n.strip() for n in names.split(",")]
            for n in current:
                out[n] = text.strip()
        elif current is not None:
            for n in current:
                out[n] = (out[n] + " " + line.strip()).strip()
    return out


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("yes", "true", "1", "on"):
        return True
    if low in ("no", "false", "0", "off"):
        return False
    raise ValueError(f"{text!r} is not yes/no")


def _parse_numbers(text: str):
    """``"0.5"`` -> 0.5; ``"0.7,0.6"`` -> (0.7, 0.6)."""
    values = tuple(float(p) for p in text.split(",") if p.strip())
    return values[0] if len(values) == 1 and "," not in text else values


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str):
        return None if text.strip().lower() in ("none", "null") else parse(text)

    return parse_or_none


def _number_or_text(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def parser_for(default, annotation: str) -> tuple[Callable[[str], Any], str]:
    """(text -> value, metavar) from a field's default and its annotation (a string)."""
    ann = str(annotation)
    optional = default is None or "None" in ann
    if isinstance(default, bool) or ann.strip() == "bool":
        parse, meta = _parse_bool, "yes|no"
    elif isinstance(default, (tuple, list)) or ("ndarray" in ann and not isinstance(default, str)):
        parse, meta = _parse_numbers, "X[,Y,...]"
    elif isinstance(default, int) or (default is None and re.search(r"\bint\b", ann)):
        parse, meta = int, "INT"
    elif isinstance(default, float) and "str" not in ann:
        parse, meta = float, "X"
    elif "float" in ann and "str" in ann:
        parse, meta = _number_or_text, "VALUE"
    elif default is None and "float" in ann:
        parse, meta = float, "X"
    else:
        parse, meta = str, "TEXT"
    if optional:
        return _optional(parse), meta + "|none"
    return parse, meta


def field_options(cls, parsers: dict[str, Callable[[str], Any]] | None = None,
                  skip: tuple[str, ...] = ()) -> list[FieldOption]:
    """The options of every constructor argument of the Setup class ``cls``."""
    parsers = parsers or {}
    docs = attribute_docs(cls)
    sig = inspect.signature(cls.__init__)
    out = []
    for name, param in list(sig.parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in skip:
            continue
        default = None if param.default is inspect.Parameter.empty else param.default
        parse, metavar = parser_for(default, param.annotation)
        if name in parsers:  # its own text format (a name or numbers): the help says which
            parse = parsers[name]
            metavar = "TEXT|none" if metavar.endswith("|none") else "TEXT"
        text = fit_help(docs.get(name, ""), 400, f"{cls.__module__}.{cls.__qualname__}")
        out.append(FieldOption(name, default, text, parse, metavar))
    return out


def fit_help(text: str, width: int, where: str) -> str:
    """``text`` with its whitespace collapsed; past ``width`` characters it is cut at a word
    and ends with where the whole of it is (``[cut: see help(where)]``), within ``width``."""
    words = " ".join(text.split())
    if len(words) <= width:
        return words
    pointer = f" [cut: see help({where})]"
    return words[:width - len(pointer) + 1].rsplit(" ", 1)[0] + pointer
