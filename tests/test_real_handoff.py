"""The hand-off on the real API server, with the Crossplane and ACK CRDs installed
(``tests/upstream_crds.py``).

First the check itself: hand-written managed resources, valid ones accepted by a server-side dry
run and invalid ones (an unknown field, a wrong type, a broken CEL rule) refused, so that the
export's documents passing it means something. Then the operator's part of the hand-off runbook
(``docs/how-to/hand-off.md``): BackendAuths made Ready by the operator against the simulator,
exported with ``--from-cluster`` to Crossplane (Observe, and ``--manage``), ACK and Gen 2, every
document accepted by the API server with the providers' CRDs, every Gen 2 file compiled by
``tsc --strict``; then the BackendAuths deleted with ``deletionPolicy: Retain``, and the
simulator's call log showing that nothing after Ready changed anything in AWS.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore import xform_name

import backendauth_operator
from backendauth_operator.aws.service_model import service_model
from backendauth_operator.commands.export import HANDOFF_ACTIONS
from harness import backendauth, wait_until
from real_apiserver import RealBed, RealCluster
from sim import mutating_calls, sim_calls, sim_state
from specs import full_spec, minimal_spec
from test_handoff_simulator import assert_no_secret, export, native_client_secret, with_secrets
from tools.tsc import gen2_packages, typecheck_many
from upstream_crds import dry_run, find_upstream_crds, install, upstream_crds_dir

POOL_ID = "eu-west-1_AbCdEf123"
REGION = "eu-west-1"


def observed(api_version: str, kind: str, name: str, external: str, **for_provider: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "annotations": {"crossplane.io/external-name": external}},
        "spec": {
            "managementPolicies": ["Observe"],
            "deletionPolicy": "Orphan",
            "forProvider": {"region": REGION, **for_provider},
        },
    }


VALID: list[dict[str, Any]] = [
    observed("cognitoidp.aws.upbound.io/v1beta2", "UserPool", "handoff-check-pool", POOL_ID),
    observed("cognitoidp.aws.upbound.io/v1beta1", "UserPool", "handoff-check-pool-v1", POOL_ID),
    observed(
        "cognitoidp.aws.upbound.io/v1beta1",
        "UserPoolClient",
        "handoff-check-web",
        "1example23456789",
        userPoolId=POOL_ID,
    ),
    observed(
        "cognitoidp.aws.upbound.io/v1beta1",
        "UserPoolDomain",
        "handoff-check-domain",
        "myapp-staging",
        userPoolId=POOL_ID,
    ),
    observed(
        "cognitoidp.aws.upbound.io/v1beta1",
        "IdentityProvider",
        "handoff-check-google",
        f"{POOL_ID}:Google",
        userPoolId=POOL_ID,
        providerName="Google",
        providerType="Google",
        providerDetails={"authorize_scopes": "openid email profile"},
    ),
    observed(
        "cognitoidentity.aws.upbound.io/v1beta1",
        "Pool",
        "handoff-check-identity",
        "eu-west-1:00000000-0000-0000-0000-000000000000",
    ),
    {
        "apiVersion": "cognitoidp.aws.upbound.io/v1beta2",
        "kind": "UserPool",
        "metadata": {
            "name": "handoff-check-managed",
            "annotations": {"crossplane.io/external-name": POOL_ID},
        },
        "spec": {
            "managementPolicies": ["*"],
            "deletionPolicy": "Orphan",
            "forProvider": {
                "region": REGION,
                "name": "myapp-staging",
                "mfaConfiguration": "OPTIONAL",
                "softwareTokenMfaConfiguration": {"enabled": True},
                "passwordPolicy": {"minimumLength": 8, "requireNumbers": True},
                "usernameAttributes": ["email"],
            },
        },
    },
    {
        "apiVersion": "cognitoidentityprovider.services.k8s.aws/v1alpha1",
        "kind": "UserPool",
        "metadata": {
            "name": "handoff-check-ack",
            "namespace": "handoff-check",
            "annotations": {
                "services.k8s.aws/adoption-policy": "adopt",
                "services.k8s.aws/adoption-fields": f'{{"id": "{POOL_ID}"}}',
                "services.k8s.aws/deletion-policy": "retain",
            },
        },
        "spec": {"name": "myapp-staging", "mfaConfiguration": "OFF"},
    },
]


def broken(index: int, change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VALID[index])
    change(doc)
    return doc


INVALID: dict[str, dict[str, Any]] = {
    # An unknown field: strict field validation refuses it (an export that misspells a field fails).
    "unknown field": broken(0, lambda d: d["spec"]["forProvider"].update(userPoolName="x")),
    "unknown field in a nested object": broken(
        6, lambda d: d["spec"]["forProvider"]["passwordPolicy"].update(requireDigits=True)
    ),
    "unknown field, ACK": broken(7, lambda d: d["spec"].update(userPoolName="x")),
    # The schema's types and enums.
    "wrong type": broken(6, lambda d: d["spec"]["forProvider"]["passwordPolicy"].update(minimumLength="8")),
    "not one of the management policies": broken(0, lambda d: d["spec"].update(managementPolicies=["Read"])),
    # The CRDs' CEL rules: a managed UserPool needs its name, an IdentityProvider its details.
    "managed without a name": broken(6, lambda d: d["spec"]["forProvider"].pop("name")),
    "managed identity provider without providerDetails": broken(
        4,
        lambda d: (
            d["spec"].update(managementPolicies=["*"]),
            d["spec"]["forProvider"].pop("providerDetails"),
        ),
    ),
    # Required by the schema.
    "no region": broken(2, lambda d: d["spec"]["forProvider"].pop("region")),
    "ACK without spec.name": broken(7, lambda d: d["spec"].pop("name")),
}


# What the server's refusal names, for each case.
NAMED = {
    "unknown field": ".spec.forProvider.userPoolName: field not declared in schema",
    "unknown field in a nested object": ".spec.forProvider.passwordPolicy.requireDigits: field not declared",
    "unknown field, ACK": ".spec.userPoolName: field not declared in schema",
    "wrong type": ".spec.forProvider.passwordPolicy.minimumLength: expected numeric",
    "not one of the management policies": 'spec.managementPolicies[0]: Unsupported value: "Read"',
    "managed without a name": "spec.forProvider.name is a required parameter",
    "managed identity provider without providerDetails": "spec.forProvider.providerDetails is a required",
    "no region": "spec.forProvider.region: Required value",
    "ACK without spec.name": "spec.name: Required value",
}


# ---- finding the CRDs (no server) -----------------------------------------------------------------


def test_the_crds_are_found_beside_the_checkout_or_a_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKENDAUTH_UPSTREAM_CRDS", raising=False)
    repo = tmp_path / "work" / "wt" / "repo"
    repo.mkdir(parents=True)
    assert find_upstream_crds(repo)[0] is None
    crds = tmp_path / "work" / "shared" / "upstream-crds"
    crds.mkdir(parents=True)
    assert find_upstream_crds(repo)[0] is None, "an empty folder is not the CRDs"
    (crds / "a.yaml").write_text("kind: CustomResourceDefinition\n")
    assert find_upstream_crds(repo)[0] == crds
    beside = tmp_path / "work" / "wt" / "shared" / "upstream-crds"
    beside.mkdir(parents=True)
    (beside / "a.yaml").write_text("kind: CustomResourceDefinition\n")
    assert find_upstream_crds(repo)[0] == beside, "the nearest one wins"
    monkeypatch.setenv("BACKENDAUTH_UPSTREAM_CRDS", str(tmp_path / "nowhere"))
    assert find_upstream_crds(repo)[0] is None


def test_without_the_crds_a_test_is_skipped_or_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKENDAUTH_UPSTREAM_CRDS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match=r"upstream-crds.*BACKENDAUTH_UPSTREAM_CRDS"):
        upstream_crds_dir()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required under CI=true"):
        upstream_crds_dir()


# ---- the check on the real API server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream(real_cluster: RealCluster) -> RealCluster:
    install(real_cluster, upstream_crds_dir())
    return real_cluster


@pytest.mark.real_apiserver
@pytest.mark.integration
def test_the_crds_are_established(upstream: RealCluster) -> None:
    crds = upstream.get_json("crd")["items"]
    groups = {c["spec"]["group"] for c in crds}
    assert {"cognitoidp.aws.upbound.io", "cognitoidentity.aws.upbound.io"} <= groups
    assert "cognitoidentityprovider.services.k8s.aws" in groups
    for crd in crds:
        if crd["spec"]["group"].endswith((".upbound.io", ".services.k8s.aws")):
            conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
            assert conditions.get("Established") == "True", crd["metadata"]["name"]


@pytest.mark.real_apiserver
@pytest.mark.integration
def test_valid_managed_resources_are_accepted(upstream: RealCluster) -> None:
    assert dry_run(upstream, VALID) == []
    # A dry run stores nothing.
    assert upstream.get_json("userpools.cognitoidp.aws.upbound.io")["items"] == []


@pytest.mark.real_apiserver
@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_managed_resources_are_refused(upstream: RealCluster, case: str) -> None:
    doc = INVALID[case]
    errors = dry_run(upstream, [VALID[1], doc])
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{doc['kind']} {doc['apiVersion']} "), errors
    assert NAMED[case] in errors[0], errors


# ---- the operator's part of the hand-off runbook (docs/how-to/hand-off.md) -----------------------

FULL = "shop-auth"  # every field, social providers with Secrets, deletionPolicy Delete
ADMIN = "admin-auth"  # the same in another backend environment
POOL_ONLY = "pool-only"  # a user pool alone (USER_POOL_ONLY), deletionPolicy left to the default


def ready_in(bed: RealBed, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = bed.get(name)
        conditions = (obj.get("status") or {}).get("conditions") or []
        done = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return obj if done and (obj["status"].get("outputs") or {}).get("userPoolId") else None

    return wait_until(check, 90, f"{bed.namespace}/{name} to be Ready with outputs")


def files_of(folder: Path, pattern: str) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(pattern))


def docs_in(folder: Path) -> list[dict[str, Any]]:
    return [d for path in sorted(folder.rglob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.real_apiserver
@pytest.mark.integration
def test_hand_off_exports_pass_the_providers_crds_and_retain_deletes_nothing_in_aws(
    make_real_bed: Callable[..., RealBed], upstream: RealCluster, tmp_path: Path
) -> None:
    bed = make_real_bed()
    ns = bed.namespace
    with_secrets(bed)
    full = backendauth(FULL, full_spec())
    admin = backendauth(ADMIN, {**full_spec(), "backendEnvironmentName": "prod", "resourceName": "adminauth"})
    pool_only = backendauth(POOL_ONLY, minimal_spec(backendEnvironmentName="dev", resourceName="poolonly"))
    bed.apply(full, admin, pool_only)
    outputs = {name: ready_in(bed, name)["status"]["outputs"] for name in (FULL, ADMIN, POOL_ONLY)}
    secret_values = tuple(native_client_secret(bed, outputs[name]) for name in (FULL, ADMIN))
    at_ready = mutating_calls(bed)
    select = ("--from-cluster", "--from-namespace", ns)

    # 1. Export: Crossplane (Observe, Orphan), Crossplane --manage, ACK; one file per auth resource.
    out = {target: tmp_path / target for target in ("crossplane", "managed", "ack", "gen2")}
    runs = {
        "crossplane": export(bed, "--to", "crossplane", *select, "--output-dir", str(out["crossplane"])),
        "managed": export(
            bed, "--to", "crossplane", "--manage", *select, "--output-dir", str(out["managed"])
        ),
        "ack": export(bed, "--to", "ack", *select, "--output-dir", str(out["ack"])),
    }
    for target, run in runs.items():
        assert run.returncode == 0, (target, run.stderr)
        assert files_of(out[target], "*.yaml") == [f"{ns}/{n}.yaml" for n in sorted((ADMIN, FULL, POOL_ONLY))]

    # 2. Apply, as a server-side dry run with the providers' CRDs: every document is accepted.
    crossplane, managed, ack = (docs_in(out[t]) for t in ("crossplane", "managed", "ack"))
    for target, docs in (("crossplane", crossplane), ("managed", managed), ("ack", ack)):
        assert docs, target
        assert dry_run(upstream, docs) == [], target
    assert {d["kind"] for d in crossplane} == {
        "UserPool", "UserPoolClient", "UserPoolDomain", "IdentityProvider", "Pool", "PoolRolesAttachment"
    }  # fmt: skip
    for doc in crossplane:
        assert doc["spec"]["managementPolicies"] == ["Observe"] and doc["spec"]["deletionPolicy"] == "Orphan"
    pools = {
        d["metadata"]["annotations"]["crossplane.io/external-name"]
        for d in crossplane
        if d["kind"] == "UserPool"
    }
    assert pools == {o["userPoolId"] for o in outputs.values()}
    for doc in managed:
        if doc["kind"] == "IdentityProvider":
            assert doc["spec"]["managementPolicies"] == ["Observe"]  # no secret reference in the provider
        else:
            assert (
                "Update" in doc["spec"]["managementPolicies"]
                and "Delete" not in doc["spec"]["managementPolicies"]
            )
        assert doc["spec"]["deletionPolicy"] == "Orphan"
    assert [d["kind"] for d in ack] == ["UserPool"] * 3
    for doc in ack:
        annotations = doc["metadata"]["annotations"]
        assert annotations["services.k8s.aws/adoption-policy"] == "adopt"
        assert annotations["services.k8s.aws/deletion-policy"] == "retain"

    # 3. Gen 2: referenceAuth for the two with an identity pool; the user pool alone is named, not printed.
    gen2 = export(bed, "--to", "gen2", *select, "--output-dir", str(out["gen2"]))
    assert files_of(out["gen2"], "resource.ts") == [
        f"{ns}/{n}/amplify/auth/resource.ts" for n in sorted((ADMIN, FULL))
    ]
    assert gen2.returncode == 1 and f"{ns}/{POOL_ONLY}" in gen2.stderr, gen2.stderr
    sources = {n: out["gen2"] / ns / n / "amplify" / "auth" / "resource.ts" for n in (ADMIN, FULL)}
    for name, path in sources.items():
        assert outputs[name]["userPoolId"] in path.read_text()

    assert mutating_calls(bed) == at_ready, "the exports sent no call that changes anything"
    texts = [r.stdout + r.stderr for r in (*runs.values(), gen2)] + [p.read_text() for p in sources.values()]
    texts += [p.read_text() for folder in out.values() for p in folder.rglob("*.yaml")]
    assert_no_secret(texts, secret_values)

    # 4. Delete the BackendAuths with deletionPolicy Retain: first the policy, then the objects.
    for name in (FULL, ADMIN):
        assert bed.get(name)["metadata"].get("finalizers"), "deletionPolicy Delete holds a finalizer"
        bed.kubectl("patch", "backendauth", name, "-n", ns, "--type=merge", "-p", RETAIN)
    for name in (FULL, ADMIN, POOL_ONLY):
        wait_until(
            lambda n=name: not bed.get(n)["metadata"].get("finalizers"), 60, f"{name} to drop its finalizer"
        )
    bed.kubectl("delete", "backendauth", "--all", "-n", ns, "--wait=true", "--timeout=60s")
    left = bed.kubectl("get", "backendauth", "-n", ns, "-o", "name").stdout.split()
    assert left == []

    # Nothing after Ready changed anything in AWS (AmplifyBackend or Cognito), and the pools are there.
    assert mutating_calls(bed) == at_ready
    operations = sim_calls(bed)["byOperation"]
    assert not {"DeleteBackendAuth", "DeleteBackend", "RemoveAllBackends"} & set(operations), operations
    state = sim_state(bed)
    links = json.dumps(state["links"])
    for name, out_ids in outputs.items():
        assert out_ids["userPoolId"] in links, name
    assert_no_secret([bed.operator.log], secret_values)

    # 5. The Gen 2 files compile with tsc --strict against @aws-amplify/backend (last: without npm
    # outside CI this part alone is skipped, after everything above has passed).
    assert typecheck_many(dict(sources), gen2_packages()) == {name: [] for name in sources}


RETAIN = '{"spec":{"deletionPolicy":"Retain"}}'


# ---- the IAM policy page names every action the code sends ----------------------------------------

IAM_PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "iam-policy.md"
NOTES = IAM_PAGE.parents[2] / "charts" / "amplify-backendauth-operator" / "templates" / "NOTES.txt"
BOTO3_METHOD = re.compile(r"\"((?:get|list|create|update|delete|import|remove)_backend[a-z_]*)\"")


def amplifybackend_actions_in_code() -> set[str]:
    """Every AmplifyBackend operation the operator's package names as a boto3 method."""
    package = Path(backendauth_operator.__file__).parent
    methods = set()
    for source in package.rglob("*.py"):
        methods |= set(BOTO3_METHOD.findall(source.read_text()))
    names = {xform_name(op): op for op in service_model().operation_names}
    assert methods <= set(names), methods - set(names)
    return {f"amplifybackend:{names[m]}" for m in methods}


