"""The RBAC of ``deploy/`` proven on a real kube-apiserver: the operator runs under the
ServiceAccount of ``deploy/`` with a token from the TokenRequest API (``kubectl create token``),
bound to the ClusterRole (and Roles) of ``deploy/`` exactly as rendered by ``kubectl kustomize``.

The operator runs elected, as deploy/ runs it (the leader Lease is among what the rules allow).
With every rule it creates, updates and deletes a BackendAuth whose Google client secret is a
Secret reference (and that publishes its ids in a ConfigMap, when the CRD has ``spec.outputs``).
Then, for each rule in turn, that rule is left out and the operator must fail visibly: a refusal
(403 Forbidden) naming the rule's resource shows in its log, in the API server's words or the
operator's. Each rule must be exercised by this scenario: a new rule for a new feature needs the
feature in :func:`social_spec`, or its test fails for want of a refusal.

The objects are renamed per test (cluster-scoped names get a suffix, the operator's namespace
is a fresh one that also holds its Leases), so that the tests do not see each other.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import backendauth, kubectl_binary, secret, wait_until
from real_apiserver import CRD_FILE, REPO, RealBed, RealCluster
from specs import GOOGLE_SECRET, minimal_spec

pytestmark = [pytest.mark.real_apiserver, pytest.mark.integration]

RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# A refusal in the operator's log: the status code, the reason or Kopf's words. A 403 right
# after a comma is the milliseconds of a log line's timestamp ("18:04:40,403"), not a refusal.
FORBIDDEN = re.compile(r"(?<!,)\b403\b|forbidden|Not enough permissions", re.IGNORECASE)


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("[2026-12-07 18:04:40,403] backendauth_operator [INFO    ] Calling UpdateBackendAuth", False),
        ("HTTP response headers: ... (403)", True),
        ("kubernetes.client.exceptions.ApiException: 403 ...", True),
        ('Reason: Forbidden, "cannot patch resource"', True),
        ("Not enough permissions to watch for resources", True),
    ],
)
def test_a_refusal_is_told_from_a_timestamp(line: str, refused: bool) -> None:
    assert bool(FORBIDDEN.search(line)) is refused


def render_rbac(kubectl: str, path: str = "deploy") -> list[dict[str, Any]]:
    """The ServiceAccount, (Cluster)Roles and their bindings of ``kubectl kustomize deploy/``
    (or of another ``path``)."""
    out = subprocess.run(
        [kubectl, "kustomize", str(REPO / path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc and doc["kind"] in RBAC_KINDS]


@dataclass(frozen=True)
class Rule:
    """One rule of a ClusterRole or Role of deploy/."""

    kind: str
    role: str
    index: int
    rule: dict[str, Any]

    @property
    def id(self) -> str:
        resources = ",".join(self.rule.get("resources", []) or self.rule.get("nonResourceURLs", []))
        return f"{self.kind}-{resources}-{','.join(self.rule.get('verbs', []))}"


def rules_of(objects: list[dict[str, Any]]) -> list[Rule]:
    return [
        Rule(obj["kind"], obj["metadata"]["name"], index, rule)
        for obj in objects
        if obj["kind"] in ("ClusterRole", "Role")
        for index, rule in enumerate(obj.get("rules", []))
    ]


def collected_rules() -> list[Rule]:
    """deploy/'s rules when the tests are collected (they are read again when each test runs)."""
    try:
        return rules_of(render_rbac(kubectl_binary()))
    except (OSError, subprocess.SubprocessError):
        return []  # no kubectl yet: the full-rights test still runs and reports


