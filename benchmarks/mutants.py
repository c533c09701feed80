"""Plant wrong terms in the theory, one at a time, and check that the default suite catches each.

Every system lists its mutants in ``benchmarks/mutants/<system>.py`` as ``MUTANTS``: a mutant
names a file of the package, an exact piece of its source, the wrong replacement (a term
dropped, doubled or sign-flipped), and the tests expected to catch it. For each mutant this
script copies the repository to a temporary folder, applies the replacement there (the working
tree is never touched), runs the named tests, and prints one row: caught or survived, and the
failing assertion's message (which states the gap, usually in standard errors).

Usage:
    python benchmarks/mutants.py [SYSTEM ...] [--list] [--only TEXT]

Exit status 1 when a mutant survives or a replacement no longer matches the source.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LISTS = Path(__file__).resolve().parent / "mutants"


def load_mutants(system: str) -> list[dict]:
    path = LISTS / f"{system}.py"
    spec = importlib.util.spec_from_file_location(f"mutants_{system}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def _copy_repo(dest: Path) -> None:
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache",
                                    "hdsgd-demo", "*.npz", "*.png")
    shutil.copytree(ROOT, dest, ignore=ignore, dirs_exist_ok=True)


def apply(tree: Path, mutant: dict) -> None:
    path = tree / mutant["file"]
    text = path.read_text()
    count = text.count(mutant["find"])
    if count != 1:
        raise ValueError(f"mutant {mutant['name']!r}: the piece to replace occurs {count} times in "
                         f"{mutant['file']} (it must occur once; update the mutant list)")
    path.write_text(text.replace(mutant["find"], mutant["replace"]))


def _reason(output: str) -> str:
    """The first assertion message of a pytest failure, shortened."""
    for line in output.splitlines():
        if line.startswith("E ") and ("assert" in line or "Error" in line):
            return re.sub(r"\s+", " ", line[2:]).strip()[:110]
    return ""


def run_one(mutant: dict, python: str) -> tuple[str, str, float]:
    with tempfile.TemporaryDirectory(prefix="hdsgd-mutant-") as tmp:
        tree = Path(tmp)
        _copy_repo(tree)
        apply(tree, mutant)
        start = time.perf_counter()
        res = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                              "-n", "0", *mutant["tests"]], cwd=tree, capture_output=True,
                             text=True)
        elapsed = time.perf_counter() - start
    if res.returncode == 0:
        return "SURVIVED", "", elapsed
    if res.returncode == 1:
        return "caught", _reason(res.stdout), elapsed
    return "error", (res.stdout + res.stderr).strip().splitlines()[-1][:110], elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("systems", nargs="*", help="systems to mutate (default: all listed)")
    parser.add_argument("--list", action="store_true", help="only list the mutants")
    parser.add_argument("--only", metavar="TEXT", default="",
                        help="only the mutants whose name contains TEXT")
    args = parser.parse_args(argv)
    systems = args.systems or sorted(p.stem for p in LISTS.glob("*.py") if not p.stem.startswith("_"))
    failed = False
    print(f"{'system':<11} {'mutant':<44} {'result':<9} {'seconds':>7}  caught by / message")
    for system in systems:
        for mutant in load_mutants(system):
            if args.only not in mutant["name"]:
                continue
            if args.list:
                print(f"{system:<11} {mutant['name']:<44} {'-':<9} {'':>7}  {' '.join(mutant['tests'])}")
                continue
            try:
                result, reason, elapsed = run_one(mutant, sys.executable)
            except ValueError as err:
                result, reason, elapsed = "stale", str(err), 0.0
            failed |= result != "caught"
            print(f"{system:<11} {mutant['name']:<44} {result:<9} {elapsed:7.1f}  {reason}",
                  flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
