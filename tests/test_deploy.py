"""The install manifests, rendered by the real ``kubectl kustomize``, and the Dockerfile.

RBAC is checked against an explicit allow-list: each rule the operator is granted must be one
the code needs (comment per rule), and each rule the code needs must be granted.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from backendauth_operator import CRD_PATH, GROUP, PLURAL
from backendauth_operator.config import Settings

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "backendauth-system"
ACCOUNT = "backendauth-operator"
WATCHED = "apps"  # the namespace of deploy/overlays/namespaced
UID = 65532

Rule = tuple[str, str, str]  # (apiGroup, resource, verb)

# What the operator's code does against the Kubernetes API, rule by rule.
BACKENDAUTH_RULES: dict[Rule, str] = {
    (GROUP, PLURAL, "list"): "Kopf: the watch starts with a list",
    (GROUP, PLURAL, "watch"): "Kopf: watching BackendAuths",
    (GROUP, PLURAL, "patch"): "kube.KubeClient.patch: pending marker, the step's annotations, our finalizer",
    (GROUP, PLURAL, "get"): "kube.get_backendauth: a step reads the object when no fresher body is known",
    (GROUP, f"{PLURAL}/status", "patch"): "kube.patch_status: each step's outcome, on the status subresource",
    ("", "events", "create"): "Kopf: kopf.event/info/warn post core v1 Events (events.py, EVENTS selector)",
    ("", "secrets", "get"): "kube.read_secret_key: clientSecretRef / privateKeyRef values",
    ("", "secrets", "list"): "Kopf: the watch of Secrets starts with a list (rotation)",
    ("", "secrets", "watch"): "Kopf: handlers.secret_changed, a referenced Secret rotated",
    ("", "configmaps", "get"): "import_effects.read_config_map_key: spec.import ids",
    ("", "configmaps", "create"): "kube.write_config_map: spec.outputs.configMapName",
    ("", "configmaps", "patch"): "kube.write_config_map: the outputs ConfigMap when it exists",
}
CRD_SCANNING: dict[Rule, str] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"): "Kopf: resource_observer (CRD scan)",
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"): "Kopf: resource_observer (CRD changes)",
}
# Deliberately absent: peering (standalone=True), events.k8s.io (Kopf 1.45 posts core v1
# Events), update/create/delete on BackendAuths (Kopf patches), any write to Secrets.
LEASE_RULES: dict[Rule, str] = {
    ("coordination.k8s.io", "leases", "get"): "leases.Leases: who holds an app/env's turn",
    ("coordination.k8s.io", "leases", "create"): "leases.Leases.acquire: the first turn on an app/env",
    ("coordination.k8s.io", "leases", "update"): "leases.Leases: take (with resourceVersion) and give back",
}
NAMESPACE_RULES: dict[Rule, str] = {
    (
        "",
        "namespaces",
        "get",
    ): "accounts.AccountDirectory: a Namespace's account annotation, when first needed",
    ("", "namespaces", "list"): "Kopf: the watch of Namespaces starts with a list",
    ("", "namespaces", "watch"): "Kopf: handlers.namespace_seen, a changed account annotation",
}
ACCOUNT_MAP = "backendauth-role-account-map"
CLUSTERWIDE_ALLOWED = BACKENDAUTH_RULES | CRD_SCANNING | NAMESPACE_RULES
NAMESPACED_ROLE_ALLOWED = BACKENDAUTH_RULES
# With --namespace the operator turns Kopf's scanning off (runner.configure_kopf): no
# cluster-wide list/watch of CRDs or Namespaces, so the overlay grants nothing cluster-wide.

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl (with kustomize) is not installed"
)


def kustomize(path: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["kubectl", "kustomize", str(REPO / path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize("deploy")


@pytest.fixture(scope="module")
def namespaced() -> list[dict[str, Any]]:
    return kustomize("deploy/overlays/namespaced")


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def rules_of(role: dict[str, Any]) -> set[Rule]:
    granted: set[Rule] = set()
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    granted.add((group, resource, verb))
    return granted


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = only(docs, "Deployment", ACCOUNT)["spec"]["template"]["spec"]["containers"]
    return dict(operator)


# ---- deploy/: the cluster-wide install ----------------------------------------------------------


def test_the_base_renders_a_complete_install(base: list[dict[str, Any]]) -> None:
    assert kinds(base) == sorted(
        ["Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
         "Role", "RoleBinding", "Role", "RoleBinding", "Deployment", "PodDisruptionBudget", "Service"]
    )  # fmt: skip
    assert only(base, "Namespace")["metadata"]["name"] == NAMESPACE
    for doc in base:
        if doc["kind"] in ("ServiceAccount", "Deployment", "Service"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_the_crd_is_the_committed_generated_file(base: list[dict[str, Any]]) -> None:
    committed = yaml.safe_load((REPO / CRD_PATH).read_text())
    rendered = copy.deepcopy(only(base, "CustomResourceDefinition"))
    rendered["metadata"].get("labels", {}).pop("app.kubernetes.io/part-of", None)
    if not rendered["metadata"].get("labels"):
        rendered["metadata"].pop("labels", None)
    assert rendered == committed


def test_the_crd_folder_is_a_kustomization_that_kubectl_apply_f_still_reads_as_one_crd() -> None:
    # crds/Kustomization (no .yaml): `kubectl apply -f crds/` reads only *.yaml/*.yml/*.json.
    assert (REPO / "crds" / "Kustomization").exists()
    assert not list((REPO / "crds").glob("kustomization.y*ml"))
    assert [d["kind"] for d in kustomize("crds")] == ["CustomResourceDefinition"]
    assert sorted(p.name for p in (REPO / "crds").glob("*.y*ml")) == [Path(CRD_PATH).name]


def test_the_namespace_enforces_the_restricted_pod_security_standard(base: list[dict[str, Any]]) -> None:
    labels = only(base, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_two_replicas_rolled_one_at_a_time_spread_over_nodes_and_elected(base: list[dict[str, Any]]) -> None:
    deployment = only(base, "Deployment", ACCOUNT)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    # The new pod starts before an old one stops; the old one hands the Lease over on SIGTERM.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    (spread,) = spec["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"  # one node still runs both
    assert spread["labelSelector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    budget = only(base, "PodDisruptionBudget", ACCOUNT)
    assert budget["metadata"]["namespace"] == NAMESPACE and budget["spec"]["maxUnavailable"] == 1
    assert budget["spec"]["selector"] == spec["selector"]
    env = {e["name"]: e.get("value") for e in container(base)["env"]}
    assert env["BACKENDAUTH_LEADER_ELECTION"] == "true"
    assert env["BACKENDAUTH_LEADER_LEASE"] == "backendauth-operator-leader"


def test_the_pod_runs_as_the_service_account(base: list[dict[str, Any]]) -> None:
    pod = only(base, "Deployment", ACCOUNT)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == ACCOUNT
    assert pod.get("automountServiceAccountToken", True) is True  # Kopf needs the token
    assert only(base, "ServiceAccount", ACCOUNT)["metadata"]["namespace"] == NAMESPACE


def test_the_service_account_documents_the_irsa_annotation() -> None:
    text = (REPO / "deploy" / "base" / "serviceaccount.yaml").read_text()
    assert re.search(r"^\s*#\s*eks\.amazonaws\.com/role-arn: arn:aws:iam::\d+:role/", text, re.M)


def test_the_pod_and_container_are_locked_down(base: list[dict[str, Any]]) -> None:
    pod = only(base, "Deployment", ACCOUNT)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(base)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert isinstance(sc["runAsUser"], int) and sc["runAsUser"] == UID
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc.get("privileged", False) is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_tmp_is_the_only_writable_place(base: list[dict[str, Any]]) -> None:
    pod = only(base, "Deployment", ACCOUNT)["spec"]["template"]["spec"]
    assert container(base)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    (volume,) = pod["volumes"]
    assert volume["name"] == "tmp" and "emptyDir" in volume


def test_liveness_is_healthz_and_readiness_readyz_both_on_8080(base: list[dict[str, Any]]) -> None:
    c = container(base)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    probe = c["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert ports.get(probe["port"], probe["port"]) == 8080
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]
    # /readyz is served on the liveness address; 503 while the API server cannot be reached.
    ready = c["readinessProbe"]
    assert ready["httpGet"]["path"] == "/readyz"
    assert ports.get(ready["httpGet"]["port"], ready["httpGet"]["port"]) == 8080
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 15, "0/1 within seconds of a cut"
    assert ports["metrics"] == 9090


def test_requests_and_limits_are_set(base: list[dict[str, Any]]) -> None:
    resources = container(base)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_the_environment_has_a_region_placeholder_and_every_backendauth_default(
    base: list[dict[str, Any]],
) -> None:
    env = {e["name"]: e.get("value") for e in container(base)["env"]}
    assert env.get("AWS_REGION")
    assert "BACKENDAUTH_AWS_ENDPOINT_URL" not in env  # unset means real AWS
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str) and alias.startswith("BACKENDAUTH_") and field.default is not None:
            assert alias in env, f"{alias} (Settings.{name}) is not set in deploy/base/deployment.yaml"
            assert type(field.default)(env[alias]) == field.default, f"{alias} differs from its default"


def test_the_image_is_the_operator_image(base: list[dict[str, Any]]) -> None:
    c = container(base)
    assert c["image"].split("/")[-1].startswith("backendauth-operator:")
    assert c["imagePullPolicy"] == "IfNotPresent"


def test_the_metrics_service_exposes_port_9090_named_metrics(base: list[dict[str, Any]]) -> None:
    service = only(base, "Service")
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["port"] == 9090
    pod_labels = only(base, "Deployment", ACCOUNT)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ports = {p["name"]: p["containerPort"] for p in container(base)["ports"]}
    assert ports.get(port["targetPort"], port["targetPort"]) == 9090


def test_cluster_rbac_is_exactly_what_the_code_uses(base: list[dict[str, Any]]) -> None:
    granted = rules_of(only(base, "ClusterRole", ACCOUNT))
    assert granted - CLUSTERWIDE_ALLOWED.keys() == set(), "granted but not used by the code"
    assert CLUSTERWIDE_ALLOWED.keys() - granted == set(), "used by the code but not granted"


def test_the_cluster_role_is_bound_to_the_service_account(base: list[dict[str, Any]]) -> None:
    binding = only(base, "ClusterRoleBinding", ACCOUNT)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": ACCOUNT,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]


# ---- deploy/overlays/namespaced: one watched namespace ------------------------------------------


def test_the_namespaced_overlay_grants_cluster_wide_only_the_read_of_the_watched_namespace(
    namespaced: list[dict[str, Any]],
) -> None:
    assert kinds(namespaced) == sorted(
        [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
        ]
    )
    reader = only(namespaced, "ClusterRole")
    assert reader["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "resourceNames": [WATCHED],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = only(namespaced, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == reader["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]


def test_the_account_map_can_be_read_by_its_name_only(
    base: list[dict[str, Any]], namespaced: list[dict[str, Any]]
) -> None:
    for objects in (base, namespaced):
        role = only(objects, "Role", f"{ACCOUNT}-account-map")
        assert role["metadata"]["namespace"] == NAMESPACE
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [ACCOUNT_MAP],
             "verbs": ["get", "list", "watch"]}
        ]  # fmt: skip
        binding = only(objects, "RoleBinding", f"{ACCOUNT}-account-map")
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]
    env = {e["name"]: e.get("value") for e in container(base)["env"]}
    assert env["BACKENDAUTH_ACCOUNT_MAP"] == ACCOUNT_MAP


def test_the_lease_role_in_the_operators_namespace_is_exactly_what_the_code_uses(
    base: list[dict[str, Any]], namespaced: list[dict[str, Any]]
) -> None:
    for objects in (base, namespaced):
        role = only(objects, "Role", f"{ACCOUNT}-leases")
        assert role["metadata"]["namespace"] == NAMESPACE
        assert rules_of(role) == LEASE_RULES.keys()
        binding = only(objects, "RoleBinding", f"{ACCOUNT}-leases")
        assert binding["roleRef"]["name"] == f"{ACCOUNT}-leases"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]
    env = {e["name"]: e for e in container(base)["env"]}
    assert env["BACKENDAUTH_LEASE_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }


def test_the_namespaced_role_is_exactly_what_the_code_uses_in_that_namespace(
    namespaced: list[dict[str, Any]],
) -> None:
    role = only(namespaced, "Role", ACCOUNT)
    assert role["metadata"]["namespace"] == WATCHED
    assert rules_of(role) == NAMESPACED_ROLE_ALLOWED.keys()
    binding = only(namespaced, "RoleBinding", ACCOUNT)
    assert binding["metadata"]["namespace"] == WATCHED
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}  # fmt: skip
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}]


def test_the_namespaced_operator_is_told_its_namespace(namespaced: list[dict[str, Any]]) -> None:
    args = container(namespaced)["args"]
    pairs = itertools.pairwise(args)
    assert f"--namespace={WATCHED}" in args or any(a == "--namespace" and b == WATCHED for a, b in pairs)
    assert "--liveness=http://0.0.0.0:8080/healthz" in args


def test_the_namespaced_overlay_keeps_the_rest_of_the_base(
    base: list[dict[str, Any]], namespaced: list[dict[str, Any]]
) -> None:
    for kind in ("Namespace", "CustomResourceDefinition", "ServiceAccount", "Service"):
        assert only(namespaced, kind) == only(base, kind)
    overlay_pod = json.loads(json.dumps(only(namespaced, "Deployment")))
    overlay_pod["spec"]["template"]["spec"]["containers"][0]["args"].remove(f"--namespace={WATCHED}")
    assert overlay_pod == only(base, "Deployment")


# ---- the image ----------------------------------------------------------------------------------


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def stages() -> list[str]:
    return re.split(r"^FROM ", dockerfile(), flags=re.M)[1:]


def test_the_dockerfile_builds_the_venv_then_copies_only_it_on_python_3_11_slim() -> None:
    # Both stages on BASE_IMAGE, python:3.11-slim unless the build says otherwise (the tests'
    # stand-in when no registry answers: tests/docker/). What is installed, and how it is pinned
    # to uv.lock, is tests/test_dockerfile.py's.
    assert re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile(), re.M) == ["python:3.11-slim"]
    assert dockerfile().index("ARG BASE_IMAGE=") < dockerfile().index("FROM ")
    build, runtime = stages()
    assert build.startswith("${BASE_IMAGE} AS build")
    assert "pip wheel --no-deps --no-build-isolation --no-index" in build
    assert "python3 -m venv --without-pip /opt/venv" in build
    assert runtime.startswith("${BASE_IMAGE}\n")
    assert re.findall(r"^COPY (.+)$", runtime, re.M) == ["--from=build /opt/venv /opt/venv"]
    # Into a venv on PATH, the same on any base (a Debian system Python refuses pip installs).
    assert re.search(r"^ENV PATH=/opt/venv/bin:\$PATH", runtime, re.M)


def test_the_dockerfile_needs_no_frontend_image() -> None:
    # A "# syntax=" line makes BuildKit pull its frontend from a registry before anything else.
    assert not re.search(r"^#\s*syntax\s*=", dockerfile(), re.M | re.I)
    assert "[test]" not in dockerfile() and "[dev]" not in dockerfile()


def test_the_image_runs_as_the_deployments_numeric_user_without_writing() -> None:
    runtime = stages()[-1]
    (user,) = re.findall(r"^USER (\S+)$", runtime, re.M)
    assert user.split(":")[0] == str(UID)
    assert re.search(r"PYTHONDONTWRITEBYTECODE=1", runtime)
    assert re.search(r"HOME=/tmp\b", runtime)


def test_the_entrypoint_runs_the_operator_with_the_liveness_endpoint() -> None:
    text = dockerfile()
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", text, re.M)
    (cmd,) = re.findall(r"^CMD (.+)$", text, re.M)
    assert json.loads(entrypoint) == ["backendauth-operator", "run"]
    assert json.loads(cmd) == ["--liveness=http://0.0.0.0:8080/healthz"]
    (expose,) = re.findall(r"^EXPOSE (.+)$", text, re.M)
    assert set(expose.split()) == {"8080", "9090"}


def test_the_build_context_is_only_what_the_wheel_needs() -> None:
    lines = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!README.md", "!operator/", "!uv.lock"} <= set(lines)
