"""Pure decisions: what to do next for a BackendAuth, the conditions, the retry delay.

A step of the operator is event → snapshot → decide → act → write. :func:`decide` is the whole
policy, deletion included: it takes a :class:`Snapshot` (the object as read once, then what each
action of this step produced: a read of AWS, a submit's outcome, the Lease's holder) and returns
one :data:`Plan`, a closed set of typed variants: a read, :class:`Submit`, :class:`Delete`,
:class:`PollDelete`, or an outcome (:class:`Settle`, :class:`Wait`, :class:`Finish`). Nothing
here talks to Kubernetes or AWS, so every rule is tested as a table.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from backendauth_operator import FINALIZER
from backendauth_operator.core.bookkeeping import (
    COMPLETED,
    CREATED,
    CREATING,
    FAILURES,
    JOB,
    PAUSED,
    PENDING,
    RECONCILE_REQUESTED,
    Failures,
    Job,
    Marker,
    is_true,
)
from backendauth_operator.core.bookkeeping import CREATE as CREATE_OP
from backendauth_operator.core.bookkeeping import UPDATE as UPDATE_OP
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.holder import name_of, object_of
from backendauth_operator.core.import_types import IdsRead, ImportCheck, ImportRead, Link
from backendauth_operator.core.models import SECRET_BOTO_KEYS, BackendAuthSpec, create_only, spec_path
from backendauth_operator.core.role import OWNER_ACCOUNT, Role

Phase = Literal["ready", "reconciling", "stalled"]


@dataclass(frozen=True)
class State:
    """The one thing a BackendAuth is doing now, as the conditions will show it.

    ``reason`` is a CamelCase word (JobCompleted, Throttled, InvalidSpec, ...): the status
    reference, docs/reference/status.md, lists them.
    """

    phase: Phase
    reason: str
    message: str


def now_rfc3339(now: datetime | None = None) -> str:
    """A Kubernetes-style timestamp (seconds, UTC, ``Z``)."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_for(
    state: State,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Ready, Reconciling and Stalled for ``state`` (kstatus): exactly one phase is True.

    ``lastTransitionTime`` moves only when a condition's status changes, as Kubernetes expects.
    """
    stamp = now_rfc3339(now)
    before = {c.get("type"): c for c in previous}
    out = []
    for ctype, active in (
        ("Ready", state.phase == "ready"),
        ("Reconciling", state.phase == "reconciling"),
        ("Stalled", state.phase == "stalled"),
    ):
        status = "True" if active else "False"
        old = before.get(ctype)
        changed = old is None or old.get("status") != status
        since = stamp if old is None or changed else old.get("lastTransitionTime", stamp)
        out.append(
            {
                "type": ctype,
                "status": status,
                "reason": state.reason,
                "message": state.message,
                "observedGeneration": generation,
                "lastTransitionTime": since,
            }
        )
    return out


def current_reason(conditions: Iterable[Mapping[str, Any]]) -> str | None:
    """The reason the conditions show now (they all carry the same one)."""
    for condition in conditions:
        if condition.get("type") == "Ready":
            return str(condition.get("reason") or "") or None
    return None


def ready_generation(conditions: Iterable[Mapping[str, Any]]) -> int | None:
    """The generation the conditions show Ready=True for; None when they do not show Ready."""
    for condition in conditions:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            generation = condition.get("observedGeneration")
            return generation if isinstance(generation, int) else None
    return None


def backoff_delay(
    retry: int, base: float, cap: float, rng: random.Random | None = None, *, jitter: float | None = None
) -> float:
    """Exponential backoff with full jitter, kept between ``base`` and ``cap``.

    The window doubles with each retry (base, 2·base, 4·base, ... up to cap); the delay is drawn
    uniformly within it, so that many BackendAuths throttled together do not retry together.
    ``jitter``: a uniform draw in [0, 1) made beforehand (the snapshot's, so that decide stays a
    function of its snapshot); without it the delay is drawn from ``rng``.
    """
    low, high = base, max(base, min(cap, base * float(2 ** min(retry, 32))))
    if jitter is not None:
        return low + (high - low) * jitter  # what random.uniform(low, high) computes from its draw
    return (rng or random).uniform(low, high)


@dataclass(frozen=True)
class RetryPolicy:
    """The retry policy of the configuration (``BACKENDAUTH_RETRY_BASE_SECONDS`` and
    ``BACKENDAUTH_RETRY_MAX_SECONDS``): backoff from ``base`` seconds, never above ``cap``."""

    base: float = 5.0
    cap: float = 300.0


@dataclass(frozen=True)
class Retry:
    """A retryable failure's backoff, as decided: what the writer records, and nothing more."""

    reason: str  # the failure's reason, for the retries metric
    failures: int  # consecutive retryable failures, this one included
    delay: float  # seconds before the next attempt


# ---- observe → decide → act ------------------------------------------------------------------


