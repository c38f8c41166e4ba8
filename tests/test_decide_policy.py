# ruff: noqa: E501  (the decision tables read best one row to a line)
"""The rules that once lived beside ``decide`` (in the handlers, the registry, the writer), now
pure functions of the decision module, as tables: no processes, no HTTP.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import pytest

from backendauth_operator import FINALIZER
from backendauth_operator.config import Settings
from backendauth_operator.core.bookkeeping import (
    CREATE,
    FAILURES,
    PAUSED,
    PENDING,
    RECONCILE_REQUESTED,
    Job,
    Marker,
)
from backendauth_operator.core.decide import (
    CheckLead,
    Finish,
    NotSent,
    Observation,
    Plan,
    ReadAgain,
    ReadOutputs,
    Rejected,
    Release,
    ReleaseFenced,
    RetryPolicy,
    Settle,
    Snapshot,
    Stale,
    State,
    Wait,
    Write,
    asks_for_step,
    attention,
    decide,
    finalizers_for,
    left_waiting,
    marker_finalizers,
    resynced,
    shows_waiting,
)
from backendauth_operator.core.failure import Failure
from backendauth_operator.runtime.reading import read
from backendauth_operator.runtime.workqueue import Watched

NOW = 1_800_000_000.0
FP = "fp-current"
DESIRED = {
    "AuthResources": "USER_POOL_ONLY",
    "Service": "COGNITO",
    "UserPoolConfigs": {"UserPoolName": "shop"},
}
THROTTLED = Failure("Throttled", True, "TooManyRequestsException: slow down")
MISSING = Failure("SecretNotFound", True, "Secret default/x not found")
REFUSED = Failure("BadRequest", False, "BadRequestException: no")


def snap(**kw: Any) -> Snapshot:
    return replace(Snapshot(generation=1, now=NOW, fingerprint=FP, desired=DESIRED), **kw)


def completed() -> Job:
    return Job(id="j1", operation=CREATE, status="COMPLETED", app_id="app", env="dev", generation=1,
               fingerprint=FP, submitted_at=NOW - 30, verified=True)  # fmt: skip


# ---- the backoff of a retryable failure (was writer.outcome_patches) ------------------------------

A_FAILED_READ = snap(failure=THROTTLED)
A_SECRET_NOT_FOUND = snap(observed=Observation(resource=None), submitted=NotSent(MISSING))


@dataclass(frozen=True)
class BackoffRow:
    situation: str
    snapshot: Snapshot
    failures: int | None  # the count written (None: no backoff)
    delay: float | None = None  # seconds before the next attempt
    cleared: bool = False  # the failures annotation is removed


# fmt: off
BACKOFF_ROWS = [
    BackoffRow("the first failure waits the base, wherever the jitter falls", replace(A_FAILED_READ, jitter=0.99), 1, 5.0),
    BackoffRow("the first failure with the lowest draw waits the base", replace(A_FAILED_READ, jitter=0.0), 1, 5.0),
    BackoffRow("the third failure draws from base to four times base", replace(A_FAILED_READ, failures=2, jitter=0.5), 3, 12.5),
    BackoffRow("the window's top, once the window has grown to the cap", replace(A_FAILED_READ, failures=10, jitter=1.0), 11, 300.0),
    BackoffRow("the configured policy: base and cap from the settings", replace(A_FAILED_READ, failures=3, jitter=1.0, retry=RetryPolicy(2.0, 10.0)), 4, 10.0),
    BackoffRow("a huge failure count neither overflows nor passes the cap", replace(A_FAILED_READ, failures=10**12, jitter=1.0), 10**12 + 1, 300.0),
    BackoffRow("a missing Secret retries within its own cap", replace(A_SECRET_NOT_FOUND, failures=8, jitter=1.0), 9, 30.0),
    BackoffRow("the policy's cap wins when it is below the failure's", replace(A_SECRET_NOT_FOUND, failures=8, jitter=1.0, retry=RetryPolicy(1.0, 20.0)), 9, 20.0),
    BackoffRow("a base above the failure's cap is still waited", replace(A_SECRET_NOT_FOUND, jitter=1.0, retry=RetryPolicy(60.0, 300.0)), 1, 60.0),
    BackoffRow("a refused call stalls: no backoff, the count is cleared", snap(observed=Observation(resource=None), submitted=Rejected(REFUSED)), None, cleared=True),
    BackoffRow("a settled step clears the count", snap(failures=3, job=completed(), outputs_shown=True), None, cleared=True),
]
# fmt: on


@pytest.mark.parametrize("row", BACKOFF_ROWS, ids=[r.situation for r in BACKOFF_ROWS])
def test_decide_backoff(row: BackoffRow) -> None:
    plan = decide(row.snapshot)
    assert isinstance(plan, Settle), plan
    if row.failures is None:
        assert plan.backoff is None and plan.retry is None
        assert (FAILURES in plan.annotations and plan.annotations[FAILURES] is None) == row.cleared
        return
    assert plan.retry is not None and plan.retry.reason == plan.backoff
    assert plan.retry.failures == row.failures
    assert plan.retry.delay == pytest.approx(row.delay)
    written = json.loads(str(plan.annotations[FAILURES]))
    assert written == {"count": row.failures, "notBefore": pytest.approx(NOW + float(row.delay or 0))}
    assert math.isfinite(written["notBefore"])


def test_a_backoff_keeps_the_bookkeeping_it_came_with() -> None:
    # The marker of an ambiguous call stays beside the failure count.
    marker = Marker(CREATE, NOW, 1, FP)
    ambiguous = Failure("AWSUnavailable", True, "AWS did not answer", ambiguous=True)
    plan = decide(snap(observed=Observation(resource=None), submitted=Rejected(ambiguous, marker)))
    assert isinstance(plan, Settle) and plan.retry is not None
    assert plan.annotations[PENDING] == marker.to_annotation()
    assert json.loads(str(plan.annotations[FAILURES]))["count"] == 1


def test_a_backoff_not_over_yet_waits_and_writes_nothing() -> None:
    assert isinstance(decide(snap(failures=1, not_before=NOW + 60)), Wait)


def test_the_delay_is_spread_by_the_draw() -> None:
    delays = {
        plan.retry.delay
        for jitter in (0.0, 0.25, 0.5, 0.75)
        if isinstance(plan := decide(replace(A_FAILED_READ, failures=4, jitter=jitter)), Settle)
        and plan.retry
    }
    assert len(delays) == 4 and min(delays) == 5.0 and max(delays) < 80.0


# ---- what a watch event asks for (was steps.noteworthy, asks_for_step, ACCOUNT_REASONS) --------


def conditions(phase: str, reason: str) -> list[dict[str, Any]]:
    """Ready, Reconciling and Stalled as a step writes them: one phase True."""
    return [
        {"type": kind, "status": "True" if kind.lower().startswith(phase) else "False", "reason": reason}
        for kind in ("Ready", "Reconciling", "Stalled")
    ]


def body(
    generation: int = 1,
    observed: int | None = 1,
    shows: tuple[str, str] | None = ("ready", "JobCompleted"),
    annotations: dict[str, str] | None = None,
    handled: str | None = None,
    deleting: bool = False,
    finalizers: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A BackendAuth as a watch event carries it."""
    meta: dict[str, Any] = {"namespace": "ns", "name": "a", "uid": "u1", "generation": generation}
    if annotations:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    if finalizers:
        meta["finalizers"] = list(finalizers)
    status: dict[str, Any] = {}
    if observed is not None:
        status["observedGeneration"] = observed
    if shows is not None:
        status["conditions"] = conditions(*shows)
    if handled is not None:
        status["lastHandledReconcileAt"] = handled
    return {"metadata": meta, "spec": {}, "status": status} if status else {"metadata": meta, "spec": {}}


