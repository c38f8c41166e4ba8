"""The create path, end to end: the real operator (a subprocess) against the emulated Kubernetes
API and the AmplifyBackend simulator over HTTP, driven with the real kubectl binary.

Set BACKENDAUTH_REPEAT=20 to run the exactly-once tests 20 times each.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from argocd_health import health
from harness import Bed, backendauth, secret, wait_until
from sim import sim_state
from specs import AMAZON_SECRET, APPLE_KEY, FACEBOOK_SECRET, GOOGLE_SECRET, full_spec, minimal_spec

pytestmark = pytest.mark.integration

REPEAT = range(int(os.environ.get("BACKENDAUTH_REPEAT", "1")))


def spec_named(name: str, **overrides: object) -> dict[str, object]:
    """A minimal spec with its own resource name (one auth resource per BackendAuth)."""
    return minimal_spec(resourceName=name.replace("-", ""), **overrides)


def test_happy_path_ends_ready_with_one_create(bed: Bed) -> None:
    bed.apply(backendauth("shop-auth", spec_named("shop-auth")))
    bed.kubectl("wait", "--for=condition=Ready", "backendauth/shop-auth", "--timeout=60s")

    status = bed.get("shop-auth")["status"]
    assert status["status"] == "COMPLETED" and status["operation"] == "CreateBackendAuth"
    assert status["jobId"] and status["error"] == ""
    assert (status["appId"], status["backendEnvironmentName"]) == ("d1a2b3c4d5e6f7", "staging")
    assert status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert [conditions[t]["status"] for t in ("Ready", "Reconciling", "Stalled")] == [
        "True",
        "False",
        "False",
    ]
    assert conditions["Ready"]["reason"] == "JobCompleted"
    assert bed.count("CreateBackendAuth") == 1
    assert health(bed.get("shop-auth"))[0] == "Healthy"
    # One event per job: Submitted; that it completed is the conditions' (Ready, JobCompleted).
    reasons = [e["reason"] for e in bed.events("shop-auth")]
    assert reasons == ["Submitted"]


def test_running_job_status_is_shown_verbatim(bed: Bed) -> None:
    bed.sim_post("hold", {"held": True})
    bed.apply(backendauth("held", spec_named("held")))
    obj = bed.wait_reason("held", "JobInProgress", status="False")
    assert obj["status"]["status"] == "RUNNING"
    assert bed.condition("held", "Reconciling")["status"] == "True"
    assert health(obj) == ("Progressing", f"CreateBackendAuth job {obj['status']['jobId']} is RUNNING")
    job_id = obj["status"]["jobId"]
    bed.sim_post(f"jobs/{job_id}", {"status": "WAITING_FOR_CLOUDFORMATION"})
    wait_until(lambda: bed.get("held")["status"]["status"] == "WAITING_FOR_CLOUDFORMATION", what="odd status")
    bed.sim_post(f"jobs/{job_id}", {"status": "COMPLETED"})
    bed.wait_reason("held", "JobCompleted", status="True")


def test_failed_job_stalls_with_the_job_error(bed: Bed) -> None:
    bed.sim_post("hold", {"held": True})
    bed.apply(backendauth("doomed", spec_named("doomed")))
    job_id = bed.wait_reason("doomed", "JobInProgress")["status"]["jobId"]
    bed.sim_post(f"jobs/{job_id}", {"status": "FAILED", "error": "CloudFormation stack rolled back"})
    obj = bed.wait_reason("doomed", "JobFailed")
    assert bed.condition("doomed", "Stalled")["status"] == "True"
    assert obj["status"]["error"] == "CloudFormation stack rolled back"
    assert health(obj) == ("Degraded", "CloudFormation stack rolled back")
    assert any(e["type"] == "Warning" and e["reason"] == "JobFailed" for e in bed.events("doomed"))


# (fault injected into CreateBackendAuth, the reason shown while it lasts)
RETRYABLE = [
    ("throttle", "Throttled"),
    ("timeout", "AWSUnavailable"),
    ("internal", "AWSUnavailable"),
    ("pending_job", "JobPending"),
    ("access_denied", "AccessDenied"),
    ("not_found", "NotFound"),
]


@pytest.mark.parametrize(("fault", "reason"), RETRYABLE, ids=[f for f, _ in RETRYABLE])
def test_retryable_error_is_retried_until_ready(bed: Bed, fault: str, reason: str) -> None:
    bed.fault(fault, count=10_000)
    bed.apply(backendauth("flaky", spec_named("flaky")))
    obj = bed.wait_reason("flaky", reason, status="False")
    assert bed.condition("flaky", "Reconciling")["status"] == "True"
    assert bed.condition("flaky", "Stalled")["status"] == "False"
    assert obj["status"]["error"], "the AWS message is shown"
    assert health(obj)[0] == "Progressing"
    wait_until(lambda: bed.count("CreateBackendAuth") >= 3, what="several retries")
    bed.clear_faults()
    bed.wait_reason("flaky", "JobCompleted", status="True")
    warnings = [e for e in bed.events("flaky") if e["type"] == "Warning" and e["reason"] == reason]
    assert len(warnings) == 1, "one Warning per reason change, not one per retry"


def test_unknown_app_is_retried_until_the_app_appears(make_bed: Callable[..., Bed]) -> None:
    bed = make_bed(auto_apps=False)
    bed.apply(backendauth("early", spec_named("early")))
    obj = bed.wait_reason("early", "NotFound")
    assert "d1a2b3c4d5e6f7" in obj["status"]["error"]
    bed.sim_post("apps", {"appId": "d1a2b3c4d5e6f7", "backendEnvironmentName": "staging"})
    bed.wait_reason("early", "JobCompleted", status="True")


def test_bad_request_stalls_until_the_spec_changes(bed: Bed) -> None:
    bed.fault("bad_request")
    bed.apply(backendauth("refused", spec_named("refused")))
    obj = bed.wait_reason("refused", "BadRequest")
    assert bed.condition("refused", "Stalled")["status"] == "True"
    assert bed.condition("refused", "Reconciling")["status"] == "False"
    assert "Bad request (simulated)" in obj["status"]["error"]
    assert health(obj)[0] == "Degraded" and "Bad request (simulated)" in health(obj)[1]
    assert bed.count("CreateBackendAuth") == 1
    # A changed spec is a new attempt.
    spec = spec_named("refused")
    spec["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 10}  # type: ignore[index]
    bed.apply(backendauth("refused", spec))
    bed.wait_reason("refused", "JobCompleted", status="True")
    assert bed.count("CreateBackendAuth") == 2
    assert bed.get("refused")["status"]["observedGeneration"] == 2


def test_invalid_spec_stalls_naming_the_field_without_any_aws_call(make_bed: Callable[..., Bed]) -> None:
    bed = make_bed(permissive=True)
    spec = spec_named("typo")
    spec["resourceConfig"]["userPoolConfigs"]["signInMethod"] = "E_MAIL"  # type: ignore[index]
    bed.apply(backendauth("typo", spec))
    obj = bed.wait_reason("typo", "InvalidSpec")
    assert bed.condition("typo", "Stalled")["status"] == "True"
    assert "spec.resourceConfig.userPoolConfigs.signInMethod" in obj["status"]["error"]
    assert health(obj)[0] == "Degraded" and "signInMethod" in health(obj)[1]
    assert bed.calls()["calls"] == []


def test_missing_secret_is_waited_for_and_picked_up(bed: Bed) -> None:
    spec = spec_named("social")
    spec["resourceConfig"]["userPoolConfigs"]["oAuth"] = {  # type: ignore[index]
        "oAuthGrantType": "CODE", "oAuthScopes": ["OPENID"],
        "redirectSignInURIs": ["https://shop.example.com/cb"], "redirectSignOutURIs": ["https://shop.example.com/"],
        "socialProviderSettings": {"google": {"clientId": "g", "clientSecretRef": {"name": "google-oauth",
                                                                                   "key": "clientSecret"}}},
    }  # fmt: skip
    bed.apply(backendauth("social", spec))
    obj = bed.wait_reason("social", "SecretNotFound")
    assert "default/google-oauth" in obj["status"]["error"]
    assert bed.count("CreateBackendAuth") == 0
    bed.apply(secret("google-oauth", {"clientSecret": GOOGLE_SECRET}))
    bed.wait_reason("social", "JobCompleted", status="True")


def test_a_new_object_is_created_unobserved_and_the_operator_still_steps_it(
    make_bed: Callable[..., Bed],
) -> None:
    # The emulated API defaults the status as the real server does (the CRD's default), so that
    # kstatus reads InProgress before the operator has seen the object; the operator must not
    # take that status for its own.
    bed = make_bed(start_operator=False)
    bed.apply(backendauth("fresh", spec_named("fresh")))
    obj = bed.get("fresh")
    assert (obj["metadata"]["generation"], obj["status"]) == (1, {"observedGeneration": 0})
    assert health(obj)[0] == "Progressing"
    bed.operator.start()
    bed.wait_reason("fresh", "JobCompleted", status="True")
    assert bed.get("fresh")["status"]["observedGeneration"] == 1
    assert bed.count("CreateBackendAuth") == 1


def test_paused_backendauth_makes_no_aws_call_until_unpaused(bed: Bed) -> None:
    paused = {"amplifybackend.gitops.dev/paused": "true"}
    bed.apply(backendauth("sleepy", spec_named("sleepy"), annotations=paused))
    assert health(bed.wait_reason("sleepy", "Paused"))[0] == "Suspended"
    assert bed.condition("sleepy", "Reconciling")["status"] == "True"
    assert bed.calls()["calls"] == []
    bed.kubectl("annotate", "backendauth", "sleepy", "amplifybackend.gitops.dev/paused-")
    bed.wait_reason("sleepy", "JobCompleted", status="True")


def test_three_backendauths_on_one_app_and_environment_all_complete(bed: Bed) -> None:
    names = ["one", "two", "three"]
    bed.apply(*[backendauth(n, spec_named(n)) for n in names])
    for name in names:
        bed.wait_reason(name, "JobCompleted", status="True", timeout=60)
    assert bed.count("CreateBackendAuth") == 3
    # They waited their turn inside the operator instead of colliding at AWS.
    assert [c for c in bed.calls()["calls"] if c["errorCode"] == "ValidationException"] == []
    for name in names:
        assert not [e for e in bed.events(name) if e["reason"] in ("Stalled", "BadRequest", "JobFailed")]


def test_secret_values_never_reach_status_events_or_log(bed: Bed) -> None:
    spec = full_spec()
    bed.apply(
        secret("google-oauth", {"clientSecret": GOOGLE_SECRET}),
        secret("lwa", {"secret": AMAZON_SECRET}),
        secret("apple", {"key.p8": APPLE_KEY}),
        backendauth("secretive", spec),
    )
    bed.wait_reason("secretive", "JobCompleted", status="True")
    seen = json.dumps(bed.get("secretive")["status"]) + json.dumps(bed.events("secretive")) + bed.operator.log
    for value in (GOOGLE_SECRET, AMAZON_SECRET, APPLE_KEY, FACEBOOK_SECRET, "MIGTAgEAtestkey"):
        assert value not in seen


def test_inline_secrets_never_reach_the_verbose_log(make_bed: Callable[..., Bed]) -> None:
    bed = make_bed(start_operator=False)
    bed.operator.args = ["--verbose"]  # Kopf logs whole bodies at DEBUG
    bed.operator.start()
    bed.apply(
        secret("google-oauth", {"clientSecret": GOOGLE_SECRET}),
        secret("lwa", {"secret": AMAZON_SECRET}),
        secret("apple", {"key.p8": APPLE_KEY}),
        backendauth("verbose", full_spec()),
    )
    bed.wait_reason("verbose", "JobCompleted", status="True")
    log = bed.operator.log
    assert "[DEBUG" in log, "verbose"
    # Kopf logged whole bodies at DEBUG for its change handlers; with none left (deletion is a
    # step of the operator's own), no body is logged, and the log filter that masks inline
    # values in any that would be is tested in tests/test_logfilters.py.
    for value in (FACEBOOK_SECRET, GOOGLE_SECRET, AMAZON_SECRET, APPLE_KEY):
        assert value not in log


def test_restart_makes_no_aws_call_for_objects_in_sync(bed: Bed) -> None:
    bed.apply(backendauth("settled", spec_named("settled")))
    bed.wait_reason("settled", "JobCompleted", status="True")
    before = bed.calls()["byResource"]["d1a2b3c4d5e6f7/staging/settled"]
    bed.operator.stop()
    bed.operator.start()
    # A sentinel applied after the restart: once it is Ready, the restarted operator has long
    # listed and processed the settled object too.
    bed.apply(backendauth("sentinel", spec_named("sentinel")))
    bed.wait_reason("sentinel", "JobCompleted", status="True")
    assert bed.calls()["byResource"]["d1a2b3c4d5e6f7/staging/settled"] == before


@pytest.mark.parametrize("attempt", REPEAT)
def test_operator_killed_after_the_create_call_creates_once(bed: Bed, attempt: int) -> None:
    # The simulator carries out the create, then holds the answer back: the operator is killed
    # while it waits, after AWS did the work and before any status write. The job still runs
    # when the operator comes back: it is followed, not started again.
    bed.sim_post("hold", {"held": True})
    bed.fault("stall")
    bed.apply(backendauth("crashy", spec_named("crashy")))
    wait_until(lambda: bed.count("CreateBackendAuth") == 1, what="the create call")
    bed.operator.kill()
    obj = bed.get("crashy")
    assert not obj.get("status", {}).get("jobId"), "nothing recorded before the kill"
    assert "amplifybackend.gitops.dev/pending" in obj["metadata"]["annotations"]
    (job,) = [c["jobId"] for c in bed.calls()["calls"] if c["operation"] == "CreateBackendAuth"]
    bed.operator.start()
    wait_until(lambda: "Recovered" in [e["reason"] for e in bed.events("crashy")], what="the recovery")
    bed.sim_post("hold", {"held": False})
    obj = bed.wait_reason("crashy", "JobCompleted", status="True")
    assert obj["status"]["jobId"] == job
    assert bed.count("CreateBackendAuth") == 1
    assert bed.count("ListBackendJobs") >= 1, "the job was looked for, not created again"


@pytest.mark.parametrize("attempt", REPEAT)
def test_operator_killed_after_the_create_call_whose_job_ended_meanwhile_creates_once(
    bed: Bed, attempt: int
) -> None:
    # As above, but the job has ended by the time the operator is back: nothing unfinished to
    # follow, so AWS's state decides (the resource is there: ours, and Ready).
    bed.fault("stall")
    bed.apply(backendauth("ended", spec_named("ended")))
    wait_until(lambda: bed.count("CreateBackendAuth") == 1, what="the create call")
    bed.operator.kill()
    wait_until(lambda: "d1a2b3c4d5e6f7/staging/ended" in sim_state(bed)["resources"], what="the job's effect")
    bed.operator.start()
    bed.kubectl("wait", "--for=condition=Ready", "backendauth/ended", "--timeout=60s")
    assert bed.count("CreateBackendAuth") == 1
    assert bed.count("GetBackendAuth", "ended") >= 1, "AWS was looked at before deciding"


@pytest.mark.parametrize("attempt", REPEAT)
def test_ambiguous_504_after_the_work_was_done_creates_once(bed: Bed, attempt: int) -> None:
    bed.fault("ambiguous")
    bed.apply(backendauth("ambiguous", spec_named("ambiguous")))
    bed.kubectl("wait", "--for=condition=Ready", "backendauth/ambiguous", "--timeout=60s")
    assert bed.count("CreateBackendAuth") == 1
    assert bed.count("ListBackendJobs") >= 1


@pytest.mark.parametrize("attempt", REPEAT)
def test_plain_504_before_the_work_creates_once_after_checking(bed: Bed, attempt: int) -> None:
    bed.fault("timeout")
    bed.apply(backendauth("retimed", spec_named("retimed")))
    bed.wait_reason("retimed", "JobCompleted", status="True")
    creates = [c for c in bed.calls()["calls"] if c["operation"] == "CreateBackendAuth"]
    assert [c["httpStatus"] for c in creates] == [504, 200], "one refused attempt, one that did the work"


def test_metrics_endpoint_counts_calls_retries_and_states(bed: Bed) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bed.operator.stop()
    bed.operator.env["BACKENDAUTH_METRICS_PORT"] = str(port)
    bed.operator.start()
    bed.fault("throttle", count=2)
    bed.apply(backendauth("measured", spec_named("measured")))
    bed.wait_reason("measured", "JobCompleted", status="True")

    def page_shows_ready() -> str | None:
        text = bed.operator.metrics()
        return text if 'backendauth_resources{condition="Ready",reason="JobCompleted"} 1.0' in text else None

    text = wait_until(page_shows_ready, what="the metrics page")
    calls = "backendauth_aws_calls_total"
    assert sample(text, calls, operation="CreateBackendAuth", outcome="Throttled") == 2
    assert sample(text, calls, operation="CreateBackendAuth", outcome="ok") == 1
    assert sample(text, "backendauth_retries_total", reason="Throttled") == 2
    jobs = "backendauth_job_duration_seconds_count"
    assert sample(text, jobs, operation="CreateBackendAuth", result="COMPLETED") == 1
    # One account, the operator's own: every series of these carries it.
    accounts = {
        s.labels["account"]
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name in (calls, jobs)
    }
    assert len(accounts) == 1, accounts


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels`` (whatever the account)."""
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_operator_watching_one_namespace_serves_it_without_cluster_scanning(
    make_bed: Callable[..., Bed],
) -> None:
    bed = make_bed(start_operator=False)
    bed.operator.args = ["--namespace", "default"]
    bed.operator.start()
    bed.apply(backendauth("scoped", spec_named("scoped")))
    bed.wait_reason("scoped", "JobCompleted", status="True")
    assert "Not enough permissions" not in bed.operator.log


