"""The hand-off on the real API server, with the Crossplane and ACK CRDs installed
(``tests/upstream_crds.py``).

First the check itself: hand-written managed resources, valid ones accepted by a server-side dry
run and invalid ones (an unknown field, a wrong type, a broken CEL rule) refused, so that the
export's documents passing it means something.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from real_apiserver import RealCluster
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
