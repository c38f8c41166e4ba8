"""``backendauth-operator dev``: serves, prints the next steps, writes ``.dev/env``, stops on a
signal; a shell that sourced ``.dev/env`` sends kubectl, plan and export to the sandbox, and
``dev`` started from it starts a fresh sandbox."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from backendauth_testbed.sandbox import dev as sandbox_dev
from sandbox_helpers import Kubectl, backendauth, wait_for

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the kubectl binary")
ROOT = Path(__file__).resolve().parent.parent
MADE_UP = [
    "KUBECONFIG",
    "BACKENDAUTH_AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER",
    "AWS_ENDPOINT_URL_COGNITO_IDENTITY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
]


def sourced(env_file: Path, environ: dict[str, str], cwd: Path | None = None) -> dict[str, str]:
    """The environment of a POSIX shell that ran ``. env_file`` in ``environ``."""
    out = subprocess.run(
        ["sh", "-c", '. "$1" && env -0', "sh", str(env_file)],
        env=environ, cwd=cwd, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return dict(item.split("=", 1) for item in out.decode().split("\0") if item)


def users_shell() -> dict[str, str]:
    """A user's shell: no sandbox settings, but real-looking AWS credentials of their own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKENDAUTH_"))}
    return {**clean, "AWS_ACCESS_KEY_ID": "AKIAUSERSOWNKEY00000", "AWS_SECRET_ACCESS_KEY": "users-own"}


# ---- .dev/env, without processes -------------------------------------------------------------


def test_env_file_quotes_every_value_for_the_shell(tmp_path: Path) -> None:
    path = tmp_path / "it's here" / "env"
    settings = {"KUBECONFIG": str(tmp_path / "a dir" / "kube $HOME `x` 'q'"), "AWS_REGION": "eu-west-1"}
    text = sandbox_dev.env_file_text(path, settings, ["KUBECONFIG"], "000000000000")
    sandbox_dev.write_env_file(path, text)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(line.startswith(("#", "export ")) for line in text.splitlines())
    shell = sourced(path, {"PATH": os.environ["PATH"]})
    assert {k: shell[k] for k in settings} == settings
    assert shell["BACKENDAUTH_DEV_ENV"] == str(path.resolve())
    assert shell["BACKENDAUTH_DEV_ENV_VARS"] == "KUBECONFIG"
    sandbox_dev.remove_env_file(path, "something else")  # rewritten by another sandbox: kept
    assert path.exists()
    sandbox_dev.remove_env_file(path, text)
    assert not path.exists()


def test_a_fresh_start_drops_what_a_sourced_env_made_up_and_keeps_the_rest() -> None:
    url = "http://127.0.0.1:40001"
    environ = {
        **sandbox_dev.simulator_env(url),
        "KUBECONFIG": "/old/.dev/kubeconfig",
        "BACKENDAUTH_DEV_ENV": "/old/.dev/env",
        "BACKENDAUTH_DEV_ENV_VARS": " ".join(MADE_UP),
        "HOME": "/home/u",
        "BACKENDAUTH_JOB_POLL_SECONDS": "2",
    }
    assert sandbox_dev.drop_sourced_env(environ) == MADE_UP
    assert environ == {"HOME": "/home/u", "BACKENDAUTH_JOB_POLL_SECONDS": "2"}
    # An endpoint the user gave is passed on by the file, not made up: it stays.
    given = {"KUBECONFIG": "k", "BACKENDAUTH_AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
             "BACKENDAUTH_DEV_ENV": "/x/env", "BACKENDAUTH_DEV_ENV_VARS": "KUBECONFIG"}  # fmt: skip
    assert sandbox_dev.drop_sourced_env(given) == ["KUBECONFIG"]
    assert given == {"BACKENDAUTH_AWS_ENDPOINT_URL": "http://127.0.0.1:4566"}
    assert sandbox_dev.drop_sourced_env(given) == []  # no marker: nothing is the sandbox's


def test_the_simulator_env_sends_every_service_to_its_one_endpoint() -> None:
    url = "http://127.0.0.1:40001"
    env = sandbox_dev.simulator_env(url, {})
    assert list(env) == MADE_UP[1:]
    assert {env[k] for k in MADE_UP[1:5]} == {url}
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"]) == (
        "sandbox",
        "sandbox",
        "us-east-1",
    )
    assert sandbox_dev.simulator_env(url, {"AWS_REGION": "eu-west-1"})["AWS_REGION"] == "eu-west-1"