def _same_scalar(want: Any, have: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return float(want) == float(have)  # AWS types minimumLength as a double
    return bool(want == have)


def config_diff(
    desired: Mapping[str, Any], observed: Mapping[str, Any], at: tuple[str, ...] = ()
) -> list[str]:
    """The spec paths where AWS's ``ResourceConfig`` differs from the desired one.

    Only what the spec sets is compared: a member the spec leaves out is AWS's to choose.
    Secret values are never compared here (AWS need not echo them). Lists of plain values are
    compared as sets, since AWS does not promise to keep their order.
    """
    out: list[str] = []
    for key, want in desired.items():
        if key in SECRET_BOTO_KEYS:
            continue
        path = (*at, key)
        have = observed.get(key) if isinstance(observed, Mapping) else None
        if isinstance(want, Mapping):
            if not isinstance(have, Mapping):
                out.append(spec_path(path))
            else:
                out.extend(config_diff(want, have, path))
        elif isinstance(want, list):
            if not isinstance(have, list) or sorted(map(str, want)) != sorted(map(str, have)):
                out.append(spec_path(path))
        elif have is None or not _same_scalar(want, have):
            out.append(spec_path(path))
    return out


@dataclass(frozen=True)
class Observation:
    """What AWS was seen to have in this step (the job, if one was in flight, is polled into
    :attr:`Snapshot.job`)."""

    resource: Mapping[str, Any] | None  # GetBackendAuth's ResourceConfig; None: no such resource
    running: Job | None = None  # with a pending marker: the unfinished job on the app/env, if any
    links: tuple[Link, ...] | None = None  # GetBackend's auth resources (an import's observation)

    @property
    def digest(self) -> str:
        """A digest of what GetBackendAuth (or, for an import, GetBackend) answered: a different
        answer may mean other outputs."""
        canonical = json.dumps(self.resource, sort_keys=True, default=str)
        if self.links is not None:
            canonical += json.dumps([(link.name, link.outputs) for link in self.links], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# ---- what an action produced: each comes back as a field of the next snapshot ------------------
# A read's field is None until the read was made in this step; once made, it holds what the read
# found (which may itself be "nothing").


@dataclass(frozen=True)
class SecretsRead:
    """The referenced Secrets, as :class:`ReadSecrets` read them."""

    digest: str | None  # salted digest of their values; None: one of them could not be read


@dataclass(frozen=True)
class TurnRead:
    """The app/env's turn, as :class:`CheckTurn` read it."""

    busy: str | None  # another BackendAuth that holds it (namespace/name); None: free, or ours


@dataclass(frozen=True)
class HoldRead:
    """This object's turn, as :class:`CheckHold` read it."""

    holder: str | None  # another operator process that holds it and may be calling AWS; None: none


@dataclass(frozen=True)
class RunningRead:
    """The unfinished job on the app/env, as :class:`FindRunning` found it (ListBackendJobs)."""

    job: Job | None  # None: nothing unfinished
    holder: str | None = None  # who held the app/env's turn when it was found


@dataclass(frozen=True)
class Accepted:
    """AWS started the job; ``marker`` was written before the call, making the object's
    ``version``."""

    job: Job
    marker: Marker | None = None
    version: str | None = None


@dataclass(frozen=True)
class Rejected:
    """The call failed: refused, throttled, or ``failure.ambiguous`` (AWS may have done it)."""

    failure: Failure
    marker: Marker | None = None
    version: str | None = None


@dataclass(frozen=True)
class Stale:
    """The pending marker was refused (409): the object changed since it was read, so nothing
    was sent."""


@dataclass(frozen=True)
class Withheld:
    """The marker was written but the call was not sent (``reason``): this process stopped
    leading, or pacing held the call past the send window."""

    reason: str
    marker: Marker | None = None
    version: str | None = None


@dataclass(frozen=True)
class TurnTaken:
    """Another BackendAuth holds the app/env's turn (``holder``: its namespace/name)."""

    holder: str


@dataclass(frozen=True)
class NotSent:
    """Nothing was sent: a referenced Secret cannot be read."""

    failure: Failure


Submitted = Accepted | Rejected | TurnTaken | NotSent | Stale | Withheld


class Variant(Protocol):
    """What differs between the kinds of auth resource a BackendAuth may hold (one made from
    ``resourceConfig``, or existing pools linked by ``spec.import``): how AWS is observed, and
    what an observation means. Everything else (the job, its recovery, the turn, fencing,
    pause, the account, deletion) is :func:`decide`'s, shared. Pure, as decide is."""

    def observe(self, s: Snapshot) -> Plan:
        """The next read that observes AWS (its result comes back in :attr:`Snapshot.observed`)."""
        ...

    def decide_seen(
        self, s: Snapshot, seen: Observation, job: Job | None, current: bool, owned: bool, kw: dict[str, Any]
    ) -> Plan:
        """What to do about what AWS shows, once no job of ours runs: ``job`` is our latest,
        ``current`` whether it was for this very request, ``owned`` whether the auth resource
        is ours; ``kw`` the bookkeeping that goes with any outcome."""
        ...


class CreatedAuth:
    """The auth resource made from ``resourceConfig``: GetBackendAuth observes it, and its
    configuration is compared with the spec's (create, update, adopt, drift)."""

    def observe(self, s: Snapshot) -> Plan:
        return ReadResource()

    def decide_seen(
        self, s: Snapshot, seen: Observation, job: Job | None, current: bool, owned: bool, kw: dict[str, Any]
    ) -> Plan:
        return _decide_config(s, seen, job, current, owned, kw)


CREATED_AUTH: Variant = CreatedAuth()


@dataclass(frozen=True)
class Snapshot:
    """Everything :func:`decide` may look at: the object as read once, then what each action of
    this step produced."""

    generation: int | None
    now: float  # wall clock, seconds
    # --- the object (reading.read)
    namespace: str = ""
    name: str = ""
    uid: str = ""
    me: str = ""  # the Lease holder identity of this object: namespace/name/uid
    version: str | None = None  # the resourceVersion read: every write is conditional on it
    leading: bool = True  # this process acts (leads, or runs without leader election)
    region: str = ""
    app: str = ""
    env: str = ""
    resource_name: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    request: str | None = None  # a reconcile-requested-at value not yet handled, to echo
    spec: BackendAuthSpec | None = None  # the parsed spec (None: invalid, see spec_error)
    previous_reason: str | None = None  # the reason the conditions show now
    waiting: bool = False  # the conditions show it waiting (see shows_waiting): the poller has it
    bad_annotation: str | None = None
    spec_error: str | None = None
    paused: bool = False
    ready_generation: int | None = None  # the generation the conditions show Ready=True for
    fingerprint: str = ""  # digest of the request the spec asks for (secrets by reference)
    desired: Mapping[str, Any] | None = None  # the spec's ResourceConfig as boto3 sends it
    has_secrets: bool = False
    adopt: bool = False  # spec.adoptionPolicy is AdoptOrCreate
    owned: bool = False  # this BackendAuth created (or adopted) the auth resource
    job: Job | None = None
    marker: Marker | None = None
    failures: int = 0  # consecutive retryable failures
    not_before: float = 0.0  # backoff: no attempt before this
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # the configuration's retry policy
    jitter: float = 0.5  # a uniform draw in [0, 1) (reading.read draws it): where a backoff falls
    look: bool = False  # look at AWS now: a reconcile request, a resync, a Secret change
    check_secrets: bool = False  # read the Secrets to notice a rotation
    cause: str | None = None  # what started this step, for events (never a secret value)
    report_drift: bool = False  # spec.driftPolicy is Report
    outputs_config_map: str | None = None  # spec.outputs.configMapName
    outputs_shown: bool = False  # the status shows the auth outputs
    job_timeout: float = 3600.0
    deleting: bool = False
    gone: bool = False  # the watch said DELETED: the object no longer exists
    deletion_policy: str = "Retain"
    finalizers: tuple[str, ...] = ()  # metadata.finalizers as read (ours among them or not)
    delete_job: Job | None = None
    # --- the AWS account (reading.read, from the namespace's annotation and the account map)
    account: str = ""  # where it acts: the namespace's account, or the operator's own ("": unknown)
    role: Role | None = None  # the role assumed there; None: the operator's own credentials
    account_problem: tuple[str, str] | None = None  # (reason, message): the account cannot be used
    account_unreadable: str | None = None  # the namespace or the account map could not be read
    recorded_account: str = ""  # the account it acted in before (status.awsAccountId, the job)
    ask_own_account: bool = False  # unannotated, the operator's own account not known yet: ask it
    # --- what this step's actions produced (a read's field: None until it was read in this step)
    secrets: SecretsRead | None = None  # the referenced Secrets (read to notice a rotation)
    turn_read: TurnRead | None = None  # the app/env's turn (read when waiting for it)
    # The job in flight was asked about (PollJob): its answer replaces ``job`` itself, which every
    # later rule reads as the job's current state; a failed poll leaves ``job`` and sets ``failure``.
    polled: bool = False
    running: RunningRead | None = None  # ListBackendJobs after a lost answer (None also when it failed)
    observed: Observation | None = None  # None: AWS not looked at yet in this step
    failure: Failure | None = None  # a read of AWS failed
    submitted: Submitted | None = None
    delete_submitted: Submitted | None = None
    delete_polled: bool = False  # the delete job was asked about: its answer replaced ``delete_job``
    hold: HoldRead | None = None  # this object's turn, read for another process's hold (marker set)
    stale: bool = False  # a conditional write of this step was refused: the object changed
    # --- carrying the outcome out (only when ``carry_out``: the live step, not a table or ``plan``)
    carry_out: bool = False  # release, read the outputs, write: the executor does it all
    lead_rechecked: bool = False  # whether this process still leads was read before the writes
    released: bool = False  # the app/env's turn was given back
    foreign_hold: bool = False  # another process's hold of this object was left for after the writes
    outputs_read: Mapping[str, str] | Failure | None = None  # GetBackend's auth outputs (None: not read)
    written: bool = False  # the outcome was written (or refused: see ``stale``)
    wrote: bool = False  # the writes changed the object, on the version read
    fenced_released: bool = False  # the foreign hold was given back after the accepted writes
    # --- the kind of auth resource (reading.read chooses it from the spec)
    variant: Variant = CREATED_AUTH
    import_ids: IdsRead | None = None  # spec.import's ids as read this step (None: not read)
    import_check: ImportCheck | None = None  # the pools checked (Cognito reads) before a job

    @property
    def sent(self) -> bool:
        """A mutating call of this step went out (or may have): its outcome must be written."""
        return isinstance(self.submitted, Accepted | Rejected)

    @property
    def turn(self) -> tuple[str, ...]:
        """The Lease key of the app/env: one job at a time there, across BackendAuths. An
        assumed role's account is part of it; the operator's own account keeps the key it
        always had."""
        if self.role is None:
            return (self.region, self.app, self.env)
        return (self.account, self.region, self.app, self.env)

    @property
    def started_reading(self) -> bool:
        """A read of AWS was made in this step (the job polled, or its unfinished job looked for),
        or failed: what needs no AWS call has been decided already."""
        return self.polled or self.running is not None or self.failure is not None


# ---- plans: a closed set ------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """An event besides the state's own, and the log line that goes with it."""

    kind: str  # Normal or Warning
    reason: str
    message: str
    log: str | None = None


@dataclass(frozen=True)
class Settle:
    """Write the outcome of the step; no more calls."""

    state: State | None = None  # the conditions to show; None: they stay as they are
    event: str | None = None  # Normal or Warning: post the state's reason when it changes
    error: str | None = None  # status.error (None: not written)
    job: Job | None = None  # the job to remember and show, when it changed
    annotations: Mapping[str, str | None] = field(default_factory=dict)  # bookkeeping
    drift: tuple[str, ...] | None = None  # spec paths that differ in AWS; None: AWS not seen
    notes: tuple[Note, ...] = ()
    release: bool = False  # give back the app/env's turn
    backoff: str | None = None  # a retryable failure of this reason: wait before the next attempt
    backoff_cap: float | None = None
    retry: Retry | None = None  # the backoff decided for it (set by decide with ``backoff``)
    outputs: bool = False  # read (GetBackend) and publish the auth outputs
    again: bool = False  # then read and decide again soon (a call that was not sent)
    account: str | None = None  # status.awsAccountId to show (None: as it is)
    finalizer: bool | None = None  # add (True) or remove (False) our finalizer; None: as it is


@dataclass(frozen=True)
class Wait:
    """Nothing to do or write until the backoff has passed."""


@dataclass(frozen=True)
class ReadAgain:
    """Write nothing: read the object and decide again soon (it changed since it was read, or
    this process does not lead, in which case the poller holds it until it does)."""

    reason: str
    release: bool = False  # give back the app/env's turn first


@dataclass(frozen=True)
class ReadSecrets:
    """Read the referenced Secrets into :attr:`Snapshot.secrets`."""


@dataclass(frozen=True)
class CheckTurn:
    """Read who holds the app/env's turn into :attr:`Snapshot.turn_read`."""


@dataclass(frozen=True)
class CheckHold:
    """Read whether another operator process holds this object's turn (and may be calling AWS
    for it) into :attr:`Snapshot.hold`."""


@dataclass(frozen=True)
class AskOwnAccount:
    """sts:GetCallerIdentity (once per process), into :attr:`Snapshot.account`: only once a
    step is about to call AWS in the operator's own account anyway."""


@dataclass(frozen=True)
class PollJob:
    """GetBackendJob for the job in flight, into :attr:`Snapshot.job`."""


@dataclass(frozen=True)
class FindRunning:
    """ListBackendJobs after a lost answer, and the turn's holder if a job runs, into
    :attr:`Snapshot.running`."""


@dataclass(frozen=True)
class ReadResource:
    """GetBackendAuth, into :attr:`Snapshot.observed`."""


@dataclass(frozen=True)
class Submit:
    """CreateBackendAuth or UpdateBackendAuth, into :attr:`Snapshot.submitted`; ``books`` is
    what is written whatever the call's outcome."""

    operation: str
    books: Settle = field(default_factory=Settle)


@dataclass(frozen=True)
class Delete:
    """Take the turn and call DeleteBackendAuth, into :attr:`Snapshot.delete_submitted`."""


@dataclass(frozen=True)
class PollDelete:
    """GetBackendJob for the delete job, into :attr:`Snapshot.delete_job`."""


FinishOutcome = Literal["let_go", "wait", "retry", "give_up"]


@dataclass(frozen=True)
class Finish:
    """The end of a deletion step: let the object go (our finalizer comes off), wait, retry
    later or give up (the finalizer stays). Written by the one writer, conditionally on the
    version read, as every outcome is."""

    outcome: FinishOutcome
    message: str = ""
    delete_job: Job | None = None  # the delete job to remember
    notes: tuple[Note, ...] = ()
    release: bool = False
    state: State | None = None
    retry_reason: str | None = None


@dataclass(frozen=True)
class CheckLead:
    """Whether this process still leads, into :attr:`Snapshot.leading`, before anything is
    written: a process that stopped leading writes only what a sent call did."""


@dataclass(frozen=True)
class Release:
    """Give back the app/env's turn (a failure is only a warning: the Lease ends by itself);
    whether another process's hold of this object was left goes into
    :attr:`Snapshot.foreign_hold`."""


@dataclass(frozen=True)
class ReadOutputs:
    """GetBackend's auth outputs, into :attr:`Snapshot.outputs_read`."""


@dataclass(frozen=True)
class Write:
    """Write ``outcome`` (and the outputs read) conditionally on the version read, posting its
    events; a refusal comes back as :attr:`Snapshot.stale`."""

    outcome: Settle | Wait | Finish
    outputs: Mapping[str, str] | Failure | None = None


@dataclass(frozen=True)
class ReleaseFenced:
    """The writes were accepted on the version read: another process's hold of this object is
    stale, and goes too."""


Read = AskOwnAccount | ReadSecrets | CheckTurn | CheckHold | PollJob | FindRunning | ReadResource | ImportRead
CarryOut = CheckLead | Release | ReadOutputs | Write | ReleaseFenced
Plan = Settle | Wait | ReadAgain | Read | Submit | Delete | PollDelete | Finish | CarryOut


def in_progress(job: Job) -> State:
    return State("reconciling", "JobInProgress", f"{job.describe()} is {job.status or 'submitted'}")


def _notes(event_reason: str | None, job: Job | None, drift: tuple[str, ...] | None) -> tuple[Note, ...]:
    """The events a decision posts besides its state's (each with its log line)."""
    if event_reason == "Recovered" and job is not None:
        log = f"Recovered {job.describe()} instead of calling again."
        return (Note("Normal", "Recovered", f"{job.describe()} recovered", log),)
    if event_reason == "Adopted":
        log = "Adopted the auth resource that AWS already has."
        return (Note("Normal", "Adopted", "took over the auth resource that AWS already has", log),)
    if event_reason == "Drifted" and drift:
        message = f"AWS differs from the spec at {', '.join(drift)}: updating"
        return (Note("Warning", "Drifted", message, message),)
    return ()


def _books(clear_marker: bool = False, own: bool = False, settled: bool = False) -> dict[str, str | None]:
    books: dict[str, str | None] = {PENDING: None} if clear_marker else {}
    if own:
        books[CREATED] = "true"
    if settled:
        books[FAILURES] = None
    return books


def _show(
    s: Snapshot,
    state: State,
    event: str | None = None,
    job: Job | None = None,
    event_reason: str | None = None,
    clear_marker: bool = False,
    own: bool = False,
    release: bool = False,
    failure: bool = False,
    settled: bool = False,
    drift: tuple[str, ...] | None = None,
) -> Settle:
    """Show ``state``: the bookkeeping, the events, the backoff of a retryable failure."""
    trouble = state.phase == "stalled" or failure
    outputs = state.phase == "ready" and s.observed is not None and _outputs_may_differ(s, s.observed)
    if outputs and job is not None and s.observed is not None:
        job = replace(job, outputs_for=s.observed.digest)  # what they were read for
    return Settle(
        state=state, event=event, job=job, drift=drift, release=release,
        error=state.message if trouble else (job.error if job else ""),
        annotations=_books(clear_marker, own, settled and not failure),
        notes=_notes(event_reason, job, drift), backoff=state.reason if failure else None,
        outputs=outputs,
    )  # fmt: skip


def _outputs_may_differ(s: Snapshot, seen: Observation) -> bool:
    """Whether the outputs (GetBackend) must be read: the status lacks them, a job of ours just
    completed (its first observation verifies it), or GetBackendAuth answers otherwise than when
    they were last read. A settled resync that sees the same answer costs that one call only."""
    job = s.job
    return not s.outputs_shown or job is None or not job.verified or job.outputs_for != seen.digest


def _submit(
    operation: str,
    event_reason: str | None = None,
    clear_marker: bool = False,
    own: bool = False,
    drift: tuple[str, ...] | None = None,
) -> Submit:
    books = Settle(
        annotations=_books(clear_marker, own), drift=drift, notes=_notes(event_reason, None, drift)
    )
    return Submit(operation, books)


def _fail(failure: Failure, cap: float | None = None, **books: Any) -> Settle:
    """A retryable failure: shown, and the next attempt waits for the backoff."""
    state = State("reconciling", failure.reason, failure.message)
    return Settle(state, "Warning", failure.message, backoff=failure.reason, backoff_cap=cap, **books)


def _stall(
    s: Snapshot, reason: str, message: str, job: Job | None = None, event: str | None = "Warning", **kw: Any
) -> Settle:
    return _show(s, State("stalled", reason, message), event, job, release=True, settled=True, **kw)


def _ready(
    s: Snapshot, job: Job | None, reason: str, message: str, event: str | None = "Normal", **kw: Any
) -> Settle:
    return _show(s, State("ready", reason, message), event, job, release=True, settled=True, **kw)


def _look_again(s: Snapshot, job: Job, reason: str, message: str, kw: dict[str, Any]) -> Settle:
    """Our job completed, yet AWS does not show what it asked for: say so, and look once more
    (after the backoff) before sending it again; AWS may be slow to show the result."""
    unconfirmed = replace(job, missing=True, verified=False)
    state = State("reconciling", reason, message)
    return _show(s, state, "Warning", unconfirmed, release=True, failure=True, **kw)


# ---- decide -----------------------------------------------------------------------------------


def decide(s: Snapshot) -> Plan:
    """The next plan for a BackendAuth: the whole policy, deletion included. Ready only from an
    observation of AWS. What each plan's action produced comes back in the next snapshot.

    With :attr:`Snapshot.carry_out` (the live step), the outcome is carried out by the same
    loop: whether this process still leads, the turn given back, the outputs read, the writes
    (our finalizer among them), and a fenced release, each a plan of its own; the outcome
    itself comes back last."""
    plan = _backed_off(s, _decide(s))
    if not s.carry_out or not isinstance(plan, Settle | Wait | ReadAgain | Finish):
        return plan
    return _carried_out(s, _finalized(s, plan))


def finalizer_wanted(s: Snapshot) -> bool:
    """Our finalizer is on the object while its deletionPolicy is Delete: it must not go before
    AWS's delete job has ended. A Retained object needs none, and Kubernetes lets it go at once."""
    return s.deletion_policy == "Delete"


def finalizers_for(s: Snapshot, ours: bool) -> list[str]:
    """``metadata.finalizers`` as read, with ours added (``ours``) or taken off; the others
    stay (the write is conditional on the version they were read at)."""
    others = [f for f in s.finalizers if f != FINALIZER]
    return [*others, FINALIZER] if ours else others


def marker_finalizers(s: Snapshot) -> list[str] | None:
    """The finalizers the pending marker's write sets (None: as they are): ours goes on before
    anything is created in AWS."""
    if finalizer_wanted(s) and FINALIZER not in s.finalizers:
        return finalizers_for(s, True)
    return None


Outcome = Settle | Wait | ReadAgain | Finish


def _finalized(s: Snapshot, outcome: Outcome) -> Outcome:
    """A settled step that writes also puts our finalizer on, or takes it off, as the deletion
    policy asks."""
    if isinstance(outcome, Settle) and not s.deleting and (FINALIZER in s.finalizers) != finalizer_wanted(s):
        return replace(outcome, finalizer=finalizer_wanted(s))
    return outcome


def _carried_out(s: Snapshot, outcome: Outcome) -> Plan:
    """The next action of carrying ``outcome`` out, in the order of the Kubernetes requests:
    the turn back before the writes, the fenced release after them."""
    if s.leading and not s.lead_rechecked and not s.gone:
        return CheckLead()
    if isinstance(outcome, ReadAgain):
        return Release() if outcome.release and not s.released else outcome
    if isinstance(outcome, Settle | Finish) and outcome.release and not s.released:
        return Release()
    if isinstance(outcome, Settle):
        if outcome.outputs and s.outputs_read is None:
            return ReadOutputs()
        if isinstance(s.outputs_read, Failure) and outcome.job is not None:
            # Not read after all: the next observation reads them again.
            kept = s.job.outputs_for if s.job is not None else ""
            outcome = replace(outcome, job=replace(outcome.job, outputs_for=kept))
    if not s.written:
        return Write(outcome, s.outputs_read if isinstance(outcome, Settle) and outcome.outputs else None)
    if s.foreign_hold and s.wrote and not s.fenced_released:
        return ReleaseFenced()
    return outcome


def _backed_off(s: Snapshot, plan: Plan) -> Plan:
    """A retryable failure waits before the next attempt: one more in the failure count, and a
    delay drawn from the backoff window of that count (full jitter, ``s.jitter``), capped by
    the retry policy and by the failure's own cap; both go into the failures annotation."""
    if not isinstance(plan, Settle) or plan.backoff is None:
        return plan
    cap = min(plan.backoff_cap or 1e9, s.retry.cap)
    delay = backoff_delay(s.failures, s.retry.base, cap, jitter=s.jitter)
    retry = Retry(plan.backoff, s.failures + 1, delay)
    record = Failures(retry.failures, s.now + delay).to_annotation()
    return replace(plan, retry=retry, annotations={**plan.annotations, FAILURES: record})


def _decide(s: Snapshot) -> Plan:
    if s.deleting:
        return _decide_deletion(s)
    if s.stale:
        # Fencing: a write was refused, so what this step decided may rest on a stale read.
        return ReadAgain("the object changed since it was read")
    if not s.leading and not s.sent:
        # Another operator leads and decides; what a call of this step did is still written.
        # A turn taken for a call that was not sent goes back.
        return ReadAgain("another operator leads", release=isinstance(s.submitted, Stale | Withheld))
    if s.bad_annotation is not None:
        state = State("stalled", "BadAnnotation", s.bad_annotation)
        return Settle(state, "Warning", s.bad_annotation)
    if s.spec_error is not None:
        # No turn is given back: a spec that does not parse names no app/env to be sure of.
        return replace(_stall(s, "InvalidSpec", s.spec_error), release=False)
    in_flight = s.job is not None and not s.job.terminal
    if s.paused:
        # A job in flight keeps its turn: another job on the app/env would be refused anyway.
        return _show(s, _paused(s), release=not in_flight and s.marker is None)
    if s.ask_own_account:
        return AskOwnAccount()
    elsewhere = _account_rows(s, in_flight)
    if elsewhere is not None:
        return elsewhere
    if s.check_secrets and s.secrets is None:
        return ReadSecrets()
    if s.observed is None and not s.started_reading:
        before = _before_observing(s)
        if before is not None:
            return before
    if s.observed is None:
        return _next_read(s)
    plan = _decide_observed(s, s.observed)
    if isinstance(plan, Submit) and s.submitted is not None:
        return _acted_in(s, _after_submit(s, plan, s.submitted))
    return _acted_in(s, plan)


def _account_rows(s: Snapshot, in_flight: bool) -> Settle | None:
    """The account the namespace names cannot be acted in: the annotation or the map is wrong
    (Stalled until an administrator fixes it, which the watches notice), they cannot be read
    (retried), or the BackendAuth acted in another account before (Stalled ``AccountChanged``:
    nothing is ever created in the new account for it)."""
    recorded = s.recorded_account
    if recorded and s.account and s.account != recorded:
        # Whether or not the new account is mapped: this BackendAuth's resource is elsewhere.
        message = (
            f"this BackendAuth acted in AWS account {recorded}, but namespace {s.namespace} now "
            f"names account {s.account}; nothing is done in {s.account}. Set the namespace's "
            f"{OWNER_ACCOUNT} annotation back to {recorded!r}, or delete and recreate the "
            f"BackendAuth to start over in {s.account}"
        )
        return replace(_stall(s, "AccountChanged", message), release=not in_flight and s.marker is None)
    if s.account_problem is not None:
        reason, message = s.account_problem
        return replace(_stall(s, reason, message), release=not in_flight and s.marker is None)
    if s.account_unreadable is not None:
        return _fail(Failure("AccountUnknown", True, s.account_unreadable))
    if recorded and not s.account:
        # The operator's own account is not known (sts:GetCallerIdentity failed): it may
        # be another, so nothing is done until it is.
        message = (
            f"this BackendAuth acted in AWS account {recorded}; namespace {s.namespace} has no "
            f"{OWNER_ACCOUNT} annotation and the operator's own account cannot be told "
            "(sts:GetCallerIdentity failed)"
        )
        return _fail(Failure("AccountUnknown", True, message))
    return None


def _acted_in(s: Snapshot, plan: Plan) -> Plan:
    """A settled step that reached AWS shows the account it acted in."""
    if isinstance(plan, Settle) and s.account and s.account != s.recorded_account:
        return replace(plan, account=s.account)
    return plan


def _before_observing(s: Snapshot) -> Plan | None:
    """What needs no AWS call: a settled request shown again, a backoff, another's turn."""
    job = s.job
    if (
        job is not None
        and job.terminal
        and not s.marker
        and not s.look
        and job.fingerprint == s.fingerprint
        and _same_secrets(s, job)
        and (job.verified or (job.failed and job.generation == s.generation))
        and (s.outputs_shown or job.failed)
    ):
        # Unpaused, or a spec change AWS does not see (deletionPolicy): what was last
        # observed for this very request still holds, so no AWS call. Not when the status
        # lacks the outputs (the process stopped between the job's annotation and the status
        # write): observing reads them.
        return _settled(s, replace(job, generation=s.generation) if job.verified else job)
    if s.now < s.not_before and not s.look:
        return Wait()
    waiting_for_turn = (
        s.previous_reason == "JobPending" and s.marker is None and (job is None or job.terminal)
    )
    if waiting_for_turn and s.turn_read is None and not s.look:
        return CheckTurn()  # a Kubernetes read says whether the turn is still taken
    busy = s.turn_read.busy if s.turn_read is not None else None
    if busy is not None and not s.look:
        # Still another's turn: nothing could be sent anyway, so AWS is not even asked.
        return _show(s, State("reconciling", "JobPending", f"waiting for {busy}'s job"))
    return None


def _same_secrets(s: Snapshot, job: Job) -> bool:
    """Whether ``job`` sent the Secret values read in this step; true when they were not read,
    or one could not be read."""
    digest = s.secrets.digest if s.secrets is not None else None
    return digest is None or job.secrets_digest == digest


def _next_read(s: Snapshot) -> Plan:
    """What to read of AWS next: the job in flight, then (after a lost answer) the unfinished
    job on the app/env, then the resource."""
    if s.failure is not None:
        return _fail(s.failure)
    if s.marker is not None and s.hold is None:
        return CheckHold()
    if s.hold is not None and s.hold.holder is not None:
        # Another operator process wrote the marker and may be calling AWS right now: neither
        # look for its job nor call again until it is done.
        return _show(s, State("reconciling", "JobPending", f"operator {s.hold.holder} is calling AWS"))
    job = s.job
    if job is not None and not job.terminal and job.id and not s.polled:
        return PollJob()
    if s.polled and job is not None and not job.terminal:
        # Still running: AWS's state cannot have settled yet, no need to read it.
        return _decide_observed(s, Observation(resource=None))
    if s.marker is not None and s.running is None:
        return FindRunning()
    found = s.running or RunningRead(None)
    if found.job is not None and (found.holder is None or object_of(found.holder) != s.me):
        # Not ours to claim: wait until it ends, then AWS's state decides.
        name = name_of(found.holder) if found.holder else "someone outside this operator"
        return _fail(Failure("JobPending", True, f"a job of {name} runs on {s.app}/{s.env}"))
    return s.variant.observe(s)


def _paused(s: Snapshot) -> State:
    """Paused: Ready stays True when it was for this very request, as nothing is in progress
    (kstatus reads Current, Argo CD Suspended); otherwise not Ready, and Reconciling says why
    (paused before the auth resource was created, mid-job, or with a change not yet sent)."""
    message = "paused by the annotation; no AWS calls"
    job = s.job
    ready = s.ready_generation is not None and (
        s.ready_generation == s.generation
        # A spec change that AWS does not see (deletionPolicy) leaves the request as it was.
        or (job is not None and job.verified and job.fingerprint == s.fingerprint)
    )
    if ready and s.marker is None and (job is None or job.terminal):
        return State("ready", "Paused", f"{message}; AWS last showed the auth resource as the spec says")
    return State("reconciling", "Paused", message)


def _settled(s: Snapshot, job: Job) -> Settle:
    if job.failed:
        return _stall(s, "JobFailed", job.error or f"{job.describe()} failed", job, event=None)
    return _ready(
        s,
        job,
        "JobCompleted",
        f"{job.describe()} completed; AWS shows the auth resource as the spec says",
        event=None,
    )


IN_SYNC = "AWS shows the auth resource as the spec says"


def _decide_observed(s: Snapshot, seen: Observation) -> Plan:
    # A create job of ours means the auth resource is ours, whatever the annotation says.
    job, clear_marker = s.job, False
    owned = s.owned or (job is not None and job.operation in CREATING)
    if s.marker is not None:
        if seen.running is not None:
            # Only the holder of the app/env's turn starts jobs there, and a turn is given back
            # only once its job has ended: an unfinished job is the one our lost call started.
            found = replace(
                seen.running,
                generation=s.marker.generation,
                fingerprint=s.marker.fingerprint,
                submitted_at=s.marker.at,
            )
            return _show(
                s,
                in_progress(found),
                "Normal",
                found,
                event_reason="Recovered",
                clear_marker=True,
                own=s.marker.operation in CREATING and not s.owned,
            )
        # Nothing runs: the call never reached AWS, or its job has ended. AWS's state decides.
        clear_marker = True
        owned = owned or (s.marker.operation == CREATE_OP and seen.resource is not None)
        if s.marker.operation in CREATING and job is not None and job.terminal:
            job = None  # an earlier job (a create found missing): the lost create is what counts
    if job is not None and not job.terminal:
        started = job.submitted_at if job.submitted_at is not None else s.now
        if s.look:
            job = replace(job, submitted_at=s.now)  # a reconcile request restarts the clock
        elif s.now - started > s.job_timeout:
            return _stall(
                s,
                "JobTimedOut",
                f"{job.describe()} is still {job.status or 'running'} after "
                f"{s.job_timeout:.0f}s; set the reconcile-requested-at annotation to look again",
                job,
                clear_marker=clear_marker,
            )
        return _show(s, in_progress(job), job=job, clear_marker=clear_marker)
    # Whether AWS was last sent this very request (Secret values included, when they were read).
    current = job is not None and job.fingerprint == s.fingerprint and _same_secrets(s, job)
    if job is not None and current and job.failed and job.generation == s.generation:
        return _stall(s, "JobFailed", job.error or f"{job.describe()} failed", job, clear_marker=clear_marker)
    kw: dict[str, Any] = {"clear_marker": clear_marker, "own": owned and not s.owned}
    return s.variant.decide_seen(s, seen, job, current, owned, kw)


def _decide_config(
    s: Snapshot, seen: Observation, job: Job | None, current: bool, owned: bool, kw: dict[str, Any]
) -> Settle | Submit:
    """What GetBackendAuth's configuration means for a ``resourceConfig`` spec: create, adopt,
    update, stall, or Ready."""
    if seen.resource is None:
        if job is not None and current and job.completed and not job.missing:
            message = f"{job.describe()} completed, but AWS shows no auth resource; it will be created again"
            return _look_again(s, job, "ResourceMissing", message, kw)
        return _submit(CREATE_OP, **{**kw, "own": False})
    if not owned:
        if not s.adopt:
            return _stall(
                s,
                "AlreadyExists",
                "AWS already has an auth resource of this name that this BackendAuth "
                "did not create; set spec.adoptionPolicy: AdoptOrCreate to manage it",
                **kw,
            )
        kw["own"] = True
    adopted = kw["own"] and s.marker is None
    diff = config_diff(s.desired or {}, seen.resource)
    kw["drift"] = tuple(diff)
    if not diff:
        if job is not None and current and job.completed and not job.id:
            # The record of an observation alone (adopted, or found as asked): it stays shown as
            # it was, so that a look that finds the same writes nothing.
            reason = s.previous_reason if s.previous_reason in ("InSync", "Adopted") else "InSync"
            return _ready(s, replace(job, verified=True, missing=False), reason, IN_SYNC, event=None, **kw)
        if job is not None and current and job.completed:
            # One event per job: its Submitted event said it was sent (and why); that it ended
            # is shown by the conditions (Ready, JobCompleted, since lastTransitionTime).
            return _ready(
                s,
                replace(job, verified=True, missing=False),
                "JobCompleted",
                f"{job.describe()} completed; AWS shows the auth resource as the spec says",
                event=None,
                **kw,
            )
        if job is None and not s.has_secrets:
            # Nothing of ours was ever sent for this spec (adopted, or a create whose answer
            # was lost): AWS has it as asked. With secrets, one update sets them (their values
            # cannot be compared); after a job of ours, a changed request is always sent, since
            # what the spec no longer sets is not compared.
            seen_job = replace(
                job or Job("", "", COMPLETED, "", ""), fingerprint=s.fingerprint, verified=True
            )
            return _ready(
                s,
                seen_job,
                "Adopted" if adopted else "InSync",
                IN_SYNC,
                event=None if adopted else "Normal",  # adopting posts its own event
                event_reason="Adopted" if adopted else None,
                **kw,
            )
        return _submit(UPDATE_OP, event_reason="Adopted" if adopted else None, **kw)
    if job is not None and current and job.completed:
        return _drifted(s, job, diff, kw)
    return _submit(UPDATE_OP, event_reason="Adopted" if adopted else None, **kw)


def _drifted(s: Snapshot, job: Job, diff: list[str], kw: dict[str, Any]) -> Settle | Submit:
    """AWS differs from what our completed job of this very request asked for."""
    paths = ", ".join(diff)
    if s.report_drift:
        return _stall(s, "Drifted", f"AWS differs from the spec at {paths} (driftPolicy: Report)", job, **kw)
    if all(create_only(path) for path in diff):
        # No update can change these: sending one would repeat for ever.
        return _stall(
            s,
            "Drifted",
            f"AWS differs from the spec at {paths}, which UpdateBackendAuth cannot change (AWS "
            "sets it only when the auth resource is created)",
            job,
            **kw,
        )
    if job.missing and job.operation == UPDATE_OP and not s.look:
        # Our update completed and AWS still differs on the second look: AWS does not take
        # these values as sent, and sending them again would repeat for ever.
        return _stall(
            s,
            "Drifted",
            f"AWS still differs from the spec at {paths} after {job.describe()} completed; "
            "set the reconcile-requested-at annotation to send it again",
            job,
            **kw,
        )
    if job.verified or job.missing:
        # Changed behind our back (or still different on the second look): one update.
        return _submit(UPDATE_OP, event_reason="Drifted", **kw)
    # Our own job completed, yet AWS differs: look once more before sending it again.
    return _look_again(s, job, "Drifted", f"AWS differs from the spec at {paths}; it will be updated", kw)


SECRET_RETRY_CAP = 30.0  # a Secret applied after its BackendAuth is picked up within this time


def _after_submit(s: Snapshot, plan: Submit, outcome: Submitted) -> Settle | ReadAgain:
    """What a submit's outcome means; ``plan.books`` is written in every case."""
    books = plan.books
    if isinstance(outcome, Stale):
        # The marker was refused: nothing was sent, nothing more is written.
        return ReadAgain("the object changed since it was read", release=True)
    if isinstance(outcome, Withheld):
        # The marker goes again (if this process still acts) and the turn with it.
        return Settle(annotations={**books.annotations, PENDING: None}, release=True, again=True)
    if isinstance(outcome, NotSent):
        return _fail(outcome.failure, SECRET_RETRY_CAP, **_kept(books, release=True))
    if isinstance(outcome, TurnTaken):
        state = State("reconciling", "JobPending", f"waiting for {outcome.holder}'s job on {s.app}/{s.env}")
        return replace(books, state=state)
    if isinstance(outcome, Rejected):
        failure = outcome.failure
        # Ambiguous: AWS may have done it, so the marker stays (even if this step's recovery had
        # queued the previous one for removal), and the turn with it. Refused: nothing to
        # recover, the turn goes back.
        marker = outcome.marker.to_annotation() if failure.ambiguous and outcome.marker else None
        kept = _kept(books, release=not failure.ambiguous, annotations={PENDING: marker})
        if not failure.retryable:
            kept["annotations"] = {**kept["annotations"], FAILURES: None}
            state = State("stalled", failure.reason, failure.message)
            return Settle(state, "Warning", failure.message, **kept)
        return _fail(failure, **kept)
    job = outcome.job
    because = f" ({s.cause})" if s.cause else ""
    written = {CREATED: "true"} if plan.operation in CREATING else {}
    kept = _kept(books, annotations={**written, JOB: job.to_annotation(), PENDING: None, FAILURES: None})
    kept["notes"] = (*kept["notes"], Note("Normal", "Submitted", f"{job.describe()} submitted{because}"))
    return Settle(in_progress(job), job=job, **kept)


def _kept(books: Settle, release: bool = False, annotations: Mapping[str, str | None] = {}) -> dict[str, Any]:
    """The bookkeeping of a submit, to go with its outcome."""
    return {
        "annotations": {**books.annotations, **annotations},
        "drift": books.drift,
        "notes": books.notes,
        "release": books.release or release,
    }


def _decide_deletion(s: Snapshot) -> Plan:
    """Apply the deletion policy: Retain (default) leaves AWS alone; Delete removes the auth
    resource and waits for AWS's delete job before our finalizer comes off and Kubernetes lets
    the object go. Deleting works while paused (nothing is deleted in AWS then)."""
    if s.gone:
        return _decide_gone(s)
    if FINALIZER not in s.finalizers:
        # Not held by us: Kubernetes lets it go once any other finalizer is gone; what was left
        # in AWS is said when it is gone.
        return Finish("let_go")
    if s.stale:
        return ReadAgain("the object changed since it was read")
    sent = s.delete_submitted
    if not s.leading and not isinstance(sent, Accepted | Rejected):
        # Only the leader deletes; a standby's poller holds the object until this process leads.
        return ReadAgain("another operator leads; it deletes", release=isinstance(sent, Withheld))
    policy = s.deletion_policy
    if policy != "Delete" or not _may_own(s) or s.paused:
        if policy == "Delete" and s.paused:
            # Deleting must still work while paused; AWS is not called, so the resource stays.
            paused = Note("Warning", "Paused", "paused: the Amplify auth resource is retained")
            return Finish("let_go", notes=(paused,), release=True)
        # Retained: said once the object is gone (see _decide_gone).
        return Finish("let_go", notes=(_left_in_place(s),) if policy == "Delete" else (), release=True)
    if s.ask_own_account:
        return AskOwnAccount()
    elsewhere = _account_rows(s, in_flight=True)
    if elsewhere is not None and elsewhere.state is not None:
        # Deleting in an account the BackendAuth does not act in (or cannot tell) would
        # delete someone else's resource: the finalizer stays until the account is sorted out.
        state = elsewhere.state
        return Finish("retry", f"{state.reason}: {state.message}", state=state, retry_reason=state.reason)
    if s.bad_annotation is not None:
        return Finish("retry", s.bad_annotation)
    if isinstance(sent, TurnTaken):
        return Finish("wait", f"{sent.holder} has the turn on {s.app}/{s.env}")
    if isinstance(sent, Withheld | Stale):
        # Not sent: whoever leads now deletes.
        why = sent.reason if isinstance(sent, Withheld) else "the object changed"
        return Finish("wait", why, release=True)
    if isinstance(sent, Rejected | NotSent):
        return _delete_failed(s.delete_job, (), sent.failure, s)
    job = s.delete_job
    if job is None:
        return Delete()
    notes: tuple[Note, ...] = ()
    if isinstance(sent, Accepted):
        notes = (Note("Normal", "Deleting", f"{job.describe()} submitted"),)
    remember = job if isinstance(sent, Accepted) or s.delete_polled else None
    if s.failure is not None:
        return _delete_failed(remember, notes, s.failure, s)
    if not job.terminal and not s.delete_polled:
        return PollDelete()
    if not job.terminal:
        return Finish("wait", f"{job.describe()} is {job.status}", remember, notes)
    if job.failed:
        # Keep the finalizer: letting go would orphan a resource the user asked to delete.
        message = job.error or f"{job.describe()} failed"
        notes = (*notes, Note("Warning", "DeleteFailed", message))
        state = State("stalled", "DeleteFailed", message)
        return Finish("give_up", f"DeleteFailed: {message}", remember, notes, release=True, state=state)
    done = Note("Normal", "Deleted", f"auth resource {_where(s)} deleted in AWS ({job.describe()})")
    return Finish("let_go", delete_job=remember, notes=(*notes, done), release=True)


def _may_own(s: Snapshot) -> bool:
    """This BackendAuth created, imported (or adopted) the auth resource, or a create or import
    of its own may have reached AWS: its job, or its pending marker, is on the object (deleted
    before the call's outcome was written). Deleting what is not there only finds it gone."""
    sent = {s.job.operation if s.job else "", s.marker.operation if s.marker else ""}
    return s.owned or bool(sent & CREATING)


def _decide_gone(s: Snapshot) -> Finish:
    """The object is gone from Kubernetes: the turn it may still hold goes back (an object
    without our finalizer goes at once, even mid-job), and a Retained resource is said to be
    left in place."""
    notes = (_left_in_place(s),) if s.deletion_policy != "Delete" else ()
    return Finish("let_go", notes=notes, release=True)


def _left_in_place(s: Snapshot) -> Note:
    """A deletion that leaves the auth resource in AWS: an event when this BackendAuth created
    (or adopted) it, so that something is left; a log line otherwise."""
    message = f"auth resource {_where(s)} left in place in AWS (deletionPolicy {s.deletion_policy})"
    if s.owned:
        return Note("Normal", "Retained", message, message)
    return Note("", "", "", message)


def _where(s: Snapshot) -> str:
    return f"{s.app}/{s.env}/{s.resource_name}"


def _delete_failed(remember: Job | None, notes: tuple[Note, ...], failure: Failure, s: Snapshot) -> Finish:
    if failure.reason == "NotFound":
        gone = Note("Normal", "Deleted", f"auth resource {_where(s)} was already gone in AWS")
        return Finish("let_go", delete_job=remember, notes=(*notes, gone), release=True)
    message = f"{failure.reason}: {failure.message}"
    release = not failure.ambiguous
    if not failure.retryable:
        return Finish("give_up", message, remember, notes, release=release)
    return Finish("retry", message, remember, notes, release=release, retry_reason=failure.reason)


# ---- what a watch event asks for; which objects are polled and resynced ------------------------
# The operator's watch, poller and resync loop ask these; each is a pure function of the object
# as the API server sent it (or of a step's snapshot and outcome).

#: Stalled for its account: the map or the annotation may be fixed while no operator runs.
ACCOUNT_REASONS = frozenset({"AccountNotMapped", "AccountChanged", "BadAnnotation"})

#: Settled objects whose observation can change something: Ready ones (drift) and those that
#: only report drift. Other settled states (InvalidSpec, JobFailed, ...) wait for a new spec.
RESYNCED_REASONS = frozenset({"JobCompleted", "InSync", "Adopted", "Drifted", "ImportConflict"})


def handled_request(obj: Mapping[str, Any]) -> str | None:
    """The ``reconcile-requested-at`` value not yet echoed in ``status.lastHandledReconcileAt``."""
    requested = (obj.get("metadata", {}).get("annotations") or {}).get(RECONCILE_REQUESTED)
    handled = (obj.get("status") or {}).get("lastHandledReconcileAt")
    return requested if requested is not None and requested != handled else None


def reconcile_requested(body: Mapping[str, Any]) -> bool:
    """True when ``reconcile-requested-at`` holds a value not yet handled."""
    return handled_request(body) is not None


def unobserved(body: Mapping[str, Any]) -> bool:
    """A generation no step has shown yet: a new BackendAuth, or a changed spec (the API server
    counts spec changes in ``metadata.generation``; each step writes ``status.observedGeneration``)."""
    generation = body.get("metadata", {}).get("generation")
    return bool(generation != (body.get("status") or {}).get("observedGeneration"))


def shows_waiting(conditions: Iterable[Mapping[str, Any]]) -> bool:
    """Conditions that say the object waits: Reconciling, and not because it is paused."""
    conditions = list(conditions)
    busy = any(c.get("type") == "Reconciling" and c.get("status") == "True" for c in conditions)
    return busy and current_reason(conditions) != "Paused"


def pause_flipped(body: Mapping[str, Any]) -> bool:
    """True when a BackendAuth must show, or stop showing, Paused."""
    annotations = body.get("metadata", {}).get("annotations") or {}
    shows_paused = current_reason((body.get("status") or {}).get("conditions") or []) == "Paused"
    return is_true(annotations, PAUSED) != shows_paused


def held_for_deletion(body: Mapping[str, Any]) -> bool:
    """Deleted in Kubernetes and held by our finalizer: a deletion step is to be taken."""
    meta = body.get("metadata", {})
    return bool(meta.get("deletionTimestamp")) and FINALIZER in (meta.get("finalizers") or ())


def asks_for_step(body: Mapping[str, Any]) -> bool:
    """A new generation, a reconcile request or a pause flip that no step has handled yet, or
    a deletion that our finalizer holds."""
    if body.get("metadata", {}).get("deletionTimestamp"):
        return held_for_deletion(body)
    return unobserved(body) or reconcile_requested(body) or pause_flipped(body)


@dataclass(frozen=True)
class Attention:
    """What a watch event of a BackendAuth asks of the operator."""

    handle: bool  # the event handler runs: it steps the object (or forgets a deleted one)
    poll: bool = False  # the poller keeps the object (it waits, or its account may be fixed)


def attention(
    body: Mapping[str, Any], type: str | None, acting: bool, shown: bool, deletion_seen: bool = False
) -> Attention:
    """What a watch event asks for. ``type``: the event's (None: Kopf's initial listing, as
    ADDED); ``acting``: this process leads (or runs without leader election); ``shown``: a
    step of this process has already written the status of the body's generation (an event
    from before that write still shows the previous status); ``deletion_seen``: an event of
    this process has already shown the object being deleted.

    * A deleted object is handled (forgotten). One being deleted is stepped once, when its
      deletion is first seen, if our finalizer holds it; its waits are the poller's, and the
      events of its own writes ask for nothing more.
    * Seen for the first time (a restart lists every object), an object that waits is polled.
      A standby polls every object that waits, as the leader leaves it: the poller holds them
      until this process leads.
    * Seen for the first time, one Stalled for its account is stepped once by the poller: the
      map or the annotation may have been fixed meanwhile; it stays Stalled, quietly, if not.
    * A generation no step has shown, a reconcile request, or (on changes only, so that a
      restart does not step every paused object) a pause flip is handled."""
    if type == "DELETED":
        return Attention(handle=True)
    if body.get("metadata", {}).get("deletionTimestamp"):
        # Once, when first seen; again on a reconcile request (a deletion that gave up, say
        # DeleteFailed after an IAM fix), which the deletion's write echoes.
        return Attention(handle=held_for_deletion(body) and (not deletion_seen or reconcile_requested(body)))
    conditions = (body.get("status") or {}).get("conditions") or []
    first_seen = type in (None, "ADDED")
    poll = ((first_seen or not acting) and shows_waiting(conditions)) or (
        first_seen and current_reason(conditions) in ACCOUNT_REASONS
    )
    fresh = unobserved(body) and not shown
    handle = fresh or reconcile_requested(body) or (type == "MODIFIED" and pause_flipped(body))
    return Attention(handle=handle, poll=poll)


def resynced(body: Mapping[str, Any]) -> bool:
    """Whether the resync loop observes the object: settled (Ready or Stalled) in a state that
    observing AWS may change (:data:`RESYNCED_REASONS`), not paused, and not being deleted."""
    meta = body.get("metadata", {})
    conditions = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}
    settled = any(conditions.get(t, {}).get("status") == "True" for t in ("Ready", "Stalled"))
    ready = conditions.get("Ready", {}).get("reason") in RESYNCED_REASONS
    deleting = bool(meta.get("deletionTimestamp"))  # its steps are the poller's until it is gone
    return settled and ready and not deleting and not is_true(meta.get("annotations") or {}, PAUSED)


def left_waiting(s: Snapshot, outcome: Plan) -> bool:
    """Whether a step's outcome leaves the object waiting (its job runs, a retry is due, another
    BackendAuth has the turn, a deletion waits for AWS's delete job or retries), so that the
    poller steps it again. Settled and paused objects are not; nor is one read again (the
    poller schedules that apart). A step that only waited shows what it showed before."""
    if isinstance(outcome, Finish):
        return outcome.outcome in ("wait", "retry")
    if isinstance(outcome, Settle) and outcome.state is not None:
        return outcome.state.phase == "reconciling" and outcome.state.reason != "Paused"
    if isinstance(outcome, Settle | Wait):
        return s.waiting
    return False
