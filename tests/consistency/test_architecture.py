"""The package's layout holds: no cycles, arrows only where the rule allows.

The rule (``import_graph.MAY_IMPORT``) and its picture are in
``docs/architecture.md``.
"""

import ast
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_graph import (  # noqa: E402
    MAY_IMPORT,
    PACKAGE,
    REPO,
    cycles,
    imported_names,
    module_graph,
    package_modules,
    unit_graph,
)

from speechbrain_sense._moved import MOVED  # noqa: E402

# Where old module paths are written on purpose.
KEEPS_OLD_PATHS = {
    "speechbrain_sense/_moved.py",
    "tests/unittests/test_moved_paths.py",
    "tests/unittests/test_export.py",  # 0.1.0 run and model-folder yamls
    "docs/architecture.md",  # the table of moves
}


def test_no_import_cycle_between_modules():
    graph = module_graph()
    assert cycles(graph) == []


def test_no_import_cycle_in_the_rule():
    assert cycles(MAY_IMPORT) == []


def test_every_unit_imports_only_what_the_rule_allows():
    units = unit_graph(module_graph())
    assert set(units) == set(MAY_IMPORT), "a unit is missing from the rule"
    broken = [
        f"{module} imports {target} ({unit} -> {other} is not in the rule)"
        for unit, targets in units.items()
        for other, pairs in targets.items()
        if other not in MAY_IMPORT[unit]
        for module, target in pairs
    ]
    assert broken == []


def test_the_rule_allows_nothing_that_is_not_used():
    """A stale allowance would hide the next arrow that creeps in."""
    units = unit_graph(module_graph())
    unused = {
        unit: sorted(allowed - set(units[unit]))
        for unit, allowed in MAY_IMPORT.items()
        if allowed - set(units[unit])
    }
    assert unused == {}


def test_the_library_never_imports_recipes_or_benchmarks():
    bench = {path.stem for path in (REPO / "bench").glob("*.py")}
    found = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for module, path in package_modules().items()
        for name, line in imported_names(path, module)
        if name.split(".")[0] in {"recipes", "bench", *bench}
    ]
    assert found == []


def test_no_library_function_takes_the_hparams_dict():
    found = []
    for path in package_modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = node.args
                names = [
                    a.arg
                    for a in arguments.posonlyargs
                    + arguments.args
                    + arguments.kwonlyargs
                ]
                if "hparams" in names:
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    found.append(f"{where} {node.name}")
    assert found == []


def old_path_pattern():
    """Every 0.1.0 module path, as a regular expression.

    Returns
    -------
    re.Pattern
        Matches an old dotted path that is not the start of a longer one.
    """
    names = sorted(MOVED, key=len, reverse=True)
    alternatives = "|".join(re.escape(name) for name in names)
    return re.compile(rf"(?<![\w.])({alternatives})(?![\w])")


def checked_files():
    """The repository's source, configuration and documentation files,
    but those that keep old paths on purpose.

    Returns
    -------
    list of tuple
        ``(relative path, text)`` of the Python, yaml, Markdown, shell and
        Make files outside ``.venv``, results and fixtures.
    """
    suffixes = {".py", ".yaml", ".md", ".sh", ".toml", ".cfg"}
    skip = {".venv", ".git", "results", "test-artifacts", "fixtures"}
    files = []
    for path in sorted(REPO.rglob("*")):
        relative = path.relative_to(REPO)
        if set(relative.parts) & skip or not path.is_file():
            continue
        if relative.as_posix() in KEEPS_OLD_PATHS:
            continue
        if path.suffix in suffixes or path.name in {"Makefile", "run"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            files.append((relative.as_posix(), text))
    return files


def matches(pattern, files):
    """Every match of ``pattern`` in ``files``, one line at a time.

    Arguments
    ---------
    pattern : re.Pattern
        What to look for.
    files : list of tuple
        From :func:`checked_files`.

    Returns
    -------
    list of tuple
        ``(where, match)``, ``where`` being ``path:line``.
    """
    return [
        (f"{relative}:{number}", match)
        for relative, text in files
        for number, line in enumerate(text.split("\n"), start=1)
        for match in pattern.finditer(line)
    ]


def test_nothing_here_uses_an_old_module_path():
    found = matches(old_path_pattern(), checked_files())
    assert [f"{where}: {match.group(1)}" for where, match in found] == []


@pytest.mark.parametrize("old", ["teachers", "data"])
def test_no_yaml_or_import_names_an_old_module_that_is_a_package_now(old):
    """A dotted path through the teachers or data package names one of its
    submodules, never an old attribute that the package only forwards."""
    package = f"{PACKAGE}.{old}"
    submodules = {
        name.rsplit(".", 1)[1]
        for name in package_modules()
        if name.startswith(package + ".")
    }
    files = checked_files()
    pattern = re.compile(rf"(?<![\w.]){re.escape(package)}\.(\w+)")
    found = [
        f"{where}: {match.group(0)}"
        for where, match in matches(pattern, files)
        if match.group(1) not in submodules
    ]
    for relative, text in files:
        if relative.endswith(".py"):
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and node.module == package:
                    names = {a.name for a in node.names} - submodules
                    if names:
                        found.append(f"{relative}:{node.lineno}: {names}")
    assert found == []


def test_architecture_doc_describes_every_unit():
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^### `(\w+)(?:/|\.py)`", text, flags=re.M))
    assert headings == set(MAY_IMPORT)
