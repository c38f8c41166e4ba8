"""The GitHub workflow and Dependabot's configuration, kept in step with what CI runs here.

The workflow's root job is ``.ci/run`` itself under sudo (so the workflow a contributor sees is
the one that passes here); its unprivileged job lints and type-checks with exactly ``.ci/run``'s
commands; Dependabot covers uv.lock, every Go module the tests build tools from, and the actions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "ci.yaml"


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def lines(text: str) -> list[str]:
    return [line.strip() for line in re.sub(r"\\\n\s*", " ", text).splitlines() if line.strip()]


def run_steps(job: dict[str, Any]) -> list[str]:
    return [line for step in job["steps"] if "run" in step for line in lines(step["run"])]


def test_the_root_job_runs_ci_run_with_sudo() -> None:
    jobs = load(WORKFLOW)["jobs"]
    assert 'sudo -E env "PATH=$PATH" bash .ci/run' in run_steps(jobs["ci"])
    assert jobs["ci"]["timeout-minutes"] >= 60


def test_the_unprivileged_job_lints_as_ci_run_does_and_never_uses_sudo() -> None:
    job = load(WORKFLOW)["jobs"]["lint-unit"]
    steps = run_steps(job)
    assert not [line for line in steps if "sudo" in line]
    ci_run = lines((REPO / ".ci" / "run").read_text())
    # Its checks are .ci/run's own lines, word for word: ruff, ruff format and mypy at least.
    checks = [line for line in steps if line.startswith(".venv/bin/") and "pytest" not in line]
    assert [c for c in checks if c not in ci_run] == []
    ruff = [c.split()[1] for c in checks if c.startswith(".venv/bin/ruff ")]
    assert ruff == ["check", "format"], checks
    assert [c for c in checks if c.startswith(".venv/bin/mypy --strict ")]
    for command in ("uv lock --check", "uv sync --locked --python python3"):
        assert command in ci_run and command in steps


def test_the_workflows_python_is_the_projects() -> None:
    assert (REPO / ".python-version").read_text().strip() == "3.11"
    for job in load(WORKFLOW)["jobs"].values():
        pythons = [s["with"] for s in job["steps"] if "setup-python" in s.get("uses", "")]
        assert pythons == [{"python-version-file": ".python-version"}]


def test_every_action_is_pinned_by_commit_with_its_tag_in_a_comment() -> None:
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(.+)$", WORKFLOW.read_text(), re.M)
    assert uses
    for use in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+(\.\d+)*", use), use


def test_dependabot_covers_the_lock_every_go_module_and_the_actions() -> None:
    updates = load(REPO / ".github" / "dependabot.yml")["updates"]
    ecosystems = {u["package-ecosystem"]: u for u in updates}
    assert ecosystems["uv"]["directory"] == "/"
    assert ecosystems["github-actions"]["directory"] == "/"
    listed = set(ecosystems["gomod"]["directories"])
    found = {
        "/" + str(path.parent.relative_to(REPO))
        for path in REPO.rglob("go.mod")
        if not {".venv", ".git"} & set(path.relative_to(REPO).parts)
    }
    assert found and found <= listed, found - listed
