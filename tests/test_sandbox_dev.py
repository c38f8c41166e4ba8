"""``backendauth-operator dev --no-operator``: serves, prints the next steps, stops on a signal."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sandbox_helpers import Kubectl, backendauth, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the kubectl binary"),
]


def dev(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    out = (tmp_path / "dev.out").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "backendauth_operator.cli", "dev", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("BACKENDAUTH_AWS_ENDPOINT_URL", raising=False)
    yield


@pytest.mark.usefixtures("no_endpoint")
def test_dev_serves_the_crd_and_the_simulator_until_interrupted(tmp_path: Path) -> None:
    from specs import minimal_spec

    manifest = backendauth("shop-auth")
    manifest["spec"] = minimal_spec()
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump(manifest))
    process = dev(tmp_path, "--no-operator", "--port", "0", "--apply", "shop.yaml")
    try:
        output = wait_for(
            lambda: "Press Ctrl+C" in (text := (tmp_path / "dev.out").read_text()) and text,
            30,
            "the sandbox to start",
        )
        kubeconfig = tmp_path / ".dev" / "kubeconfig"
        assert f"export KUBECONFIG={kubeconfig}" in output
        assert re.search(r"export BACKENDAUTH_AWS_ENDPOINT_URL=http://127\.0\.0\.1:\d+", output)

        kubectl = Kubectl(kubeconfig, tmp_path / "cache")
        rows = kubectl.run("get", "backendauths", "-o", "name").stdout.split()
        assert rows == ["backendauth.amplifybackend.gitops.dev/shop-auth"]
        assert kubectl.run("config", "current-context").stdout.strip() == "backendauth-dev"
        watching = subprocess.Popen(
            ["kubectl", "get", "backendauths", "--watch"],
            env=kubectl.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(10)  # stops within seconds, open watches or not
        finally:
            process.kill()
    assert code == 0
    assert watching.wait(10) is not None  # the open watch was closed, not left hanging


def test_dev_uses_the_given_endpoint_instead_of_a_simulator(tmp_path: Path) -> None:
    process = dev(
        tmp_path,
        "--no-operator",
        "--port",
        "0",
        "--kubeconfig",
        "kc",
        env={"BACKENDAUTH_AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
    )
    try:
        output = wait_for(
            lambda: "Press Ctrl+C" in (text := (tmp_path / "dev.out").read_text()) and text,
            30,
            "the sandbox to start",
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(10)
        finally:
            process.kill()
    assert "export BACKENDAUTH_AWS_ENDPOINT_URL=http://127.0.0.1:4566" in output
    assert f"export KUBECONFIG={tmp_path / 'kc'}" in output and code == 0


def test_dev_reports_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = dev(
            tmp_path,
            "--no-operator",
            "--port",
            str(port),
            env={"BACKENDAUTH_AWS_ENDPOINT_URL": "http://127.0.0.1:4566"},
        )
        code = process.wait(30)
    output = (tmp_path / "dev.out").read_text()
    assert code == 2
    assert output.strip() == (
        f"backendauth-operator dev: error: port {port} on 127.0.0.1 is already in use; "
        "choose another with --port"
    )
