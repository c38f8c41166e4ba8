"""The Helm chart ``charts/amplify-backendauth-operator``: it installs what ``deploy/`` installs.

``helm`` is built from its Go module by ``tests/tools/build.sh helm`` (``tests/tools/README.md``)
into a cache outside the repo, once. Without Go (and nothing built), or when the build fails, the
tests that run helm are skipped, except under ``CI=true``, where they fail with the build log.

The chart is rendered with ``helm template`` and compared, object by object, with what the real
``kubectl kustomize`` renders from ``deploy/`` (and ``deploy/overlays/namespaced`` for
``watchNamespaces: [apps]``): the same kinds, names and namespaces, and the same objects once the
labels Helm adds (``helm.sh/chart``, ``app.kubernetes.io/instance`` ...) are set aside. The CRD is
the generated file of ``crds/``, byte for byte (Helm cannot read files outside the chart, so the
chart keeps a copy and this test keeps the copy equal). Also: ``helm lint --strict``, each value
doing what values.yaml says, values.schema.json refusing bad values, checkov's findings on deploy/
and the chart (only the accepted ones, deploy/README.md "Static checks"), and ``helm install``,
``upgrade`` and ``uninstall`` on a real API server (``tests/real_apiserver.py``).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from backendauth_operator import CRD_PATH
from backendauth_operator.kube.accounts import parse_account_map
from real_apiserver import RealCluster
from tools.built import built_tool

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "amplify-backendauth-operator"
BUILD_SCRIPT = REPO / "tests" / "tools" / "build.sh"
NAMESPACE = "backendauth-system"
RELEASE = "backendauth"
CHECKOV_SCRIPT = REPO / "tests" / "tools" / "checkov.sh"
BUILD_TIMEOUT = 1800  # a cold build of helm (modules and compilation) on the 2-core machine
CHECKOV_TIMEOUT = 900  # a fresh install of checkov and its ~100 dependencies from PyPI

# Only the tests that run helm wait for its build (done once, in the first of them): they get
# the time of a cold build on top of the usual per-test timeout.
needs_helm = pytest.mark.timeout(BUILD_TIMEOUT + 120)

# The labels Helm's standard set adds to what deploy/ has (metadata, selectors, pod template);
# app.kubernetes.io/part-of is deploy/'s, on metadata only there, on the pod template too here.
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/part-of",
}

Key = tuple[str, str | None, str]  # (kind, namespace, name)


# ---- helm, built once ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary built by tests/tools/build.sh (skip, or under CI=true fail, without it)."""
    return built_tool(["bash", str(BUILD_SCRIPT), "helm"], "helm", BUILD_TIMEOUT)


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov in a venv of its own, from tests/tools/checkov.sh (skip, or under CI=true fail)."""
    return built_tool(["bash", str(CHECKOV_SCRIPT)], "checkov", CHECKOV_TIMEOUT)


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    # A HOME of its own: helm reads and writes its config and cache under it (XDG_*).
    with tempfile.TemporaryDirectory(prefix="backendauth-helm-home-") as home:
        env = {**os.environ, "HOME": home, "XDG_CACHE_HOME": f"{home}/cache",
               "XDG_CONFIG_HOME": f"{home}/config", "XDG_DATA_HOME": f"{home}/data"}  # fmt: skip
        result = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stderr}"
    return result


def set_args(values: dict[str, str] | None) -> list[str]:
    return [arg for key, value in (values or {}).items() for arg in ("--set", f"{key}={value}")]


def template_text(
    helm: Path, values: dict[str, str] | None = None, set_json: dict[str, Any] | None = None
) -> str:
    """``helm template`` of the chart in NAMESPACE, CRD included (``set_json``: --set-json values)."""
    as_json = [f"--set-json={k}={json.dumps(v)}" for k, v in (set_json or {}).items()]
    return run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds", *set_args(values),
        *as_json,
    ).stdout  # fmt: skip


def template(
    helm: Path, values: dict[str, str] | None = None, set_json: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """``helm template`` of the chart in NAMESPACE, CRD included, as objects."""
    return [doc for doc in yaml.safe_load_all(template_text(helm, values, set_json)) if doc]


def refused(helm: Path, values: dict[str, str]) -> str:
    """The error of a ``helm template`` that must fail with these values."""
    result = run_helm(helm, "template", RELEASE, str(CHART), *set_args(values), check=False)
    assert result.returncode != 0, f"accepted {values}:\n{result.stdout[:2000]}"
    return result.stderr


def kustomize_text(path: str) -> str:
    result = subprocess.run(
        ["kubectl", "kustomize", str(REPO / path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def kustomize(path: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(kustomize_text(path)) if doc]


def key(obj: dict[str, Any]) -> Key:
    return (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])


def by_key(objects: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    keyed = {key(o): o for o in objects}
    assert len(keyed) == len(objects), "two objects with the same kind, namespace and name"
    return keyed


def only(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(operator)


def env_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with the labels Helm adds removed wherever labels are (empty maps removed too)."""
    obj = copy.deepcopy(obj)

    def strip(holder: dict[str, Any], field: str) -> None:
        labels = holder.get(field)
        if isinstance(labels, dict):
            for name in HELM_LABELS:
                labels.pop(name, None)
            if not labels:
                del holder[field]

    strip(obj["metadata"], "labels")
    spec = obj.get("spec", {})
    if obj["kind"] == "Service":
        strip(spec, "selector")
    if obj["kind"] == "Deployment":
        strip(spec["selector"], "matchLabels")
        strip(spec["template"]["metadata"], "labels")
        for spread in spec["template"]["spec"].get("topologySpreadConstraints", []):
            strip(spread["labelSelector"], "matchLabels")
    if obj["kind"] == "PodDisruptionBudget":
        strip(spec["selector"], "matchLabels")
    return obj