REQUEST = {RECONCILE_REQUESTED: "2027-01-01T00:00:00Z"}
PAUSE = {PAUSED: "true"}
WAITING = ("reconciling", "JobInProgress")


@dataclass(frozen=True)
class EventRow:
    situation: str
    body: dict[str, Any]
    type: str | None
    handle: bool
    poll: bool = False
    acting: bool = True
    shown: bool = False  # this process has written the status of the body's generation
    deletion_seen: bool = False  # an earlier event has shown this process the deletion


# fmt: off
EVENT_ROWS = [
    EventRow("a deleted object is handled: it is forgotten", body(deleting=True), "DELETED", True),
    EventRow("one being deleted without our finalizer goes without a step", body(generation=2, deleting=True, annotations=REQUEST), "MODIFIED", False),
    EventRow("a deletion our finalizer holds is stepped when first seen", body(generation=2, deleting=True, finalizers=(FINALIZER,)), "MODIFIED", True),
    EventRow("... also at a restart", body(generation=2, deleting=True, finalizers=("other/f", FINALIZER)), None, True),
    EventRow("... also by a standby (its poller holds it until this process leads)", body(generation=2, deleting=True, finalizers=(FINALIZER,)), "MODIFIED", True, acting=False),
    EventRow("... once: the events of its own writes ask for nothing (the poller has it)", body(generation=2, deleting=True, finalizers=(FINALIZER,)), "MODIFIED", False, deletion_seen=True),
    EventRow("... and again on a reconcile request (a deletion that gave up, after a fix)", body(generation=2, deleting=True, finalizers=(FINALIZER,), annotations=REQUEST), "MODIFIED", True, deletion_seen=True),
    EventRow("another's finalizer alone: not ours to step", body(generation=2, deleting=True, finalizers=("other/f",)), "MODIFIED", False),
    EventRow("a new object is stepped", body(observed=None, shows=None), "ADDED", True),
    EventRow("a new object in the initial listing is stepped", body(observed=None, shows=None), None, True),
    EventRow("a changed spec is stepped", body(generation=2), "MODIFIED", True),
    EventRow("an event from before this process's status write starts no step", body(generation=2), "MODIFIED", False, shown=True),
    EventRow("a settled object as it was: nothing", body(), "MODIFIED", False),
    EventRow("a settled object seen at a restart: nothing", body(), None, False),
    EventRow("one that waits, seen at a restart, is polled", body(shows=WAITING), None, False, poll=True),
    EventRow("one that waits, added, is polled", body(shows=WAITING), "ADDED", False, poll=True),
    EventRow("one that waits, changed, is polled by the step already", body(shows=WAITING), "MODIFIED", False),
    EventRow("a standby polls every object that waits, as the leader leaves it", body(shows=WAITING), "MODIFIED", False, poll=True, acting=False),
    EventRow("a standby does not poll a settled object", body(), "MODIFIED", False, acting=False),
    EventRow("paused, seen at a restart: not polled, not stepped", body(shows=("reconciling", "Paused"), annotations=PAUSE), None, False),
    EventRow("paused while Ready, seen at a restart: nothing", body(shows=("ready", "Paused"), annotations=PAUSE), None, False),
    EventRow("stalled for an unmapped account, seen at a restart: one look", body(shows=("stalled", "AccountNotMapped")), None, False, poll=True),
    EventRow("stalled for a changed account, added: one look", body(shows=("stalled", "AccountChanged")), "ADDED", False, poll=True),
    EventRow("stalled for a bad annotation, added: one look", body(shows=("stalled", "BadAnnotation")), "ADDED", False, poll=True),
    EventRow("stalled for its account, changed: nothing (the watches of the map step it)", body(shows=("stalled", "AccountNotMapped")), "MODIFIED", False),
    EventRow("stalled for its spec, seen at a restart: nothing", body(shows=("stalled", "InvalidSpec")), None, False),
    EventRow("a reconcile request not yet handled is stepped", body(annotations=REQUEST), "MODIFIED", True),
    EventRow("a reconcile request is stepped at a restart too", body(annotations=REQUEST), None, True),
    EventRow("a reconcile request already handled: nothing", body(annotations=REQUEST, handled=REQUEST[RECONCILE_REQUESTED]), "MODIFIED", False),
    EventRow("paused by the annotation is stepped", body(annotations=PAUSE), "MODIFIED", True),
    EventRow("paused in any case and spelling is stepped", body(annotations={PAUSED: " True "}), "MODIFIED", True),
    EventRow("a pause not yet shown, seen at a restart, starts no step", body(annotations=PAUSE), None, False),
    EventRow("unpaused is stepped", body(shows=("reconciling", "Paused")), "MODIFIED", True),
    EventRow("unpaused while it showed Ready and Paused is stepped", body(shows=("ready", "Paused"), annotations={PAUSED: "false"}), "MODIFIED", True),
    EventRow("paused and showing it: nothing", body(shows=("reconciling", "Paused"), annotations=PAUSE), "MODIFIED", False),
]
# fmt: on


