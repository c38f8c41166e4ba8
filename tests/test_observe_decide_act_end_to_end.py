"""Observe, decide, act, end to end: Ready only when AWS shows the auth resource; a lost answer
never takes a sibling's job; a turn is held only while a call or its job is in flight; a job
that never ends stops being polled; adoption of what AWS already has."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness import Bed, backendauth, secret, wait_until
from sim import create_jobs, sim_state
from specs import minimal_spec

pytestmark = pytest.mark.integration

PAUSED = "amplifybackend.gitops.dev/paused"
REQUEST = "amplifybackend.gitops.dev/reconcile-requested-at"


def on_shared_app(name: str, **overrides: object) -> dict[str, Any]:
    return backendauth(name, minimal_spec(appId="sharedapp", resourceName=name.replace("-", ""), **overrides))


def test_a_lost_answer_never_takes_a_siblings_job(bed: Bed) -> None:
    """A plain 504 (nothing done) right after a sibling's create on the same app/env: the job
    list shows the sibling's fresh job, which must not be taken for ours."""
    bed.apply(on_shared_app("first"))
    bed.wait_reason("first", "JobCompleted", status="True")
    bed.fault("timeout", "CreateBackendAuth")
    bed.apply(on_shared_app("second"))
    obj = bed.wait_reason("second", "JobCompleted", status="True")
    mine = create_jobs(bed, "second")
    assert len(mine) == 1, mine
    assert obj["status"]["jobId"] == mine[0]["jobId"]
    assert "sharedapp/staging/second" in sim_state(bed)["resources"]


def test_ready_needs_the_resource_in_aws_not_just_a_completed_job(bed: Bed) -> None:
    """The job says COMPLETED, but AWS has no auth resource: ResourceMissing, then created again."""
    bed.sim_post("hold", {"held": True})
    bed.apply(on_shared_app("phantom"))
    job_id = bed.wait_reason("phantom", "JobInProgress")["status"]["jobId"]
    # The job completes, but its effect is gone before anyone looks (removed behind our back).
    bed.sim_post(f"jobs/{job_id}", {"status": "COMPLETED"})
    body = {"appId": "sharedapp", "backendEnvironmentName": "staging", "resourceName": "phantom"}
    bed.sim_post("resources", {**body, "resourceConfig": None})
    bed.sim_post("hold", {"held": False})
    wait_until(
        lambda: any(e["reason"] == "ResourceMissing" for e in bed.events("phantom")), what="ResourceMissing"
    )
    obj = bed.wait_reason("phantom", "JobCompleted", status="True")
    assert "sharedapp/staging/phantom" in sim_state(bed)["resources"]
    assert obj["status"]["jobId"] != job_id
    assert "lastObservedAt" not in obj["status"], "no read time in the status"


def test_a_paused_backendauth_after_a_retryable_failure_does_not_hold_up_its_app(bed: Bed) -> None:
    bed.fault("access_denied", "CreateBackendAuth", count=1000)
    bed.apply(on_shared_app("stuck"))
    bed.wait_reason("stuck", "AccessDenied")
    bed.kubectl("annotate", "backendauth", "stuck", f"{PAUSED}=true")
    bed.wait_reason("stuck", "Paused")
    bed.clear_faults()
    bed.apply(on_shared_app("next"))
    bed.wait_reason("next", "JobCompleted", status="True")
    assert create_jobs(bed, "stuck") == []


def test_a_job_that_never_ends_stalls_and_a_reconcile_request_looks_again(
    make_bed: Callable[..., Bed],
) -> None:
    bed = make_bed(start_operator=False)
    bed.operator.env["BACKENDAUTH_JOB_TIMEOUT_SECONDS"] = "2"
    bed.operator.start()
    bed.sim_post("hold", {"held": True})
    bed.apply(on_shared_app("slow"))
    obj = bed.wait_reason("slow", "JobTimedOut")
    job_id = obj["status"]["jobId"]
    assert job_id in bed.condition("slow", "Stalled")["message"]
    assert bed.condition("slow", "Stalled")["status"] == "True"
    polls = bed.count("GetBackendJob")
    bed.sim_post("hold", {"held": False})
    bed.kubectl("annotate", "backendauth", "slow", f"{REQUEST}=now")
    obj = bed.wait_reason("slow", "JobCompleted", status="True")
    assert obj["status"]["jobId"] == job_id and obj["status"]["lastHandledReconcileAt"] == "now"
    assert bed.count("GetBackendJob") > polls
    assert len(create_jobs(bed, "slow")) == 1


def studio_config(**user_pool: Any) -> dict[str, Any]:
    """An auth resource as Amplify Studio would have made it (wire form)."""
    pool = {"userPoolName": "shopusers", "signInMethod": "EMAIL", "requiredSignUpAttributes": ["EMAIL"]}
    return {"authResources": "USER_POOL_ONLY", "service": "COGNITO", "userPoolConfigs": {**pool, **user_pool}}


