"""The executor against a fake of its effects (AWS and the Kubernetes reads): no processes.

Each test reads an object, runs :func:`execute` to its outcome, and checks what was called and
what the outcome writes; the decision itself is :func:`decide`'s, tabled in test_decide.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from backendauth_operator import FINALIZER
from backendauth_operator.aws.amplify import Resource
from backendauth_operator.config import Settings
from backendauth_operator.core.bookkeeping import (
    CREATE,
    CREATED,
    DELETE,
    DELETE_JOB,
    JOB,
    PENDING,
    Job,
    Marker,
)
from backendauth_operator.core.decide import (
    Accepted,
    Finish,
    NotSent,
    ReadAgain,
    Rejected,
    Settle,
    Snapshot,
    Stale,
    Submitted,
    TurnTaken,
    Wait,
    Withheld,
)
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.models import create_backend_auth_kwargs, parse_spec
from backendauth_operator.kube.writer import Written
from backendauth_operator.runtime.executor import execute
from backendauth_operator.runtime.reading import read
from specs import minimal_spec

SETTINGS = Settings(default_region="eu-west-1")
NOW = 1_800_000_000.0
ME = "default/auth/uid-1"
SPEC = minimal_spec()
CONFIG = create_backend_auth_kwargs(parse_spec(SPEC), lambda ref: "")["ResourceConfig"]
THROTTLED = Failure("Throttled", True, "TooManyRequestsException: slow down")
AMBIGUOUS = Failure("AWSUnavailable", True, "AWS did not answer", ambiguous=True)


def obj(
    annotations: dict[str, str] | None = None, deleting: bool = False, held: bool = False, **spec: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "default", "name": "auth", "uid": "uid-1", "generation": 1}
    meta["annotations"] = annotations or {}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if held:
        meta["finalizers"] = [FINALIZER]
    return {"metadata": meta, "spec": {**SPEC, **spec}, "status": {}}


@dataclass
class FakeEffects:
    """AWS as a resource config and jobs by id; the turn as one holder; calls recorded."""

    resource_config: dict[str, Any] | None = None
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> status
    unfinished: Job | None = None
    holder: str | None = None
    held_by: str | None = None  # another operator process holding this object's turn
    submit_answer: Submitted | None = None
    read_failure: Failure | None = None
    calls: list[str] = field(default_factory=list)
    own: str = ""  # the operator's own account, as sts:GetCallerIdentity would say
    leads: bool = True  # whether this process still leads when the step is about to write
    foreign_hold: bool = False  # give_back leaves another process's hold of this object
    auth_outputs: dict[str, str] | Failure = field(default_factory=lambda: {"userPoolId": "eu-west-1_x"})
    written: Written = field(default_factory=lambda: Written(shown=True, wrote=True))
    writes: list[tuple[Settle | Wait | Finish, dict[str, str] | Failure | None]] = field(default_factory=list)

    def own_account(self) -> str:
        return self.own

    def turn_holder(self, s: Snapshot) -> str | None:
        self.calls.append("turn_holder")
        return self.holder

    def held_elsewhere(self, s: Snapshot) -> str | None:
        self.calls.append("held_elsewhere")
        return self.held_by

    def secrets_digest(self, s: Snapshot) -> str | None:
        self.calls.append("secrets_digest")
        return ""

    def poll_job(self, s: Snapshot, job: Job) -> Job | Failure:
        self.calls.append("poll_job")
        return self.read_failure or job.answered({"Status": self.jobs[job.id]})

    def unfinished_job(self, s: Snapshot) -> tuple[Job, str | None] | Failure | None:
        self.calls.append("unfinished_job")
        return (self.unfinished, self.holder) if self.unfinished else None

    def resource(self, s: Snapshot) -> Resource | Failure:
        self.calls.append("resource")
        return self.read_failure or Resource(self.resource_config)

    def submit(self, s: Snapshot, operation: str) -> Submitted:
        self.calls.append(operation)
        marker = Marker(operation, NOW, s.generation, s.fingerprint)
        return self.submit_answer or Accepted(Job("job-1", operation, "RUNNING", s.app, s.env), marker)

    def delete(self, s: Snapshot) -> Submitted:
        self.calls.append(DELETE)
        return self.submit_answer or Accepted(Job("del-1", DELETE, "RUNNING", s.app, s.env))

    def leading(self) -> bool:
        self.calls.append("leading")
        return self.leads

    def give_back(self, s: Snapshot, fenced: bool = False) -> bool:
        self.calls.append("release_fenced" if fenced else "release")
        return self.foreign_hold and not fenced

    def outputs(self, s: Snapshot) -> dict[str, str] | Failure:
        self.calls.append("outputs")
        return self.auth_outputs

    def write(
        self, s: Snapshot, outcome: Settle | Wait | Finish, outputs: dict[str, str] | Failure | None
    ) -> Written:
        self.calls.append("write")
        self.writes.append((outcome, outputs))
        return self.written


def run(
    body: dict[str, Any], fake: FakeEffects, **read_kw: Any
) -> tuple[Snapshot, Settle | Wait | ReadAgain | Finish]:
    return execute(read(body, SETTINGS, NOW, **read_kw), fake)


def settled(body: dict[str, Any], fake: FakeEffects) -> Settle:
    _, outcome = run(body, fake)
    assert isinstance(outcome, Settle), outcome
    return outcome


def test_a_new_object_is_observed_then_created_once() -> None:
    fake = FakeEffects()
    outcome = settled(obj(), fake)
    assert fake.calls == ["resource", CREATE]
    assert outcome.state is not None and outcome.state.reason == "JobInProgress"
    assert outcome.annotations[CREATED] == "true" and outcome.annotations[PENDING] is None
    assert json.loads(str(outcome.annotations[JOB]))["id"] == "job-1"
    assert [n.reason for n in outcome.notes] == ["Submitted"]


def test_a_completed_job_with_aws_as_asked_is_ready_and_publishes_outputs() -> None:
    fingerprint = read(obj(), SETTINGS, NOW).fingerprint
    job = Job("job-1", CREATE, "RUNNING", "d1a2b3c4d5e6f7", "staging", generation=1, fingerprint=fingerprint)
    fake = FakeEffects(resource_config=CONFIG, jobs={"job-1": "COMPLETED"})
    body = obj({JOB: job.to_annotation(), CREATED: "true"})
    outcome = settled(body, fake)
    assert fake.calls == ["poll_job", "resource"]
    assert outcome.state is not None and outcome.state.phase == "ready"
    assert outcome.outputs and outcome.release


def test_a_job_still_running_reads_nothing_else() -> None:
    job = Job("job-1", CREATE, "RUNNING", "d1a2b3c4d5e6f7", "staging", submitted_at=NOW - 5)
    fake = FakeEffects(jobs={"job-1": "RUNNING"})
    outcome = settled(obj({JOB: job.to_annotation()}), fake)
    assert fake.calls == ["poll_job"]
    assert outcome.state is not None and outcome.state.reason == "JobInProgress" and not outcome.release


def test_a_lost_answer_with_another_holders_job_waits_with_backoff() -> None:
    marker = Marker(CREATE, NOW - 10, 1, "")
    fake = FakeEffects(unfinished=Job("x", CREATE, "RUNNING", "a", "e"), holder="default/other/uid-2")
    outcome = settled(obj({PENDING: marker.to_annotation()}), fake)
    assert fake.calls == ["held_elsewhere", "unfinished_job"]
    assert outcome.state is not None and outcome.state.reason == "JobPending"
    assert outcome.backoff == "JobPending" and "default/other" in outcome.state.message


def test_a_lost_answer_with_our_job_running_is_recovered_not_sent_again() -> None:
    marker = Marker(CREATE, NOW - 10, 1, "")
    fake = FakeEffects(unfinished=Job("x", CREATE, "RUNNING", "a", "e"), holder=ME)
    outcome = settled(obj({PENDING: marker.to_annotation()}), fake)
    assert fake.calls == ["held_elsewhere", "unfinished_job", "resource"]
    assert [n.reason for n in outcome.notes] == ["Recovered"]
    assert outcome.annotations[PENDING] is None


def test_a_throttled_create_backs_off_and_gives_the_turn_back() -> None:
    fake = FakeEffects(submit_answer=Rejected(THROTTLED, Marker(CREATE, NOW, 1)))
    outcome = settled(obj(), fake)
    assert outcome.state is not None and outcome.state.reason == "Throttled"
    assert outcome.backoff == "Throttled" and outcome.release and outcome.annotations[PENDING] is None


def test_an_ambiguous_create_keeps_the_marker_and_the_turn() -> None:
    marker = Marker(CREATE, NOW, 1)
    fake = FakeEffects(submit_answer=Rejected(AMBIGUOUS, marker))
    outcome = settled(obj(), fake)
    assert outcome.annotations[PENDING] == marker.to_annotation() and not outcome.release


def test_a_refused_create_stalls() -> None:
    refused = Failure("BadRequest", False, "BadRequestException: no")
    outcome = settled(obj(), FakeEffects(submit_answer=Rejected(refused, Marker(CREATE, NOW, 1))))
    assert outcome.state is not None and outcome.state.phase == "stalled" and outcome.backoff is None


def test_another_holder_of_the_turn_is_waited_for_without_backoff() -> None:
    outcome = settled(obj(), FakeEffects(submit_answer=TurnTaken("default/other")))
    assert outcome.state is not None and outcome.state.reason == "JobPending"
    assert outcome.backoff is None and outcome.event is None


def test_a_missing_secret_is_retried_soon() -> None:
    missing = Failure("SecretNotFound", True, "Secret default/x not found")
    outcome = settled(obj(), FakeEffects(submit_answer=NotSent(missing)))
    assert outcome.backoff == "SecretNotFound" and outcome.backoff_cap == 30.0 and outcome.release


def test_a_failed_read_backs_off_without_a_call() -> None:
    fake = FakeEffects(read_failure=THROTTLED)
    outcome = settled(obj(), fake)
    assert fake.calls == ["resource"] and outcome.backoff == "Throttled"


def test_a_backoff_not_yet_over_waits_with_no_call() -> None:
    fake = FakeEffects()
    failures = json.dumps({"count": 1, "notBefore": NOW + 60})
    _, outcome = run(obj({"amplifybackend.gitops.dev/failures": failures}), fake)
    assert isinstance(outcome, Wait) and fake.calls == []


def test_a_lost_answer_while_another_operator_holds_the_objects_turn_calls_nothing() -> None:
    marker = Marker(CREATE, NOW - 10, 1, "")
    fake = FakeEffects(held_by="pod-a", unfinished=Job("x", CREATE, "RUNNING", "a", "e"))
    outcome = settled(obj({PENDING: marker.to_annotation()}), fake)
    assert fake.calls == ["held_elsewhere"]
    assert outcome.state is not None and outcome.state.reason == "JobPending"
    assert "pod-a" in outcome.state.message and not outcome.release and PENDING not in outcome.annotations


def test_a_refused_marker_sends_nothing_and_reads_again() -> None:
    fake = FakeEffects(submit_answer=Stale())
    _, outcome = run(obj(), fake)
    assert fake.calls == ["resource", CREATE]  # the fake's submit stands for the marker's write
    assert isinstance(outcome, ReadAgain) and outcome.release


def test_a_call_withheld_after_the_marker_removes_it_and_reads_again() -> None:
    marker = Marker(CREATE, NOW, 1)
    outcome = settled(obj(), FakeEffects(submit_answer=Withheld("this operator no longer leads", marker)))
    assert outcome.state is None and outcome.again and outcome.release
    assert outcome.annotations[PENDING] is None


def test_a_submit_carries_the_version_its_marker_made_into_the_snapshot() -> None:
    marker = Marker(CREATE, NOW, 1)
    accepted = Accepted(Job("job-1", CREATE, "RUNNING", "a", "e"), marker, version="42")
    s, _ = run(obj(), FakeEffects(submit_answer=accepted))
    assert s.version == "42" and s.annotations[PENDING] == marker.to_annotation() and s.sent


def test_a_standby_reads_again_without_any_call() -> None:
    fake = FakeEffects()
    s = replace(read(obj(), SETTINGS, NOW), leading=False)
    _, outcome = execute(s, fake)
    assert isinstance(outcome, ReadAgain) and fake.calls == []


def test_waiting_for_a_turn_reads_the_lease_and_not_aws() -> None:
    body = obj()
    body["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "JobPending"}]}
    fake = FakeEffects(holder="default/other/uid-2")
    outcome = settled(body, fake)
    assert fake.calls == ["turn_holder"]
    assert outcome.state is not None and outcome.state.reason == "JobPending"


# ---- carrying the outcome out: the same loop ------------------------------------------------------


def live(
    body: dict[str, Any], fake: FakeEffects, **kw: Any
) -> tuple[Snapshot, Settle | Wait | ReadAgain | Finish]:
    """A live step: the executor also gives the turn back, reads the outputs and writes."""
    return execute(replace(read(body, SETTINGS, NOW), carry_out=True, **kw), fake)


def ready_job_body() -> dict[str, Any]:
    fingerprint = read(obj(), SETTINGS, NOW).fingerprint
    job = Job("job-1", CREATE, "RUNNING", "d1a2b3c4d5e6f7", "staging", generation=1, fingerprint=fingerprint)
    return obj({JOB: job.to_annotation(), CREATED: "true"})


def test_a_new_object_is_created_then_its_outcome_written_once() -> None:
    fake = FakeEffects()
    s, outcome = live(obj(), fake)
    assert fake.calls == ["resource", CREATE, "leading", "write"]
    assert isinstance(outcome, Settle) and fake.writes == [(outcome, None)] and s.written and s.wrote


def test_ready_gives_the_turn_back_then_reads_the_outputs_then_writes_them() -> None:
    fake = FakeEffects(resource_config=CONFIG, jobs={"job-1": "COMPLETED"})
    _, outcome = live(ready_job_body(), fake)
    assert fake.calls == ["poll_job", "resource", "leading", "release", "outputs", "write"]
    assert isinstance(outcome, Settle) and outcome.state is not None and outcome.state.phase == "ready"
    assert fake.writes == [(outcome, {"userPoolId": "eu-west-1_x"})]


def test_outputs_that_cannot_be_read_are_read_again_by_the_next_observation() -> None:
    fake = FakeEffects(resource_config=CONFIG, jobs={"job-1": "COMPLETED"}, auth_outputs=THROTTLED)
    _, outcome = live(ready_job_body(), fake)
    assert isinstance(outcome, Settle) and outcome.job is not None and outcome.job.outputs_for == ""
    assert fake.writes == [(outcome, THROTTLED)]


def test_a_refused_write_reads_again_and_gives_nothing_more_back() -> None:
    fake = FakeEffects(resource_config=CONFIG, jobs={"job-1": "COMPLETED"}, foreign_hold=True)
    fake.written = Written(conflicted=True)
    s, outcome = live(ready_job_body(), fake)
    assert isinstance(outcome, ReadAgain) and s.stale
    assert fake.calls == ["poll_job", "resource", "leading", "release", "outputs", "write"]


def test_another_processs_hold_goes_only_after_accepted_writes() -> None:
    fake = FakeEffects(resource_config=CONFIG, jobs={"job-1": "COMPLETED"}, foreign_hold=True)
    s, outcome = live(ready_job_body(), fake)
    assert isinstance(outcome, Settle) and s.fenced_released
    assert fake.calls == ["poll_job", "resource", "leading", "release", "outputs", "write", "release_fenced"]


def test_a_hold_is_kept_when_the_writes_changed_nothing() -> None:
    fake = FakeEffects(resource_config=CONFIG, jobs={"job-1": "COMPLETED"}, foreign_hold=True)
    fake.written = Written()
    _, outcome = live(ready_job_body(), fake)
    assert isinstance(outcome, Settle) and "release_fenced" not in fake.calls


def test_a_process_that_stopped_leading_writes_what_its_call_did() -> None:
    fake = FakeEffects(leads=False)
    s, outcome = live(obj(), fake)
    assert fake.calls == ["resource", CREATE, "leading", "write"] and not s.leading
    assert isinstance(outcome, Settle) and outcome.annotations[PENDING] is None


def test_a_process_that_stopped_leading_before_any_call_writes_nothing() -> None:
    body = obj()
    body["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "JobPending"}]}
    fake = FakeEffects(leads=False, holder="default/other/uid-2")
    _, outcome = live(body, fake)
    assert isinstance(outcome, ReadAgain) and fake.calls == ["turn_holder", "leading"]


def test_a_refused_marker_gives_the_turn_back_and_writes_nothing() -> None:
    fake = FakeEffects(submit_answer=Stale())
    _, outcome = live(obj(), fake)
    assert isinstance(outcome, ReadAgain) and fake.calls == ["resource", CREATE, "leading", "release"]


def test_a_backoff_not_yet_over_still_echoes_a_request_through_the_writer() -> None:
    fake = FakeEffects()
    failures = json.dumps({"count": 1, "notBefore": NOW + 60})
    _, outcome = live(obj({"amplifybackend.gitops.dev/failures": failures}), fake)
    assert isinstance(outcome, Wait) and fake.calls == ["leading", "write"]


def test_a_standby_carries_nothing_out() -> None:
    fake = FakeEffects()
    _, outcome = live(obj(), fake, leading=False)
    assert isinstance(outcome, ReadAgain) and fake.calls == []


# ---- deletion: the same decide, the same executor ------------------------------------------------


def deleting(**annotations: str) -> dict[str, Any]:
    return obj({CREATED: "true", **annotations}, deleting=True, held=True, deletionPolicy="Delete")


def test_deletion_submits_then_polls_and_waits_for_the_job() -> None:
    fake = FakeEffects(jobs={"del-1": "RUNNING"})
    _, outcome = run(deleting(), fake)
    assert fake.calls == [DELETE, "poll_job"]
    assert isinstance(outcome, Finish) and outcome.outcome == "wait"
    assert outcome.delete_job is not None and [n.reason for n in outcome.notes] == ["Deleting"]


def test_deletion_lets_go_once_the_job_completed() -> None:
    job = Job("del-1", DELETE, "RUNNING", "d1a2b3c4d5e6f7", "staging")
    fake = FakeEffects(jobs={"del-1": "COMPLETED"})
    _, outcome = run(deleting(**{DELETE_JOB: job.to_annotation()}), fake)
    assert fake.calls == ["poll_job"]
    assert isinstance(outcome, Finish) and outcome.outcome == "let_go" and outcome.release


def test_a_failed_delete_job_keeps_the_finalizer() -> None:
    job = Job("del-1", DELETE, "RUNNING", "d1a2b3c4d5e6f7", "staging")
    _, outcome = run(deleting(**{DELETE_JOB: job.to_annotation()}), FakeEffects(jobs={"del-1": "FAILED"}))
    assert isinstance(outcome, Finish) and outcome.outcome == "give_up"
    assert outcome.state is not None and outcome.state.reason == "DeleteFailed"


def test_deletion_of_what_aws_no_longer_has_lets_go() -> None:
    gone = Failure("NotFound", True, "NotFoundException: no such resource")
    _, outcome = run(deleting(), FakeEffects(submit_answer=Rejected(gone)))
    assert isinstance(outcome, Finish) and outcome.outcome == "let_go"


def test_retained_or_not_ours_lets_go_without_aws() -> None:
    for body in (
        obj(deleting=True),  # not held by our finalizer: Kubernetes lets it go
        obj({CREATED: "true"}, deleting=True, held=True),  # Retain
        obj(deleting=True, held=True, deletionPolicy="Delete"),  # Delete, but not created by it
    ):
        fake = FakeEffects()
        _, outcome = run(body, fake)
        assert isinstance(outcome, Finish) and outcome.outcome == "let_go" and fake.calls == []


def test_deletion_waits_for_another_holder_of_the_turn() -> None:
    _, outcome = run(deleting(), FakeEffects(submit_answer=TurnTaken("default/other")))
    assert isinstance(outcome, Finish) and outcome.outcome == "wait" and "default/other" in outcome.message


def test_a_throttled_delete_is_retried() -> None:
    _, outcome = run(deleting(), FakeEffects(submit_answer=Rejected(THROTTLED)))
    assert isinstance(outcome, Finish) and outcome.outcome == "retry" and outcome.retry_reason == "Throttled"


def test_a_failed_poll_of_the_delete_job_retries_and_rewrites_nothing() -> None:
    job = Job("del-1", DELETE, "RUNNING", "d1a2b3c4d5e6f7", "staging")
    _, outcome = run(deleting(**{DELETE_JOB: job.to_annotation()}), FakeEffects(read_failure=THROTTLED))
    assert isinstance(outcome, Finish) and outcome.outcome == "retry" and outcome.delete_job is None


def test_a_deletion_is_carried_out_by_the_same_loop_and_written_by_the_one_writer() -> None:
    fake = FakeEffects(jobs={"del-1": "COMPLETED"})
    s, outcome = live(deleting(), fake)
    assert isinstance(outcome, Finish) and outcome.outcome == "let_go" and s.released and s.written
    assert fake.calls == [DELETE, "poll_job", "leading", "release", "write"]
    assert fake.writes == [(outcome, None)]


def test_a_deletion_by_a_process_that_stopped_leading_sends_and_writes_nothing() -> None:
    fake = FakeEffects(leads=False)
    _, outcome = live(deleting(), fake, leading=False)
    assert isinstance(outcome, ReadAgain) and fake.calls == []


def test_a_refused_deletion_write_reads_again() -> None:
    fake = FakeEffects(jobs={"del-1": "RUNNING"}, written=Written(conflicted=True))
    _, outcome = live(deleting(), fake)
    assert isinstance(outcome, ReadAgain) and fake.calls == [DELETE, "poll_job", "leading", "write"]


def test_a_gone_object_gives_its_turn_back_and_says_once_what_aws_keeps() -> None:
    fake = FakeEffects()
    _, outcome = live(obj({CREATED: "true"}), fake, gone=True, deleting=True)
    assert isinstance(outcome, Finish) and fake.calls == ["release", "write"]
    assert [n.reason for n in outcome.notes] == ["Retained"]