# ---- the CRD ----------------------------------------------------------------------------------------


def test_the_charts_crd_is_byte_for_byte_the_generated_file() -> None:
    generated = REPO / CRD_PATH
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [generated.name]
    copied = CHART / "crds" / generated.name
    assert copied.read_bytes() == generated.read_bytes(), (
        f"the chart's CRD differs from {CRD_PATH}: cp {CRD_PATH} {copied.relative_to(REPO)}"
    )


def test_the_chart_and_image_versions_are_the_projects() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2" and chart["name"] == CHART.name
    assert chart["appVersion"] == project["version"]
    base = yaml.safe_load((REPO / "deploy" / "base" / "kustomization.yaml").read_text())
    assert [image["newTag"] for image in base["images"]] == [project["version"]]


# ---- helm lint ----------------------------------------------------------------------------------------


@needs_helm
@pytest.mark.parametrize(
    "values",
    [
        {},
        {"watchNamespaces": "{apps,shop}", "verbose": "true"},
        {"metrics.serviceMonitor.enabled": "true", "namespace.create": "true"},
        {"serviceAccount.irsaRoleArn": "arn:aws:iam::111122223333:role/backendauth-operator"},
    ],
    ids=["defaults", "namespaced", "servicemonitor", "irsa"],
)
def test_helm_lint_strict_passes(helm: Path, values: dict[str, str]) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *set_args(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout, result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


# ---- the same install as deploy/ -----------------------------------------------------------------------


@needs_helm
@pytest.mark.parametrize(
    ("path", "values"),
    [("deploy", {}), ("deploy/overlays/namespaced", {"watchNamespaces": "{apps}"})],
    ids=["cluster-wide", "namespaced"],
)
def test_the_chart_renders_what_kustomize_renders(helm: Path, path: str, values: dict[str, str]) -> None:
    # deploy/ creates its Namespace (labelled for Pod Security); the chart does with namespace.create.
    chart = by_key(template(helm, {"namespace.create": "true", **values}))
    kustomized = by_key(kustomize(path))
    assert sorted(chart, key=str) == sorted(kustomized, key=str)
    for k, expected in kustomized.items():
        got = chart[k]
        assert without_helm_labels(got) == without_helm_labels(expected), k
        if k[0] == "CustomResourceDefinition":
            continue  # the generated file as it is (kustomize labels it part-of)
        # Helm's labels are added, deploy/'s kept.
        labels = got["metadata"].get("labels", {})
        assert expected["metadata"].get("labels", {}).items() <= labels.items(), k
        assert labels["app.kubernetes.io/instance"] == RELEASE, k
        assert labels["app.kubernetes.io/managed-by"] == "Helm", k


@needs_helm
def test_the_rendered_crd_is_the_generated_one(helm: Path) -> None:
    crd = only(template(helm), "CustomResourceDefinition")
    assert crd == yaml.safe_load((REPO / CRD_PATH).read_text())


@needs_helm
def test_the_namespace_is_not_rendered_unless_asked(helm: Path) -> None:
    # `helm install --create-namespace` creates it; Helm would refuse one that already exists.
    assert [o for o in template(helm) if o["kind"] == "Namespace"] == []


@needs_helm
def test_the_pod_is_selected_by_the_release_too(helm: Path) -> None:
    objects = template(helm)
    deployment = only(objects, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "backendauth-operator",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert only(objects, "Service")["spec"]["selector"] == selector


# ---- values --------------------------------------------------------------------------------------------


@needs_helm
def test_watching_several_namespaces_gives_a_role_in_each_and_cluster_wide_only_their_read(
    helm: Path,
) -> None:
    objects = template(helm, {"watchNamespaces": "{apps,shop}"})
    cluster_wide = [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    assert sorted(o["kind"] for o in cluster_wide) == ["ClusterRole", "ClusterRoleBinding"]
    assert only(objects, "ClusterRole")["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "resourceNames": ["apps", "shop"],
         "verbs": ["get", "list", "watch"]}
    ]  # fmt: skip
    namespaced = [
        o for o in kustomize("deploy/overlays/namespaced") if o["metadata"].get("namespace") == "apps"
    ]
    for namespace in ("apps", "shop"):
        for kind in ("Role", "RoleBinding"):
            got = only([o for o in objects if o["metadata"].get("namespace") == namespace], kind)
            expected = copy.deepcopy(only(namespaced, kind))
            expected["metadata"]["namespace"] = namespace
            assert without_helm_labels(got) == without_helm_labels(expected), (namespace, kind)
    args = container(objects)["args"]
    assert args == ["--liveness=http://0.0.0.0:8080/healthz", "--namespace=apps", "--namespace=shop"]
    # The lease Role stays in the release namespace.
    assert only(objects, "Role", "backendauth-operator-leases")["metadata"]["namespace"] == NAMESPACE


@needs_helm
def test_the_account_map_is_rendered_from_values_and_reads_back_as_the_operator_reads_it(helm: Path) -> None:
    assert [o for o in template(helm) if o["kind"] == "ConfigMap"] == []  # none unless asked, as deploy/
    accounts = {
        "111111111111": "arn:aws:iam::111111111111:role/backendauth-operator",
        "222222222222": {"roleArn": "arn:aws:iam::222222222222:role/ops", "externalId": "shared-id-1"},
    }
    objects = template(helm, {"accountMap.name": "roles"}, set_json={"accountMap.accounts": accounts})
    config_map = only(objects, "ConfigMap")
    assert (config_map["metadata"]["name"], config_map["metadata"]["namespace"]) == ("roles", NAMESPACE)
    parsed = parse_account_map("x", config_map["data"])
    assert not parsed.problems
    assert parsed.roles["111111111111"].arn == accounts["111111111111"]
    assert parsed.roles["222222222222"].external_id == "shared-id-1"
    role = only(objects, "Role", "backendauth-operator-account-map")
    assert role["rules"][0]["resourceNames"] == ["roles"]
    env = {e["name"]: e.get("value") for e in container(objects)["env"]}
    assert env["BACKENDAUTH_ACCOUNT_MAP"] == "roles"


@needs_helm
def test_a_bad_account_map_value_is_refused(helm: Path) -> None:
    bad = json.dumps({"1234": "arn:aws:iam::1234:role/x"})
    result = run_helm(
        helm, "template", RELEASE, str(CHART), f"--set-json=accountMap.accounts={bad}", check=False
    )
    assert result.returncode != 0 and "accountMap" in result.stderr, result.stderr


@needs_helm
def test_the_irsa_role_becomes_the_service_accounts_annotation(helm: Path) -> None:
    arn = "arn:aws:iam::111122223333:role/backendauth-operator"
    assert "annotations" not in only(template(helm), "ServiceAccount")["metadata"]
    account = only(template(helm, {"serviceAccount.irsaRoleArn": arn}), "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": arn}
    assert "irsaRoleArn" in refused(helm, {"serviceAccount.irsaRoleArn": "my-role"})


@needs_helm
def test_image_verbosity_and_resources_come_from_values(helm: Path) -> None:
    objects = template(
        helm,
        {"image.repository": "registry.example.com/backendauth-operator", "image.tag": "0.2.0",
         "image.pullPolicy": "Always", "verbose": "true", "resources.limits.memory": "1Gi"},
    )  # fmt: skip
    c = container(objects)
    assert c["image"] == "registry.example.com/backendauth-operator:0.2.0"
    assert c["imagePullPolicy"] == "Always"
    assert c["args"] == ["--liveness=http://0.0.0.0:8080/healthz", "--verbose"]
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert c["resources"]["requests"] == {"cpu": "50m", "memory": "192Mi"}


@needs_helm
def test_the_operator_settings_become_its_environment(helm: Path) -> None:
    env = env_of(
        template(
            helm,
            {"aws.region": "eu-west-1", "aws.endpointUrl": "http://simulator.backendauth-system:4566",
             "operator.jobPollSeconds": "2.5", "operator.retryBaseSeconds": "1",
             "operator.retryMaxSeconds": "60", "operator.defaultDeletionPolicy": "Delete",
             "operator.jobTimeoutSeconds": "7200", "operator.resyncSeconds": "0",
             "operator.awsMaxRps": "2.5", "operator.resyncMaxShare": "0.25", "operator.metricsPort": "9191"},
        )
    )  # fmt: skip
    assert env == {
        "AWS_REGION": "eu-west-1",
        "POD_NAME": {"fieldRef": {"fieldPath": "metadata.name"}},
        "BACKENDAUTH_LEASE_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "BACKENDAUTH_LEADER_ELECTION": "true",
        "BACKENDAUTH_LEADER_LEASE": "backendauth-operator-leader",
        "BACKENDAUTH_LEASE_DURATION_SECONDS": "15",
        "BACKENDAUTH_RENEW_DEADLINE_SECONDS": "10",
        "BACKENDAUTH_RETRY_PERIOD_SECONDS": "2",
        "BACKENDAUTH_JOB_POLL_SECONDS": "2.5",
        "BACKENDAUTH_RETRY_BASE_SECONDS": "1",
        "BACKENDAUTH_RETRY_MAX_SECONDS": "60",
        "BACKENDAUTH_DEFAULT_DELETION_POLICY": "Delete",
        "BACKENDAUTH_JOB_TIMEOUT_SECONDS": "7200",
        "BACKENDAUTH_RESYNC_SECONDS": "0",
        "BACKENDAUTH_AWS_MAX_RPS": "2.5",
        "BACKENDAUTH_RESYNC_MAX_SHARE": "0.25",
        "BACKENDAUTH_METRICS_PORT": "9191",
        "BACKENDAUTH_ACCOUNT_MAP": "backendauth-role-account-map",
        "BACKENDAUTH_AWS_ENDPOINT_URL": "http://simulator.backendauth-system:4566",
    }


@needs_helm
def test_the_rendered_settings_are_ones_the_operator_accepts(helm: Path) -> None:
    from backendauth_operator.config import Settings

    # The defaults: what the operator would use with no environment at all (and the region).
    env = {k: v for k, v in env_of(template(helm)).items() if isinstance(v, str)}
    settings = Settings.model_validate(env)
    for name, field in Settings.model_fields.items():
        expected = "us-east-1" if name == "default_region" else field.default
        assert getattr(settings, name) == expected, name


@needs_helm
def test_the_metrics_port_moves_the_container_port_and_zero_drops_the_service(helm: Path) -> None:
    objects = template(helm, {"operator.metricsPort": "9191"})
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    assert ports == {"liveness": 8080, "metrics": 9191}
    service = only(objects, "Service")
    assert service["metadata"]["annotations"]["prometheus.io/port"] == "9191"
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"

    off = template(helm, {"operator.metricsPort": "0"})
    assert [o for o in off if o["kind"] == "Service"] == []
    assert {p["name"] for p in container(off)["ports"]} == {"liveness"}
    assert env_of(off)["BACKENDAUTH_METRICS_PORT"] == "0"
    error = refused(helm, {"operator.metricsPort": "0", "metrics.serviceMonitor.enabled": "true"})
    assert "metricsPort" in error


@needs_helm
def test_the_service_monitor_is_off_by_default_and_scrapes_the_metrics_service(helm: Path) -> None:
    assert [o for o in template(helm) if o["kind"] == "ServiceMonitor"] == []
    objects = template(
        helm, {"metrics.serviceMonitor.enabled": "true", "metrics.serviceMonitor.labels.release": "prom"}
    )
    monitor = only(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "prom"
    service = only(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


@needs_helm
def test_extra_environment_and_scheduling_values_reach_the_pod(helm: Path) -> None:
    objects = template(
        helm,
        {"extraEnv[0].name": "AWS_ACCESS_KEY_ID", "extraEnv[0].valueFrom.secretKeyRef.name": "aws",
         "extraEnv[0].valueFrom.secretKeyRef.key": "id", "nodeSelector.kubernetes\\.io/os": "linux",
         "podAnnotations.example\\.com/owner": "team-auth"},
    )  # fmt: skip
    env = env_of(objects)
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "aws", "key": "id"}}
    pod = only(objects, "Deployment")["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["metadata"]["annotations"] == {"example.com/owner": "team-auth"}


@needs_helm
@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"operator.defaultDeletionPolicy": "Destroy"}, "defaultDeletionPolicy"),
        ({"watchNamespaces": "{Apps_1}"}, "watchNamespaces"),
        ({"operator.pollSeconds": "10"}, "pollSeconds"),
        ({"operator.jobPollSeconds": "0"}, "jobPollSeconds"),
        ({"operator.retryBaseSeconds": "60", "operator.retryMaxSeconds": "30"}, "retryMaxSeconds"),
        ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
        ({"leaderElection.renewDeadlineSeconds": "15"}, "renewDeadlineSeconds"),
        ({"leaderElection.retryPeriodSeconds": "9"}, "retryPeriodSeconds"),
        ({"replicas": "0"}, "replicas"),
    ],
    ids=[
        "deletion-policy",
        "namespace-name",
        "unknown-key",
        "zero-poll",
        "max-below-base",
        "pull-policy",
        "renew-not-below-duration",
        "retry-not-below-renew",
        "no-replicas",
    ],
)
def test_bad_values_are_refused_naming_the_value(helm: Path, values: dict[str, str], named: str) -> None:
    assert named in refused(helm, values)