def install(
    real: RealCluster,
    objects: list[dict[str, Any]],
    operator_namespace: str,
    watched_namespace: str,
    suffix: str,
    without: Rule | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Apply deploy/'s RBAC, moved: the ServiceAccount's namespace becomes ``operator_namespace``
    (other Role namespaces become ``watched_namespace``), cluster-scoped names get ``suffix``;
    ``without`` is left out. Returns what was applied and the ServiceAccount's name."""
    (account,) = [o for o in objects if o["kind"] == "ServiceAccount"]
    home = account["metadata"]["namespace"]

    def place(namespace: str) -> str:
        return operator_namespace if namespace == home else watched_namespace

    moved: list[dict[str, Any]] = []
    for original in objects:
        obj = copy.deepcopy(original)
        meta = obj["metadata"]
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            meta["name"] = f"{meta['name']}-{suffix}"
        else:
            meta["namespace"] = place(meta["namespace"])
        if without is not None and (original["kind"], original["metadata"]["name"]) == (
            without.kind,
            without.role,
        ):
            assert obj["rules"][without.index] == without.rule, "deploy/ changed while the test ran"
            del obj["rules"][without.index]
        if "roleRef" in obj and obj["roleRef"]["kind"] == "ClusterRole":
            obj["roleRef"]["name"] = f"{obj['roleRef']['name']}-{suffix}"
        for subject in obj.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = place(subject["namespace"])
        moved.append(obj)
    real.apply(*moved)
    return moved, account["metadata"]["name"]


@dataclass
class RbacSetup:
    real: RealCluster
    objects: list[dict[str, Any]]  # deploy/'s RBAC as rendered now
    operator_namespace: str
    watched_namespace: str
    tmp: Path

    def run_as_service_account(
        self, make_real_bed: Callable[..., RealBed], without: Rule | None = None, args: tuple[str, ...] = ()
    ) -> RealBed:
        """Install the RBAC (``without`` a rule), get a token for the ServiceAccount and start the
        operator with it; its Leases go to its own namespace."""
        suffix = uuid.uuid4().hex[:6]
        applied, account = install(
            self.real, self.objects, self.operator_namespace, self.watched_namespace, suffix, without
        )
        self.cluster_scoped = [o for o in applied if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
        token = self.real.kubectl(
            "create", "token", account, "-n", self.operator_namespace, "--duration=1h"
        ).stdout.strip()
        assert token.count(".") == 2, "a JWT from the TokenRequest API"
        kubeconfig = self.real.write_kubeconfig(self.tmp / f"sa-{suffix}.kubeconfig", token)
        whoami = json.loads(self.real.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig).stdout)
        assert whoami["status"]["userInfo"]["username"] == (
            f"system:serviceaccount:{self.operator_namespace}:{account}"
        )
        bed = make_real_bed(
            start_operator=False, operator_kubeconfig=kubeconfig, lease_namespace=self.operator_namespace
        )
        # As deploy/ runs it: elected, so the leader Lease is among what the rules must allow.
        bed.operator.env["BACKENDAUTH_LEADER_ELECTION"] = "true"
        bed.operator.args = list(args)
        bed.operator.start()
        return bed

    cluster_scoped: list[dict[str, Any]] | None = None


@pytest.fixture
def rbac(real_cluster: RealCluster, real_namespace: str, tmp_path: Path) -> Iterator[RbacSetup]:
    operator_namespace = real_cluster.create_namespace("operator")
    setup = RbacSetup(
        real_cluster,
        render_rbac(str(real_cluster.kubectl_path)),
        operator_namespace,
        real_namespace,
        tmp_path,
    )
    yield setup
    for obj in setup.cluster_scoped or []:
        real_cluster.kubectl(
            "delete", obj["kind"].lower(), obj["metadata"]["name"], "--wait=false", check=False
        )
    real_cluster.empty_namespace(operator_namespace)


def social_spec(name: str, **overrides: Any) -> dict[str, Any]:
    """A spec whose Google client secret is a Secret reference (``google-oauth``/``clientSecret``)."""
    spec = minimal_spec(resourceName=name.replace("-", ""), **overrides)
    spec["resourceConfig"]["userPoolConfigs"]["oAuth"] = {
        "oAuthGrantType": "CODE", "oAuthScopes": ["OPENID"],
        "redirectSignInURIs": ["https://shop.example.com/cb"], "redirectSignOutURIs": ["https://shop.example.com/"],
        "socialProviderSettings": {
            "google": {"clientId": "g", "clientSecretRef": {"name": "google-oauth", "key": "clientSecret"}}
        },
    }  # fmt: skip
    if publishes_outputs():
        spec["outputs"] = {"configMapName": f"{name}-ids"}
    return spec


def publishes_outputs() -> bool:
    """Whether the CRD of crds/ has ``spec.outputs.configMapName`` (a ConfigMap the operator writes)."""
    crd = yaml.safe_load(CRD_FILE.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return "configMapName" in spec["properties"].get("outputs", {}).get("properties", {})


def test_the_operator_with_deploys_rbac_creates_updates_and_deletes(
    rbac: RbacSetup, make_real_bed: Callable[..., RealBed]
) -> None:
    assert rules_of(rbac.objects), "deploy/ grants the operator something"
    bed = rbac.run_as_service_account(make_real_bed)
    bed.apply(
        secret("google-oauth", {"clientSecret": GOOGLE_SECRET}),
        backendauth("social", social_spec("social", deletionPolicy="Delete")),
    )
    bed.wait_reason("social", "JobCompleted", status="True", timeout=60)
    assert bed.count("CreateBackendAuth") == 1
    # It led: the leader Lease in its own namespace names it.
    lease = json.loads(
        rbac.real.kubectl(
            "get", "lease", "backendauth-operator-leader", "-n", rbac.operator_namespace, "-o", "json"
        ).stdout
    )
    assert lease["spec"]["holderIdentity"] == bed.operator.env["POD_NAME"]
    if publishes_outputs():

        def published() -> dict[str, Any] | None:
            result = bed.kubectl("get", "configmap", "social-ids", "-o", "json", check=False)
            return json.loads(result.stdout) if result.returncode == 0 else None

        config_map = wait_until(published, 30, "the outputs ConfigMap")
        assert config_map["data"].get("userPoolId")
        assert [o["uid"] for o in config_map["metadata"]["ownerReferences"]] == [
            bed.get("social")["metadata"]["uid"]
        ]

    spec = social_spec("social", deletionPolicy="Delete")
    spec["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 14}
    bed.apply(backendauth("social", spec))
    wait_until(lambda: bed.get("social")["status"].get("operation") == "UpdateBackendAuth", 60, "the update")
    bed.wait_reason("social", "JobCompleted", status="True", timeout=60)
    assert bed.get("social")["status"]["observedGeneration"] == 2

    bed.kubectl("delete", "backendauth", "social", "--timeout=60s")
    assert bed.count("DeleteBackendAuth") == 1
    assert bed.kubectl("get", "backendauth", "social", check=False).returncode != 0
    assert not FORBIDDEN.search(bed.operator.log), bed.operator.log[-3000:]


@pytest.mark.parametrize("rule", collected_rules(), ids=lambda r: r.id)
def test_without_each_rule_the_operator_fails_clearly(
    rbac: RbacSetup, make_real_bed: Callable[..., RealBed], rule: Rule
) -> None:
    assert rule in rules_of(rbac.objects), f"deploy/ no longer has {rule.id}"
    bed = rbac.run_as_service_account(make_real_bed, without=rule)
    bed.apply(
        secret("google-oauth", {"clientSecret": GOOGLE_SECRET}),
        backendauth("social", social_spec("social", deletionPolicy="Delete")),
    )

    # In the operator's log: the API server's own words, `cannot VERB resource "RESOURCE"` for a
    # verb and resource of the rule left out (JSON-escaped quotes inside a response body), or the
    # operator's report of a refusal (403/Forbidden) naming that resource.
    verbs = "|".join(rule.rule["verbs"])
    resources = "|".join(map(re.escape, rule.rule["resources"]))
    server_words = re.compile(rf'cannot ({verbs}) resource \\?"({resources})\\?"')
    names = [r if "/" in r else r.removesuffix("s") for r in rule.rule["resources"]]

    def refused(line: str) -> bool:
        named = any(name.lower() in line.lower() for name in names)
        return bool(server_words.search(line)) or bool(FORBIDDEN.search(line) and named)

    def refusal() -> str | None:
        return "\n".join(line for line in bed.operator.log.splitlines() if refused(line)) or None

    shown = wait_until(refusal, 45, f"the operator's log to show the refusal of {rule.id}")
    assert FORBIDDEN.search(shown)


def test_the_account_map_and_namespace_annotations_work_under_deploys_rbac(
    rbac: RbacSetup, make_real_bed: Callable[..., RealBed]
) -> None:
    """The account rules at work on the real API server: the Namespace's annotation is read, the
    one ConfigMap is read and watched by name (a Role limited by resourceNames allows a list and
    watch only with fieldSelector metadata.name=...), and a changed annotation is watched."""
    bed = rbac.run_as_service_account(make_real_bed)
    ns, account, other = rbac.watched_namespace, "333333333333", "444444444444"
    annotation = "amplifybackend.gitops.dev/owner-account-id"
    rbac.real.kubectl("annotate", "namespace", ns, f"{annotation}={account}", "--overwrite")
    bed.apply(backendauth("mapped", minimal_spec(resourceName="mapped")))
    stalled = bed.wait_reason("mapped", "AccountNotMapped", timeout=60)
    assert (
        f"ConfigMap {rbac.operator_namespace}/backendauth-role-account-map"
        in stalled["status"]["conditions"][0]["message"]
    )
    # The map appears: the watch by name sees it, the BackendAuth acts in that account at once.
    role = f"arn:aws:iam::{account}:role/backendauth-operator"
    rbac.real.apply(
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "backendauth-role-account-map", "namespace": rbac.operator_namespace},
         "data": {account: role}}
    )  # fmt: skip
    done = bed.wait_reason("mapped", "JobCompleted", status="True", timeout=60)
    assert done["status"]["awsAccountId"] == account
    with urllib.request.urlopen(f"{bed.sim.url}/_sim/state?account={account}", timeout=10) as response:
        assert list(json.loads(response.read())["resources"]) == ["d1a2b3c4d5e6f7/staging/mapped"]
    # The namespace moves to another account: the Namespace watch sees it; nothing is done there.
    rbac.real.kubectl("annotate", "namespace", ns, f"{annotation}={other}", "--overwrite")
    bed.wait_reason("mapped", "AccountChanged", timeout=60)
    with urllib.request.urlopen(f"{bed.sim.url}/_sim/calls", timeout=10) as response:
        assert other not in json.loads(response.read())["byAccount"]
    assert not FORBIDDEN.search(bed.operator.log), bed.operator.log[-3000:]


def test_the_namespaced_overlays_rbac_serves_its_namespace_and_follows_its_account(
    real_cluster: RealCluster, real_namespace: str, tmp_path: Path, make_real_bed: Callable[..., RealBed]
) -> None:
    """deploy/overlays/namespaced: a Role in the watched namespace, and cluster-wide only the read
    of that Namespace by name; the operator gets and watches it by name (a list and a watch with
    fieldSelector metadata.name=..., which resourceNames allows) for its account annotation."""
    objects = render_rbac(str(real_cluster.kubectl_path), "deploy/overlays/namespaced")
    for obj in objects:
        for rule in obj.get("rules", []):
            if rule.get("resources") == ["namespaces"]:
                rule["resourceNames"] = [real_namespace]  # the overlay's `apps`, here the test's namespace
    operator_namespace = real_cluster.create_namespace("operator")
    setup = RbacSetup(real_cluster, objects, operator_namespace, real_namespace, tmp_path)
    try:
        bed = setup.run_as_service_account(make_real_bed, args=("--namespace", real_namespace))
        account, other = "555555555555", "666666666666"
        annotation = "amplifybackend.gitops.dev/owner-account-id"
        real_cluster.kubectl(
            "annotate", "namespace", real_namespace, f"{annotation}={account}", "--overwrite"
        )
        real_cluster.apply(
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "backendauth-role-account-map", "namespace": operator_namespace},
             "data": {account: f"arn:aws:iam::{account}:role/backendauth-operator"}}
        )  # fmt: skip
        bed.apply(backendauth("scoped", minimal_spec(resourceName="scoped")))
        done = bed.wait_reason("scoped", "JobCompleted", status="True", timeout=60)
        assert done["status"]["awsAccountId"] == account
        real_cluster.kubectl("annotate", "namespace", real_namespace, f"{annotation}={other}", "--overwrite")
        bed.wait_reason("scoped", "AccountChanged", timeout=60)  # the watch of the one Namespace
        assert not FORBIDDEN.search(bed.operator.log), bed.operator.log[-3000:]
    finally:
        for obj in setup.cluster_scoped or []:
            real_cluster.kubectl(
                "delete", obj["kind"].lower(), obj["metadata"]["name"], "--wait=false", check=False
            )
        real_cluster.empty_namespace(operator_namespace)
