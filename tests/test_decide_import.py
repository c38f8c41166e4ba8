"""``decide`` for ``spec.import`` as a table: the reads of an import, the checks before any job,
what GetBackend shows (no link, the same ids, other ids), the shared job machinery (marker,
recovery, pause) and deletion. No processes, no HTTP: a snapshot in, a plan out."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from backendauth_operator import FINALIZER
from backendauth_operator.core.bookkeeping import COMPLETED, CREATED, FAILED, IMPORT, PENDING, Job, Marker
from backendauth_operator.core.decide import (
    Accepted,
    Delete,
    FindRunning,
    Finish,
    HoldRead,
    Observation,
    Plan,
    PollJob,
    Rejected,
    RunningRead,
    Settle,
    Snapshot,
    Submit,
    decide,
)
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.import_types import (
    CheckImport,
    ImportCheck,
    ImportIds,
    ImportProblem,
    Link,
    ReadImportIds,
    ReadLinks,
)
from backendauth_operator.core.import_variant import IMPORTED_AUTH

NOW = 1_800_000_000.0
FP = "fp-import"
IDS = ImportIds("eu-west-1_Pool1", "web1", "native1", "eu-west-1:0000-1111")
OTHER = ImportIds("eu-west-1_Pool2", "web2", "native2")
MARK = Marker(IMPORT, NOW - 10, 1, FP)


def job(status: str = "RUNNING", fp: str = FP, id: str = "job-1", **kw: Any) -> Job:
    return Job(id=id, operation=IMPORT, status=status, app_id="app", env="dev", generation=1, fingerprint=fp,
               submitted_at=NOW - 30, **kw)  # fmt: skip


def snap(**kw: Any) -> Snapshot:
    base = Snapshot(generation=1, now=NOW, app="app", env="dev", fingerprint=FP, variant=IMPORTED_AUTH,
                    import_ids=IDS)  # fmt: skip
    return replace(base, **kw)


def links(*shown: tuple[str, ImportIds, str]) -> Observation:
    return Observation(resource=None, links=tuple(Link(name, kind, ids) for name, ids, kind in shown))


NONE = Observation(resource=None, links=())
SAME = links(("importedAuth", IDS, "imported"))
ELSEWHERE = links(("importedAuth", OTHER, "imported"))
MANAGED = links(("shopauth", OTHER, "managed"))


@dataclass(frozen=True)
class Row:
    situation: str
    snapshot: Snapshot
    plan: type  # the plan's type
    reason: str | None = None  # a Settle's state reason
    phase: str | None = None
    own: bool | None = None  # whether the created annotation is written
    in_message: tuple[str, ...] = ()


ROWS = [
    # --- reading the ids and observing: the one AWS read is GetBackend
    Row("the ids are read first", snap(import_ids=None), ReadImportIds),
    Row(
        "a ConfigMap not there yet: retried, named",
        snap(
            import_ids=Failure(
                "ConfigMapNotFound", True, "spec.import.userPoolIdFrom: ConfigMap ns/pools not found"
            )
        ),
        Settle,
        "ConfigMapNotFound",
        "reconciling",
        in_message=("ConfigMap ns/pools",),
    ),
    Row(
        "a Secret key not there yet: retried",
        snap(
            import_ids=Failure(
                "SecretNotFound", True, "spec.import.webClientIdFrom: Secret ns/s has no key 'k'"
            )
        ),
        Settle,
        "SecretNotFound",
        "reconciling",
    ),
    Row(
        "a value that is no id: InvalidImport",
        snap(
            import_ids=Failure("InvalidImport", False, "spec.import.userPoolIdFrom: ... holds no userPoolId")
        ),
        Settle,
        "InvalidImport",
        "stalled",
    ),
    Row("the ids read: GetBackend observes", snap(), ReadLinks),
    Row("a lost answer: ListBackendJobs first", snap(marker=MARK, hold=HoldRead(None)), FindRunning),
    Row("a job in flight is polled", snap(job=job()), PollJob),
    # --- the table: what AWS shows decides
    Row("no link: the pools are checked before any job", snap(observed=NONE), CheckImport),
    Row(
        "no link, the pools as needed: one ImportBackendAuth",
        snap(observed=NONE, import_check=ImportCheck(None)),
        Submit,
    ),
    Row(
        "no link, a web client with a secret: InvalidImport, no job",
        snap(
            observed=NONE,
            import_check=ImportCheck(ImportProblem("web app client web1 (webClientId) has a client secret")),
        ),
        Settle,
        "InvalidImport",
        "stalled",
        in_message=("web1",),
    ),
    Row(
        "no link, Cognito refuses the read: AccessDenied naming the action, not InvalidImport",
        snap(
            observed=NONE,
            import_check=ImportCheck(
                Failure(
                    "AccessDenied",
                    False,
                    "cognito-idp:DescribeUserPool refused for the operator's own credentials: ...",
                )
            ),
        ),
        Settle,
        "AccessDenied",
        "stalled",
        in_message=("cognito-idp:DescribeUserPool",),
    ),
    Row(
        "no link, a Cognito read throttled: retried",
        snap(observed=NONE, import_check=ImportCheck(Failure("Throttled", True, "slow down"))),
        Settle,
        "Throttled",
        "reconciling",
    ),
    Row(
        "a link to the same ids, never ours: adopted, Ready, no call",
        snap(observed=SAME),
        Settle,
        "Adopted",
        "ready",
        own=True,
        in_message=("importedAuth",),
    ),
    Row(
        "a link to the same ids after our import: Ready",
        snap(job=job(COMPLETED), owned=True, observed=SAME),
        Settle,
        "JobCompleted",
        "ready",
    ),
    Row(
        "a link to other ids: ImportConflict naming both, no call",
        snap(observed=ELSEWHERE),
        Settle,
        "ImportConflict",
        "stalled",
        in_message=("eu-west-1_Pool1", "eu-west-1_Pool2", "web2", "native1", "reconcile-requested-at"),
    ),
    Row(
        "... whatever driftPolicy says",
        snap(observed=ELSEWHERE, report_drift=True),
        Settle,
        "ImportConflict",
        "stalled",
    ),
    Row(
        "... and with the pools checked fine",
        snap(observed=ELSEWHERE, import_check=ImportCheck(None)),
        Settle,
        "ImportConflict",
        "stalled",
    ),
    Row(
        "a managed auth resource on the app/env: ImportConflict",
        snap(observed=MANAGED),
        Settle,
        "ImportConflict",
        "stalled",
        in_message=("shopauth (managed)",),
    ),
    Row(
        "the spec's ids changed after our import: ImportConflict, no re-link",
        snap(
            job=job(COMPLETED, verified=True, resource="importedAuth"),
            owned=True,
            look=True,
            import_ids=OTHER,
            observed=SAME,
        ),
        Settle,
        "ImportConflict",
        "stalled",
    ),
    Row(
        "AWS changed the link after our import: ImportConflict, no unlink",
        snap(
            job=job(COMPLETED, verified=True, resource="importedAuth"),
            owned=True,
            look=True,
            observed=ELSEWHERE,
        ),
        Settle,
        "ImportConflict",
        "stalled",
    ),
    Row(
        "our import completed, GetBackend shows nothing: looked at again",
        snap(job=job(COMPLETED), owned=True, observed=NONE),
        Settle,
        "ResourceMissing",
        "reconciling",
    ),
    Row(
        "... still nothing on the next look: the pools are checked for a second import",
        snap(job=job(COMPLETED, missing=True), owned=True, observed=NONE),
        CheckImport,
    ),
    Row(
        "our import failed: JobFailed, no second import",
        snap(job=job(FAILED, error="bad"), owned=True, observed=NONE),
        Settle,
        "JobFailed",
        "stalled",
    ),
    Row(
        "a resync that sees the same link: Ready",
        snap(
            job=job(COMPLETED, verified=True, resource="importedAuth"), owned=True, look=True, observed=SAME
        ),
        Settle,
        "JobCompleted",
        "ready",
    ),
    # --- exactly once: the marker of a lost answer
    Row(
        "a lost answer, the import still running: recovered, no call",
        snap(
            marker=MARK,
            running=RunningRead(job(), "default/ba/uid"),
            me="default/ba/uid",
            observed=Observation(resource=None, running=job(), links=()),
        ),
        Settle,
        "JobInProgress",
        "reconciling",
        own=True,
    ),
    Row(
        "a lost answer, the import done: Ready with no second import",
        snap(marker=MARK, running=RunningRead(None), observed=SAME),
        Settle,
        "InSync",
        "ready",
        own=True,
    ),
    Row(
        "a lost answer that never reached AWS: checked, then imported",
        snap(marker=MARK, running=RunningRead(None), observed=NONE),
        CheckImport,
    ),
    # --- pause
    Row("paused: no read, no call", snap(paused=True, import_ids=None), Settle, "Paused", "reconciling"),
]


def _message(plan: Plan) -> str:
    return plan.state.message if isinstance(plan, Settle) and plan.state is not None else ""


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.situation)
def test_decide_import(row: Row) -> None:
    plan = decide(row.snapshot)
    assert isinstance(plan, row.plan), plan
    if isinstance(plan, Submit):
        assert plan.operation == IMPORT
    if row.reason is not None:
        assert isinstance(plan, Settle) and plan.state is not None
        assert (plan.state.reason, plan.state.phase) == (row.reason, row.phase), plan.state
    if row.own is not None:
        assert isinstance(plan, Settle)
        assert (plan.annotations.get(CREATED) == "true") is row.own, plan.annotations
    for words in row.in_message:
        assert words in _message(plan), _message(plan)


def test_an_import_never_submits_anything_but_import() -> None:
    # Whatever AWS shows, and whatever driftPolicy says, the plan of an import is never an
    # update (or a create): it links, or it waits for a person.
    for observed in (NONE, SAME, ELSEWHERE, MANAGED):
        for report in (False, True):
            for job_ in (None, job(COMPLETED), job(COMPLETED, verified=True, resource="importedAuth")):
                s = snap(
                    observed=observed,
                    report_drift=report,
                    job=job_,
                    import_check=ImportCheck(None),
                    owned=job_ is not None,
                )
                plan = decide(s)
                if isinstance(plan, Submit):
                    assert plan.operation == IMPORT and observed is NONE


def test_adopted_and_imported_links_remember_the_name_aws_gave() -> None:
    for s in (snap(observed=SAME), snap(job=job(COMPLETED), owned=True, observed=SAME)):
        plan = decide(s)
        assert isinstance(plan, Settle) and plan.job is not None
        assert plan.job.resource == "importedAuth" and plan.job.verified
        assert plan.outputs  # the outputs come from the same GetBackend answer


def test_an_accepted_import_is_owned_and_in_progress() -> None:
    s = snap(observed=NONE, import_check=ImportCheck(None), submitted=Accepted(job(), MARK, "7"))
    plan = decide(s)
    assert isinstance(plan, Settle) and plan.state is not None
    assert plan.state.reason == "JobInProgress"
    assert plan.annotations[CREATED] == "true" and plan.annotations[PENDING] is None
    assert plan.job is not None and plan.job.operation == IMPORT


def test_an_ambiguous_import_keeps_its_marker() -> None:
    failure = Failure("AWSUnavailable", True, "504", ambiguous=True)
    plan = decide(snap(observed=NONE, import_check=ImportCheck(None), submitted=Rejected(failure, MARK, "7")))
    assert isinstance(plan, Settle) and plan.annotations[PENDING] == MARK.to_annotation()


def test_a_conflict_is_not_the_spec_changing_the_link() -> None:
    # The conflict does not clear the record of our import: deleting with Delete still unlinks
    # the auth resource this BackendAuth linked, by the name AWS gave it.
    ours = job(COMPLETED, verified=True, resource="importedAuth")
    plan = decide(snap(job=ours, owned=True, look=True, import_ids=OTHER, observed=SAME))
    assert isinstance(plan, Settle) and plan.job is not None and plan.job.resource == "importedAuth"


@pytest.mark.parametrize(
    ("policy", "owned", "plan"),
    [("Delete", True, Delete), ("Retain", True, Finish), ("Delete", False, Finish)],
)
def test_deletion_of_an_import(policy: str, owned: bool, plan: type) -> None:
    held = (FINALIZER,)  # our finalizer holds the object until the unlink is done
    s = snap(
        deleting=True, finalizers=held, deletion_policy=policy, owned=owned, resource_name="importedAuth"
    )
    decided = decide(s)
    assert isinstance(decided, plan)
    if isinstance(decided, Finish):
        assert decided.outcome == "let_go"


def test_an_import_deleted_before_its_outcome_was_written_is_unlinked() -> None:
    # The marker (or the job record) of our own ImportBackendAuth is on the object, not yet the
    # outcome: the link may exist, so Delete looks for it rather than letting the object go.
    held = (FINALIZER,)
    for record in ({"marker": MARK}, {"job": job()}):
        plan = decide(snap(deleting=True, finalizers=held, deletion_policy="Delete", **record))
        assert isinstance(plan, Delete), (record, plan)
