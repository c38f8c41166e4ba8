"""The supply chain's source of truth: ``uv.lock``, one lock for the uv workspace of the operator
(the root) and the test bed (``testbed/``, a member on no index).

The lock is current (``uv lock --check``), pins every distribution to a file of the index with its
hash, and takes the test bed and the operator from the workspace, never from an index; the
operator's published metadata (its wheel) requires only distributions that the index serves, and
names no extra, so nothing an index could serve under our test bed's name is ever installed.
Pure tables, plus ``uv`` and an offline wheel build; without uv the uv tests are skipped, except
under ``CI=true`` (``.ci/run`` installs it), where they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from operator_wheel import build_operator_wheel
from tools.built import venv_tool

REPO = Path(__file__).resolve().parent.parent
INDEX = "https://pypi.org/simple"
OPERATOR, TESTBED = "amplify-backendauth-operator", "amplify-backendauth-testbed"


def pyproject(path: Path = REPO / "pyproject.toml") -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def lock() -> dict[str, Any]:
    return tomllib.loads((REPO / "uv.lock").read_text())


def locked() -> dict[str, dict[str, Any]]:
    return {package["name"]: package for package in lock()["package"]}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def uv_binary() -> str:
    """uv beside this venv's Python, else on PATH; skip or, under CI, fail."""
    return venv_tool("uv", "python3 -m pip install uv")


def uv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [uv_binary(), *args, "--offline", "--directory", str(REPO)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )  # fmt: skip


def test_the_lock_is_current() -> None:
    result = uv("lock", "--check")
    assert result.returncode == 0, result.stderr


def test_every_locked_distribution_is_a_hashed_file_of_the_index_or_a_workspace_member() -> None:
    packages = locked()
    assert packages[OPERATOR]["source"] == {"editable": "."}
    assert packages[TESTBED]["source"] == {"editable": "testbed"}
    for name, package in packages.items():
        if name in (OPERATOR, TESTBED):
            continue
        assert package["source"] == {"registry": INDEX}, (name, package["source"])
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, name
        for file in files:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", file.get("hash", "")), (name, file)


def test_the_test_bed_and_the_tooling_are_dependency_groups_not_extras() -> None:
    project = pyproject()
    assert "optional-dependencies" not in project["project"]
    groups = project["dependency-groups"]
    assert {"test", "lint", "docs", "dev", "image"} <= set(groups)
    assert TESTBED in groups["test"]
    assert {"include-group": "test"} in groups["dev"] and {"include-group": "lint"} in groups["dev"]
    assert project["tool"]["uv"]["workspace"]["members"] == ["testbed"]
    assert project["tool"]["uv"]["sources"][TESTBED] == {"workspace": True}
    # The test bed's own requirement on the operator resolves to the workspace's operator.
    testbed = pyproject(REPO / "testbed" / "pyproject.toml")
    assert OPERATOR in testbed["project"]["dependencies"]
    assert testbed["tool"]["uv"]["sources"][OPERATOR] == {"workspace": True}
    requires = lock()["package"]
    (member,) = [p for p in requires if p["name"] == TESTBED]
    assert {"name": OPERATOR, "editable": "."} in member["metadata"]["requires-dist"]


def test_the_image_installs_uv_at_the_version_the_lock_pins() -> None:
    (pin,) = pyproject()["dependency-groups"]["image"]
    version = pin.removeprefix("uv==")
    assert version != pin and locked()["uv"]["version"] == version


def test_the_operators_wheel_requires_only_what_the_index_serves(tmp_path: Path) -> None:
    wheel = build_operator_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = HeaderParser().parsestr(archive.read(name).decode())
    assert meta["Name"] == OPERATOR
    assert meta.get_all("Provides-Extra") is None
    requires = meta.get_all("Requires-Dist") or []
    assert requires, "the wheel requires nothing: its runtime dependencies are missing"
    names = {normalized(re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0]) for r in requires}
    assert not [r for r in requires if "testbed" in r or "extra ==" in r], requires
    packages = locked()
    for required in names:
        assert packages[required]["source"] == {"registry": INDEX}, required
    # Exactly the [project] dependencies, as the lock records them for the operator.
    assert names == {d["name"] for d in packages[OPERATOR]["metadata"]["requires-dist"]}


def test_the_locked_runtime_set_holds_no_development_tool() -> None:
    result = uv(
        "export", "--frozen", "--no-dev", "--no-emit-workspace", "--package", OPERATOR,
        "--format", "requirements-txt", "--no-hashes", "--no-header", "--no-annotate",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = {normalized(line.split("==")[0]) for line in result.stdout.splitlines() if "==" in line}
    assert {"kopf", "kubernetes", "boto3", "botocore", "pydantic", "aiohttp", "prometheus-client"} <= names
    tooling = {"pytest", "mypy", "ruff", "kmock", "uv", "setuptools", "pip", "mkdocs-material", TESTBED}
    assert not names & tooling