@needs_helm
def test_a_digest_pins_the_image(helm: Path) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    c = container(template(helm, {"image.digest": digest, "image.tag": "0.2.0"}))
    assert c["image"] == f"backendauth-operator@{digest}"
    assert "digest" in refused(helm, {"image.digest": "latest"})


@needs_helm
def test_the_network_policy_admits_only_scrapes_of_the_metrics_port(helm: Path) -> None:
    assert [o for o in template(helm) if o["kind"] == "NetworkPolicy"] == []
    objects = template(
        helm,
        {"networkPolicy.enabled": "true",
         "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name": "monitoring"},
    )  # fmt: skip
    policy = only(objects, "NetworkPolicy")
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == NAMESPACE
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [
        {"ports": [{"port": "metrics", "protocol": "TCP"}],
         "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]}
    ]  # fmt: skip
    assert "metrics" in {p["name"] for p in container(objects)["ports"]}
    closed = only(
        template(helm, {"networkPolicy.enabled": "true", "operator.metricsPort": "0"}), "NetworkPolicy"
    )
    assert closed["spec"]["ingress"] == []


# ---- checkov --------------------------------------------------------------------------------------------

# What checkov reports on deploy/ and on the chart's defaults, accepted, and why (deploy/README.md,
# "Static checks"). Anything else it reports fails the test; so does an entry here it no longer reports.
CHECKOV_ACCEPTED = {
    "CKV_K8S_38": "the ServiceAccount token is mounted: the operator is a Kubernetes API client",
    "CKV_K8S_43": "the image is named by tag: you build and push it (Dockerfile); pin a digest with "
    "kustomize's images: digest, or the chart's image.digest",
    "CKV_K8S_15": "imagePullPolicy IfNotPresent: a release tag is not overwritten; with a digest "
    "checkov is satisfied",
    "CKV2_K8S_6": "no NetworkPolicy by default (the CNI may not enforce one, scrapers differ); the "
    "chart's networkPolicy.enabled adds one",
}
# The chart with image.digest and networkPolicy.enabled: only what no value changes is left.
HARDENED = {"image.digest": "sha256:" + "ab" * 32, "networkPolicy.enabled": "true"}
HARDENED_ACCEPTED = {"CKV_K8S_38"}


def checkov_failures(checkov: Path, files: dict[str, str], tmp: Path) -> dict[str, set[str]]:
    """checkov's kubernetes checks over these manifests (name -> YAML) in one run: the failed
    check ids per file (every file is in the answer). Graph checks (CKV2_*) look across files."""
    tmp.mkdir()
    for name, text in files.items():
        (tmp / name).write_text(text)
    args = [
        str(checkov),
        "--framework",
        "kubernetes",
        "--skip-download",
        "--quiet",
        "--compact",
        "-o",
        "json",
    ]
    for name in files:
        args += ["-f", str(tmp / name)]
    env = {**os.environ, "HOME": str(tmp), "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp, env=env)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports = json.loads(result.stdout)
    (report,) = reports if isinstance(reports, list) else [reports]
    assert report["check_type"] == "kubernetes"
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert report["summary"]["passed"] > 50, report["summary"]  # the checks did run
    failed: dict[str, set[str]] = {name: set() for name in files}
    for check in report["results"]["failed_checks"]:
        failed[Path(check["file_path"]).name].add(check["check_id"])
    return failed


@needs_helm
@pytest.mark.timeout(BUILD_TIMEOUT + CHECKOV_TIMEOUT + 300)
def test_checkov_reports_only_the_accepted_findings(helm: Path, checkov: Path, tmp_path: Path) -> None:
    as_installed = checkov_failures(
        checkov,
        {"deploy.yaml": kustomize_text("deploy"),
         "namespaced.yaml": kustomize_text("deploy/overlays/namespaced"),
         "chart.yaml": template_text(helm, {"namespace.create": "true"})},
        tmp_path / "defaults",
    )  # fmt: skip
    for name, failed in as_installed.items():
        assert failed == set(CHECKOV_ACCEPTED), (name, failed)
    hardened = checkov_failures(
        checkov, {"hardened.yaml": template_text(helm, HARDENED)}, tmp_path / "hardened"
    )
    assert hardened == {"hardened.yaml": HARDENED_ACCEPTED}


# ---- a real API server ------------------------------------------------------------------------------------

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}


@needs_helm
@pytest.mark.real_apiserver
def test_helm_installs_upgrades_and_uninstalls_on_a_real_api_server(
    helm: Path, real_cluster: RealCluster, tmp_path: Path
) -> None:
    # A namespace of its own (restricted Pod Security, as deploy/ labels its own), and names of its
    # own: the cluster-wide objects must not meet those of deploy/ applied by other tests.
    namespace = real_cluster.create_namespace("helm", labels=RESTRICTED)
    watched = real_cluster.create_namespace("helm-watched")
    name = f"backendauth-{namespace}"
    kube = ["--kubeconfig", str(real_cluster.kubeconfig), "--namespace", namespace]
    common = [*kube, "--set", f"fullnameOverride={name}"]
    try:
        installed = run_helm(helm, "install", "ba", str(CHART), *common)
        assert "STATUS: deployed" in installed.stdout
        assert f"installed in namespace {namespace}, watching all namespaces" in installed.stdout  # NOTES
        assert "no IRSA role is set" in installed.stdout
        assert "PodSecurity" not in installed.stderr, installed.stderr  # no "would violate" warning
        deployment = real_cluster.get_json("deployment", name, "-n", namespace)
        assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert real_cluster.get_json("clusterrolebinding", name)["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": namespace}
        ]
        assert real_cluster.get_json("role", f"{name}-leases", "-n", namespace)["rules"][0]["resources"] == [
            "leases"
        ]
        crd = real_cluster.get_json("crd", "backendauths.amplifybackend.gitops.dev")
        assert crd["spec"]["names"]["kind"] == "BackendAuth"

        # Watching one namespace instead: the ClusterRole goes, a Role comes there.
        upgraded = run_helm(
            helm, "upgrade", "ba", str(CHART), *common, "--set", f"watchNamespaces={{{watched}}}"
        )
        assert "STATUS: deployed" in upgraded.stdout
        assert f"watching only: {watched}." in upgraded.stdout
        gone = real_cluster.kubectl("get", "clusterrole", name, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
        role = real_cluster.get_json("role", name, "-n", watched)
        assert {"backendauths", "secrets"} <= {r for rule in role["rules"] for r in rule["resources"]}
        args = real_cluster.get_json("deployment", name, "-n", namespace)["spec"]["template"]["spec"][
            "containers"
        ][0]["args"]
        assert f"--namespace={watched}" in args

        run_helm(helm, "uninstall", "ba", *kube)
        for kind, where in (("deployment", namespace), ("serviceaccount", namespace), ("role", watched)):
            left = real_cluster.kubectl("get", kind, name, "-n", where, check=False)
            assert left.returncode != 0 and "NotFound" in left.stderr, (kind, left.stdout)
        # Helm never deletes a CRD it installed from crds/ (nor the BackendAuths with it).
        real_cluster.get_json("crd", "backendauths.amplifybackend.gitops.dev")
    finally:
        run_helm(helm, "uninstall", "ba", *kube, check=False)
        real_cluster.empty_namespace(namespace)
        real_cluster.empty_namespace(watched)
