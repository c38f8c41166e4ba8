"""The emulated API driven by the real kubectl binary, as a developer uses the sandbox."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from backendauth_testbed.sandbox import EmulatedClusterThread
from sandbox_helpers import REPO, Kubectl, backendauth, fixture_crd, wait_for

pytestmark = pytest.mark.integration

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs the kubectl binary")


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmulatedClusterThread]:
    with EmulatedClusterThread(crds=[fixture_crd()]) as running:
        yield running


@pytest.fixture(scope="module")
def kubectl(cluster: EmulatedClusterThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    home = tmp_path_factory.mktemp("kubectl")
    return Kubectl(cluster.write_kubeconfig(home / "config"), home / "cache")


def table(output: str) -> list[list[str]]:
    """kubectl's table output as rows of cells (columns are separated by 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def ready(kubectl: Kubectl, name: str, reason: str = "JobCompleted") -> None:
    status = {
        "status": {
            "status": "COMPLETED",
            "jobId": "job-1",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": reason,
                    "message": "done",
                    "lastTransitionTime": "2024-01-01T00:00:00Z",
                }
            ],
        }
    }
    kubectl.run(
        "patch", "backendauth", name, "--subresource=status", "--type=merge", "-p", json.dumps(status)
    )


def test_apply_and_get_with_printer_columns(kubectl: Kubectl) -> None:
    assert "created" in kubectl.apply(backendauth("shop-auth")).stdout
    assert "unchanged" in kubectl.apply(backendauth("shop-auth")).stdout
    ready(kubectl, "shop-auth")

    rows = table(kubectl.run("get", "backendauths").stdout)
    assert rows[0] == ["NAME", "APP", "ENV", "STATUS", "READY", "AGE"]
    assert rows[1][:5] == ["shop-auth", "d1a2b3c4", "staging", "COMPLETED", "True"]

    wide = table(kubectl.run("get", "bauth", "shop-auth", "-o", "wide").stdout)
    assert wide[0] == ["NAME", "APP", "ENV", "STATUS", "READY", "AGE", "JOB", "REASON", "ERROR"]
    assert wide[1][6:8] == ["job-1", "JobCompleted"]

    as_json = json.loads(kubectl.run("get", "backendauth", "shop-auth", "-o", "json").stdout)
    assert as_json["status"]["status"] == "COMPLETED" and as_json["metadata"]["generation"] == 1
    as_list = yaml.safe_load(kubectl.run("get", "amplify", "-o", "yaml").stdout)  # by category
    assert [item["metadata"]["name"] for item in as_list["items"]] == ["shop-auth"]


def test_invalid_objects_are_refused_naming_the_field(kubectl: Kubectl) -> None:
    bad = backendauth("bad", resourceConfig={"userPoolConfigs": {"signInMethod": "SMOKE"}})
    result = kubectl.apply(bad, check=False)
    assert result.returncode == 1
    assert 'spec.resourceConfig.userPoolConfigs.signInMethod: Unsupported value: "SMOKE"' in result.stderr

    missing = backendauth("missing")
    del missing["spec"]["backendEnvironmentName"]
    result = kubectl.apply(missing, check=False)
    assert result.returncode == 1 and "spec.backendEnvironmentName: Required value" in result.stderr

    unknown = backendauth("unknown", colour="red")
    result = kubectl.apply(unknown, check=False)  # kubectl asks for strict field validation
    assert result.returncode == 1 and 'unknown field "spec.colour"' in result.stderr
    assert kubectl.run("get", "bauth", "bad", "missing", "unknown", check=False).returncode == 1


def test_immutable_field_change_is_refused(kubectl: Kubectl) -> None:
    kubectl.apply(backendauth("immutable"))
    result = kubectl.apply(backendauth("immutable", appId="other"), check=False)
    assert result.returncode == 1
    assert 'spec.appId: Invalid value: "string": appId is immutable' in result.stderr


