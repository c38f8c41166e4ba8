"""The newcomer's path: `backendauth-operator dev` as a subprocess, driven with the real kubectl
through every file in examples/ (all Ready) and examples/invalid/ (all refused, field named)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# The field each invalid example must name, and the words of the refusal.
INVALID = {
    "bad-enum.yaml": ("spec.resourceConfig.userPoolConfigs.signInMethod", "Unsupported value"),
    "missing-field.yaml": ("spec.resourceConfig.userPoolConfigs.requiredSignUpAttributes", "Required value"),
    "missing-code-placeholder.yaml": (
        "spec.resourceConfig.userPoolConfigs.verificationMessage.smsSettings.smsMessage",
        "{####}",
    ),
    "cross-field.yaml": ("spec.resourceConfig.userPoolConfigs.mfa.settings.mfaTypes", "mfaMode is ON"),
    "immutable-change.yaml": ("spec.resourceConfig.userPoolConfigs.userPoolName", "is immutable"),
    "import-with-resource-config.yaml": ("spec.import", "exactly one of resourceConfig and import"),
    "import-id-twice.yaml": ("spec.import.userPoolIdFrom", "exactly one of userPoolId and userPoolIdFrom"),
    "import-with-resource-name.yaml": ("spec.resourceName", "resourceName is not given with import"),
}


class Dev:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.kubeconfig = tmp / "kubeconfig"
        self.out = tmp / "dev.out"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKENDAUTH_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backendauth_operator.commands.cli", "dev", "--port", "0",
             "--kubeconfig", str(self.kubeconfig), "--env-file", str(tmp / "env"), "--job-seconds", "0.5"],
            stdout=self.out.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
            env={**env, "BACKENDAUTH_JOB_POLL_SECONDS": "0.3"},
        )  # fmt: skip
        wait_until(lambda: "Press Ctrl+C" in self.out.read_text(), 60, "dev to start")

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBE_EDITOR": self.editor}
        result = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=env, timeout=90)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result

    editor = "true"


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    sandbox = Dev(tmp_path)
    yield sandbox
    if sandbox.process.poll() is None:
        sandbox.process.send_signal(signal.SIGTERM)  # dev stops its operator on the way out
        try:
            sandbox.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sandbox.process.kill()
            sandbox.process.wait()


def names_in(path: Path) -> list[str]:
    return [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "BackendAuth"]


def test_every_example_reaches_ready_and_every_invalid_one_is_refused(dev: Dev) -> None:
    examples = sorted(EXAMPLES.glob("*.yaml"))
    dev.kubectl("apply", *[arg for f in examples for arg in ("-f", str(f))])
    expected = sorted(n for f in examples for n in names_in(f))
    assert len(expected) >= 6
    dev.kubectl("wait", "--for=condition=Ready", "backendauth", "--all", "--timeout=90s")

    table = dev.kubectl("get", "backendauths").stdout.splitlines()
    assert table[0].split() == ["NAME", "APP", "ENV", "STATUS", "READY", "AGE"]
    assert sorted(line.split()[0] for line in table[1:]) == expected
    assert all(line.split()[3:5] == ["COMPLETED", "True"] for line in table[1:])
    wide = dev.kubectl("get", "backendauths", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-4:] == ["JOB", "REASON", "ERROR", "ACCOUNT"]
    assert "Submitted" in dev.kubectl("describe", "backendauth", "minimal-auth").stdout

    for name, (field, words) in INVALID.items():
        result = dev.kubectl("apply", "-f", str(EXAMPLES / "invalid" / name), check=False)
        assert result.returncode != 0, name
        assert field in result.stderr and words in result.stderr, (name, result.stderr)
    assert set(INVALID) == {p.name for p in (EXAMPLES / "invalid").glob("*.yaml")}


def test_kubectl_edit_and_delete_work_against_the_sandbox(dev: Dev) -> None:
    dev.kubectl("apply", "-f", str(EXAMPLES / "minimal.yaml"))
    dev.kubectl("wait", "--for=condition=Ready", "backendauth/minimal-auth", "--timeout=60s")
    dev.editor = (
        "sed -i -e 's/^  resourceName: minimalauth$/  resourceName: minimalauth\\n  deletionPolicy: Delete/'"
    )
    dev.kubectl("edit", "backendauth", "minimal-auth")
    obj = json.loads(dev.kubectl("get", "backendauth", "minimal-auth", "-o", "json").stdout)
    assert obj["spec"]["deletionPolicy"] == "Delete" and obj["metadata"]["generation"] == 2
    wait_until(
        lambda: json.loads(dev.kubectl("get", "bauth", "minimal-auth", "-o", "json").stdout)["status"].get(
            "observedGeneration") == 2,
        60, "the edit to be reconciled",
    )  # fmt: skip
    dev.kubectl("wait", "--for=condition=Ready", "backendauth/minimal-auth", "--timeout=60s")
    dev.kubectl("delete", "backendauth", "minimal-auth", "--timeout=60s")
    assert dev.kubectl("get", "backendauths", "-o", "name").stdout.strip() == ""


def test_ctrl_c_stops_the_sandbox_and_the_operator_within_seconds(dev: Dev) -> None:
    dev.process.send_signal(signal.SIGINT)
    assert dev.process.wait(timeout=15) == 0
    text = dev.out.read_text()
    assert "stopping" in text and "Traceback" not in text
