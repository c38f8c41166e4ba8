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

from backendauth_operator.bookkeeping import (
    CREATE,
    FAILURES,
    PAUSED,
    PENDING,
    Job,
    Marker,
)
from backendauth_operator.core.failure import Failure
from backendauth_operator.reconcile import (
    NotSent,
    Observation,
    Rejected,
    RetryPolicy,
    Settle,
    Snapshot,
    Wait,
    decide,
    resynced,
)
from backendauth_operator.watched import Watched

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
    BackoffRow("a settled step clears the count", snap(failures=3, job=completed()), None, cleared=True),
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
) -> dict[str, Any]:
    """A BackendAuth as a watch event carries it."""
    meta: dict[str, Any] = {"namespace": "ns", "name": "a", "uid": "u1", "generation": generation}
    if annotations:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = "2027-01-01T00:00:00Z"
    status: dict[str, Any] = {}
    if observed is not None:
        status["observedGeneration"] = observed
    if shows is not None:
        status["conditions"] = conditions(*shows)
    if handled is not None:
        status["lastHandledReconcileAt"] = handled
    return {"metadata": meta, "spec": {}, "status": status} if status else {"metadata": meta, "spec": {}}


PAUSE = {PAUSED: "true"}
WAITING = ("reconciling", "JobInProgress")


# ---- which objects the resync loop observes (was watched._RESYNCED_REASONS) ------------------------

# fmt: off
RESYNC_ROWS = [
    ("Ready after our job", body(), True),
    ("Ready, in sync", body(shows=("ready", "InSync")), True),
    ("Ready, adopted", body(shows=("ready", "Adopted")), True),
    ("drift reported", body(shows=("ready", "Drifted")), True),
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