def test_wait_for_ready_and_describe_with_events(kubectl: Kubectl) -> None:
    kubectl.apply(backendauth("waited"))
    waiting = subprocess.Popen(
        ["kubectl", "wait", "--for=condition=Ready", "backendauth/waited", "--timeout=20s"],
        env=kubectl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready(kubectl, "waited")
        out, err = waiting.communicate(timeout=25)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, err
    assert "condition met" in out

    uid = kubectl.run("get", "bauth", "waited", "-o", "jsonpath={.metadata.uid}").stdout
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "waited.1", "namespace": "default"},
        "type": "Normal",
        "reason": "JobCompleted",
        "message": "the AWS job completed",
        "source": {"component": "backendauth-operator"},
        "firstTimestamp": "2024-01-01T00:00:00Z",
        "lastTimestamp": "2024-01-01T00:00:00Z",
        "count": 1,
        "involvedObject": {
            "apiVersion": "amplifybackend.gitops.dev/v1alpha1",
            "kind": "BackendAuth",
            "name": "waited",
            "namespace": "default",
            "uid": uid,
        },
    }
    kubectl.apply(event)
    described = kubectl.run("describe", "backendauth", "waited").stdout
    assert "JobCompleted" in described.split("Events:")[1]
    assert "the AWS job completed" in described
    events = table(kubectl.run("get", "events").stdout)
    assert events[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert ["Normal", "JobCompleted", "backendauth/waited", "the AWS job completed"] in [
        r[1:] for r in events
    ]


def test_get_watch_streams_table_rows(kubectl: Kubectl, tmp_path: Path) -> None:
    out = tmp_path / "watch.out"
    with out.open("w") as sink:
        watching = subprocess.Popen(
            ["kubectl", "get", "backendauths", "--watch", "--request-timeout=20s"],
            env=kubectl.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "NAME" in out.read_text(), what="the watch to list")
        kubectl.apply(backendauth("watched"))
        ready(kubectl, "watched")
        wait_for(
            lambda: re.search(r"watched\s+d1a2b3c4\s+staging\s+COMPLETED\s+True", out.read_text()),
            what="the updated row",
        )
    finally:
        watching.kill()
        watching.wait()
    assert out.read_text().count("NAME") == 1  # one header, then rows


def test_edit_patches_the_object(kubectl: Kubectl) -> None:
    kubectl.apply(backendauth("edited"))
    editor = (
        f'{sys.executable} -c "import sys,pathlib; p=pathlib.Path(sys.argv[1]); '
        f"p.write_text(p.read_text().replace('staging', 'production'))\""
    )
    kubectl.run("edit", "backendauth", "edited", env={"KUBE_EDITOR": editor})
    spec = json.loads(kubectl.run("get", "bauth", "edited", "-o", "json").stdout)
    assert spec["spec"]["backendEnvironmentName"] == "production" and spec["metadata"]["generation"] == 2


def test_delete_waits_for_the_finalizer(kubectl: Kubectl) -> None:
    kept = backendauth("kept")
    kept["metadata"]["finalizers"] = ["amplifybackend.gitops.dev/finalizer"]
    kubectl.apply(kept)
    deleting = subprocess.Popen(
        ["kubectl", "delete", "backendauth", "kept", "--wait=true", "--timeout=20s"],
        env=kubectl.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (
                kubectl.run("get", "bauth", "kept", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout
            ),
            what="the deletionTimestamp",
        )
        assert deleting.poll() is None  # still waiting: the finalizer holds the object
        kubectl.run(
            "patch",
            "backendauth",
            "kept",
            "--type=json",
            "-p",
            '[{"op": "remove", "path": "/metadata/finalizers"}]',
        )
        out, err = deleting.communicate(timeout=25)
    finally:
        deleting.kill()
    assert deleting.returncode == 0, err
    assert 'backendauth.amplifybackend.gitops.dev "kept" deleted' in out
    assert "NotFound" in kubectl.run("get", "bauth", "kept", check=False).stderr


def test_discovery_and_builtin_kinds(kubectl: Kubectl) -> None:
    resources = table(kubectl.run("api-resources", "-o", "wide").stdout)
    row = next(r for r in resources if r[0] == "backendauths")
    assert row[1:5] == ["bauth", "amplifybackend.gitops.dev/v1alpha1", "true", "BackendAuth"]
    assert "amplify,aws" in row

    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "google-oauth"},
            "stringData": {"clientSecret": "s3cret"},
        }
    )
    secrets = table(kubectl.run("get", "secrets").stdout)
    assert secrets[0] == ["NAME", "TYPE", "DATA", "AGE"] and secrets[1][:3] == ["google-oauth", "Opaque", "1"]
    kubectl.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "b"}}
    )
    # kubectl's generator commands send protobuf bodies.
    kubectl.run("create", "namespace", "shop")
    kubectl.run("create", "secret", "generic", "lwa", "-n", "shop", "--from-literal=secret=s3cret")
    kubectl.run("create", "configmap", "generated", "--from-literal=a=b", "--from-literal=c=d")
    data = json.loads(kubectl.run("get", "secret", "lwa", "-n", "shop", "-o", "json").stdout)["data"]
    assert data == {"secret": "czNjcmV0"}
    assert table(kubectl.run("get", "cm", "generated").stdout)[1][:2] == ["generated", "2"]
    assert [row[:2] for row in table(kubectl.run("get", "namespaces").stdout)[1:]] == [
        ["default", "Active"],
        ["shop", "Active"],
    ]
    assert "backendauths.amplifybackend.gitops.dev" in kubectl.run("get", "crd").stdout


def test_apply_a_crd_directory(kubectl: Kubectl, tmp_path: Path) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "gadgets.yaml").write_text(yaml.safe_dump(crd))
    kubectl.run("apply", "-f", str(tmp_path / "crds"))
    kubectl.apply(
        {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"a": 1}}
    )
    assert table(kubectl.run("get", "gd").stdout)[1][0] == "g1"


@pytest.mark.skipif(
    not (REPO / "crds" / "backendauths.amplifybackend.gitops.dev.yaml").exists(),
    reason="the committed CRD is not there yet",
)
def test_the_committed_crd_accepts_a_valid_object(tmp_path: Path) -> None:
    from specs import minimal_spec

    crd = yaml.safe_load((REPO / "crds" / "backendauths.amplifybackend.gitops.dev.yaml").read_text())
    with EmulatedClusterThread(crds=[crd]) as real:
        kubectl = Kubectl(real.write_kubeconfig(tmp_path / "config"), tmp_path / "cache")
        body = backendauth("shop-auth")
        body["spec"] = minimal_spec()
        kubectl.apply(body)
        rows = table(kubectl.run("get", "backendauths").stdout)
        assert rows[0] == ["NAME", "APP", "ENV", "STATUS", "READY", "AGE"]
        assert rows[1][:3] == ["shop-auth", "d1a2b3c4d5e6f7", "staging"]
        result = kubectl.run(
            "patch", "bauth", "shop-auth", "--type=merge", "-p", '{"spec":{"appId":"x1"}}', check=False
        )
        assert 'spec.appId: Invalid value: "string": is immutable' in result.stderr