@pytest.mark.parametrize("row", EVENT_ROWS, ids=[r.situation for r in EVENT_ROWS])
def test_attention(row: EventRow) -> None:
    asks = attention(row.body, row.type, acting=row.acting, shown=row.shown, deletion_seen=row.deletion_seen)
    assert (asks.handle, asks.poll) == (row.handle, row.poll)


# fmt: off
STEP_ASKED_ROWS = [
    ("a new generation", body(generation=2), True),
    ("a reconcile request", body(annotations=REQUEST), True),
    ("a pause not yet shown", body(annotations=PAUSE), True),
    ("an unpause not yet shown", body(shows=("reconciling", "Paused")), True),
    ("nothing: the event predates a step's writes", body(), False),
    ("nothing: paused and shown", body(shows=("ready", "Paused"), annotations=PAUSE), False),
    ("nothing: the request is handled", body(annotations=REQUEST, handled=REQUEST[RECONCILE_REQUESTED]), False),
]
# fmt: on


@pytest.mark.parametrize(("situation", "obj", "asked"), STEP_ASKED_ROWS, ids=[r[0] for r in STEP_ASKED_ROWS])
def test_what_an_event_step_still_finds_asked(situation: str, obj: dict[str, Any], asked: bool) -> None:
    assert asks_for_step(obj) is asked


