"""``spec.import`` end to end: the operator as a process, the emulated API server and the
simulator with pools seeded "outside Amplify". Import, adopting the same ids, a conflict, each
kind of invalid import, AccessDenied, deletion (unlink or retain), pause, and exactly once after
a crash or an ambiguous 504. The operator never calls a Cognito API that changes anything."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from backendauth_operator.core.import_variant import CHECK_ACTIONS
from harness import REPO, Bed, backendauth, secret, wait_until
from sim import mutating_calls, seed_pools, sim_state

pytestmark = pytest.mark.integration

APP, ENV, REGION = "d1a2b3c4d5e6f7", "staging", "eu-west-1"
LINK = "importedAuth"  # the name the simulator gives an import's link (AWS's is not documented)
PAUSED = "amplifybackend.gitops.dev/paused"
REQUESTED = "amplifybackend.gitops.dev/reconcile-requested-at"


def seeded(bed: Bed, **kw: Any) -> dict[str, Any]:
    """Pools made outside Amplify in the operator's region: ``web`` without, ``native`` with a
    secret (unless ``clients`` says otherwise)."""
    return seed_pools(bed, region=REGION, **kw)


def ids_of(pools: dict[str, Any], web: str = "web", native: str = "native") -> dict[str, str]:
    ids = {
        "userPoolId": pools["userPoolId"],
        "webClientId": pools["clients"][web],
        "nativeClientId": pools["clients"][native],
    }
    if pools.get("identityPoolId"):
        ids["identityPoolId"] = pools["identityPoolId"]
    return ids


def importing(ids: dict[str, Any], app: str = APP, **extra: Any) -> dict[str, Any]:
    return {"appId": app, "backendEnvironmentName": ENV, "import": ids, **extra}


def no_cognito_changes(bed: Bed) -> None:
    changed = [c for c in mutating_calls(bed) if c["service"] != "amplifybackend"]
    assert changed == [], changed


def imports(bed: Bed) -> int:
    return bed.count("ImportBackendAuth")


def test_import_links_the_pools_once_and_shows_them(bed: Bed) -> None:
    pools = seeded(bed, identity_pool={"clients": ["web", "native"]})
    ids = ids_of(pools)
    bed.apply(backendauth("linked", importing(ids, outputs={"configMapName": "linked-ids"})))
    obj = bed.wait_reason("linked", "JobCompleted", status="True")
    status = obj["status"]
    assert status["operation"] == "ImportBackendAuth" and status["status"] == "COMPLETED"
    assert status["resourceName"] == LINK
    assert status["outputs"] == {
        "userPoolId": ids["userPoolId"], "appClientIdWeb": ids["webClientId"],
        "appClientId": ids["nativeClientId"], "identityPoolId": ids["identityPoolId"],
    }  # fmt: skip
    published = json.loads(bed.kubectl("get", "configmap", "linked-ids", "-o", "json").stdout)["data"]
    assert published["userPoolId"] == ids["userPoolId"] and published["region"] == REGION
    assert imports(bed) == 1
    # Checked before the job, with reads only.
    assert bed.count("DescribeUserPool") == 1 and bed.count("DescribeUserPoolClient") == 2
    assert bed.count("DescribeIdentityPool") == 1
    assert bed.count("GetBackendAuth") == 0, "an import is observed through GetBackend"
    cognito_calls = {
        f"{c['service']}:{c['operation']}" for c in bed.calls()["calls"] if "cognito" in c["service"]
    }
    assert cognito_calls == set(CHECK_ACTIONS), "the IAM policy names these (see below)"
    reasons = [e["reason"] for e in bed.events("linked")]
    assert "Submitted" in reasons and "JobCompleted" in reasons
    link = sim_state(bed)["links"][f"{APP}/{ENV}/{LINK}"]
    assert link["imported"] and link["UserPoolId"] == ids["userPoolId"]
    no_cognito_changes(bed)

    # A look (resync, reconcile request) costs one AWS read: GetBackend.
    before = len(bed.calls()["calls"])
    bed.kubectl("annotate", "backendauth", "linked", f"{REQUESTED}=now1")
    wait_until(lambda: bed.get("linked")["status"].get("lastHandledReconcileAt") == "now1", what="the look")
    after = bed.calls()["calls"][before:]
    assert [c["operation"] for c in after] == ["GetBackend"]
    assert bed.condition("linked")["reason"] == "JobCompleted"


def test_ids_from_a_configmap_and_a_secret_are_read_when_they_come(bed: Bed) -> None:
    pools = seeded(bed)
    ids = ids_of(pools)
    spec = importing(
        {
            "userPoolIdFrom": {"configMapKeyRef": {"name": "pools", "key": "userPoolId"}},
            "webClientId": ids["webClientId"],
            "nativeClientIdFrom": {"secretKeyRef": {"name": "pools-secret", "key": "native"}},
        }
    )
    bed.apply(backendauth("referenced", spec))
    waiting = bed.wait_reason("referenced", "ConfigMapNotFound", status="False")
    assert "ConfigMap default/pools not found" in waiting["status"]["conditions"][0]["message"]
    assert imports(bed) == 0
    configmap = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pools", "namespace": "default"},
        "data": {"userPoolId": ids["userPoolId"]},
    }  # fmt: skip
    bed.apply(configmap)
    bed.wait_reason("referenced", "SecretNotFound", status="False")
    bed.apply(secret("pools-secret", {"native": ids["nativeClientId"]}))
    obj = bed.wait_reason("referenced", "JobCompleted", status="True")
    assert obj["status"]["outputs"]["userPoolId"] == ids["userPoolId"]
    assert imports(bed) == 1
    # The ConfigMap now names other pools: AWS still links the first ones. The operator says so
    # and neither re-links nor unlinks.
    other = seeded(bed)
    bed.apply({**configmap, "data": {"userPoolId": other["userPoolId"]}})
    bed.kubectl(
        "annotate", "backendauth", "referenced", "amplifybackend.gitops.dev/reconcile-requested-at=now"
    )
    stalled = bed.wait_reason("referenced", "ImportConflict", status="False")
    message = bed.condition("referenced", "Stalled")["message"]
    assert bed.condition("referenced", "Stalled")["status"] == "True"
    assert ids["userPoolId"] in message and other["userPoolId"] in message
    assert stalled["status"]["resourceName"] == LINK
    assert imports(bed) == 1 and bed.count("DeleteBackendAuth") == 0
    no_cognito_changes(bed)


def test_a_changed_secret_of_ids_is_a_conflict_at_once_without_a_resync(bed: Bed) -> None:
    """The operator watches the Secrets an import reads (as it watches clientSecretRef's): other
    ids there are shown at once (one GetBackend), not at the next resync (ten minutes here)."""
    ids, other = ids_of(seeded(bed)), ids_of(seeded(bed))
    spec = importing({
        "userPoolIdFrom": {"secretKeyRef": {"name": "crossplane-conn", "key": "userPoolId"}},
        "webClientId": ids["webClientId"], "nativeClientId": ids["nativeClientId"],
    })  # fmt: skip
    bed.apply(secret("crossplane-conn", {"userPoolId": ids["userPoolId"]}))
    bed.apply(backendauth("from-secret", spec))
    bed.wait_reason("from-secret", "JobCompleted", status="True")
    reads = bed.count("GetBackend")
    bed.apply(secret("crossplane-conn", {"userPoolId": other["userPoolId"]}))
    bed.wait_reason("from-secret", "ImportConflict", status="False")
    message = bed.condition("from-secret", "Stalled")["message"]
    assert ids["userPoolId"] in message and other["userPoolId"] in message
    assert bed.count("GetBackend") == reads + 1, "one look at AWS for the change"
    assert imports(bed) == 1 and bed.count("DeleteBackendAuth") == 0
    # The Secret back as it was: Ready again, with no call but the look.
    bed.apply(secret("crossplane-conn", {"userPoolId": ids["userPoolId"]}))
    bed.wait_reason("from-secret", "JobCompleted", status="True")
    assert bed.count("GetBackend") == reads + 2 and imports(bed) == 1


def test_applied_again_after_retain_the_link_is_adopted_with_no_call(bed: Bed) -> None:
    ids = ids_of(seeded(bed))
    bed.apply(backendauth("first", importing(ids, deletionPolicy="Retain")))
    bed.wait_reason("first", "JobCompleted", status="True")
    bed.kubectl("delete", "backendauth", "first", "--timeout=60s")
    assert bed.count("DeleteBackendAuth") == 0, "Retain: no call"
    assert f"{APP}/{ENV}/{LINK}" in sim_state(bed)["links"]
    bed.apply(backendauth("again", importing(ids)))
    obj = bed.wait_reason("again", "Adopted", status="True")
    assert obj["status"]["resourceName"] == LINK
    assert obj["status"]["outputs"]["userPoolId"] == ids["userPoolId"]
    assert "Adopted" in [e["reason"] for e in bed.events("again")]
    assert imports(bed) == 1


def test_a_link_to_other_ids_is_a_conflict_with_no_call(bed: Bed) -> None:
    first, second = ids_of(seeded(bed)), ids_of(seeded(bed))
    bed.apply(backendauth("owner", importing(first)))
    bed.wait_reason("owner", "JobCompleted", status="True")
    bed.apply(backendauth("rival", importing(second, driftPolicy="Correct")))
    bed.wait_reason("rival", "ImportConflict", status="False")
    message = bed.condition("rival", "Stalled")["message"]
    assert first["userPoolId"] in message and second["userPoolId"] in message and LINK in message
    assert "reconcile-requested-at" in message, "the message says what a person does"
    assert imports(bed) == 1 and bed.count("DeleteBackendAuth") == 0


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("web client with a secret", "has a client secret"),
        ("no such user pool", "does not exist"),
        ("a client of another pool", "does not exist in user pool"),
        ("identity pool without the clients", "does not list app client"),
    ],
)
def test_an_invalid_import_stalls_before_any_job(make_bed: Any, case: str, expect: str) -> None:
    bed = make_bed()
    pools = (
        seeded(bed, clients=[{"name": "web", "secret": True}, {"name": "native", "secret": True}])
        if (case == "web client with a secret")
        else seeded(bed, identity_pool={"clients": ["web"]} if case.startswith("identity") else None)
    )
    ids = ids_of(pools)
    named = ids["webClientId"]
    if case == "no such user pool":
        ids["userPoolId"] = named = f"{REGION}_Missing1"
    elif case == "a client of another pool":
        ids["nativeClientId"] = named = ids_of(seeded(bed))["nativeClientId"]
    elif case.startswith("identity"):
        named = ids["nativeClientId"]
    bed.apply(backendauth("invalid", importing(ids)))
    bed.wait_reason("invalid", "InvalidImport", status="False")
    stalled = bed.condition("invalid", "Stalled")
    assert stalled["status"] == "True" and expect in stalled["message"] and named in stalled["message"]
    assert imports(bed) == 0
    no_cognito_changes(bed)


def test_a_refused_cognito_read_is_access_denied_naming_the_action(bed: Bed) -> None:
    ids = ids_of(seeded(bed))
    bed.fault("access_denied", operation="DescribeUserPoolClient")
    bed.apply(backendauth("refused", importing(ids)))
    bed.wait_reason("refused", "AccessDenied", status="False")
    message = bed.condition("refused", "Stalled")["message"]
    assert "cognito-idp:DescribeUserPoolClient" in message
    assert imports(bed) == 0


def test_delete_unlinks_and_leaves_the_pools(bed: Bed) -> None:
    pools = seeded(bed)
    ids = ids_of(pools)
    bed.apply(backendauth("unlinked", importing(ids, deletionPolicy="Delete")))
    bed.wait_reason("unlinked", "JobCompleted", status="True")
    bed.kubectl("delete", "backendauth", "unlinked", "--timeout=60s")
    deletes = [c for c in bed.calls()["calls"] if c["operation"] == "DeleteBackendAuth"]
    assert [c["resourceName"] for c in deletes] == [LINK]
    state = sim_state(bed)
    assert f"{APP}/{ENV}/{LINK}" not in state["links"]
    assert ids["userPoolId"] in json.dumps(state["cognito"]), "the pools stay"
    no_cognito_changes(bed)


def test_paused_before_it_starts_nothing_is_called(bed: Bed) -> None:
    ids = ids_of(seeded(bed))
    bed.apply(backendauth("held", importing(ids), annotations={PAUSED: "true"}))
    bed.wait_reason("held", "Paused")
    assert [c for c in bed.calls()["calls"] if c["service"] != "sts"] == []
    bed.kubectl("annotate", "backendauth", "held", f"{PAUSED}-")
    bed.wait_reason("held", "JobCompleted", status="True")
    assert imports(bed) == 1


@pytest.mark.parametrize("job_seconds", [0.0, 0.5], ids=["job-ended-before-the-look", "job-still-running"])
def test_an_ambiguous_504_imports_once(make_bed: Any, job_seconds: float) -> None:
    bed = make_bed(job_seconds=job_seconds)
    ids = ids_of(seeded(bed))
    bed.fault("ambiguous", operation="ImportBackendAuth")
    bed.apply(backendauth("ambiguous", importing(ids)))
    bed.kubectl("wait", "--for=condition=Ready", "backendauth/ambiguous", "--timeout=60s")
    assert imports(bed) == 1
    assert bed.count("ListBackendJobs") >= 1, "the job was looked for, not started again"


def test_operator_killed_after_the_import_call_imports_once(bed: Bed) -> None:
    ids = ids_of(seeded(bed))
    bed.sim_post("hold", {"held": True})
    bed.fault("stall", operation="ImportBackendAuth")
    bed.apply(backendauth("crashy", importing(ids)))
    wait_until(lambda: imports(bed) == 1, what="the import call")
    bed.operator.kill()
    assert "amplifybackend.gitops.dev/pending" in bed.get("crashy")["metadata"]["annotations"]
    (job,) = [c["jobId"] for c in bed.calls()["calls"] if c["operation"] == "ImportBackendAuth"]
    bed.operator.start()
    wait_until(lambda: "Recovered" in [e["reason"] for e in bed.events("crashy")], what="the recovery")
    bed.sim_post("hold", {"held": False})
    obj = bed.wait_reason("crashy", "JobCompleted", status="True")
    assert obj["status"]["jobId"] == job and obj["status"]["operation"] == "ImportBackendAuth"
    assert imports(bed) == 1


@pytest.mark.parametrize("answer", ["not_found", "config"])
def test_whether_get_backend_auth_answers_for_an_import_changes_nothing(make_bed: Any, answer: str) -> None:
    # AWS's behaviour is not documented: the simulator answers either way, and the operator,
    # which observes an import through GetBackend only, is Ready and never asks GetBackendAuth.
    bed = make_bed(imported_get_backend_auth=answer)
    ids = ids_of(seeded(bed))
    bed.apply(backendauth("either", importing(ids)))
    bed.wait_reason("either", "JobCompleted", status="True")
    assert bed.count("GetBackendAuth") == 0 and imports(bed) == 1


def test_the_iam_policy_and_the_chart_notes_name_the_checks_reads() -> None:
    page = (REPO / "docs" / "reference" / "iam-policy.md").read_text()
    policy = json.loads(page.split("```json", 1)[1].split("```", 1)[0])
    listed = {a for statement in policy["Statement"] for a in statement["Action"] if isinstance(a, str)}
    assert {*CHECK_ACTIONS, "amplifybackend:ImportBackendAuth"} <= listed
    notes = (REPO / "charts" / "amplify-backendauth-operator" / "templates" / "NOTES.txt").read_text()
    for action in (*CHECK_ACTIONS, "amplifybackend:ImportBackendAuth"):
        assert action.split(":")[1] in notes, action


def test_export_gives_spec_import_for_an_imported_resource_and_applying_it_adopts(bed: Bed) -> None:
    from test_gitops import export

    ids = ids_of(seeded(bed, identity_pool={"clients": ["web", "native"]}))
    bed.apply(backendauth("before", importing(ids, deletionPolicy="Retain")))
    bed.wait_reason("before", "JobCompleted", status="True")
    bed.kubectl("delete", "backendauth", "before", "--timeout=60s")
    result = export(bed, "--app", APP, "--env", ENV, "--namespace", "default")
    assert result.returncode == 0, result.stderr
    (doc,) = list(yaml.safe_load_all(result.stdout))
    assert doc["spec"]["import"] == ids
    assert "resourceConfig" not in doc["spec"] and "resourceName" not in doc["spec"]
    before = len(mutating_calls(bed))
    bed.kubectl("apply", "-f", "-", input=result.stdout)
    bed.wait_reason(doc["metadata"]["name"], "Adopted", status="True")
    assert len(mutating_calls(bed)) == before, "adopted with no call"


def test_deleted_while_its_import_runs_the_unlink_waits_for_the_link(bed: Bed) -> None:
    ids = ids_of(seeded(bed))
    bed.sim_post("hold", {"held": True})
    bed.apply(backendauth("early", importing(ids, deletionPolicy="Delete")))
    wait_until(lambda: imports(bed) == 1, what="the import call")
    bed.kubectl("delete", "backendauth", "early", "--wait=false")
    wait_until(lambda: "the unlink waits for it" in bed.operator.log, what="the unlink to wait")
    assert bed.kubectl("get", "backendauth", "early", check=False).returncode == 0, "not let go"
    assert bed.count("DeleteBackendAuth") == 0
    bed.sim_post("hold", {"held": False})
    gone = lambda: bed.kubectl("get", "backendauth", "early", check=False).returncode != 0  # noqa: E731
    wait_until(gone, 60, "the object to go")
    deletes = [c for c in bed.calls()["calls"] if c["operation"] == "DeleteBackendAuth"]
    assert [c["resourceName"] for c in deletes] == [LINK]
    assert f"{APP}/{ENV}/{LINK}" not in sim_state(bed)["links"]
    no_cognito_changes(bed)
