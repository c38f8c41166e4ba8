"""``backendauth-operator dev`` maps two AWS accounts: the annotated Namespaces team-a and team-b,
the operator's account map, and the simulator answering STS for the operator it starts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from backendauth_testbed.sandbox import dev as sandbox_dev
from sandbox_helpers import Kubectl, wait_for

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = {"team-a": "111111111111", "team-b": "222222222222"}
ANNOTATION = "amplifybackend.gitops.dev/owner-account-id"


def test_account_objects_map_two_accounts() -> None:
    objects = sandbox_dev.account_objects("default")
    namespaces = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Namespace"}
    assert {n: o["metadata"]["annotations"][ANNOTATION] for n, o in namespaces.items()} == ACCOUNTS
    (config_map,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert config_map["metadata"] == {"name": "backendauth-role-account-map", "namespace": "default"}
    assert config_map["data"] == {
        "111111111111": "arn:aws:iam::111111111111:role/backendauth-operator",
        "222222222222": "arn:aws:iam::222222222222:role/backendauth-operator",
    }
    # Another operator namespace is created before the map that goes in it.
    elsewhere = sandbox_dev.account_objects("backendauth-system")
    assert elsewhere[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "backendauth-system"},
    }
    assert elsewhere[-1]["metadata"]["namespace"] == "backendauth-system"


def test_operator_namespace_follows_the_operator_settings() -> None:
    assert sandbox_dev.operator_namespace({}) == "default"
    assert sandbox_dev.operator_namespace({"POD_NAMESPACE": "ops"}) == "ops"
    both = {"POD_NAMESPACE": "ops", "BACKENDAUTH_LEASE_NAMESPACE": "leases"}
    assert sandbox_dev.operator_namespace(both) == "leases"


def test_the_example_pair_is_the_same_resource_in_the_two_sandbox_namespaces() -> None:
    docs = list(yaml.safe_load_all((ROOT / "examples" / "accounts" / "two-accounts.yaml").read_text()))
    assert sorted(d["metadata"]["namespace"] for d in docs) == sorted(ACCOUNTS)
    keys = {
        (d["spec"]["appId"], d["spec"]["backendEnvironmentName"], d["spec"]["resourceName"]) for d in docs
    }
    assert len(keys) == 1
    admin = list(yaml.safe_load_all((ROOT / "examples" / "accounts" / "namespaces.yaml").read_text()))
    assert admin == sandbox_dev.account_objects("default")
    # team-c.yaml: the same BackendAuth once more, in a namespace the walkthrough makes itself.
    (third,) = yaml.safe_load_all((ROOT / "examples" / "accounts" / "team-c.yaml").read_text())
    assert third["metadata"] == {"name": "shop-auth", "namespace": "team-c"}
    assert third["spec"] == docs[0]["spec"] and docs[0]["metadata"]["name"] == "shop-auth"


@pytest.mark.parametrize("sts", [True, False])
def test_start_operator_points_sts_at_the_simulator_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, sts: bool
) -> None:
    seen: dict[str, Any] = {}

    class Done:
        returncode = 0

    async def fake_exec(*args: str, env: dict[str, str], **_: Any) -> Done:
        seen.update(env)
        return Done()

    monkeypatch.setattr(asyncio, "create_subprocess_exec", fake_exec)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALLOOKING")  # the user's own
    monkeypatch.setenv("AWS_SESSION_TOKEN", "a-real-session")
    url = "http://127.0.0.1:1"
    aws = sandbox_dev.simulator_env(url) if sts else {"BACKENDAUTH_AWS_ENDPOINT_URL": url}

    async def start() -> None:
        stop = await sandbox_dev.start_operator("kubeconfig", aws)
        await stop()

    asyncio.run(start())
    assert seen["BACKENDAUTH_AWS_ENDPOINT_URL"] == url
    assert seen.get("AWS_ENDPOINT_URL_STS") == (url if sts else None)
    if sts:  # the simulator's: its dummy keys, none of the user's session
        assert seen["AWS_ACCESS_KEY_ID"] == "sandbox" and "AWS_SESSION_TOKEN" not in seen
        assert seen["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] == url
    else:  # an endpoint the user gave: the user's credentials
        assert seen["AWS_ACCESS_KEY_ID"] == "AKIAREALLOOKING"


def dev(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKENDAUTH_"))}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backendauth_operator.commands.cli",
            "dev",
            "--no-operator",
            "--port",
            "0",
            *args,
        ],
        stdout=(tmp_path / "dev.out").open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**clean, **(env or {})},
    )


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the kubectl binary")
def test_dev_maps_two_accounts_and_its_simulator_answers_sts(tmp_path: Path) -> None:
    process = dev(tmp_path)
    try:
        output = wait_for(
            lambda: "Press Ctrl+C" in (text := (tmp_path / "dev.out").read_text()) and text,
            30,
            "the sandbox to start",
        )
        env_file = (tmp_path / ".dev" / "env").read_text()
        match = re.search(r"export AWS_ENDPOINT_URL_STS=(http://127\.0\.0\.1:\d+)", env_file)
        assert match, env_file
        assert f"export BACKENDAUTH_AWS_ENDPOINT_URL={match.group(1)}" in env_file
        assert f"AmplifyBackend endpoint: {match.group(1)}" in output
        assert "team-a -> 111111111111, team-b -> 222222222222" in output

        kubectl = Kubectl(tmp_path / ".dev" / "kubeconfig", tmp_path / "cache")
        for name, account in ACCOUNTS.items():
            namespace = json.loads(kubectl.run("get", "namespace", name, "-o", "json").stdout)
            assert namespace["metadata"]["annotations"][ANNOTATION] == account
        config_map = json.loads(
            kubectl.run(
                "get", "configmap", "backendauth-role-account-map", "-n", "default", "-o", "json"
            ).stdout
        )
        assert config_map["data"]["222222222222"] == "arn:aws:iam::222222222222:role/backendauth-operator"

        # The printed STS endpoint issues credentials for the mapped role, in its account.
        sts = boto3.client(
            "sts",
            region_name="us-east-1",
            endpoint_url=match.group(1),
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
        )
        creds = sts.assume_role(RoleArn=config_map["data"]["222222222222"], RoleSessionName="dev")[
            "Credentials"
        ]
        who = boto3.client(
            "sts",
            region_name="us-east-1",
            endpoint_url=match.group(1),
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )
        assert who.get_caller_identity()["Account"] == "222222222222"

        # The example pair applies as written.
        kubectl.run("apply", "-f", str(ROOT / "examples" / "accounts" / "two-accounts.yaml"))
        for name in ACCOUNTS:
            assert kubectl.run("get", "backendauth", "shop-auth", "-n", name, "-o", "name").stdout.strip()
    finally:
        code = stop(process)
    assert code == 0


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the kubectl binary")
def test_dev_with_another_endpoint_maps_no_accounts(tmp_path: Path) -> None:
    process = dev(tmp_path, env={"BACKENDAUTH_AWS_ENDPOINT_URL": "http://127.0.0.1:4566"})
    try:
        output = wait_for(
            lambda: "Press Ctrl+C" in (text := (tmp_path / "dev.out").read_text()) and text,
            30,
            "the sandbox to start",
        )
        assert "AWS_ENDPOINT_URL_STS" not in output and "AWS accounts" not in output
        assert "AWS_ENDPOINT_URL_STS" not in (tmp_path / ".dev" / "env").read_text()
        kubectl = Kubectl(tmp_path / ".dev" / "kubeconfig", tmp_path / "cache")
        namespaces = kubectl.run("get", "namespaces", "-o", "name").stdout.split()
        assert "namespace/team-a" not in namespaces
        maps = kubectl.run("get", "configmaps", "-A", "-o", "name").stdout.split()
        assert "configmap/backendauth-role-account-map" not in maps
    finally:
        code = stop(process)
    assert code == 0
