"""Every ``docs/….md`` the code, tests, benchmarks and docs point at is in the repository,
every ``podling/….py`` the docs name exists, and nothing points outside the repository (the
project documents itself)."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC_REFERENCE = re.compile(r"docs/[A-Za-z0-9_.-]+\.md")
SOURCE_REFERENCE = re.compile(r"podling/[A-Za-z0-9_/]+\.py")
OUTSIDE = re.compile(r"\.\./shared|/work/shared|DESIGN\.md")


def _sources() -> list[pathlib.Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for tree in ("podling", "tests", "bench"):
        files += sorted(p for p in (ROOT / tree).rglob("*")
                        if p.suffix in (".py", ".md") and "__pycache__" not in p.parts)
    return [p for p in files if p != pathlib.Path(__file__).resolve()]


def test_there_are_documents_to_check():
    assert (ROOT / "docs" / "architecture.md").is_file()


def test_references_resolve_inside_the_repository():
    problems = []
    for path in _sources():
        text = path.read_text(errors="replace")
        name = path.relative_to(ROOT)
        references = set(DOC_REFERENCE.findall(text))
        if path.suffix == ".md":
            references |= set(SOURCE_REFERENCE.findall(text))
        missing = sorted(r for r in references if not (ROOT / r).is_file())
        if missing:
            problems.append(f"{name} points at missing {missing}")
        if OUTSIDE.search(text):
            problems.append(f"{name} points outside the repository")
    assert not problems, "\n".join(problems)