@pytest.mark.parametrize("attempt", REPEAT)
def test_ambiguous_504_after_a_recovery_that_found_nothing_still_creates_once(bed: Bed, attempt: int) -> None:
    # First attempt: refused with 504 before any work. Second: recovery finds nothing, the call
    # is made again and AWS does the work but answers 504. Third: recovery finds that job.
    bed.fault("timeout")
    bed.fault("ambiguous")
    bed.apply(backendauth("twice", spec_named("twice")))
    bed.kubectl("wait", "--for=condition=Ready", "backendauth/twice", "--timeout=60s")
    creates = [c for c in bed.calls()["calls"] if c["operation"] == "CreateBackendAuth"]
    assert [(c["httpStatus"], c["fault"]) for c in creates] == [(504, "timeout"), (504, "ambiguous")]


def test_a_backendauth_waiting_for_its_secret_does_not_hold_up_its_app(bed: Bed) -> None:
    social = spec_named("needy")
    social["resourceConfig"]["userPoolConfigs"]["oAuth"] = {  # type: ignore[index]
        "oAuthGrantType": "CODE", "oAuthScopes": ["OPENID"],
        "redirectSignInURIs": ["https://shop.example.com/cb"], "redirectSignOutURIs": ["https://shop.example.com/"],
        "socialProviderSettings": {"google": {"clientId": "g",
                                              "clientSecretRef": {"name": "absent", "key": "k"}}},
    }  # fmt: skip
    bed.apply(backendauth("needy", social))
    bed.wait_reason("needy", "SecretNotFound")
    bed.apply(backendauth("other", spec_named("other")))  # same app and environment
    bed.wait_reason("other", "JobCompleted", status="True")
    assert bed.condition("needy")["reason"] == "SecretNotFound"
