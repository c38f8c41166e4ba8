"""The operator's wheel, built offline from what the Dockerfile copies (pyproject.toml,
README.md, operator/), with this venv's setuptools (the ``test`` group pins the build-system's
range) called directly as the build backend: a uv venv has no pip, and no index is needed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BUILD = "import sys\nfrom setuptools import build_meta\nprint(build_meta.build_wheel(sys.argv[1]))\n"


def build_operator_wheel(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "operator", source / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(wheels)],
        cwd=source, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("amplify_backendauth_operator-*.whl")
    return wheel