# ---- which objects wait (was steps.shows_waiting and waits) -------------------------------------

# fmt: off
WAITING_ROWS = [
    ("a job in progress", conditions(*WAITING), True),
    ("a retry due", conditions("reconciling", "Throttled"), True),
    ("another has the turn", conditions("reconciling", "JobPending"), True),
    ("paused before it was Ready", conditions("reconciling", "Paused"), False),
    ("Ready", conditions("ready", "JobCompleted"), False),
    ("Stalled", conditions("stalled", "InvalidSpec"), False),
    ("no conditions yet", [], False),
    ("Reconciling without a Ready condition", [{"type": "Reconciling", "status": "True", "reason": "JobInProgress"}], True),
]
# fmt: on


@pytest.mark.parametrize(("situation", "shown", "waits"), WAITING_ROWS, ids=[r[0] for r in WAITING_ROWS])
def test_shows_waiting(situation: str, shown: list[dict[str, Any]], waits: bool) -> None:
    assert shows_waiting(shown) is waits


def test_the_snapshot_reads_whether_the_object_waits() -> None:
    settings = Settings(default_region="eu-west-1")
    assert read(body(shows=WAITING), settings, NOW).waiting
    assert not read(body(shows=("reconciling", "Paused")), settings, NOW).waiting
    assert not read(body(), settings, NOW).waiting


IN_PROGRESS = State("reconciling", "JobInProgress", "create job j1 is IN_PROGRESS")

