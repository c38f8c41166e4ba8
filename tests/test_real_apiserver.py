"""The manifests of this repository against a real kube-apiserver (``tests/real_apiserver.py``):
the CRD, ``deploy/`` (both installs, Pod Security), ``examples/`` (valid and invalid), and a
``kubectl get -o yaml`` backup applied back. No operator runs here (see test_real_operator.py).

Everything is read from the repository at test time, so these tests follow deploy/ and examples/.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import wait_until
from real_apiserver import CRD_FILE, CRD_NAME, REPO, RealCluster
from test_dev_examples import INVALID
from test_sandbox_backup import backup_and_restore

pytestmark = [pytest.mark.real_apiserver, pytest.mark.integration]

EXAMPLES = REPO / "examples"
OVERLAYS = ["deploy", "deploy/overlays/namespaced"]


def render(real: RealCluster, path: str) -> list[dict[str, Any]]:
    """``kubectl kustomize PATH``, with the built kubectl (its kustomize), as a list of objects."""
    out = real.kubectl("kustomize", str(REPO / path)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def crd_manifest() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return crd


def names_in(path: Path) -> list[tuple[str, str]]:
    return [(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(path.read_text()) if d]


# ---- the CRD --------------------------------------------------------------------------------------


def test_crd_is_established_with_the_names_and_columns_of_crds(real_cluster: RealCluster) -> None:
    crd = real_cluster.get_json("crd", CRD_NAME)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True" and conditions["NamesAccepted"] == "True"
    wanted = crd_manifest()["spec"]
    assert crd["status"]["acceptedNames"]["kind"] == wanted["names"]["kind"]
    assert crd["status"]["acceptedNames"].get("shortNames") == wanted["names"].get("shortNames")
    served = {v["name"]: v for v in crd["spec"]["versions"]}
    for version in wanted["versions"]:
        columns = [c["name"] for c in served[version["name"]].get("additionalPrinterColumns", [])]
        assert columns == [c["name"] for c in version.get("additionalPrinterColumns", [])]
    # The server took the schema as written: nothing was dropped or rewritten.
    assert [v["schema"] for v in crd["spec"]["versions"]] == [v["schema"] for v in wanted["versions"]]


def test_kubectl_explain_reads_the_crd_schema(real_cluster: RealCluster) -> None:
    schema = crd_manifest()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]

    def explained() -> str | None:
        # The server publishes a new CRD's OpenAPI a moment after it is Established.
        result = real_cluster.kubectl("explain", "backendauth.spec", check=False)
        return result.stdout if result.returncode == 0 else None

    text = wait_until(explained, 60, "kubectl explain backendauth.spec")
    assert "KIND:       BackendAuth" in text and "FIELD: spec <Object>" in text
    listed = set(re.findall(r"^  (\w+)\t", text, re.M))
    assert listed == set(schema["properties"]), "every spec field is explained"
    for required in schema["required"]:
        assert re.search(rf"^  {required}\t.*-required-", text, re.M), required


# ---- deploy/ --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", OVERLAYS)
def test_kubectl_apply_k_installs_every_object(real_cluster: RealCluster, path: str) -> None:
    objects = render(real_cluster, path)
    assert {"Deployment", "ServiceAccount", "CustomResourceDefinition"} <= {o["kind"] for o in objects}
    # The namespaces it uses but does not create (the namespaced overlay's watched one) must exist.
    created = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    for namespace in {o["metadata"].get("namespace") for o in objects} - created - {None}:
        real_cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    result = real_cluster.kubectl("apply", "-k", str(REPO / path))
    assert "Warning" not in result.stderr, result.stderr
    stored = json.loads(
        real_cluster.kubectl("get", "-f", "-", "-o", "json", input=yaml.safe_dump_all(objects)).stdout
    )
    items = stored["items"] if stored["kind"] == "List" else [stored]
    assert [(i["kind"], i["metadata"]["name"]) for i in items] == [
        (o["kind"], o["metadata"]["name"]) for o in objects
    ]
    for obj, got in zip(objects, items, strict=True):
        for key in ("rules", "roleRef", "subjects"):
            assert got.get(key) == obj.get(key), (obj["kind"], obj["metadata"]["name"], key)
        if obj["kind"] == "Deployment":
            containers = [(c["name"], c.get("args")) for c in obj["spec"]["template"]["spec"]["containers"]]
            assert [
                (c["name"], c.get("args")) for c in got["spec"]["template"]["spec"]["containers"]
            ] == containers
    # Applying again changes nothing.
    again = real_cluster.kubectl("apply", "-k", str(REPO / path)).stdout.splitlines()
    assert again and all(line.endswith(("unchanged", "configured")) for line in again), again
    assert not [line for line in again if line.endswith("created")]


def pod_from_template(deployment: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    """The Pod a ReplicaSet would make from the Deployment (no controller-manager runs here)."""
    template = copy.deepcopy(deployment["spec"]["template"])
    metadata = {**template.get("metadata", {}), "name": name, "namespace": namespace}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}


@pytest.mark.parametrize("path", OVERLAYS)
def test_the_operator_pod_is_admitted_under_the_restricted_pod_security_standard(
    real_cluster: RealCluster, real_namespace: str, path: str
) -> None:
    real_cluster.kubectl("label", "namespace", real_namespace, *[f"{k}={v}" for k, v in RESTRICTED.items()])
    namespaces = [o for o in render(real_cluster, path) if o["kind"] == "Namespace"]
    assert [n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n in namespaces] == [
        "restricted"
    ], "deploy/ puts the operator in a namespace that enforces the restricted standard"
    (deployment,) = [o for o in render(real_cluster, path) if o["kind"] == "Deployment"]
    deployment["metadata"]["namespace"] = real_namespace
    pod = pod_from_template(deployment, real_namespace, "operator-pod")
    for obj in (pod, deployment):
        result = real_cluster.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(obj)
        )
        assert result.returncode == 0
        assert "PodSecurity" not in result.stderr and "violate" not in result.stderr, result.stderr
        assert json.loads(result.stdout)["kind"] == obj["kind"]


def test_a_privileged_pod_is_refused_in_the_same_namespace(
    real_cluster: RealCluster, real_namespace: str
) -> None:
    real_cluster.kubectl("label", "namespace", real_namespace, *[f"{k}={v}" for k, v in RESTRICTED.items()])
    (deployment,) = [o for o in render(real_cluster, "deploy") if o["kind"] == "Deployment"]
    pod = pod_from_template(deployment, real_namespace, "privileged-pod")
    container = pod["spec"]["containers"][0]
    container["securityContext"] = {**container["securityContext"], "privileged": True,
                                    "allowPrivilegeEscalation": True}  # fmt: skip
    result = real_cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in result.stderr, result.stderr
    assert "privileged" in result.stderr and "allowPrivilegeEscalation" in result.stderr


# ---- examples/ ------------------------------------------------------------------------------------


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_is_accepted_as_written(real_cluster: RealCluster, real_namespace: str, example: str) -> None:
    # Into this test's namespace, also when the file names one (no operator must see it elsewhere).
    documents = [d for d in yaml.safe_load_all((EXAMPLES / example).read_text()) if d]
    for document in documents:
        document["metadata"]["namespace"] = real_namespace
    result = real_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))
    assert "Warning" not in result.stderr, result.stderr  # no unknown field pruned, nothing deprecated
    assert len(result.stdout.splitlines()) == len(documents)
    for document in documents:
        kind, name = document["kind"], document["metadata"]["name"]
        stored = real_cluster.get_json(kind.lower(), name, "-n", real_namespace)
        if kind == "BackendAuth":
            assert stored["spec"] == document["spec"], "stored as written: nothing pruned or defaulted"
            assert stored["metadata"]["generation"] == 1


@pytest.mark.parametrize("example", sorted(p.name for p in (EXAMPLES / "invalid").glob("*.yaml")))
def test_invalid_example_is_refused_naming_the_field(
    real_cluster: RealCluster, real_namespace: str, example: str
) -> None:
    assert example in INVALID, f"examples/invalid/{example} has no expectation in test_dev_examples.INVALID"
    field, words = INVALID[example]
    if example == "immutable-change.yaml":  # a change: of examples/minimal.yaml
        real_cluster.kubectl("apply", "-n", real_namespace, "-f", str(EXAMPLES / "minimal.yaml"))
    result = real_cluster.kubectl(
        "apply", "-n", real_namespace, "-f", str(EXAMPLES / "invalid" / example), check=False
    )
    assert result.returncode != 0
    assert "is invalid" in result.stderr
    assert field in result.stderr and words in result.stderr, result.stderr
    names = [name for kind, name in names_in(EXAMPLES / "invalid" / example) if kind == "BackendAuth"]
    stored = real_cluster.kubectl("get", "backendauths", "-n", real_namespace, "-o", "json").stdout
    kept = {i["metadata"]["name"]: i for i in json.loads(stored)["items"]}
    if example == "immutable-change.yaml":
        assert kept[names[0]]["spec"]["resourceConfig"]["userPoolConfigs"]["userPoolName"] == "minimalusers"
    else:
        assert not set(names) & set(kept)


# ---- backup and restore ---------------------------------------------------------------------------


def test_a_get_o_yaml_backup_applies_back(
    real_cluster: RealCluster, real_namespace: str, tmp_path: Path
) -> None:
    backup_and_restore(real_cluster.kubectl, tmp_path, real_namespace)
