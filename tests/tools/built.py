"""Tools the tests build or install once, outside the repo (``tests/tools/README.md``).

``built_tool`` runs one of the scripts here; it returns at once when the tool is already there.
Without the tool (no Go, no network, a failed build) the test is skipped with the reason, except
under ``CI=true``, where it fails with the end of the script's log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def venv_tool(name: str, install_hint: str) -> str:
    """``name`` beside this venv's Python (a wheel of the dev groups), else on PATH. Without it the
    test is skipped with ``install_hint``, except under ``CI=true``, where it fails."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which(name)
    if found is None:
        reason = f"{name} is not installed ({install_hint})"
        if in_ci():
            pytest.fail(f"{reason}; it is required under CI=true")
        pytest.skip(reason)
    return found


def go_available() -> bool:
    """As build.sh looks for Go: ``$GO``, else ``go`` on PATH, else /usr/local/go/bin/go."""
    if os.environ.get("GO"):
        return shutil.which(os.environ["GO"]) is not None
    return shutil.which("go") is not None or os.access("/usr/local/go/bin/go", os.X_OK)


def built_tool(command: list[str], binary: str, timeout: int) -> Path:
    """Run a tests/tools script (it builds or installs once, then returns at once); the last line
    it prints is the directory of ``binary``. Skip, or under CI=true fail, when that fails."""
    with tempfile.TemporaryDirectory(prefix="backendauth-tool-build-") as logs:
        log = Path(logs) / "build.log"
        with log.open("wb") as stderr:
            try:
                result = subprocess.run(
                    command, stdout=subprocess.PIPE, stderr=stderr, timeout=timeout, check=False
                )
                problem = None if result.returncode == 0 else f"exited {result.returncode}"
                lines = result.stdout.decode(errors="replace").strip().splitlines()
            except subprocess.TimeoutExpired:
                problem, lines = f"did not finish within {timeout}s", []
        path = Path(lines[-1]) / binary if lines else None
        if problem is None and (path is None or not os.access(path, os.X_OK)):
            problem = f"printed {lines[-1:]}, which holds no {binary}"
        if problem is not None or path is None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            reason = f"{' '.join(Path(c).name for c in command)} {problem}"
            if command[-1] in ("helm", "promtool", "kstatus") and not go_available():
                reason += " (Go is not installed)"
            if any(Path(c).name == "npm.sh" for c in command) and shutil.which("npm") is None:
                reason += " (npm is not installed)"
            if in_ci():
                pytest.fail(f"{binary} is required under CI=true: {reason}\n{tail}")
            pytest.skip(f"{binary} unavailable: {reason}")
    return path