# fmt: off
LEFT_WAITING_ROWS = [
    ("a job in progress is polled", snap(), Settle(IN_PROGRESS), True),
    ("a retry due is polled", snap(), Settle(State("reconciling", "Throttled", "slow down")), True),
    ("paused mid-job is not", snap(waiting=True), Settle(State("reconciling", "Paused", "paused")), False),
    ("Ready is not", snap(waiting=True), Settle(State("ready", "InSync", "in sync")), False),
    ("paused while Ready is not", snap(waiting=True), Settle(State("ready", "Paused", "paused")), False),
    ("Stalled is not", snap(waiting=True), Settle(State("stalled", "InvalidSpec", "bad")), False),
    ("a step that wrote no state keeps waiting if it waited", snap(waiting=True), Settle(), True),
    ("a step that wrote no state stays settled if it was", snap(), Settle(), False),
    ("a backoff not over keeps waiting", snap(waiting=True), Wait(), True),
    ("a backoff not over of a settled object stays settled", snap(), Wait(), False),
    ("read again: the poller schedules that apart", snap(waiting=True), ReadAgain("changed"), False),
]
# fmt: on


@pytest.mark.parametrize(
    ("situation", "s", "outcome", "waits"), LEFT_WAITING_ROWS, ids=[r[0] for r in LEFT_WAITING_ROWS]
)
def test_left_waiting(situation: str, s: Snapshot, outcome: Plan, waits: bool) -> None:
    assert left_waiting(s, outcome) is waits


# ---- which objects the resync loop observes (was workqueue._RESYNCED_REASONS) ------------------------

# fmt: off
RESYNC_ROWS = [
    ("Ready after our job", body(), True),
    ("Ready, in sync", body(shows=("ready", "InSync")), True),
    ("Ready, adopted", body(shows=("ready", "Adopted")), True),
    ("drift reported", body(shows=("ready", "Drifted")), True),
    ("Ready, being deleted: its deletion steps are the poller's", body(deleting=True, finalizers=(FINALIZER,)), False),
    ("drift reported while stalled", body(shows=("stalled", "Drifted")), True),
    ("paused", body(annotations=PAUSE), False),
    ("paused in any case and spelling", body(annotations={PAUSED: " TRUE "}), False),
    ("unpaused by a false annotation", body(annotations={PAUSED: "false"}), True),
    ("paused while Ready", body(shows=("ready", "Paused"), annotations=PAUSE), False),
    ("stalled for its spec: waits for a new one", body(shows=("stalled", "InvalidSpec")), False),
    ("a failed job: waits for a new spec", body(shows=("stalled", "JobFailed")), False),
    ("stalled for its account: the watches step it", body(shows=("stalled", "AccountNotMapped")), False),
    ("a job in progress: the poller has it", body(shows=WAITING), False),
    ("a Ready reason but not settled", body(shows=("reconciling", "JobCompleted")), False),
    ("no status yet", body(observed=None, shows=None), False),
]
# fmt: on


@pytest.mark.parametrize(("situation", "obj", "resync"), RESYNC_ROWS, ids=[r[0] for r in RESYNC_ROWS])
def test_resynced(situation: str, obj: dict[str, Any], resync: bool) -> None:
    assert resynced(obj) is resync


def test_the_registry_resyncs_what_the_rule_says() -> None:
    watched = Watched()
    for i, (_, obj, _) in enumerate(RESYNC_ROWS):
        watched.update({**obj, "metadata": {**obj["metadata"], "uid": f"u{i}"}})
    chosen = {entry.uid for entry in watched.resyncable()}
    assert chosen == {f"u{i}" for i, row in enumerate(RESYNC_ROWS) if row[2]}


# ---- carrying the outcome out (was steps.run_step, after the executor) -----------------------
# With ``carry_out`` (the live step), every side effect of an outcome is a plan of its own, in the
# order of the Kubernetes requests: the turn back, the outputs read, the writes, a fenced release.

