"""The operator (``backendauth-operator run``, a subprocess) against a real kube-apiserver, with
the AmplifyBackend simulator: the scenarios of test_create_path.py and test_lifecycle.py that
depend most on the API server (status subresource, finalizers, Events, Leases, kubectl's
printing), on a :class:`real_apiserver.RealBed` in a namespace of its own.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from argocd_health import health
from harness import backendauth, wait_until
from real_apiserver import RealBed
from specs import minimal_spec

pytestmark = [pytest.mark.real_apiserver, pytest.mark.integration]

PAUSED = "amplifybackend.gitops.dev/paused"


def spec_named(name: str, **overrides: Any) -> dict[str, Any]:
    """A minimal spec with its own resource name (one auth resource per BackendAuth)."""
    return minimal_spec(resourceName=name.replace("-", ""), **overrides)


def table(output: str) -> list[list[str]]:
    """kubectl's table output as rows of cells (columns are separated by 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


def test_happy_path_is_ready_with_one_create_and_kubectl_shows_it(real_bed: RealBed) -> None:
    bed = real_bed
    bed.apply(backendauth("shop-auth", spec_named("shop-auth")))
    waited = bed.kubectl("wait", "--for=condition=Ready", "backendauth/shop-auth", "--timeout=60s")
    assert "condition met" in waited.stdout

    obj = bed.get("shop-auth")
    status = obj["status"]
    assert status["status"] == "COMPLETED" and status["operation"] == "CreateBackendAuth"
    assert status["jobId"] and status["observedGeneration"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert [conditions[t]["status"] for t in ("Ready", "Reconciling", "Stalled")] == [
        "True",
        "False",
        "False",
    ]
    assert conditions["Ready"]["reason"] == "JobCompleted"
    assert bed.count("CreateBackendAuth") == 1
    assert health(obj)[0] == "Healthy"
    assert not obj["metadata"].get("finalizers"), "deletionPolicy Retain (the default) needs no finalizer"
    # Delete does: Kopf adds it as soon as the policy says so, without an AWS call.
    bed.kubectl(
        "patch", "backendauth", "shop-auth", "--type=merge", "-p", '{"spec":{"deletionPolicy":"Delete"}}'
    )
    wait_until(lambda: bed.get("shop-auth")["metadata"].get("finalizers"), 60, "the finalizer")
    assert bed.count("CreateBackendAuth") == 1 and bed.count("UpdateBackendAuth") == 0

    rows = table(bed.kubectl("get", "backendauths").stdout)
    assert rows[0] == ["NAME", "APP", "ENV", "STATUS", "READY", "AGE"]
    assert rows[1][:5] == ["shop-auth", "d1a2b3c4d5e6f7", "staging", "COMPLETED", "True"]
    wide = table(bed.kubectl("get", "backendauth", "shop-auth", "-o", "wide").stdout)
    assert wide[0] == ["NAME", "APP", "ENV", "STATUS", "READY", "AGE", "JOB", "REASON", "ERROR", "ACCOUNT"]
    # ERROR is empty, so the row's last cell is the account: the operator's own (the simulator's
    # account for credentials it did not issue).
    assert wide[1][6:8] == [status["jobId"], "JobCompleted"] and wide[1][-1] == status["awsAccountId"]
    assert status["awsAccountId"] == "000000000000"

    described = bed.kubectl("describe", "backendauth", "shop-auth").stdout
    events = described[described.index("Events:") :]
    assert "Submitted" in events, described
    # One event per job: that it completed is the conditions' (Ready, JobCompleted), above.
    reasons = [e["reason"] for e in bed.events("shop-auth")]
    assert reasons == ["Submitted"]


def test_spec_change_after_creation_sends_an_update(real_bed: RealBed) -> None:
    bed = real_bed
    bed.apply(backendauth("grown", spec_named("grown")))
    bed.wait_reason("grown", "JobCompleted", status="True", timeout=60)
    spec = spec_named("grown")
    spec["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 14}
    bed.apply(backendauth("grown", spec))
    wait_until(lambda: bed.get("grown")["status"].get("operation") == "UpdateBackendAuth", 60, "the update")
    bed.wait_reason("grown", "JobCompleted", status="True", timeout=60)
    status = bed.get("grown")["status"]
    assert status["observedGeneration"] == 2 and status["operation"] == "UpdateBackendAuth"
    assert (bed.count("CreateBackendAuth"), bed.count("UpdateBackendAuth")) == (1, 1)


def test_three_backendauths_on_one_app_take_turns_through_leases(real_bed: RealBed) -> None:
    bed = real_bed
    names = ["one", "two", "three"]
    bed.apply(*[backendauth(n, spec_named(n)) for n in names])
    for name in names:
        bed.wait_reason(name, "JobCompleted", status="True", timeout=90)
    assert bed.count("CreateBackendAuth") == 3
    assert [c for c in bed.calls()["calls"] if c["errorCode"] == "ValidationException"] == []
    for name in names:
        assert not [e for e in bed.events(name) if e["reason"] in ("Stalled", "BadRequest", "JobFailed")]
    # The turns are coordination.k8s.io Leases in the operator's Lease namespace (the bed's).
    leases = json.loads(bed.kubectl("get", "leases", "-n", bed.namespace, "-o", "json").stdout)["items"]
    assert leases, "the operator took its turns through Leases"

    def all_released() -> bool:
        items = json.loads(bed.kubectl("get", "leases", "-n", bed.namespace, "-o", "json").stdout)["items"]
        return all(not lease["spec"].get("holderIdentity") for lease in items)

    wait_until(all_released, 30, "every turn to be given back")


def test_paused_backendauth_makes_no_aws_call_until_unpaused(real_bed: RealBed) -> None:
    bed = real_bed
    bed.apply(backendauth("sleepy", spec_named("sleepy"), annotations={PAUSED: "true"}))
    obj = bed.wait_reason("sleepy", "Paused", timeout=60)
    assert health(obj)[0] == "Suspended"
    assert bed.condition("sleepy", "Reconciling")["status"] == "True"
    assert bed.calls()["calls"] == []
    bed.kubectl("annotate", "backendauth", "sleepy", f"{PAUSED}-")
    bed.wait_reason("sleepy", "JobCompleted", status="True", timeout=60)
    assert bed.count("CreateBackendAuth") == 1


def test_delete_policy_removes_the_auth_resource_before_the_object_goes(real_bed: RealBed) -> None:
    bed = real_bed
    bed.apply(backendauth("doomed", spec_named("doomed", deletionPolicy="Delete")))
    bed.wait_reason("doomed", "JobCompleted", status="True", timeout=60)
    assert any(key.endswith("/doomed") for key in bed.state()["resources"])
    bed.sim_post("hold", {"held": True})  # the delete job stays RUNNING until released
    bed.kubectl("delete", "backendauth", "doomed", "--wait=false")
    wait_until(lambda: bed.count("DeleteBackendAuth") == 1, 60, "the DeleteBackendAuth call")
    held = bed.get("doomed")
    assert held["metadata"].get("deletionTimestamp") and held["metadata"]["finalizers"], (
        "the object stays while AWS's delete job runs"
    )
    bed.sim_post("hold", {"held": False})
    wait_until(
        lambda: bed.kubectl("get", "backendauth", "doomed", check=False).returncode != 0,
        60,
        "the object to go",
    )
    assert bed.count("DeleteBackendAuth") == 1
    assert not any(key.endswith("/doomed") for key in bed.state()["resources"])


def test_operator_killed_after_the_create_call_follows_the_job_and_creates_once(real_bed: RealBed) -> None:
    bed = real_bed
    # The simulator does the create, then holds the answer back; the operator is SIGKILLed while
    # it waits, after AWS did the work and before any status write. The job is still running
    # when the operator is back: it is followed, not started again.
    bed.sim_post("hold", {"held": True})
    bed.fault("stall")
    bed.apply(backendauth("crashy", spec_named("crashy")))
    wait_until(lambda: bed.count("CreateBackendAuth") == 1, 60, "the create call")
    bed.operator.kill()
    obj = bed.get("crashy")
    assert not obj.get("status", {}).get("jobId"), "nothing recorded before the kill"
    assert "amplifybackend.gitops.dev/pending" in obj["metadata"]["annotations"]
    (job,) = [c["jobId"] for c in bed.calls()["calls"] if c["operation"] == "CreateBackendAuth"]
    bed.operator.start()
    wait_until(lambda: "Recovered" in [e["reason"] for e in bed.events("crashy")], 60, "the recovery")
    bed.sim_post("hold", {"held": False})
    obj = bed.wait_reason("crashy", "JobCompleted", status="True", timeout=60)
    assert obj["status"]["jobId"] == job
    assert bed.count("CreateBackendAuth") == 1
    assert bed.count("ListBackendJobs") >= 1, "the job was looked for, not created again"


def test_operator_killed_after_the_create_call_whose_job_ended_creates_once(real_bed: RealBed) -> None:
    bed = real_bed
    bed.fault("stall")
    bed.apply(backendauth("ended", spec_named("ended")))
    wait_until(lambda: bed.count("CreateBackendAuth") == 1, 60, "the create call")
    bed.operator.kill()
    wait_until(lambda: any(k.endswith("/ended") for k in bed.state()["resources"]), 30, "the job's effect")
    bed.operator.start()
    # Ready with whatever reason AWS's state gives (nothing unfinished to follow): what matters
    # is that AWS was not asked twice.
    bed.kubectl("wait", "--for=condition=Ready", "backendauth/ended", "--timeout=60s")
    assert bed.count("CreateBackendAuth") == 1
    assert bed.count("GetBackendAuth", "ended") >= 1, "AWS was looked at before deciding"


def test_argocd_health_of_live_objects_follows_the_job(real_bed: RealBed) -> None:
    bed = real_bed
    bed.sim_post("hold", {"held": True})
    bed.apply(backendauth("watched", spec_named("watched")))
    obj = bed.wait_reason("watched", "JobInProgress", status="False", timeout=60)
    job_id = obj["status"]["jobId"]
    assert health(obj) == ("Progressing", f"CreateBackendAuth job {job_id} is RUNNING")
    bed.sim_post(f"jobs/{job_id}", {"status": "FAILED", "error": "CloudFormation stack rolled back"})
    obj = bed.wait_reason("watched", "JobFailed", timeout=60)
    assert health(obj) == ("Degraded", "CloudFormation stack rolled back")
    assert any(e["type"] == "Warning" and e["reason"] == "JobFailed" for e in bed.events("watched"))
