"""``kubectl get backendauths -o yaml > backup.yaml`` and ``kubectl apply -f backup.yaml`` (a
``v1`` ``List``): kubectl validates a List on the client against ``/openapi/v2``, which the
emulated API serves (empty) for that. The same scenario runs on the real API server in
test_real_apiserver.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from backendauth_operator.commands.crd import build_crd
from backendauth_testbed.sandbox import EmulatedClusterThread
from backendauth_testbed.sandbox.protobuf import openapi_v2_document
from harness import kubectl_binary

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def backup_and_restore(kubectl: Kubectl, tmp: Path, namespace: str) -> None:
    """Back up BackendAuths with ``get -o yaml``, apply the backup onto them, delete them, apply it
    again to bring them back. ``kubectl(*args)`` runs kubectl and fails on a non-zero exit."""
    for example in ("minimal.yaml", "shared-app.yaml"):
        kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / example))
    backup = tmp / "backup.yaml"
    backup.write_text(kubectl("get", "backendauths", "-n", namespace, "-o", "yaml").stdout)
    saved = yaml.safe_load(backup.read_text())
    assert saved["kind"] == "List" and saved["apiVersion"] == "v1" and len(saved["items"]) == 4

    applied = kubectl("apply", "-n", namespace, "-f", str(backup)).stdout.splitlines()
    assert len(applied) == 4 and all(line.endswith(("configured", "unchanged")) for line in applied), applied

    kubectl("delete", "backendauths", "--all", "-n", namespace)
    assert kubectl("get", "backendauths", "-n", namespace, "-o", "name").stdout.strip() == ""
    restored = kubectl("apply", "-n", namespace, "-f", str(backup)).stdout.splitlines()
    assert sorted(restored) == sorted(
        f"backendauth.amplifybackend.gitops.dev/{i['metadata']['name']} created" for i in saved["items"]
    )
    now = yaml.safe_load(kubectl("get", "backendauths", "-n", namespace, "-o", "yaml").stdout)["items"]
    assert [i["spec"] for i in now] == [i["spec"] for i in saved["items"]]
    old_uids = {i["metadata"]["uid"] for i in saved["items"]}
    assert not old_uids & {i["metadata"]["uid"] for i in now}, "new objects, not the old ones"


@pytest.fixture
def emulated_kubectl(tmp_path: Path) -> Iterator[Kubectl]:
    with EmulatedClusterThread(crds=[build_crd()]) as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        env = {"KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(tmp_path / "cache")}

        def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
            result = subprocess.run(
                [kubectl_binary(), *args], capture_output=True, text=True, timeout=60, check=False,
                env={**os.environ, **env},
            )  # fmt: skip
            if result.returncode != 0:
                raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
            return result

        yield kubectl


def test_a_get_o_yaml_backup_applies_back_on_the_emulated_api(
    emulated_kubectl: Kubectl, tmp_path: Path
) -> None:
    backup_and_restore(emulated_kubectl, tmp_path, "default")


def test_the_openapi_v2_document_is_an_empty_swagger_2_document() -> None:
    # Document{swagger="2.0" (field 1), info (field 2) {title (1), version (2)}}: what
    # kubectl's gnostic decoder reads; no definitions, so no kind is validated on the client.
    assert openapi_v2_document("K", "v1") == b"\x0a\x032.0\x12\x07\x0a\x01K\x12\x02v1"