READY = snap(
    job=completed(), observed=Observation(resource=DESIRED), owned=True, app="app", env="dev", carry_out=True
)
CHECKED = replace(READY, lead_rechecked=True)
OUTPUTS = {"userPoolId": "eu-west-1_x"}
RUNNING = replace(completed(), status="RUNNING", verified=False)
RUNNING_CHECKED = snap(job=RUNNING, polled=True, carry_out=True, lead_rechecked=True)

CARRY_OUT_ROWS = [
    ("a table or plan: the outcome alone", replace(READY, carry_out=False), Settle),
    ("before anything is written: does this process still lead?", READY, CheckLead),
    ("a standby decides nothing to carry out", replace(READY, leading=False, carry_out=True), ReadAgain),
    ("it stopped leading with no call sent: read again", replace(CHECKED, leading=False), ReadAgain),
    ("a settled outcome gives the turn back first", CHECKED, Release),
    ("then the outputs of a ready object are read", replace(CHECKED, released=True), ReadOutputs),
    ("then it is written with them", replace(CHECKED, released=True, outputs_read=OUTPUTS), Write),
    (
        "written, and no other process held it: done",
        replace(CHECKED, released=True, outputs_read=OUTPUTS, written=True, wrote=True),
        Settle,
    ),
    (
        "written on the version read: another process's hold goes too",
        replace(CHECKED, released=True, outputs_read=OUTPUTS, foreign_hold=True, written=True, wrote=True),
        ReleaseFenced,
    ),
    (
        "nothing changed by the writes: the hold is not fenced off",
        replace(CHECKED, released=True, outputs_read=OUTPUTS, foreign_hold=True, written=True),
        Settle,
    ),
    (
        "the hold given back: done",
        replace(
            CHECKED,
            released=True,
            outputs_read=OUTPUTS,
            foreign_hold=True,
            written=True,
            wrote=True,
            fenced_released=True,
        ),
        Settle,
    ),
    (
        "the writes were refused: read again, nothing more",
        replace(CHECKED, released=True, outputs_read=OUTPUTS, foreign_hold=True, written=True, stale=True),
        ReadAgain,
    ),
    ("a job still running keeps the turn, reads no outputs: it is written", RUNNING_CHECKED, Write),
    (
        "a backoff not over yet still goes through the writer (a request is echoed)",
        snap(failures=1, not_before=NOW + 60, carry_out=True, lead_rechecked=True),
        Write,
    ),
    (
        "a refused marker gives the turn back, writes nothing",
        snap(observed=Observation(resource=None), submitted=Stale(), carry_out=True, lead_rechecked=True),
        Release,
    ),
    (
        "and then reads again",
        snap(
            observed=Observation(resource=None),
            submitted=Stale(),
            carry_out=True,
            lead_rechecked=True,
            released=True,
        ),
        ReadAgain,
    ),
]


DELETED_JOB = replace(completed(), operation="DeleteBackendAuth")
DELETING = snap(
    deleting=True,
    finalizers=(FINALIZER,),
    deletion_policy="Delete",
    owned=True,
    delete_job=DELETED_JOB,
    app="app",
    env="dev",
    carry_out=True,
)
CARRY_OUT_ROWS += [
    ("a deletion: does this process still lead?", DELETING, CheckLead),
    (
        "it stopped leading before any call: read again, nothing written",
        replace(DELETING, leading=False, lead_rechecked=True),
        ReadAgain,
    ),
    ("the delete job ended: the turn goes back first", replace(DELETING, lead_rechecked=True), Release),
    (
        "then the one writer takes the finalizer off",
        replace(DELETING, lead_rechecked=True, released=True),
        Write,
    ),
    (
        "written: the deletion is finished",
        replace(DELETING, lead_rechecked=True, released=True, written=True, wrote=True),
        Finish,
    ),
    (
        "refused (the object changed): read again",
        replace(DELETING, lead_rechecked=True, released=True, written=True, stale=True),
        ReadAgain,
    ),
    (
        "gone: the turn goes back with no leadership check (nothing conditional is written)",
        snap(deleting=True, gone=True, carry_out=True),
        Release,
    ),
]