def test_an_existing_auth_resource_is_not_taken_over_by_default(bed: Bed) -> None:
    config = studio_config()
    body = {"appId": "sharedapp", "backendEnvironmentName": "staging", "resourceName": "studio"}
    bed.sim_post("resources", {**body, "resourceConfig": config})
    bed.apply(on_shared_app("studio"))
    obj = bed.wait_reason("studio", "AlreadyExists")
    assert bed.condition("studio", "Stalled")["status"] == "True"
    assert "adoptionPolicy: AdoptOrCreate" in obj["status"]["error"]
    assert bed.count("CreateBackendAuth") == 0


def test_adopt_or_create_takes_over_with_no_create_and_corrects_what_differs(bed: Bed) -> None:
    config = studio_config(passwordPolicy={"minimumLength": 8})
    body = {"appId": "sharedapp", "backendEnvironmentName": "staging", "resourceName": "adopted"}
    bed.sim_post("resources", {**body, "resourceConfig": config})
    manifest = on_shared_app("adopted", adoptionPolicy="AdoptOrCreate")
    manifest["spec"]["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 12}
    bed.apply(manifest)
    obj = bed.wait_reason("adopted", "JobCompleted", status="True")
    assert bed.count("CreateBackendAuth") == 0 and bed.count("UpdateBackendAuth") == 1
    assert obj["status"]["operation"] == "UpdateBackendAuth"
    stored = sim_state(bed)["resources"]["sharedapp/staging/adopted"]
    assert stored["userPoolConfigs"]["passwordPolicy"]["minimumLength"] == 12
    assert "Adopted" in [e["reason"] for e in bed.events("adopted")]


@pytest.mark.parametrize(
    ("value", "words"), [("", "holds 0 characters"), ("x" * 5000, "holds 5000 characters")]
)
def test_a_secret_value_outside_the_inline_limits_is_refused_with_the_secret_named(
    bed: Bed, value: str, words: str
) -> None:
    spec = minimal_spec(resourceName="oddsecret")
    spec["resourceConfig"]["userPoolConfigs"]["oAuth"] = {
        "oAuthGrantType": "CODE", "oAuthScopes": ["OPENID"],
        "redirectSignInURIs": ["https://shop.example.com/cb"], "redirectSignOutURIs": ["https://shop.example.com/"],
        "socialProviderSettings": {"google": {"clientId": "g", "clientSecretRef": {"name": "odd",
                                                                                   "key": "k"}}},
    }  # fmt: skip
    bed.apply(secret("odd", {"k": value}), backendauth("oddsecret", spec))
    obj = bed.wait_reason("oddsecret", "SecretUnreadable")
    assert "Secret default/odd key 'k'" in obj["status"]["error"] and words in obj["status"]["error"]
    assert bed.count("CreateBackendAuth") == 0
    bed.apply(secret("odd", {"k": "a-fine-secret"}))
    bed.wait_reason("oddsecret", "JobCompleted", status="True")


def test_created_with_a_reconcile_request_already_set_is_reconciled_and_echoed(bed: Bed) -> None:
    bed.apply(
        backendauth("eager", minimal_spec(resourceName="eager"), annotations={REQUEST: "from-the-start"})
    )
    obj = bed.wait_reason("eager", "JobCompleted", status="True")
    wait_until(
        lambda: bed.get("eager")["status"].get("lastHandledReconcileAt") == "from-the-start", what="echo"
    )
    assert len(create_jobs(bed, "eager")) == 1 and obj["status"]["jobId"]


@pytest.mark.parametrize(
    ("annotation", "value"),
    [("job", "not json"), ("pending", "{"), ("job", "[]"), ("failures", '{"count": -1}')],
)
def test_an_operator_annotation_edited_by_hand_is_named_in_a_clear_condition(
    bed: Bed, annotation: str, value: str
) -> None:
    bed.apply(backendauth("edited", minimal_spec(resourceName="edited")))
    bed.wait_reason("edited", "JobCompleted", status="True")
    key = f"amplifybackend.gitops.dev/{annotation}"
    bed.kubectl("annotate", "--overwrite", "backendauth", "edited", f"{key}={value}")
    bed.kubectl("annotate", "--overwrite", "backendauth", "edited", f"{REQUEST}=look")
    obj = bed.wait_reason("edited", "BadAnnotation")
    assert key in obj["status"]["error"] and bed.condition("edited", "Stalled")["status"] == "True"
    assert "Traceback" not in bed.operator.log
    bed.kubectl("annotate", "backendauth", "edited", f"{key}-")  # removed: the operator starts over
    bed.kubectl("annotate", "--overwrite", "backendauth", "edited", f"{REQUEST}=again")
    # Without the job record, AWS's state still says it all: Ready (InSync), with no call.
    bed.kubectl("wait", "--for=condition=Ready", "backendauth/edited", "--timeout=60s")
    assert len(create_jobs(bed, "edited")) == 1 and bed.count("UpdateBackendAuth") == 0


def test_created_annotation_on_a_new_object_does_not_loop(bed: Bed) -> None:
    annotations = {"amplifybackend.gitops.dev/created": "true"}
    bed.apply(backendauth("claims", minimal_spec(resourceName="claims"), annotations=annotations))
    bed.wait_reason("claims", "JobCompleted", status="True")
    assert len(create_jobs(bed, "claims")) == 1
