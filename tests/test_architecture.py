"""The layout's promises: layering, one protocol, compile once, nothing outside the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import hdsgd

PACKAGE = Path(hdsgd.__file__).parent
ROOT = PACKAGE.parent
FACES = ("lstsq", "proxlinear", "spiked", "grokking", "momentum")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the hdsgd modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("hdsgd")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("hdsgd"):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _files(sub: str):
    return sorted((PACKAGE / sub).rglob("*.py"))


def _violations(files, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for f in files:
        for mod in _imports(f):
            if any(mod == p or mod.startswith(p + ".") for p in forbidden):
                bad.append(f"{f.relative_to(ROOT)} imports {mod}")
    return bad


def test_theory_and_monte_carlo_never_import_each_other():
    assert not _violations(_files("odes"), ("hdsgd.montecarlo", "hdsgd.cli", "hdsgd.autotune",
                                            "hdsgd.compare", "hdsgd.plot"))
    assert not _violations(_files("montecarlo"), ("hdsgd.odes", "hdsgd.cli", "hdsgd.autotune",
                                                  "hdsgd.compare", "hdsgd.plot"))


def test_setups_are_data_only():
    forbidden = ("hdsgd.odes", "hdsgd.montecarlo", "hdsgd.cli", "hdsgd.autotune",
                 "hdsgd.compare", "hdsgd.plot") + tuple(f"hdsgd.{f}" for f in FACES)
    assert not _violations(_files("setups"), forbidden)


def test_only_the_command_line_imports_the_command_line():
    files = [f for f in PACKAGE.rglob("*.py") if "cli" not in f.relative_to(PACKAGE).parts]
    assert not _violations(files, ("hdsgd.cli",))


def test_generic_modules_know_no_system():
    generic = [PACKAGE / f"{m}.py" for m in ("api", "curve", "compare", "autotune", "plot",
                                              "_segments", "_numerics", "_precision", "_sweep")]
    assert not _violations(generic, ("hdsgd.odes", "hdsgd.montecarlo", "hdsgd.cli")
                           + tuple(f"hdsgd.{f}" for f in FACES))


def test_nothing_cites_files_outside_the_repository_or_issue_numbers():
    pattern = re.compile(r"spec §|specs/|shared/|spec ``|spec `?[a-z_]+\.md|\.md §|\(issue \d"
                         r"|issue #?\d+")
    hits = []
    files = (list(PACKAGE.rglob("*.py")) + _doc_files(with_examples=True)
             + sorted((ROOT / "benchmarks").rglob("*.py"))
             + sorted(p for p in (ROOT / "tests").glob("*.py") if p.name != "test_architecture.py"))
    for f in files:
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()[:80]}")
    assert not hits, "\n".join(hits[:20])


@pytest.mark.parametrize("face", [f for f in FACES if hasattr(hdsgd, f)])
def test_faces_re_export_only(face):
    """A face defines nothing: every public name comes from setups, odes or montecarlo."""
    tree = ast.parse((PACKAGE / f"{face}.py").read_text())
    defined = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Assign))
               and not (isinstance(n, ast.Assign) and any(
                   isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets))]
    assert not defined
    module = getattr(hdsgd, face)
    for name in module.__all__:
        assert hasattr(module, name), name


def test_teach_uses_only_the_public_api():
    """The teaching page calls what a user calls: the top-level API, the faces and the curve,
    never theory, Monte Carlo or Setup internals, private modules or the command line."""
    files = _files("teach")
    assert files
    forbidden = ("hdsgd.odes", "hdsgd.montecarlo", "hdsgd.setups", "hdsgd.cli")
    assert not _violations(files, forbidden)
    private = [f"{f.relative_to(ROOT)} imports {m}" for f in files for m in _imports(f)
               if any(p.startswith("_") for p in m.split(".")[1:2])]
    assert not private


def test_only_the_command_line_imports_the_teaching_page():
    files = [f for f in PACKAGE.rglob("*.py")
             if not {"cli", "teach"} & set(f.relative_to(PACKAGE).parts)]
    assert not _violations(files, ("hdsgd.teach",))


# ----------------------------------------------------------------- the docs stay true
def _doc_files(with_examples: bool = False) -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return files + (sorted((ROOT / "examples").glob("*.py")) if with_examples else [])


def _documented_commands() -> list[tuple[str, list[str]]]:
    """Every ``hdsgd ...`` command line of the README, docs and examples (synopses with
    placeholders left out), as (where, argv)."""
    import shlex

    from hdsgd.cli import SYSTEMS

    heads = {"demo", "teach", *SYSTEMS}
    out, seen = [], set()
    for f in _doc_files(with_examples=True):
        text = f.read_text()
        found = [m.group(1) for m in re.finditer(r"`(hdsgd [^`]+)`", text)]
        found += [s for s in (line.strip().removeprefix("$ ") for line in text.splitlines())
                  if s.startswith("hdsgd ") and "`" not in s]
        for cmd in found:
            cmd = cmd.split("  #")[0].split(" # ")[0].strip().rstrip("\\").strip()
            if any(x in cmd for x in ("[", "...", "SYSTEM", "COMMAND", "NAME=")):
                continue
            argv = shlex.split(cmd)[1:]
            if argv and argv[0] in heads and (f.name, cmd) not in seen:
                seen.add((f.name, cmd))
                out.append((f"{f.relative_to(ROOT)}: {cmd}", argv))
    return out


def test_every_documented_command_parses_and_builds_its_setup():
    # (parsed and validated, not run: a stale flag or value in a doc fails here)
    import contextlib
    import io

    from hdsgd.cli import SYSTEMS, CliError, build_parser, setup_from

    commands = _documented_commands()
    assert len(commands) >= 30
    bad = []
    for where, argv in commands:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                args, extra = build_parser().parse_known_args(argv)
            if extra:
                bad.append(f"{where}: unrecognized {extra}")
                continue
            if args.system in SYSTEMS and getattr(args, "command", None):
                setup_from(args, SYSTEMS[args.system])
        except SystemExit as e:
            if e.code not in (0, None):
                bad.append(f"{where}: {err.getvalue().strip().splitlines()[-1]}")
        except CliError as e:
            bad.append(f"{where}: {e}")
    assert not bad, "\n".join(bad)


def _resolves(parts: list[str]) -> bool:
    """Whether hdsgd.<parts...> names an attribute or a module of the package."""
    import importlib

    obj = hdsgd
    for i, part in enumerate(parts):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module("hdsgd." + ".".join(parts[:i + 1]))
        except ImportError:
            return False
    return True


def test_every_documented_name_and_file_exists():
    bad = []
    for f in _doc_files():
        text = f.read_text()
        for m in re.finditer(r"(?<![\w/.])hdsgd\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", text):
            parts = m.group(1).split(".")
            if parts[-1] in ("md", "py", "npz", "png") and len(parts) > 1:
                parts = parts[:-1]   # a file name such as hdsgd.lstsq.py, not an attribute
            if not _resolves(parts):
                bad.append(f"{f.name}:{text[:m.start()].count(chr(10)) + 1}: hdsgd.{m.group(1)}")
        for m in re.finditer(r"(?<![\w.])(hdsgd/[\w/]+\.py)", text):
            if not (ROOT / m.group(1)).exists():
                bad.append(f"{f.name}:{text[:m.start()].count(chr(10)) + 1}: {m.group(1)}")
    assert not bad, "\n".join(bad)


def test_examples_and_benchmarks_use_names_that_exist():
    # (examples are not run by the default suite: a name that moved would break them silently,
    # as hdsgd.critical_batch_size and hdsgd.odes.lstsq_momentum did)
    bad = []
    for f in sorted((ROOT / "examples").glob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Attribute):
                chain, inner = [], node
                while isinstance(inner, ast.Attribute):
                    chain.append(inner.attr)
                    inner = inner.value
                if isinstance(inner, ast.Name) and inner.id == "hdsgd":
                    names.append(chain[::-1])
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hdsgd"):
                base = node.module.split(".")[1:]
                names += [base + [a.name] for a in node.names]
            bad += [f"{f.relative_to(ROOT)}:{node.lineno}: hdsgd.{'.'.join(n)}"
                    for n in names if not _resolves(n)]
    assert not bad, "\n".join(sorted(set(bad)))


def test_importing_hdsgd_leaves_the_solvers_and_scipy_submodules_unloaded():
    # `hdsgd --help` and every fresh process pay only for what they use: diffrax (with lineax
    # and optimistix) loads inside the functions that solve, scipy's submodules on first use
    # (together ~1.4 s of a 3.2 s import before).
    import subprocess
    import sys

    probe = ("import sys, hdsgd, hdsgd.cli; print(sorted(m for m in ('diffrax', 'lineax', "
             "'optimistix', 'scipy.optimize', 'scipy.stats', 'scipy.linalg', 'matplotlib') "
             "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "[]"


def test_a_long_field_text_is_cut_for_help_and_says_where_the_rest_is():
    from hdsgd.cli._fields import field_options

    class Long:
        def __init__(self, width: int = 3):
            self.width = width

    Long.__doc__ = ("A Setup-like class.\n\nAttributes:\n    width: the first sentence. "
                    + "More words here. " * 40 + "\n")
    (option,) = field_options(Long)
    assert option.name == "width" and len(option.help) <= 400
    assert option.help.startswith("the first sentence. More words here.")
    assert option.help.endswith(f"[cut: see help({__name__}.{Long.__qualname__})]")


def _help_text(parser, system: str, command: str) -> str:
    """``hdsgd SYSTEM COMMAND --help``, whitespace collapsed."""
    sub = parser._subparsers._group_actions[0].choices[system]
    return " ".join(sub._subparsers._group_actions[0].choices[command].format_help().split())


def test_the_command_line_states_the_defaults_the_library_uses():
    # --mc-method's default is simulate's own (the spiked command ran the O(d) full-dimension
    # Monte Carlo while simulate and the docs used the exact chain); every option says its
    # default as a value, and the horizon its unit as the Setup labels it
    import importlib
    import inspect

    from hdsgd.cli import SYSTEMS, build_parser

    parser = build_parser()
    for name, system in SYSTEMS.items():
        montecarlo = importlib.import_module(f"hdsgd.montecarlo.{name}")
        own = inspect.signature(montecarlo._simulate).parameters["method"].default
        if system.simulate_methods:
            assert system.simulate_methods[0] == own, name
        unit = "steps" if system.time_unit == "step" else next(iter(system.models.values())).time_label
        for command in ("compare", "tune"):
            text = _help_text(parser, name, command)
            assert "per model" not in text and "default: the Setup's own" not in text, (name, command)
            assert re.search(rf"(final time|horizon), in {re.escape(unit)} \(default: [\w\d]", text), (name, command)
    assert "in t = steps / d (default: 10)" in _help_text(parser, "lstsq", "predict")
    momentum = _help_text(parser, "momentum", "predict")
    assert "(default: 32 (inner_product), 8 (matrix_sensing))" in momentum
    assert "(default: recursion (two_parameter), flow (inner_product), closure (matrix_sensing))" in momentum
    assert "(default: no)" in _help_text(parser, "grokking", "predict")
    # a shared field the models describe differently: each model's text
    assert "inner_product: d >= 1" in momentum and "matrix_sensing: d in [2, 64]" in momentum


def test_every_planted_mutant_still_matches_the_source_and_names_real_tests():
    # benchmarks/mutants.py plants each wrong term by exact text: a refactor that rewords the
    # line leaves the mutant "stale" and unplanted (one was, for a session). Each piece must
    # occur exactly once, and each test meant to catch it must exist.
    lists = ROOT / "benchmarks" / "mutants"
    namespace: dict = {}
    count = 0
    for path in sorted(lists.glob("*.py")):
        namespace.clear()
        exec(compile(path.read_text(), str(path), "exec"), namespace)
        for mutant in namespace["MUTANTS"]:
            count += 1
            where = f"{path.name}: {mutant['name']!r}"
            occurs = (ROOT / mutant["file"]).read_text().count(mutant["find"])
            assert occurs == 1, f"{where}: its piece occurs {occurs} times in {mutant['file']}"
            assert mutant["replace"] != mutant["find"], where
            assert mutant["tests"], f"{where} names no test"
            for test in mutant["tests"]:
                file, _, node = test.partition("::")
                source = (ROOT / file).read_text()
                function = node.split("[")[0]
                assert not function or f"def {function}(" in source, f"{where}: no {test}"
    assert count >= 200  # all five systems' lists were read
