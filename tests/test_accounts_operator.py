"""Many AWS accounts from one operator, end to end: the operator as a process, the emulated API
and the simulator (STS included, issuing expiring credentials, AmplifyBackend state kept per
account). Namespaces name their account by annotation; the ConfigMap in the operator's
namespace (``default`` here) maps each account to the role assumed there."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
import yaml

from harness import Bed, backendauth, wait_until
from specs import minimal_spec

pytestmark = pytest.mark.integration

ANNOTATION = "amplifybackend.gitops.dev/owner-account-id"
MAP = "backendauth-role-account-map"
A, B, C = "111111111111", "222222222222", "333333333333"
BASE = "000000000000"  # the operator's own account, as the simulator sees it
ROLE = "arn:aws:iam::{}:role/backendauth-operator"
KEY = "d1a2b3c4d5e6f7/staging/shopauth"


def namespace(name: str, account: str | None) -> dict[str, Any]:
    annotations = {ANNOTATION: account} if account is not None else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": annotations}}


def account_map(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MAP, "namespace": "default"},
        "data": data,
    }


def auth_in(ns: str, name: str = "shop-auth", **overrides: Any) -> dict[str, Any]:
    manifest = backendauth(name, minimal_spec(**overrides))
    manifest["metadata"]["namespace"] = ns
    return manifest


def get(bed: Bed, ns: str, name: str = "shop-auth") -> dict[str, Any]:
    out = bed.kubectl("get", "backendauth", name, "-n", ns, "-o", "json").stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
    return found[0] if found else {}


def wait_reason(
    bed: Bed, ns: str, reason: str, name: str = "shop-auth", timeout: float = 30
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get(bed, ns, name)
        return obj if ready(obj).get("reason") == reason else None

    return wait_until(check, timeout, f"{ns}/{name} to show {reason}")


def sim_get(bed: Bed, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{bed.sim.url}/_sim/{path}", timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def resources(bed: Bed, account: str) -> dict[str, Any]:
    found: dict[str, Any] = sim_get(bed, f"state?account={account}")["resources"]
    return found


def operations(bed: Bed, account: str) -> dict[str, int]:
    by_account = sim_get(bed, "calls")["byAccount"]
    ops: dict[str, int] = (by_account.get(account) or {}).get("byOperation") or {}
    return ops


def two_accounts(bed: Bed, extra: dict[str, str] | None = None) -> None:
    bed.apply(
        namespace("team-a", A),
        namespace("team-b", B),
        account_map({A: ROLE.format(A), B: ROLE.format(B), **(extra or {})}),
    )


def test_the_same_resource_in_two_namespaces_is_two_resources_one_in_each_account(bed: Bed) -> None:
    two_accounts(bed)
    bed.apply(auth_in("team-a"), auth_in("team-b"), auth_in("default"))
    for ns in ("team-a", "team-b", "default"):
        wait_reason(bed, ns, "JobCompleted", timeout=60)
    assert list(resources(bed, A)) == [KEY]
    assert list(resources(bed, B)) == [KEY]
    assert list(resources(bed, BASE)) == [KEY]  # the unannotated namespace: the operator's own account
    for account in (A, B, BASE):
        assert operations(bed, account).get("CreateBackendAuth") == 1, account
    # The role of each account was assumed (once: the credentials last an hour and are shared).
    assert operations(bed, A).get("AssumeRole") == 1 and operations(bed, B).get("AssumeRole") == 1
    assert {ns: get(bed, ns)["status"]["awsAccountId"] for ns in ("team-a", "team-b", "default")} == {
        "team-a": A,
        "team-b": B,
        "default": BASE,
    }
    wide = bed.kubectl("get", "backendauth", "-A", "-o", "wide").stdout
    header, *rows = wide.splitlines()
    assert "ACCOUNT" in header.split()
    assert sorted(row.split()[-1] for row in rows) == sorted([A, B, BASE])


def test_credentials_are_refreshed_across_an_expiry_during_a_running_job(make_bed: Any) -> None:
    bed: Bed = make_bed(job_seconds=4.0, credential_ttl_seconds=1)
    two_accounts(bed)
    bed.apply(auth_in("team-a"))
    wait_reason(bed, "team-a", "JobCompleted", timeout=60)
    calls = sim_get(bed, f"calls?account={A}")["calls"]
    polls = [c for c in calls if c["operation"] == "GetBackendJob"]
    assumed = [c for c in calls if c["operation"] == "AssumeRole"]
    # The job ran for seconds on credentials that last one: they were refreshed (by botocore,
    # before expiry), and no call was ever answered "expired".
    assert polls and polls[-1]["time"] - polls[0]["time"] > 1.5
    assert len(assumed) >= 2
    assert not [c for c in calls if c["errorCode"] == "ExpiredTokenException"]
    assert get(bed, "team-a")["status"]["awsAccountId"] == A


def test_an_unmapped_account_stalls_until_the_map_has_it(bed: Bed) -> None:
    two_accounts(bed)
    bed.apply(namespace("team-c", C), auth_in("team-c"))
    obj = wait_reason(bed, "team-c", "AccountNotMapped")
    condition = ready(obj)
    assert condition["status"] == "False"
    assert [c["status"] for c in obj["status"]["conditions"] if c["type"] == "Stalled"] == ["True"]
    assert f"ConfigMap default/{MAP}" in condition["message"] and repr(C) in condition["message"]
    assert not obj["status"].get("awsAccountId")
    # A bad entry is named by its key, and nothing is assumed for it.
    bed.apply(account_map({A: ROLE.format(A), B: ROLE.format(B), C: "roleArn: [oops"}))

    def names_the_bad_entry() -> dict[str, Any] | None:
        obj = get(bed, "team-c")
        return obj if "not a role ARN nor a YAML mapping" in ready(obj).get("message", "") else None

    obj = wait_until(names_the_bad_entry, 30, "the message of the bad entry")
    assert f"key '{C}'" in ready(obj)["message"] and ready(obj)["reason"] == "AccountNotMapped"
    assert not operations(bed, C)
    # Fixed: picked up at once (the ConfigMap's watch), no restart.
    bed.apply(account_map({A: ROLE.format(A), B: ROLE.format(B), C: f"roleArn: {ROLE.format(C)}"}))
    wait_reason(bed, "team-c", "JobCompleted", timeout=60)
    assert list(resources(bed, C)) == [KEY]
    assert get(bed, "team-c")["status"]["awsAccountId"] == C


def test_a_bad_annotation_is_named_and_picked_up_when_fixed(bed: Bed) -> None:
    two_accounts(bed)
    bed.apply(namespace("team-d", "12-34"), auth_in("team-d"))
    obj = wait_reason(bed, "team-d", "BadAnnotation")
    assert (
        f"Namespace team-d: annotation {ANNOTATION} must be a 12-digit AWS account id"
        in ready(obj)["message"]
    )
    bed.apply(namespace("team-d", B))
    wait_reason(bed, "team-d", "JobCompleted", timeout=60)
    assert list(resources(bed, B)) == [KEY]


def test_a_refused_assume_role_is_access_denied_naming_the_role_and_retried(bed: Bed) -> None:
    two_accounts(bed)
    bed.sim_post("deny_role", {"roleArn": ROLE.format(A), "denied": True})
    bed.apply(auth_in("team-a"))
    obj = wait_reason(bed, "team-a", "AccessDenied")
    message = ready(obj)["message"]
    assert f"sts:AssumeRole of {ROLE.format(A)} refused" in message
    assert "is not authorized to perform: sts:AssumeRole" in message  # STS's own words
    assert [c["status"] for c in obj["status"]["conditions"] if c["type"] == "Reconciling"] == ["True"]
    assert not resources(bed, A) and not resources(bed, BASE)
    bed.sim_post("deny_role", {"roleArn": ROLE.format(A), "denied": False})
    wait_reason(bed, "team-a", "JobCompleted", timeout=60)  # the backoff's retry
    assert list(resources(bed, A)) == [KEY]


def test_denying_the_role_of_a_ready_object_shows_access_denied_at_its_next_look(bed: Bed) -> None:
    """The operator's session was issued before the deny; it is refused at once, not an hour
    later when it would expire."""
    two_accounts(bed)
    bed.apply(auth_in("team-a"))
    wait_reason(bed, "team-a", "JobCompleted", timeout=60)
    bed.sim_post("deny_role", {"roleArn": ROLE.format(A), "denied": True})
    asked = "amplifybackend.gitops.dev/reconcile-requested-at"
    bed.kubectl("annotate", "backendauth", "shop-auth", "-n", "team-a", f"{asked}=1")
    message = ready(wait_reason(bed, "team-a", "AccessDenied"))["message"]
    assert "amplifybackend:GetBackendAuth with an explicit deny" in message
    bed.sim_post("deny_role", {"roleArn": ROLE.format(A), "denied": False})
    bed.kubectl("annotate", "--overwrite", "backendauth", "shop-auth", "-n", "team-a", f"{asked}=2")
    wait_reason(bed, "team-a", "JobCompleted", timeout=60)


def test_an_external_id_is_sent_and_never_shown(bed: Bed) -> None:
    secret = "ext-id-not-for-eyes-7731"
    bed.sim_post("require_external_id", {"roleArn": ROLE.format(A), "externalId": secret})
    two_accounts(bed, {A: f"roleArn: {ROLE.format(A)}\nexternalId: {secret}"})
    bed.apply(auth_in("team-a"))
    wait_reason(bed, "team-a", "JobCompleted", timeout=60)
    shown = json.dumps(get(bed, "team-a")) + bed.kubectl("get", "events", "-A", "-o", "json").stdout
    assert secret not in shown and secret not in bed.operator.log


def test_a_namespace_moved_to_another_account_never_creates_there(bed: Bed) -> None:
    two_accounts(bed)
    bed.apply(auth_in("team-a"))
    wait_reason(bed, "team-a", "JobCompleted", timeout=60)
    bed.apply(namespace("team-a", B))  # the annotation now names account B
    obj = wait_reason(bed, "team-a", "AccountChanged")  # the Namespace's watch: no spec change needed
    assert A in ready(obj)["message"] and B in ready(obj)["message"]
    assert obj["status"]["awsAccountId"] == A
    # A new generation is not sent to B either, nor is B's role assumed.
    changed = auth_in("team-a")
    changed["spec"]["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 14}
    bed.apply(changed)
    wait_until(lambda: get(bed, "team-a")["status"].get("observedGeneration") == 2, 30, "generation 2 seen")
    assert ready(get(bed, "team-a"))["reason"] == "AccountChanged"
    assert not operations(bed, B) and not resources(bed, B)
    # The annotation goes back: the change reaches account A.
    bed.apply(namespace("team-a", A))
    wait_until(
        lambda: (
            ready(o := get(bed, "team-a")).get("reason") == "JobCompleted"
            and o["status"]["operation"] == "UpdateBackendAuth"
        ),
        60,
        "the update in account A",
    )
    assert operations(bed, A).get("UpdateBackendAuth") == 1 and not operations(bed, B)


def test_a_tenant_cannot_reach_an_account_its_namespace_is_not_mapped_to(bed: Bed) -> None:
    two_accounts(bed)
    # Nothing in a spec names a role or an account: the API server refuses such fields.
    manifest = auth_in("team-a")
    manifest["spec"]["roleArn"] = ROLE.format(B)
    refused = bed.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
    assert refused.returncode != 0 and "roleArn" in refused.stderr
    # A namespace annotated with an account that has no role acts nowhere: no AssumeRole of any
    # role of that account, and nothing in the operator's own account either.
    bed.apply(namespace("tenant", C), auth_in("tenant"))
    wait_reason(bed, "tenant", "AccountNotMapped")
    assert not operations(bed, C)
    assert not resources(bed, BASE) and "CreateBackendAuth" not in operations(bed, BASE)