# ---- dev as a process ------------------------------------------------------------------------


def dev(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    clean: dict[str, str] | None = None,
    out: str = "dev.out",
) -> subprocess.Popen[str]:
    """``dev ARGS`` in ``tmp_path``, in this environment (or ``clean``) plus ``env``."""
    return subprocess.Popen(
        [sys.executable, "-m", "backendauth_operator.commands.cli", "dev", *args],
        stdout=(tmp_path / out).open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**(os.environ if clean is None else clean), **(env or {})},
    )


@pytest.fixture
def no_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("BACKENDAUTH_AWS_ENDPOINT_URL", raising=False)
    yield


@pytest.mark.integration
@needs_kubectl
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
        assert "  source .dev/env   # kubectl, plan and export: this sandbox" in output
        env_file = (tmp_path / ".dev" / "env").read_text()
        assert f"export KUBECONFIG={kubeconfig}" in env_file
        assert re.search(r"export BACKENDAUTH_AWS_ENDPOINT_URL=http://127\.0\.0\.1:\d+", env_file)

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
    assert not (tmp_path / ".dev" / "env").exists()  # a stopped sandbox leaves no settings to source


@pytest.mark.integration
@needs_kubectl
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
        env_file = (tmp_path / ".dev" / "env").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(10)
        finally:
            process.kill()
    assert "AmplifyBackend endpoint: http://127.0.0.1:4566" in output and code == 0
    assert "  source .dev/env   # kubectl: this API" in output
    # The endpoint given is passed on as it is (not made up: a fresh start keeps it); no
    # simulator endpoints, no dummy keys.
    assert "export BACKENDAUTH_AWS_ENDPOINT_URL=http://127.0.0.1:4566" in env_file
    assert f"export KUBECONFIG={tmp_path / 'kc'}" in env_file
    assert "export BACKENDAUTH_DEV_ENV_VARS=KUBECONFIG" in env_file
    assert "AWS_ENDPOINT_URL_STS" not in env_file and "AWS_ACCESS_KEY_ID" not in env_file


@pytest.mark.integration
@needs_kubectl
def test_dev_with_real_aws_writes_no_endpoint_and_no_keys(tmp_path: Path) -> None:
    # From a shell that sourced a simulator's .dev/env: those settings are dropped, not passed on.
    shell = {**users_shell(), **sandbox_dev.simulator_env("http://127.0.0.1:9"), "KUBECONFIG": "/old/kc"}
    shell.update(BACKENDAUTH_DEV_ENV=str(tmp_path / "old-env"), BACKENDAUTH_DEV_ENV_VARS=" ".join(MADE_UP))
    process = dev(tmp_path, "--no-operator", "--real-aws", "--port", "0", clean=shell)
    try:
        output = wait_for(
            lambda: "Press Ctrl+C" in (text := (tmp_path / "dev.out").read_text()) and text,
            30,
            "the sandbox to start",
        )
        env_file = (tmp_path / ".dev" / "env").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(10)
        finally:
            process.kill()
    assert code == 0 and "AmplifyBackend endpoint: real AWS" in output
    assert "A fresh sandbox: ignoring KUBECONFIG, BACKENDAUTH_AWS_ENDPOINT_URL," in output
    exports = [line.split("=", 1)[0] for line in env_file.splitlines() if line.startswith("export ")]
    assert exports == ["export KUBECONFIG", "export BACKENDAUTH_DEV_ENV", "export BACKENDAUTH_DEV_ENV_VARS"]
    assert "# AWS: real AWS, with your own credentials and region" in env_file


@pytest.mark.integration
@needs_kubectl
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


