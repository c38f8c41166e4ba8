"""Kopf's private names and log texts, pinned to the Kopf release the project pins.

``runtime/kopf_adapter.py`` is the one module that uses what Kopf does not promise. These tests fail
when another module starts to, when the installed or pinned Kopf is not the release the module
was checked against, and when a name or a log text it relies on is not in that release.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import logging
import tomllib
from pathlib import Path

import kopf
import pytest
from packaging.requirements import Requirement

from backendauth_operator.runtime import kopf_adapter
from backendauth_operator.runtime.kopf_adapter import (
    KOPF_VERSION,
    kopf_identity,
    new_indexers,
    run_probe_handlers,
)
from backendauth_operator.runtime.reachability import QuietUnreachableRetries

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "operator" / "backendauth_operator"
ADAPTER = Path(kopf_adapter.__file__)


def private_uses(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every use of a private Kopf module in ``path``: ``from kopf._x import
    name``, ``import kopf._x`` (name empty) and ``kopf._x`` as an attribute."""
    uses: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kopf._"):
            uses += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            uses += [(alias.name, "") for alias in node.names if alias.name.startswith("kopf._")]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "kopf"
            and node.attr.startswith("_")
        ):
            uses.append((f"kopf.{node.attr}", ""))
    return uses


ADAPTER_USES = private_uses(ADAPTER)


def test_the_installed_kopf_is_the_release_the_adapter_was_checked_against() -> None:
    assert importlib.metadata.version("kopf") == KOPF_VERSION


def test_the_project_pins_that_release() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    (requirement,) = [
        Requirement(r) for r in pyproject["project"]["dependencies"] if Requirement(r).name == "kopf"
    ]
    assert requirement.specifier.contains(KOPF_VERSION)
    lock = REPO / "uv.lock"
    if lock.exists():  # the exact release is the lock's
        locked = tomllib.loads(lock.read_text(encoding="utf-8"))
        assert [p["version"] for p in locked["package"] if p["name"] == "kopf"] == [KOPF_VERSION]
    else:  # the range's floor: the oldest release pip may install
        assert f">={KOPF_VERSION}" in {str(s) for s in requirement.specifier}


def test_no_other_module_uses_kopfs_private_modules() -> None:
    users = {
        str(path.relative_to(PACKAGE)): uses
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != ADAPTER and (uses := private_uses(path))
    }
    assert users == {}


def test_the_adapter_uses_the_private_names_its_docstring_explains() -> None:
    assert ADAPTER_USES  # the walk sees them
    doc = kopf_adapter.__doc__ or ""
    for module, name in ADAPTER_USES:
        assert f"{module}.{name}" in doc or f"{module}``" in doc, (module, name)


@pytest.mark.parametrize(("module", "name"), ADAPTER_USES, ids=[f"{m}.{n}" for m, n in ADAPTER_USES])
def test_each_private_name_exists_in_the_pinned_kopf(module: str, name: str) -> None:
    imported = importlib.import_module(module)
    if name:
        assert hasattr(imported, name)


async def test_kopfs_probe_handlers_run_through_the_adapter() -> None:
    registry = kopf.OperatorRegistry()

    @kopf.on.probe(id="answer", registry=registry)
    def answer(**_: object) -> int:
        return 42

    results = await run_probe_handlers(registry, kopf.OperatorSettings(), new_indexers(), kopf.Memo())
    assert dict(results) == {"answer": 42}


def test_the_identity_is_the_name_given() -> None:
    assert kopf_identity("backendauth-operator-0") == "backendauth-operator-0"


# The lines of Kopf's source that write the log texts the adapter's filters match.
KOPF_LOG_LINES = [
    ("kopf._cogs.clients.api", 'logger.error(f"Request attempt {idx} failed; will retry: {what} -> {e!r}")'),
]


@pytest.mark.parametrize(("module", "line"), KOPF_LOG_LINES)
def test_kopf_writes_the_log_texts_the_filters_match(module: str, line: str) -> None:
    assert line in inspect.getsource(importlib.import_module(module))


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("kopf.objects", level, __file__, 1, message, (), None)


def test_the_filters_act_on_the_lines_as_kopf_formats_them() -> None:
    # As the source line above formats it.
    what, error = "GET https://10.96.0.1/apis", TimeoutError()
    retry = record(logging.ERROR, f"Request attempt {3} failed; will retry: {what} -> {error!r}")
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        assert QuietUnreachableRetries().filter(retry) is False
    finally:
        root.setLevel(level)
