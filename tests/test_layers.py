"""The package's layers, one way through: commands → runtime → the edges (aws, kube) → core.

Read from each module's own imports (the AST, nothing is run): a module may import its own
layer and the layers below it, never one above it; the two edges do not import each other.
The top-level modules (the names, ``config``, ``metrics``) serve every layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "operator" / "backendauth_operator"
TOP = "backendauth_operator"

# What each layer may import besides itself and the top-level modules.
MAY_IMPORT = {
    "core": set(),
    "aws": {"core"},
    "kube": {"core"},
    "runtime": {"core", "aws", "kube"},
    "commands": {"core", "aws", "kube", "runtime"},
}
# The pure core also stays off the settings and the metrics (they read the environment and
# hold a Prometheus registry).
CORE_FORBIDDEN_TOP = {"config", "metrics"}


def layer_of(dotted: str) -> str | None:
    """The layer of ``backendauth_operator.<layer>...``; None for a top-level module."""
    parts = dotted.split(".")
    if len(parts) >= 2 and parts[1] in MAY_IMPORT:
        return parts[1]
    return None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module of this package that ``path`` imports (``from X import y`` also as ``X.y``)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith(TOP)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(TOP):
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer_or_at_the_top() -> None:
    loose = [
        path.relative_to(PACKAGE).as_posix()
        for path in modules()
        if path.parent != PACKAGE and path.relative_to(PACKAGE).parts[0] not in MAY_IMPORT
    ]
    assert loose == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_go_down_the_layers_only(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0] if len(rel.parts) > 1 else None
    wrong = []
    for line, dotted in imports_of(path):
        target = layer_of(dotted)
        if own is None:
            # A top-level module (the names, config, metrics) imports no layer.
            if target is not None:
                wrong.append(f"{rel}:{line} imports {dotted}")
            continue
        if target is None:
            if own == "core" and dotted.split(".")[1:2] and dotted.split(".")[1] in CORE_FORBIDDEN_TOP:
                wrong.append(f"{rel}:{line} imports {dotted}")
            continue
        if target != own and target not in MAY_IMPORT[own]:
            wrong.append(f"{rel}:{line} imports {dotted} ({own} may import {sorted(MAY_IMPORT[own])})")
    assert wrong == []


def test_the_check_sees_an_import_that_goes_up(tmp_path: Path) -> None:
    # The rule above could pass by reading nothing: a core module that imported the runtime fails.
    probe = tmp_path / "probe.py"
    probe.write_text("from backendauth_operator.runtime.steps import step\n")
    (_, dotted), *_ = imports_of(probe)
    assert layer_of(dotted) == "runtime" and "runtime" not in MAY_IMPORT["core"]
