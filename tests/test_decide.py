# ruff: noqa: E501  (the decision table reads best one row to a line)
"""``decide`` as a table: every state the operator can be in, against every observation of AWS.

No processes, no HTTP: a snapshot in, an action out. Each row names the situation it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from backendauth_operator import FINALIZER
from backendauth_operator.core.bookkeeping import (
    COMPLETED,
    CREATE,
    CREATED,
    DELETE,
    FAILED,
    PENDING,
    UPDATE,
    Job,
    Marker,
)
from backendauth_operator.core.decide import (
    Accepted,
    AskOwnAccount,
    CheckHold,
    CheckTurn,
    Delete,
    FindRunning,
    Finish,
    HoldRead,
    NotSent,
    Observation,
    Plan,
    PollDelete,
    PollJob,
    Read,
    ReadAgain,
    ReadResource,
    ReadSecrets,
    Rejected,
    RunningRead,
    SecretsRead,
    Settle,
    Snapshot,
    Stale,
    Submit,
    TurnRead,
    TurnTaken,
    Wait,
    Withheld,
    config_diff,
    decide,
)
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.models import spec_path

NOW = 1_800_000_000.0
FP = "fp-current"
HELD = (FINALIZER,)  # metadata.finalizers of an object whose deletion our finalizer holds
DESIRED = {
    "AuthResources": "USER_POOL_ONLY",
    "Service": "COGNITO",
    "UserPoolConfigs": {
        "UserPoolName": "shopusers",
        "SignInMethod": "EMAIL",
        "RequiredSignUpAttributes": ["EMAIL", "NAME"],
        "PasswordPolicy": {"MinimumLength": 12.0},
    },
}
DIFFERENT = {
    **DESIRED,
    "UserPoolConfigs": {**DESIRED["UserPoolConfigs"], "PasswordPolicy": {"MinimumLength": 8}},
}

# What only a create sets (UpdateBackendAuth does not carry it) differs in AWS.
CREATE_ONLY_DIFFERS = {
    **DESIRED,
    "UserPoolConfigs": {**DESIRED["UserPoolConfigs"], "RequiredSignUpAttributes": ["EMAIL"]},
}
BOTH_DIFFER = {
    **DESIRED,
    "UserPoolConfigs": {**CREATE_ONLY_DIFFERS["UserPoolConfigs"], "PasswordPolicy": {"MinimumLength": 8}},
}


def job(
    status: str = "RUNNING", op: str = CREATE, gen: int = 1, fp: str = FP, id: str = "job-1", **kw: Any
) -> Job:
    return Job(
        id=id, operation=op, status=status, app_id="app", env="dev", generation=gen, fingerprint=fp,
        submitted_at=NOW - 30, **kw,
    )  # fmt: skip


def snap(**kw: Any) -> Snapshot:
    base = Snapshot(generation=1, now=NOW, fingerprint=FP, desired=DESIRED)
    return replace(base, **kw)


def seen(resource: dict[str, Any] | None = None, running: Job | None = None) -> Observation:
    return Observation(resource=resource, running=running)


MARK_CREATE = Marker(CREATE, NOW - 10, 1, FP)
MARK_UPDATE = Marker(UPDATE, NOW - 10, 2, FP)


@dataclass(frozen=True)
class Row:
    situation: str
    snapshot: Snapshot
    kind: str
    reason: str | None = None  # the state's reason (show) ...
    operation: str | None = None  # ... or the call (submit)
    release: bool | None = None
    clear_marker: bool | None = None
    own: bool | None = None
    failure: bool | None = None
    job_id: str | None = None
    event_reason: str | None = None
    phase: str | None = None  # the state's phase (show)


ROWS = [
    # --- before observing: what needs no AWS call
    Row("invalid spec stalls without observing (no turn to give back)", snap(spec_error="spec.appId: bad"), "show",
        "InvalidSpec", release=False),
    Row("invalid spec wins over paused", snap(spec_error="x", paused=True), "show", "InvalidSpec"),
    Row("paused without a job gives the turn back", snap(paused=True), "show", "Paused", release=True),
    Row("paused with a job in flight keeps the turn", snap(paused=True, job=job()), "show", "Paused",
        release=False, phase="reconciling"),
    Row("paused with a lost answer keeps the turn", snap(paused=True, marker=MARK_CREATE), "show", "Paused",
        release=False, phase="reconciling"),
    # --- paused: Ready stays True only when nothing is left to do for this request
    Row("paused before it was ever created is not Ready", snap(paused=True), "show", "Paused", phase="reconciling"),
    Row("paused when Ready stays Ready", snap(paused=True, ready_generation=1, job=job(COMPLETED, verified=True)),
        "show", "Paused", release=True, phase="ready"),
    Row("paused when Ready after an adoption (no job) stays Ready", snap(paused=True, ready_generation=1), "show",
        "Paused", phase="ready"),
    Row("paused with a spec change not yet sent is not Ready",
        snap(paused=True, generation=2, ready_generation=1, job=job(COMPLETED, fp="fp-old", verified=True)),
        "show", "Paused", phase="reconciling"),
    Row("paused after a change AWS does not see (deletionPolicy) stays Ready",
        snap(paused=True, generation=2, ready_generation=1, job=job(COMPLETED, verified=True)), "show", "Paused",
        phase="ready"),
    Row("paused when stalled is not Ready", snap(paused=True, job=job(FAILED)), "show", "Paused",
        phase="reconciling"),
    Row("paused after Ready, mid-update, is not Ready",
        snap(paused=True, generation=2, ready_generation=1, job=job(op=UPDATE, gen=2)), "show", "Paused",
        release=False, phase="reconciling"),
    Row("a new object observes first", snap(), "observe"),
    Row("waiting for another's turn: no AWS call while it is taken", snap(turn_read=TurnRead("default/other")), "show",
        "JobPending"),
    Row("waiting for a turn, but a reconcile request observes", snap(turn_read=TurnRead("default/other"), look=True),
        "observe"),
    Row("a job in flight is observed", snap(job=job()), "observe"),
    Row("backing off: nothing until the time has come", snap(not_before=NOW + 5), "nothing"),
    Row("backing off, but a reconcile request observes now", snap(not_before=NOW + 5, look=True),
        "observe"),
    Row("unpaused after Ready: shown again without AWS", snap(job=job("COMPLETED", verified=True), outputs_shown=True),
        "show", "JobCompleted"),
    Row("a verified job, but the status lacks the outputs (stopped before the status write): observed",
        snap(job=job("COMPLETED", verified=True)), "observe"),
    Row("unpaused after a failed job: shown again without AWS", snap(job=job("FAILED")), "show", "JobFailed"),
    Row("a completed job not yet verified is observed", snap(job=job("COMPLETED")), "observe"),
    Row("a spec change AWS does not see (same request): Ready, no call",
        snap(generation=2, job=job("COMPLETED", verified=True), outputs_shown=True), "show", "JobCompleted"),
    Row("a spec change AWS sees is observed", snap(generation=2, fingerprint="new", job=job("COMPLETED", verified=True)),
        "observe"),
    Row("a failed job of an older generation is observed (the user may have fixed things)",
        snap(generation=2, job=job("FAILED", gen=1)), "observe"),
    Row("a reconcile request observes even when settled", snap(look=True, job=job("COMPLETED", verified=True)),
        "observe"),
    # --- jobs in flight
    Row("a running job is waited for", snap(job=job(), observed=seen()), "show", "JobInProgress", release=False),
    Row("a job past its deadline stalls and gives the turn back",
        snap(job=job(), observed=seen(), job_timeout=10), "show", "JobTimedOut", release=True),
    Row("a reconcile request restarts a timed-out job's clock",
        snap(job=job(), observed=seen(), job_timeout=10, look=True), "show", "JobInProgress"),
    # --- a job has ended: Ready only from observation
    Row("completed and AWS matches: Ready", snap(job=job("COMPLETED"), owned=True, observed=seen(DESIRED)),
        "show", "JobCompleted", release=True),
    Row("completed but AWS shows nothing: ResourceMissing, not Ready",
        snap(job=job("COMPLETED"), owned=True, observed=seen(None)), "show", "ResourceMissing", release=True,
        failure=True),
    Row("still missing on the next look: created again",
        snap(job=job("COMPLETED", missing=True), owned=True, observed=seen(None)), "submit", operation=CREATE),
    Row("completed but AWS differs: Drifted, looked at again",
        snap(job=job("COMPLETED", op=UPDATE), owned=True, observed=seen(DIFFERENT)), "show", "Drifted",
        failure=True),
    Row("still different on the next look after our create: one update",
        snap(job=job("COMPLETED", missing=True), owned=True, observed=seen(DIFFERENT)), "submit",
        operation=UPDATE),
    Row("still different on the next look after our update: stalls, not sent again for ever",
        snap(job=job("COMPLETED", op=UPDATE, missing=True), owned=True, observed=seen(DIFFERENT)), "show",
        "Drifted", release=True),
    Row("... until a reconcile request sends it again",
        snap(job=job("COMPLETED", op=UPDATE, missing=True), owned=True, look=True, observed=seen(DIFFERENT)),
        "submit", operation=UPDATE, event_reason="Drifted"),
    Row("failed job of this generation stalls", snap(job=job("FAILED"), owned=True, observed=seen(None)), "show",
        "JobFailed", release=True),
    Row("failed job of an older generation: tried again",
        snap(generation=2, job=job("FAILED", gen=1, fp="old"), observed=seen(None)), "submit", operation=CREATE),
    # --- nothing of ours yet
    Row("nothing in AWS: create", snap(observed=seen(None)), "submit", operation=CREATE),
    Row("AWS has one we did not create: AlreadyExists", snap(observed=seen(DESIRED)), "show", "AlreadyExists",
        release=True),
    Row("adopt an equal one with no call", snap(adopt=True, observed=seen(DESIRED)), "show", "Adopted", own=True,
        event_reason="Adopted"),
    Row("adopt a different one, then update it", snap(adopt=True, observed=seen(DIFFERENT)), "submit",
        operation=UPDATE, own=True),
    Row("adopt an equal one with secrets: one update sets them",
        snap(adopt=True, has_secrets=True, observed=seen(DESIRED)), "submit", operation=UPDATE, own=True),
    # --- spec changes of an owned resource
    Row("new spec, AWS differs: update",
        snap(generation=2, fingerprint="new", owned=True, job=job("COMPLETED", verified=True), observed=seen(DIFFERENT)),
        "submit", operation=UPDATE),
    Row("new spec only in fields AWS does not see: Ready with no call",
        snap(generation=2, owned=True, job=job("COMPLETED", verified=True), observed=seen(DESIRED)), "show",
        "JobCompleted"),
    Row("new secret reference: AWS looks equal but the secret must be sent",
        snap(generation=2, fingerprint="new", owned=True, has_secrets=True, job=job("COMPLETED", verified=True),
             observed=seen(DESIRED)), "submit", operation=UPDATE),
    Row("owned, deleted behind our back: created again",
        snap(owned=True, job=job("COMPLETED", verified=True, fp="old"), fingerprint=FP, observed=seen(None)),
        "submit", operation=CREATE),
    # --- drift: AWS changed behind our back
    Row("drift corrected by default: one update",
        snap(owned=True, look=True, job=job("COMPLETED", verified=True), observed=seen(DIFFERENT)), "submit",
        operation=UPDATE, event_reason="Drifted"),
    Row("drift only where no update reaches (create-only fields): stalls, no call",
        snap(owned=True, look=True, job=job("COMPLETED", verified=True), observed=seen(CREATE_ONLY_DIFFERS)),
        "show", "Drifted", release=True),
    Row("the same right after our own update: no call either",
        snap(owned=True, job=job("COMPLETED", op=UPDATE), observed=seen(CREATE_ONLY_DIFFERS)), "show", "Drifted",
        release=True),
    Row("drift in create-only and other fields: one update for what it can change",
        snap(owned=True, look=True, job=job("COMPLETED", verified=True), observed=seen(BOTH_DIFFER)), "submit",
        operation=UPDATE, event_reason="Drifted"),
    Row("drift only reported with driftPolicy Report: no call",
        snap(owned=True, look=True, report_drift=True, job=job("COMPLETED", verified=True), observed=seen(DIFFERENT)),
        "show", "Drifted", release=True),
    Row("report also right after our own job", snap(owned=True, report_drift=True, job=job("COMPLETED", op=UPDATE),
        observed=seen(DIFFERENT)), "show", "Drifted"),
    Row("a spec change is sent whatever the drift policy",
        snap(fingerprint="new", owned=True, report_drift=True, job=job("COMPLETED", verified=True), observed=seen(DIFFERENT)),
        "submit", operation=UPDATE),
    # --- Secret rotation: values compared by salted digest
    Row("a rotated Secret value is sent with one update",
        snap(owned=True, has_secrets=True, secrets=SecretsRead("new"), job=job("COMPLETED", verified=True, secrets_digest="old"),
             observed=seen(DESIRED)), "submit", operation=UPDATE),
    Row("the same Secret values: Ready, no call",
        snap(owned=True, has_secrets=True, secrets=SecretsRead("same"), job=job("COMPLETED", verified=True, secrets_digest="same"),
             observed=seen(DESIRED)), "show", "JobCompleted"),
    Row("a rotated Secret is looked at, not taken as settled",
        snap(has_secrets=True, secrets=SecretsRead("new"), job=job("COMPLETED", verified=True, secrets_digest="old")), "observe"),
    # --- a lost answer (the pending marker)
    Row("lost answer, our job still runs: recovered, not called again",
        snap(marker=MARK_CREATE, observed=seen(None, running=job(id="job-9"))), "show", "JobInProgress",
        clear_marker=True, job_id="job-9", event_reason="Recovered"),
    Row("a recovered create makes the auth resource ours",
        snap(marker=MARK_CREATE, observed=seen(None, running=job(id="job-9"))), "show", "JobInProgress", own=True),
    Row("our completed create job makes the resource ours even without the annotation",
        snap(job=job("COMPLETED"), observed=seen(DESIRED)), "show", "JobCompleted", own=True),
    Row("lost answer, nothing ran and nothing exists: create now",
        snap(marker=MARK_CREATE, observed=seen(None)), "submit", operation=CREATE, clear_marker=True),
    Row("lost create answer, the job already ended and AWS matches: ours, Ready",
        snap(marker=MARK_CREATE, observed=seen(DESIRED)), "show", "InSync", clear_marker=True, own=True),
    Row("lost update answer, AWS looks equal: sent again (what the spec dropped is not compared)",
        snap(generation=2, marker=MARK_UPDATE, owned=True, job=job("COMPLETED", verified=True, fp="old"),
             observed=seen(DESIRED)), "submit", operation=UPDATE, clear_marker=True),
    Row("a changed request is sent even when the fields it sets look equal in AWS (a block removed)",
        snap(generation=2, fingerprint="new", owned=True, job=job("COMPLETED", verified=True), observed=seen(DESIRED)),
        "submit", operation=UPDATE),
    Row("lost update answer, AWS still differs: update (harmless if it happens twice)",
        snap(generation=2, marker=MARK_UPDATE, owned=True, job=job("COMPLETED", verified=True, fp="old"),
             observed=seen(DIFFERENT)), "submit", operation=UPDATE, clear_marker=True),
]  # fmt: skip


@dataclass(frozen=True)
class View:
    """A plan as the table reads it."""

    kind: str
    settle: Settle | None
    operation: str | None = None

    @property
    def books(self) -> Settle:
        assert self.settle is not None
        return self.settle

    @property
    def reason(self) -> str | None:
        return self.books.state.reason if self.books.state else None

    @property
    def release(self) -> bool:
        return self.books.release

    @property
    def clear_marker(self) -> bool:
        return PENDING in self.books.annotations and self.books.annotations[PENDING] is None

    @property
    def own(self) -> bool:
        return self.books.annotations.get(CREATED) == "true"

    @property
    def failure(self) -> bool:
        return self.books.backoff is not None

    @property
    def event_reason(self) -> str | None:
        return self.books.notes[0].reason if self.books.notes else None


def view(plan: Plan) -> View:
    if isinstance(plan, Settle):
        return View("show", plan)
    if isinstance(plan, Submit):
        return View("submit", plan.books, plan.operation)
    if isinstance(plan, Wait):
        return View("nothing", None)
    assert isinstance(plan, Read), plan
    return View("observe", None)


@pytest.mark.parametrize("row", ROWS, ids=[r.situation for r in ROWS])
def test_decide(row: Row) -> None:
    plan = decide(row.snapshot)
    seen = view(plan)
    assert seen.kind == row.kind, plan
    if row.reason is not None:
        assert seen.reason == row.reason, plan
    for name in ("operation", "release", "clear_marker", "own", "failure", "event_reason"):
        expected = getattr(row, name)
        if expected is not None:
            assert getattr(seen, name) == expected, f"{name}: {plan}"
    if row.job_id is not None:
        assert isinstance(plan, Settle) and plan.job is not None and plan.job.id == row.job_id
    if row.phase is not None:
        assert isinstance(plan, Settle) and plan.state is not None and plan.state.phase == row.phase, plan


def settled(s: Snapshot) -> Settle:
    plan = decide(s)
    assert isinstance(plan, Settle), plan
    return plan


def test_ready_only_ever_comes_from_an_observation() -> None:
    """Whatever the bookkeeping says, Ready needs AWS to have been observed in this step or a
    verified earlier observation of the same request."""
    for row in ROWS:
        plan = decide(row.snapshot)
        if isinstance(plan, Settle) and plan.state and plan.state.phase == "ready":
            if plan.state.reason == "Paused":  # Ready kept as an earlier step showed it
                assert row.snapshot.ready_generation is not None, row.situation
                continue
            verified = row.snapshot.job is not None and row.snapshot.job.verified
            assert row.snapshot.observed is not None or verified, row.situation
            if row.snapshot.observed is not None:
                assert row.snapshot.observed.resource is not None, row.situation


def test_a_recovered_job_keeps_the_marker_generation_and_request() -> None:
    action = settled(
        snap(marker=MARK_UPDATE, generation=2, observed=seen(None, running=job(id="j", op=UPDATE)))
    )
    assert action.job is not None
    assert (action.job.generation, action.job.fingerprint, action.job.submitted_at) == (2, FP, MARK_UPDATE.at)


def test_verified_job_is_remembered_as_verified() -> None:
    action = settled(snap(job=job("COMPLETED"), owned=True, observed=seen(DESIRED)))
    assert action.job is not None and action.job.verified and not action.job.missing


# ---- config_diff ------------------------------------------------------------------------------


def test_config_diff_names_spec_paths() -> None:
    assert config_diff(DESIRED, DIFFERENT) == ["resourceConfig.userPoolConfigs.passwordPolicy.minimumLength"]


def test_config_diff_ignores_what_the_spec_leaves_out_and_list_order() -> None:
    observed = {**DESIRED, "UserPoolConfigs": {**DESIRED["UserPoolConfigs"], "RequiredSignUpAttributes": ["NAME", "EMAIL"],
                                               "Mfa": {"MFAMode": "OFF"}}}  # fmt: skip
    assert config_diff(DESIRED, observed) == []


def test_config_diff_never_compares_secrets() -> None:
    desired = {"OAuth": {"SocialProviderSettings": {"Google": {"ClientId": "a", "ClientSecret": "s1"}}}}
    observed = {"OAuth": {"SocialProviderSettings": {"Google": {"ClientId": "a"}}}}
    assert config_diff(desired, observed) == []


def test_config_diff_a_missing_block_is_one_path() -> None:
    assert config_diff({"IdentityPoolConfigs": {"IdentityPoolName": "x"}}, {}) == [
        "resourceConfig.identityPoolConfigs"
    ]


@pytest.mark.parametrize(
    ("boto", "spec"),
    [(["UserPoolConfigs", "Mfa", "MFAMode"], "resourceConfig.userPoolConfigs.mfa.mfaMode"),
     (["UserPoolConfigs", "OAuth", "OAuthScopes"], "resourceConfig.userPoolConfigs.oAuth.oAuthScopes"),
     (["UserPoolConfigs", "OAuth", "RedirectSignInURIs"], "resourceConfig.userPoolConfigs.oAuth.redirectSignInURIs")],
)  # fmt: skip
def test_spec_path_maps_the_irregular_keys(boto: list[str], spec: str) -> None:
    assert spec_path(boto) == spec


def test_the_drift_paths_are_reported_with_every_observation_of_the_resource() -> None:
    drifted = settled(
        snap(owned=True, report_drift=True, job=job("COMPLETED", verified=True), observed=seen(DIFFERENT))
    )
    assert drifted.drift == ("resourceConfig.userPoolConfigs.passwordPolicy.minimumLength",)
    in_sync = settled(snap(owned=True, job=job("COMPLETED"), observed=seen(DESIRED)))
    assert in_sync.drift == ()
    assert settled(snap(job=job(), observed=seen())).drift is None


def test_the_record_of_an_observation_alone_reads_back() -> None:
    action = settled(snap(owned=True, observed=seen(DESIRED)))
    assert action.job is not None and action.job.id == "" and action.job.operation == ""
    annotations = {"amplifybackend.gitops.dev/job": action.job.to_annotation()}
    assert Job.from_annotation(annotations) == action.job


def test_drift_no_update_can_correct_is_explained_with_the_field_named() -> None:
    action = settled(
        snap(owned=True, job=job("COMPLETED", verified=True), observed=seen(CREATE_ONLY_DIFFERS))
    )
    assert action.state is not None and action.state.phase == "stalled"
    assert action.drift == ("resourceConfig.userPoolConfigs.requiredSignUpAttributes",)
    assert "requiredSignUpAttributes, which UpdateBackendAuth cannot change" in action.state.message


# ---- the rows that were branches of the step: what to read, and what each result means ---------

THROTTLED = Failure("Throttled", True, "TooManyRequestsException: slow down")
AMBIGUOUS = Failure("AWSUnavailable", True, "AWS did not answer", ambiguous=True)
REFUSED = Failure("BadRequest", False, "BadRequestException: no")
MISSING = Failure("SecretNotFound", True, "Secret default/x not found")
MARKER = Marker(CREATE, NOW, 1, FP)
CREATE_SUBMIT = snap(observed=seen(None))


@dataclass(frozen=True)
class Step:
    situation: str
    snapshot: Snapshot
    plan: type
    reason: str | None = None
    check: Any = None  # a predicate on the plan


STEP_ROWS = [
    # what to read, and in which order (once: a read's result is a field of the next snapshot)
    Step("a bad annotation stalls, naming it", snap(bad_annotation="annotation x is not JSON"), Settle, "BadAnnotation"),
    Step("a rotation check reads the Secrets first", snap(check_secrets=True), ReadSecrets),
    Step("... then goes on", snap(check_secrets=True, secrets=SecretsRead(None)), ReadResource),
    Step("waiting for a turn: the Lease is read, not AWS", snap(previous_reason="JobPending"), CheckTurn),
    Step("... and the turn is free: AWS is read", snap(previous_reason="JobPending", turn_read=TurnRead(None)), ReadResource),
    Step("a job in flight is polled first", snap(job=job()), PollJob),
    Step("a polled job still running: nothing else is read", snap(job=job(), polled=True), Settle, "JobInProgress"),
    Step("after a lost answer, the turn is read first: another operator may be making the call", snap(marker=MARKER), CheckHold),
    Step("another operator process holds this object's turn: wait, neither looking for its job nor calling",
         snap(marker=MARKER, hold=HoldRead("pod-a")), Settle, "JobPending",
         lambda p: "operator pod-a is calling AWS" in p.state.message and not p.release and p.backoff is None
         and PENDING not in p.annotations),
    Step("no other process holds it (or its hold may be taken): the unfinished jobs are listed",
         snap(marker=MARKER, hold=HoldRead(None)), FindRunning),
    Step("a foreign job runs: wait for it, with backoff",
         snap(marker=MARKER, hold=HoldRead(None), running=RunningRead(job(id="x"), "default/other/u"), me="default/auth/u"),
         Settle, "JobPending", lambda p: p.backoff == "JobPending" and "default/other" in p.state.message),
    Step("our own job runs: the resource is read, then it is recovered",
         snap(marker=MARKER, hold=HoldRead(None), running=RunningRead(job(id="x"), "default/auth/u"), me="default/auth/u"),
         ReadResource),
    Step("... also when this object's turn is held through another operator process",
         snap(marker=MARKER, hold=HoldRead(None), running=RunningRead(job(id="x"), "default/auth/u@pod-a"), me="default/auth/u"),
         ReadResource),
    # fencing and the leader gate: read again rather than act on a stale read or as a standby
    Step("a standby reads again (its poller holds the object until it leads)", snap(leading=False), ReadAgain, None,
         lambda p: not p.release),
    Step("a write of the step was refused (409): read again, whatever was decided", snap(stale=True, observed=seen(DESIRED)),
         ReadAgain, None, lambda p: not p.release),
    Step("... also after a call went out (its record was rewritten while the marker was its own)",
         replace(CREATE_SUBMIT, stale=True, submitted=Accepted(job(), MARKER)), ReadAgain),
    Step("the marker's write was refused: nothing was sent; read again, the turn goes back",
         replace(CREATE_SUBMIT, submitted=Stale()), ReadAgain, None, lambda p: p.release),
    Step("not sent (no longer leading, or past the send window): the marker and the turn go, read again",
         replace(CREATE_SUBMIT, submitted=Withheld("this operator no longer leads", MARKER)), Settle, None,
         lambda p: p.state is None and p.annotations[PENDING] is None and p.release and p.again and p.backoff is None),
    Step("no longer leading, and the call was withheld: read again, the turn goes back (the new leader clears the marker)",
         replace(CREATE_SUBMIT, leading=False, submitted=Withheld("this operator no longer leads", MARKER)), ReadAgain, None,
         lambda p: p.release),
    Step("no longer leading once the call went out: its outcome is still written",
         replace(CREATE_SUBMIT, leading=False, submitted=Accepted(job(), MARKER)), Settle, "JobInProgress",
         lambda p: p.annotations[PENDING] is None),
    Step("... and an ambiguous one keeps its marker", replace(CREATE_SUBMIT, leading=False, submitted=Rejected(AMBIGUOUS, MARKER)),
         Settle, "AWSUnavailable", lambda p: p.annotations[PENDING] == MARKER.to_annotation()),
    Step("a failed read backs off", snap(failure=THROTTLED), Settle, "Throttled", lambda p: p.backoff == "Throttled"),
    Step("our job completed and AWS shows it as asked: Ready, and no second event (its Submitted event said it was sent)",
         snap(job=job("COMPLETED"), owned=True, observed=seen(DESIRED)), Settle, "JobCompleted",
         lambda p: p.event is None and p.notes == ()),
    Step("nothing else to read: the resource", snap(), ReadResource),
    # what a submit's outcome means
    Step("accepted: the job is remembered and shown", replace(CREATE_SUBMIT, submitted=Accepted(job(), MARKER)),
         Settle, "JobInProgress",
         lambda p: p.annotations[PENDING] is None and p.annotations[CREATED] == "true" and p.notes[-1].reason == "Submitted"),
    Step("refused: stalls, the turn and the marker go", replace(CREATE_SUBMIT, submitted=Rejected(REFUSED, MARKER)),
         Settle, "BadRequest", lambda p: p.release and p.annotations[PENDING] is None and p.backoff is None),
    Step("throttled: backs off, the turn goes back", replace(CREATE_SUBMIT, submitted=Rejected(THROTTLED, MARKER)),
         Settle, "Throttled", lambda p: p.release and p.backoff == "Throttled"),
    Step("ambiguous: the marker and the turn stay", replace(CREATE_SUBMIT, submitted=Rejected(AMBIGUOUS, MARKER)),
         Settle, "AWSUnavailable", lambda p: not p.release and p.annotations[PENDING] == MARKER.to_annotation()),
    Step("another has the turn: waits, no backoff, no event", replace(CREATE_SUBMIT, submitted=TurnTaken("default/other")),
         Settle, "JobPending", lambda p: p.backoff is None and p.event is None),
    Step("a Secret is missing: retried within 30 s", replace(CREATE_SUBMIT, submitted=NotSent(MISSING)),
         Settle, "SecretNotFound", lambda p: p.backoff_cap == 30.0 and p.release),
    # deletion: the same decide
    Step("Retain: let go, AWS untouched", snap(deleting=True, finalizers=HELD, owned=True), Finish, None,
         lambda p: p.outcome == "let_go" and p.release),
    Step("Delete, not ours: let go", snap(deleting=True, finalizers=HELD, deletion_policy="Delete"), Finish, None,
         lambda p: p.outcome == "let_go"),
    Step("Delete while paused: retained, with a warning", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, paused=True),
         Finish, None, lambda p: p.outcome == "let_go" and p.notes[0].reason == "Paused"),
    Step("Delete, ours: DeleteBackendAuth", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True), Delete),
    Step("the delete job in flight is polled", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, delete_job=job(op=DELETE)),
         PollDelete),
    Step("still running: wait", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, delete_job=job(op=DELETE), delete_polled=True),
         Finish, None, lambda p: p.outcome == "wait"),
    Step("completed: let go, with a Normal event saying so",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, delete_job=job("COMPLETED", op=DELETE)),
         Finish, None, lambda p: p.outcome == "let_go" and p.release and [(n.kind, n.reason) for n in p.notes] == [
             ("Normal", "Deleted")] and " deleted in AWS (DeleteBackendAuth job " in p.notes[0].message),
    Step("failed: the finalizer stays", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, delete_job=job("FAILED", op=DELETE)),
         Finish, None, lambda p: p.outcome == "give_up" and p.state.reason == "DeleteFailed"),
    Step("a standby reads again, nothing more: the leader deletes (the poller holds it until this process leads)",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, leading=False),
         ReadAgain, None, lambda p: not p.release),
    Step("not sent because this process stopped leading: read again, the turn goes back",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, leading=False,
              delete_submitted=Withheld("another operator leads; it deletes")),
         ReadAgain, None, lambda p: p.release),
    Step("stopped leading once DeleteBackendAuth went out: its job is still written",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, leading=False,
              delete_submitted=Accepted(job(op=DELETE)), delete_job=job(op=DELETE)),
         PollDelete),
    Step("deleted before its create's outcome was written (the marker of a create is on it): DeleteBackendAuth",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", marker=MARK_CREATE), Delete),
    Step("... likewise with the record of its create job and no created annotation",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", job=job(op=CREATE)), Delete),
    Step("... but a pending update alone does not make it ours", snap(deleting=True, finalizers=HELD, deletion_policy="Delete",
                                                                      marker=MARK_UPDATE), Finish, None,
         lambda p: p.outcome == "let_go"),
    Step("not held by our finalizer (Retained, or another's): let go, nothing written, AWS untouched",
         snap(deleting=True, deletion_policy="Delete", owned=True), Finish, None,
         lambda p: p.outcome == "let_go" and not p.release and p.notes == () and p.delete_job is None),
    Step("a write of the deletion was refused: read again", snap(deleting=True, finalizers=HELD, deletion_policy="Delete",
                                                                  owned=True, stale=True), ReadAgain),
    Step("gone (Retain, ours): the turn goes back, and it is said once that AWS keeps it",
         snap(deleting=True, gone=True, owned=True, app="app", env="dev", resource_name="r"), Finish, None,
         lambda p: p.outcome == "let_go" and p.release and [(n.kind, n.reason) for n in p.notes] == [("Normal", "Retained")]
         and p.notes[0].message == "auth resource app/dev/r left in place in AWS (deletionPolicy Retain)"),
    Step("gone (Retain, not ours): only a log line", snap(deleting=True, gone=True), Finish, None,
         lambda p: p.release and [(n.kind, n.log is not None) for n in p.notes] == [("", True)]),
    Step("gone (Delete): the turn goes back, nothing more to say", snap(deleting=True, gone=True, deletion_policy="Delete", owned=True),
         Finish, None, lambda p: p.release and p.notes == ()),
    Step("not sent (no longer leading): wait, the turn goes back, the leader deletes",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, delete_submitted=Withheld("another operator leads; it deletes")),
         Finish, None, lambda p: p.outcome == "wait" and "another operator leads" in p.message and p.release),
    Step("another has the turn: wait", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, delete_submitted=TurnTaken("x/y")),
         Finish, None, lambda p: p.outcome == "wait" and not p.release),
    Step("already gone in AWS: let go", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True,
                                              delete_submitted=Rejected(Failure("NotFound", True, "gone"))),
         Finish, None, lambda p: p.outcome == "let_go" and [(n.kind, n.reason) for n in p.notes] == [("Normal", "Deleted")]
         and "already gone" in p.notes[0].message),
    Step("throttled: retried, the turn goes back", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True,
                                                         delete_submitted=Rejected(THROTTLED)),
         Finish, None, lambda p: p.outcome == "retry" and p.release and p.retry_reason == "Throttled"),
    Step("ambiguous: retried, the turn stays", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True,
                                                     delete_submitted=Rejected(AMBIGUOUS)),
         Finish, None, lambda p: p.outcome == "retry" and not p.release),
    Step("refused: given up", snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, delete_submitted=Rejected(REFUSED)),
         Finish, None, lambda p: p.outcome == "give_up"),
    # accounts: the namespace's annotation and the account map decide where it acts
    Step("the namespace's account has no role in the map: Stalled, the turn goes back, no AWS call",
         snap(account="111111111111", account_problem=("AccountNotMapped", "add the key")), Settle, "AccountNotMapped",
         lambda p: p.state.phase == "stalled" and p.release and p.account is None and p.event == "Warning"),
    Step("... also with a settled job of this very request (no shortcut past the account)",
         snap(account="111111111111", account_problem=("AccountNotMapped", "x"), job=job(COMPLETED, verified=True)),
         Settle, "AccountNotMapped"),
    Step("a bad annotation on the namespace stalls", snap(account_problem=("BadAnnotation", "Namespace x: ...")), Settle,
         "BadAnnotation", lambda p: p.state.phase == "stalled"),
    Step("... with a job in flight: its turn is kept", snap(account_problem=("AccountNotMapped", "x"), job=job()), Settle,
         "AccountNotMapped", lambda p: not p.release),
    Step("paused wins over the account (no AWS call either way)", snap(paused=True, account_problem=("AccountNotMapped", "x")),
         Settle, "Paused"),
    Step("the namespace or the map cannot be read: retried with backoff",
         snap(account_unreadable="cannot read ConfigMap x/y: 403 Forbidden"), Settle, "AccountUnknown",
         lambda p: p.backoff == "AccountUnknown" and p.state.phase == "reconciling"),
    Step("the namespace now names another account than the one acted in: Stalled AccountChanged, nothing read or sent",
         snap(account="222222222222", recorded_account="111111111111", job=job(COMPLETED, verified=True)), Settle,
         "AccountChanged", lambda p: p.state.phase == "stalled" and "111111111111" in p.state.message and p.account is None),
    Step("... also when the new account has no role (the resource is elsewhere either way)",
         snap(account="222222222222", recorded_account="111111111111", account_problem=("AccountNotMapped", "x")),
         Settle, "AccountChanged"),
    Step("a bad annotation after acting somewhere: BadAnnotation (no account to compare)",
         snap(recorded_account="111111111111", account_problem=("BadAnnotation", "x")), Settle, "BadAnnotation"),
    Step("... also when nothing was ever settled there (a create in flight keeps its turn)",
         snap(account="222222222222", recorded_account="111111111111", job=job()), Settle, "AccountChanged",
         lambda p: not p.release),
    Step("... also after a change of spec (a new generation is not sent to the new account)",
         snap(generation=2, account="222222222222", recorded_account="111111111111", job=job(COMPLETED, verified=True)),
         Settle, "AccountChanged"),
    Step("the annotation went back to the account acted in: on as usual", snap(account="111111111111", recorded_account="111111111111"),
         ReadResource),
    Step("the operator's own account cannot be told while the object acted in one: retried, nothing sent",
         snap(account="", recorded_account="111111111111"), Settle, "AccountUnknown", lambda p: p.backoff == "AccountUnknown"),
    Step("never acted anywhere: no record, it follows the annotation", snap(account="222222222222"), ReadResource),
    Step("no annotation, the operator's own account not asked yet: asked (once per process) before AWS is read",
         snap(ask_own_account=True), AskOwnAccount),
    Step("... but not while paused (no AWS call at all)", snap(ask_own_account=True, paused=True), Settle, "Paused"),
    Step("... nor for a spec that is invalid", snap(ask_own_account=True, spec_error="spec.appId: bad"), Settle, "InvalidSpec"),
    Step("... nor when a deletion retains the resource", snap(ask_own_account=True, deleting=True, finalizers=HELD, owned=True), Finish, None,
         lambda p: p.outcome == "let_go"),
    Step("... but before deleting in AWS", snap(ask_own_account=True, deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True),
         AskOwnAccount),
    Step("an observation records the account acted in (status.awsAccountId)",
         snap(account="111111111111", observed=seen(None)), Submit),
    Step("... written with the accepted create", replace(CREATE_SUBMIT, account="111111111111", submitted=Accepted(job(), MARKER)),
         Settle, "JobInProgress", lambda p: p.account == "111111111111"),
    Step("... and with what AWS showed", snap(account="111111111111", observed=seen(DESIRED), job=job(COMPLETED)),
         Settle, "JobCompleted", lambda p: p.account == "111111111111"),
    Step("... but not again when it is shown already", snap(account="111111111111", recorded_account="111111111111",
                                                             observed=seen(DESIRED), job=job(COMPLETED)),
         Settle, "JobCompleted", lambda p: p.account is None),
    Step("the operator's own account unknown: nothing recorded", snap(observed=seen(DESIRED), job=job(COMPLETED)),
         Settle, "JobCompleted", lambda p: p.account is None),
    Step("deleting (Delete) after the namespace moved: the finalizer stays, nothing deleted in the new account",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, account="222222222222", recorded_account="111111111111"),
         Finish, None, lambda p: p.outcome == "retry" and p.state.reason == "AccountChanged"),
    Step("deleting (Delete) in an account without a role: retried until it has one",
         snap(deleting=True, finalizers=HELD, deletion_policy="Delete", owned=True, account_problem=("AccountNotMapped", "x")),
         Finish, None, lambda p: p.outcome == "retry" and p.state.reason == "AccountNotMapped"),
    Step("deleting (Retain) after the namespace moved: let go, AWS untouched",
         snap(deleting=True, finalizers=HELD, owned=True, account="222222222222", recorded_account="111111111111"),
         Finish, None, lambda p: p.outcome == "let_go"),
]  # fmt: skip


@pytest.mark.parametrize("row", STEP_ROWS, ids=[r.situation for r in STEP_ROWS])
def test_step_rows(row: Step) -> None:
    plan = decide(row.snapshot)
    assert isinstance(plan, row.plan), plan
    if row.reason is not None:
        assert isinstance(plan, Settle) and plan.state is not None and plan.state.reason == row.reason, plan
    if row.check is not None:
        assert row.check(plan), plan
