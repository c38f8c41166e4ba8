"""After creation: spec updates, pausing a settled object, deletion policies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from argocd_health import health
from harness import Bed, backendauth, secret, wait_until
from sim import sim_state
from specs import AMAZON_SECRET, APPLE_KEY, GOOGLE_SECRET, full_spec, minimal_spec

pytestmark = pytest.mark.integration

PAUSED = "amplifybackend.gitops.dev/paused"
FINALIZER = "amplifybackend.gitops.dev/finalizer"


def social_secrets() -> list[dict[str, Any]]:
    """The Secrets that specs.full_spec() references."""
    return [
        secret("google-oauth", {"clientSecret": GOOGLE_SECRET}),
        secret("lwa", {"secret": AMAZON_SECRET}),
        secret("apple", {"key.p8": APPLE_KEY}),
    ]


def ready(bed: Bed, name: str, **spec_overrides: object) -> None:
    bed.apply(backendauth(name, minimal_spec(resourceName=name, **spec_overrides)))
    bed.wait_reason(name, "JobCompleted", status="True")


def test_spec_change_after_creation_sends_an_update(bed: Bed) -> None:
    ready(bed, "grown")
    spec = minimal_spec(resourceName="grown")
    spec["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 14}
    bed.apply(backendauth("grown", spec))
    wait_until(lambda: bed.get("grown")["status"].get("operation") == "UpdateBackendAuth", what="the update")
    bed.wait_reason("grown", "JobCompleted", status="True")
    status = bed.get("grown")["status"]
    assert status["observedGeneration"] == 2 and status["operation"] == "UpdateBackendAuth"
    assert bed.condition("grown")["observedGeneration"] == 2
    assert (bed.count("CreateBackendAuth"), bed.count("UpdateBackendAuth")) == (1, 1)
    # The log says what the steps did, without Kopf's line after every event that scheduled one.
    assert "Calling UpdateBackendAuth" in bed.operator.log
    assert "Handler 'event' succeeded." not in bed.operator.log


def test_immutable_change_is_refused_at_apply(bed: Bed) -> None:
    ready(bed, "fixed")
    spec = minimal_spec(resourceName="fixed")
    spec["resourceConfig"]["userPoolConfigs"]["userPoolName"] = "renamed"
    result = bed.kubectl("apply", "-f", "-", input=yaml.safe_dump(backendauth("fixed", spec)), check=False)
    assert result.returncode != 0
    assert (
        "spec.resourceConfig.userPoolConfigs.userPoolName" in result.stderr and "immutable" in result.stderr
    )


def test_pausing_a_settled_object_shows_paused_and_unpausing_restores_ready(bed: Bed) -> None:
    ready(bed, "settled")
    calls = len(bed.calls()["calls"])
    bed.kubectl("annotate", "backendauth", "settled", f"{PAUSED}=true")
    # Still Ready (nothing is in progress, so Flux's wait ends), and Argo CD shows it suspended.
    assert health(bed.wait_reason("settled", "Paused", status="True"))[0] == "Suspended"
    assert bed.condition("settled", "Reconciling")["status"] == "False"
    bed.kubectl("annotate", "backendauth", "settled", f"{PAUSED}-")
    bed.wait_reason("settled", "JobCompleted", status="True")
    assert len(bed.calls()["calls"]) == calls, "pausing and unpausing a settled object calls no AWS"


def test_delete_policy_removes_the_auth_resource_before_letting_go(bed: Bed) -> None:
    ready(bed, "doomed", deletionPolicy="Delete")
    held = yaml.safe_load(bed.kubectl("get", "backendauth", "doomed", "-o", "yaml").stdout)
    assert held["metadata"]["finalizers"] == [FINALIZER], "put on with the pending marker, before the create"
    bed.sim_post("hold", {"held": True})
    bed.kubectl("delete", "backendauth", "doomed", "--wait=false")
    wait_until(lambda: "Deletion waits: DeleteBackendAuth job" in bed.operator.log, what="the wait")
    assert bed.kubectl("get", "backendauth", "doomed", check=False).returncode == 0, "held until AWS is done"
    bed.sim_post("hold", {"held": False})
    wait_until(lambda: bed.kubectl("get", "backendauth", "doomed", check=False).returncode != 0, what="gone")
    assert bed.count("DeleteBackendAuth") == 1
    assert not [key for key in sim_state(bed)["resources"] if key.endswith("/doomed")]
    # The deletion ends with an event saying AWS's job is done, not only the one saying it was sent.
    deleted = wait_until(
        lambda: [e for e in bed.events("doomed") if e["reason"] == "Deleted"], what="the Deleted event"
    )
    assert [e["type"] for e in deleted] == ["Normal"]
    assert "/doomed deleted in AWS (DeleteBackendAuth job " in deleted[0]["message"]
    assert sorted(e["reason"] for e in bed.events("doomed") if e["reason"].startswith("Delet")) == [
        "Deleted",
        "Deleting",
    ]
    # Waiting for AWS's job is said at INFO, not as an error.
    waits = [line for line in bed.operator.log.splitlines() if "Deletion waits" in line]
    assert waits and all("[INFO" in line for line in waits)
    assert "Traceback" not in bed.operator.log


def test_retain_policy_leaves_aws_alone(bed: Bed) -> None:
    ready(bed, "kept")
    obj = yaml.safe_load(bed.kubectl("get", "backendauth", "kept", "-o", "yaml").stdout)
    assert not obj["metadata"].get("finalizers"), "Retain needs no finalizer"
    bed.kubectl("delete", "backendauth", "kept", "--timeout=60s")
    retained = wait_until(
        lambda: [e for e in bed.events("kept") if e["reason"] == "Retained"], what="the Retained event"
    )
    assert [e["type"] for e in retained] == ["Normal"]
    assert "/kept left in place in AWS (deletionPolicy Retain)" in retained[0]["message"]
    assert bed.count("DeleteBackendAuth") == 0


def test_deleting_a_paused_object_still_works_without_aws_calls(bed: Bed) -> None:
    ready(bed, "frozen", deletionPolicy="Delete")
    bed.kubectl("annotate", "backendauth", "frozen", f"{PAUSED}=true")
    bed.wait_reason("frozen", "Paused")
    bed.kubectl("delete", "backendauth", "frozen", "--timeout=60s")
    assert bed.count("DeleteBackendAuth") == 0


def test_changing_only_operator_fields_makes_no_aws_call(bed: Bed) -> None:
    ready(bed, "policy")
    calls = len(bed.calls()["calls"])
    bed.apply(backendauth("policy", minimal_spec(resourceName="policy", deletionPolicy="Delete")))
    wait_until(lambda: bed.condition("policy").get("observedGeneration") == 2, what="generation 2 handled")
    assert bed.condition("policy")["status"] == "True"
    assert len(bed.calls()["calls"]) == calls, "deletionPolicy is not AWS's: nothing to send"


def test_reconcile_request_observes_aws_once_and_is_echoed(bed: Bed) -> None:
    ready(bed, "asked")
    jobs_before = bed.count("GetBackendAuth")
    bed.kubectl("annotate", "backendauth", "asked", "amplifybackend.gitops.dev/reconcile-requested-at=first")
    wait_until(lambda: bed.get("asked")["status"].get("lastHandledReconcileAt") == "first", what="the echo")
    assert bed.count("GetBackendAuth") == jobs_before + 1
    assert bed.condition("asked")["status"] == "True"
    bed.kubectl(
        "annotate",
        "--overwrite",
        "backendauth",
        "asked",
        "amplifybackend.gitops.dev/reconcile-requested-at=2",
    )
    wait_until(
        lambda: bed.get("asked")["status"].get("lastHandledReconcileAt") == "2", what="the second echo"
    )
    assert bed.count("GetBackendAuth") == jobs_before + 2
    reasons = [e["reason"] for e in bed.events("asked")]
    assert (reasons.count("Submitted"), reasons.count("JobCompleted")) == (1, 0), "looks post no event"


def test_removing_mfa_turns_it_off_in_aws_and_stays_in_sync(make_bed: Callable[..., Bed]) -> None:
    bed = make_bed(start_operator=False)
    bed.operator.env["BACKENDAUTH_RESYNC_SECONDS"] = "1"
    bed.operator.start()
    spec = minimal_spec(resourceName="secure")
    spec["resourceConfig"]["userPoolConfigs"]["mfa"] = {"mfaMode": "ON", "settings": {"mfaTypes": ["TOTP"]}}
    bed.apply(backendauth("secure", spec))
    bed.wait_reason("secure", "JobCompleted", status="True")
    del spec["resourceConfig"]["userPoolConfigs"]["mfa"]
    bed.apply(backendauth("secure", spec))
    wait_until(lambda: bed.get("secure")["status"].get("operation") == "UpdateBackendAuth", what="the update")
    bed.wait_reason("secure", "JobCompleted", status="True")
    stored = sim_state(bed)["resources"]["d1a2b3c4d5e6f7/staging/secure"]
    assert stored["userPoolConfigs"]["mfa"]["MFAMode"] == "OFF"

    def reads() -> int:
        return int(bed.calls()["byResource"]["d1a2b3c4d5e6f7/staging/secure"].get("GetBackendAuth", 0))

    before = reads()
    wait_until(lambda: reads() > before, what="a resync")
    assert bed.count("UpdateBackendAuth") == 1, "no drift loop after the removal"


@pytest.mark.parametrize(
    ("path", "block"),
    [(("userPoolConfigs",), "oAuth"), (("userPoolConfigs",), "passwordPolicy"), ((), "identityPoolConfigs")],
)
def test_removing_a_block_aws_would_keep_is_refused_at_apply(
    bed: Bed, path: tuple[str, ...], block: str
) -> None:
    spec = full_spec()
    bed.apply(*social_secrets(), backendauth("kept", spec))
    parent = spec["resourceConfig"]
    for key in path:
        parent = parent[key]
    del parent[block]
    if block == "identityPoolConfigs":
        spec["resourceConfig"]["authResources"] = "USER_POOL_ONLY"
    result = bed.kubectl("apply", "-f", "-", input=yaml.safe_dump(backendauth("kept", spec)), check=False)
    assert result.returncode != 0
    assert f"{block} cannot be removed once set" in result.stderr, result.stderr
