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


# ---- the operator's modules, where deploy/ and the chart name them ------------------------------

PACKAGE = REPO / "operator" / "backendauth_operator"
MODULE_PATH = re.compile(r"\b((?:[a-z_]+/)*[a-z_]+\.py)\b")


def _module_paths_named(tops: list[str]) -> list[tuple[str, str]]:
    """(file:line, path) for each ``*.py`` that the YAML and templates under ``tops`` name."""
    found = []
    for top in tops:
        for file in _files(top):
            if file.suffix not in (".yaml", ".yml", ".tpl", ".txt"):
                continue
            for number, line in enumerate(file.read_text().splitlines(), 1):
                found += [(f"{file.relative_to(REPO)}:{number}", m) for m in MODULE_PATH.findall(line)]
    return found


def test_deploy_and_the_chart_name_modules_that_exist() -> None:
    """The RBAC comments say which module needs each verb: they follow the modules when they move."""
    named = _module_paths_named(["deploy", "charts"])
    assert len(named) > 10, named
    missing = [
        (where, path)
        for where, path in named
        if not (PACKAGE / path).is_file() and not (REPO / path).is_file()
    ]
    assert missing == []


def test_a_module_that_moved_is_found() -> None:
    assert MODULE_PATH.findall("# kube.py: get; kube/client.py: patch") == ["kube.py", "kube/client.py"]
    assert not (PACKAGE / "kube.py").is_file() and (PACKAGE / "kube" / "client.py").is_file()