def test_the_iam_policy_page_names_exactly_the_actions_the_code_sends() -> None:
    text = IAM_PAGE.read_text()
    block = text.split("```json", 1)[1].split("```", 1)[0]
    policy = json.loads(block)
    listed: set[str] = set()
    for statement in policy["Statement"]:
        actions = statement["Action"]
        listed |= {actions} if isinstance(actions, str) else set(actions)
    operator = amplifybackend_actions_in_code()
    assert len(operator) == 8, operator  # Create, Update, Delete, Import, Get BackendAuth; jobs; GetBackend
    wanted = operator | set(HANDOFF_ACTIONS) | {"sts:AssumeRole"}
    assert listed == wanted
    notes = NOTES.read_text()  # the chart's notes name them too
    for action in wanted:
        service, operation = action.split(":")
        assert f"{service}:" in notes and operation in notes, f"the chart's NOTES.txt does not name {action}"
    table = text.split("## The policy", 1)[0]
    for action in wanted | {"sts:GetCallerIdentity"}:
        assert f"`{action}`" in table, f"{action} is not in the page's table"


# ---- the runbook (docs/how-to/hand-off.md) names only flags export has ---------------------------

RUNBOOK = IAM_PAGE.parents[1] / "how-to" / "hand-off.md"


def test_the_runbooks_export_commands_use_only_flags_export_has() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "backendauth_operator.commands.cli", "export", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    known = set(re.findall(r"(--[a-z][a-z-]+)", help_text))
    text = RUNBOOK.read_text().replace("\\\n", " ")
    commands = [line for line in text.splitlines() if line.lstrip().startswith("backendauth-operator export")]
    assert len(commands) >= 4, commands
    for command in commands:
        flags = set(re.findall(r"\s(--[a-z][a-z-]+)", command))
        assert flags <= known, (command, flags - known)
        to = re.search(r"--to (\w+)", command)
        assert to and to.group(1) in ("crossplane", "ack", "gen2"), command


def test_every_warning_of_the_runbook_says_what_is_not_verified() -> None:
    text = RUNBOOK.read_text()
    warnings = re.findall(r"^!!! warning(.*)$", text, re.M)
    assert len(warnings) >= 5
    assert all(title.strip() == '"Not verified against AWS"' for title in warnings), warnings