class ProxyRecorder:
    """A would-be HTTP(S) proxy on 127.0.0.1 that only counts the connections it gets: set as
    the proxy of a process, it sees every request that leaves for a host other than 127.0.0.1
    (real AWS), and answers none."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.connections = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


def sim_calls(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_sim/calls", timeout=10) as response:
        calls: list[dict[str, Any]] = json.loads(response.read())["calls"]
    return calls


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backendauth_operator.commands.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def started(tmp_path: Path, out: str) -> str:
    return wait_for(
        lambda: "Press Ctrl+C" in (text := (tmp_path / out).read_text()) and text, 60, "the sandbox to start"
    )


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def endpoint(output: str) -> str:
    match = re.search(r"^AmplifyBackend endpoint: (http://127\.0\.0\.1:\d+)$", output, re.M)
    assert match, output
    return match.group(1)


@pytest.mark.integration
@needs_kubectl
def test_a_shell_that_sourced_dev_env_plans_and_exports_against_the_sandbox_then_starts_a_fresh_one(
    tmp_path: Path,
) -> None:
    proxy = ProxyRecorder()  # whatever would leave for real AWS goes here, and is counted
    users = {**users_shell(), "HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"}
    users.pop("AWS_REGION", None)
    first = dev(tmp_path, "--port", "0", "--job-seconds", "0.3", clean=users,
                env={"BACKENDAUTH_JOB_POLL_SECONDS": "0.3"})  # fmt: skip
    try:
        sim = endpoint(started(tmp_path, "dev.out"))
        env_file = tmp_path / ".dev" / "env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        shell = sourced(env_file, users, cwd=tmp_path)
        assert {k: shell[k] for k in MADE_UP} == {
            "KUBECONFIG": str(tmp_path / ".dev" / "kubeconfig"),
            **sandbox_dev.simulator_env(sim, {}),
        }
        assert shell["BACKENDAUTH_DEV_ENV"] == str(env_file)

        # plan reads the simulator (a GetBackendAuth of the example's resource) and nothing else.
        planned = cli("plan", "-f", str(ROOT / "examples" / "minimal.yaml"), env=shell, cwd=tmp_path)
        assert planned.returncode == 2, planned.stdout + planned.stderr
        assert "BackendAuth default/minimal-auth: create (CreateBackendAuth)" in planned.stdout
        reads = [c for c in sim_calls(sim) if c["operation"] == "GetBackendAuth"]
        assert [(c["appId"], c["resourceName"], c["httpStatus"]) for c in reads] == [
            ("d1a2b3c4d5e6f7", "minimalauth", 404)
        ]

        # kubectl applies it; the operator creates it; export reads it back from the simulator.
        kubectl = Kubectl(Path(shell["KUBECONFIG"]), tmp_path / "cache")
        kubectl.run("apply", "-f", str(ROOT / "examples" / "minimal.yaml"), env=shell)
        kubectl.run("wait", "--for=condition=Ready", "backendauth/minimal-auth", "--timeout=60s", timeout=90)
        before = len(sim_calls(sim))
        exported = cli("export", "--app", "d1a2b3c4d5e6f7", "--env", "staging", env=shell, cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        assert "resourceName: minimalauth" in exported.stdout
        assert "region: us-east-1" in exported.stdout  # the region .dev/env gives
        new_calls = sim_calls(sim)[before:]
        assert any(c["operation"] == "GetBackendAuth" for c in new_calls), new_calls
        assert proxy.connections == 0, "a call left for real AWS"
    finally:
        assert stop(first) == 0
    assert not (tmp_path / ".dev" / "env").exists()

    # dev again, from that shell: a fresh sandbox with its own simulator, not the old endpoint.
    second = dev(tmp_path, "--no-operator", "--port", "0", clean=shell, out="dev2.out")
    try:
        output = started(tmp_path, "dev2.out")
        assert output.startswith(
            f"A fresh sandbox: ignoring {', '.join(MADE_UP)} as set by {tmp_path / '.dev' / 'env'}; "
        )
        fresh = endpoint(output)
        assert fresh != sim and sim_calls(fresh) == []
        assert "AWS accounts: namespaces team-a -> 111111111111" in output  # its own simulator's
        again = sourced(tmp_path / ".dev" / "env", shell, cwd=tmp_path)
        assert again["BACKENDAUTH_AWS_ENDPOINT_URL"] == fresh
        assert (
            Kubectl(Path(again["KUBECONFIG"]), tmp_path / "cache")
            .run("get", "backendauths", "-o", "name")
            .stdout.strip()
            == ""
        )  # a fresh API too
    finally:
        assert stop(second) == 0
        proxy.close()
