"""The test bed (``backendauth_testbed``) stays apart from what ships: no operator module imports
it, the operator's wheel (built from what the Dockerfile copies) does not contain it, and the
``dev`` and ``simulator`` commands, its only users, say how to install it when it is missing."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from operator_wheel import build_operator_wheel

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "operator" / "backendauth_operator"
TESTBED = "backendauth_testbed"
# Where the operator may name the test bed: the lazy import of commands/cli.py's dev and simulator.
ALLOWED = {("cli.py", "_testbed_module"), ("cli.py", "_cmd_dev"), ("cli.py", "_cmd_simulator")}


def _mentions(tree: ast.Module) -> list[tuple[str, int]]:
    """(enclosing function or "<module>", line) of every import of the test bed, including a
    string that names one of its modules (as ``importlib.import_module`` takes)."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, where: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else where
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                names = [child.module or ""]
            elif isinstance(child, ast.Constant) and isinstance(child.value, str):
                names = [child.value] if re.fullmatch(r"[\w.]+", child.value) else []
            if any(name.split(".")[0] == TESTBED for name in names):
                found.append((where, getattr(child, "lineno", 0)))
            visit(child, inner)

    visit(tree, "<module>")
    return found


def test_no_operator_module_imports_the_test_bed() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 10
    found = []
    for module in modules:
        for where, line in _mentions(ast.parse(module.read_text(), str(module))):
            if (module.name, where) not in ALLOWED:
                found.append(f"{module.relative_to(REPO)}:{line} ({where})")
    assert found == []


def test_the_scan_sees_an_import_of_the_test_bed() -> None:
    source = (
        '"""Docs may name backendauth_testbed."""\n'
        "import os\n"
        "from backendauth_testbed.simulator import model\n"
        "def f():\n"
        "    import backendauth_testbed\n"
        "    return importlib.import_module('backendauth_testbed.sandbox')\n"
    )
    assert _mentions(ast.parse(source)) == [("<module>", 3), ("f", 5), ("f", 6)]


def _run_without(blocked: str, code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter in which importing ``blocked`` fails as if not installed."""
    prelude = f"import sys\nsys.modules[{blocked!r}] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=120, check=False
    )


def test_every_operator_module_imports_without_the_test_bed() -> None:
    code = (
        "import importlib, pkgutil, backendauth_operator\n"
        "for m in pkgutil.walk_packages(backendauth_operator.__path__, 'backendauth_operator.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('imported')\n"
    )
    result = _run_without(TESTBED, code)
    assert result.returncode == 0 and result.stdout.strip() == "imported", result.stderr


@pytest.mark.parametrize("command", ["dev", "simulator"])
def test_without_the_test_bed_dev_and_simulator_say_how_to_install_it(command: str) -> None:
    result = _run_without(
        TESTBED, f"from backendauth_operator.commands.cli import main\nsys.exit(main([{command!r}]))"
    )
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # no traceback
    assert lines[0].startswith(f"backendauth-operator {command}: the test bed ")
    assert "not installed" in lines[0]
    hint = f"in a checkout of the project: uv sync, then uv run backendauth-operator {command}"
    assert lines[0].endswith(hint)


def test_a_missing_package_of_the_test_bed_is_named() -> None:
    result = _run_without(
        "kmock", "from backendauth_operator.commands.cli import main\nsys.exit(main(['dev']))"
    )
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        "backendauth-operator dev: the test bed needs kmock, which is not installed; "
        "in a checkout of the project: uv sync, then uv run backendauth-operator dev"
    ]


def test_the_dockerfile_copies_no_test_bed() -> None:
    copies = [line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("COPY")]
    assert copies and not any("testbed" in line for line in copies)
    kept = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    assert kept and not any("testbed" in line for line in kept)


def test_the_operator_wheel_holds_no_test_bed(tmp_path: Path) -> None:
    """The wheel built from what the Dockerfile copies (pyproject.toml, README.md, operator/)."""
    wheel = build_operator_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"backendauth_operator"}
    assert "backendauth_operator/commands/crd.py" in names and "backendauth_operator/py.typed" in names
    assert not [name for name in names if "sandbox" in name or "simulator" in name or TESTBED in name]
