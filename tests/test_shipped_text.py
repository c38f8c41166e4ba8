"""What users and maintainers read never points at documents they do not have: the shipped files,
and the tests, the test bed, the benchmark, CI and the project's metadata as well."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED = [
    "crds", "deploy", "operator", "examples", "charts", "README.md", "Dockerfile", "docs", "mkdocs.yml",
]  # fmt: skip
MAINTAINED = ["tests", "testbed", "benchmarks", ".ci", ".github", "pyproject.toml"]
INTERNAL = re.compile(r"CONTRACT\s*§|research\s*§|shared/research|\.\./shared|CONTRACT\.md|\bDEVELOPERS\b")
# Local state, not text anyone wrote.
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}


def _files(top: str) -> list[Path]:
    path = REPO / top
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix != ".pyc"
        and not SKIPPED_PARTS & set(p.parts)
        and not any(part.endswith(".egg-info") for part in p.parts)
    )


def _citations(tops: list[str]) -> list[str]:
    found = []
    for top in tops:
        for file in _files(top):
            if file == Path(__file__).resolve():
                continue  # the pattern itself
            for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
                if INTERNAL.search(line):
                    found.append(f"{file.relative_to(REPO)}:{number}: {line.strip()}")
    return found


def test_nothing_shipped_cites_an_internal_document() -> None:
    assert _citations(SHIPPED) == []


def test_no_test_script_or_metadata_cites_an_internal_document() -> None:
    assert _citations(MAINTAINED) == []


def test_the_scan_finds_a_citation() -> None:
    for line in ("see CONTRACT §3", "as in ../shared/notes", "see DEVELOPERS guide"):
        assert INTERNAL.search(line), line
    assert not INTERNAL.search("developers and maintainers read the README")
