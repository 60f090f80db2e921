"""The size rules of the code base, checked so they stay true.

- no function or method in ``podling/`` is longer than 60 lines (a long function hides steps
  that deserve names);
- no module in ``podling/agent/`` is longer than 400 lines (the agent grows with every Pod
  feature: each module keeps one job);
- no two test modules share a file name (pytest would stop at collection).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "podling"
MAX_FUNCTION_LINES = 60
MAX_AGENT_MODULE_LINES = 400


def _modules(root: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _long_functions(path: pathlib.Path, root: pathlib.Path = PACKAGE.parent) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(root)}:{node.lineno} "
                             f"{node.name} ({length} lines)")
    return found


def test_the_package_is_where_the_rules_look():
    assert (PACKAGE / "__init__.py").is_file()
    assert len(_modules(PACKAGE / "agent")) > 10


def test_no_function_is_longer_than_the_limit():
    offenders = [f for path in _modules(PACKAGE) for f in _long_functions(path)]
    assert not offenders, "functions over %d lines:\n%s" % (MAX_FUNCTION_LINES,
                                                            "\n".join(offenders))


@pytest.mark.parametrize("path", _modules(PACKAGE / "agent"),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_agent_modules_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_AGENT_MODULE_LINES, f"{path.name}: {lines} lines"


def test_the_function_rule_catches_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    module = tmp_path / "podling_like.py"
    module.write_text(f"def too_long():\n{body}\n")
    assert _long_functions(module, tmp_path) == [
        f"podling_like.py:1 too_long ({MAX_FUNCTION_LINES + 1} lines)"]


def test_test_modules_have_unique_names():
    """pytest imports test modules by basename (no packages under tests/): two files with one
    name stop the whole suite at collection."""
    tests = PACKAGE.parent / "tests"
    seen: dict[str, list[str]] = {}
    for path in tests.rglob("test_*.py"):
        if "__pycache__" not in path.parts:
            seen.setdefault(path.name, []).append(str(path.relative_to(tests)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