@pytest.mark.parametrize(
    ("situation", "s", "finalizer"),
    [
        (
            "Delete, no finalizer yet: the step's write puts ours on",
            replace(CHECKED, released=True, outputs_read=OUTPUTS, deletion_policy="Delete"),
            True,
        ),
        (
            "Delete, ours on: as it is",
            replace(
                CHECKED,
                released=True,
                outputs_read=OUTPUTS,
                deletion_policy="Delete",
                finalizers=("x/f", FINALIZER),
            ),
            None,
        ),
        (
            "Retain with ours (the policy changed): the step's write takes it off",
            replace(CHECKED, released=True, outputs_read=OUTPUTS, finalizers=(FINALIZER,)),
            False,
        ),
        (
            "Retain, none: as it is (no write for it)",
            replace(CHECKED, released=True, outputs_read=OUTPUTS),
            None,
        ),
    ],
)
def test_the_steps_write_carries_our_finalizer_as_the_deletion_policy_asks(
    situation: str, s: Snapshot, finalizer: bool | None
) -> None:
    written = decide(s)
    assert isinstance(written, Write) and isinstance(written.outcome, Settle)
    assert written.outcome.finalizer is finalizer


def test_the_marker_puts_our_finalizer_on_before_any_create_and_keeps_the_others() -> None:
    assert marker_finalizers(snap(deletion_policy="Delete", finalizers=("x/f",))) == ["x/f", FINALIZER]
    assert marker_finalizers(snap(deletion_policy="Delete", finalizers=(FINALIZER,))) is None
    assert marker_finalizers(snap()) is None, "Retain needs none"
    assert finalizers_for(snap(finalizers=("x/f", FINALIZER, "y/g")), False) == ["x/f", "y/g"]


@pytest.mark.parametrize(("situation", "s", "plan"), CARRY_OUT_ROWS, ids=[r[0] for r in CARRY_OUT_ROWS])
def test_carry_out(situation: str, s: Snapshot, plan: type) -> None:
    assert isinstance(decide(s), plan)


def test_the_write_carries_the_outputs_read_or_why_they_were_not() -> None:
    written = decide(replace(CHECKED, released=True, outputs_read=OUTPUTS))
    assert isinstance(written, Write) and written.outputs == OUTPUTS
    failed = decide(replace(CHECKED, released=True, outputs_read=THROTTLED))
    assert isinstance(failed, Write) and failed.outputs == THROTTLED
    # Not read after all: the job does not show them read, so the next observation reads them.
    assert isinstance(failed.outcome, Settle) and failed.outcome.job is not None
    assert failed.outcome.job.outputs_for == ""


def test_the_outcome_written_is_the_outcome_returned() -> None:
    done = replace(CHECKED, released=True, outputs_read=OUTPUTS)
    written = decide(done)
    assert isinstance(written, Write) and written.outcome == decide(replace(done, written=True, wrote=True))


def test_a_standby_reads_a_deletion_again_as_any_step_and_the_leader_waits_for_the_job() -> None:
    held = (FINALIZER,)
    standby = decide(
        snap(deleting=True, finalizers=held, deletion_policy="Delete", owned=True, leading=False)
    )
    assert isinstance(standby, ReadAgain) and not standby.release
    leader = decide(
        snap(
            deleting=True,
            finalizers=held,
            deletion_policy="Delete",
            owned=True,
            delete_job=RUNNING,
            delete_polled=True,
        )
    )
    assert isinstance(leader, Finish) and leader.outcome == "wait"
    assert left_waiting(snap(deleting=True), leader), "the poller steps it again"
    done = Finish("let_go")
    assert not left_waiting(snap(deleting=True), done)
