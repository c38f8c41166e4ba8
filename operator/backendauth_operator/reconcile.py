"""Pure decisions: what to do next for a BackendAuth, the conditions, the retry delay.

A step of the operator is observe → decide → act. :func:`decide` is the whole policy: it takes a
:class:`Snapshot` (the parsed spec, what the operator remembers, and what AWS was observed to
have) and returns one :class:`Action`. Nothing here talks to Kubernetes or AWS, so every rule is
tested as a table.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from backendauth_operator.bookkeeping import COMPLETED, Job, Marker
from backendauth_operator.bookkeeping import CREATE as CREATE_OP
from backendauth_operator.bookkeeping import UPDATE as UPDATE_OP
from backendauth_operator.models import SECRET_BOTO_KEYS, create_only, spec_path

Phase = Literal["ready", "reconciling", "stalled"]


@dataclass(frozen=True)
class State:
    """The one thing a BackendAuth is doing now, as the conditions will show it.

    ``reason`` is a CamelCase word (JobCompleted, Throttled, InvalidSpec, ...): the README's
    status reference lists them.
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


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, kept between ``base`` and ``cap``.

    The window doubles with each retry (base, 2·base, 4·base, ... up to cap); the delay is drawn
    uniformly within it, so that many BackendAuths throttled together do not retry together.
    """
    upper = min(cap, base * (2 ** min(retry, 32)))
    return (rng or random).uniform(base, max(base, upper))


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


@dataclass(frozen=True)
class Snapshot:
    """Everything :func:`decide` may look at."""

    generation: int | None
    now: float  # wall clock, seconds
    spec_error: str | None = None
    paused: bool = False
    fingerprint: str = ""  # digest of the request the spec asks for (secrets by reference)
    desired: Mapping[str, Any] | None = None  # the spec's ResourceConfig as boto3 sends it
    has_secrets: bool = False
    adopt: bool = False  # spec.adoptionPolicy is AdoptOrCreate
    owned: bool = False  # this BackendAuth created (or adopted) the auth resource
    job: Job | None = None
    marker: Marker | None = None
    not_before: float = 0.0  # backoff: no attempt before this
    requested: bool = False  # look at AWS now: a reconcile request, a resync, a Secret change
    report_drift: bool = False  # spec.driftPolicy is Report
    secrets_digest: str | None = None  # salted digest of the referenced Secret values; None: not read
    turn_busy: str | None = None  # another BackendAuth holds the app/env's turn (read when waiting for it)
    job_timeout: float = 3600.0
    observed: Observation | None = None  # None: AWS not looked at yet in this step


Kind = Literal["nothing", "observe", "show", "submit"]


@dataclass(frozen=True)
class Action:
    """What to do. ``show``: write ``state``; ``submit``: call ``operation`` (then show its job);
    ``observe``: read AWS, then decide again; ``nothing``: no call, no write."""

    kind: Kind
    state: State | None = None
    operation: str | None = None
    job: Job | None = None  # the job to remember and show, when it changed
    event: str | None = None  # "Normal" or "Warning": post the reason as an event
    event_reason: str | None = None  # the event's reason when it differs from the state's
    clear_marker: bool = False
    own: bool = False  # remember that this BackendAuth owns its auth resource
    release: bool = False  # give back the app/env's turn
    failure: bool = False  # a retryable failure: back off before the next attempt
    settled: bool = False  # Ready or Stalled: the failure count starts over
    drift: tuple[str, ...] | None = None  # spec paths that differ in AWS; None: AWS not seen


NOTHING = Action("nothing")
OBSERVE = Action("observe")


def _stall(
    reason: str, message: str, job: Job | None = None, event: str | None = "Warning", **kw: Any
) -> Action:
    state = State("stalled", reason, message)
    return Action("show", state, job=job, event=event, release=True, settled=True, **kw)


def _ready(job: Job | None, reason: str, message: str, event: str | None = "Normal", **kw: Any) -> Action:
    state = State("ready", reason, message)
    return Action("show", state, job=job, event=event, release=True, settled=True, **kw)


def _look_again(job: Job, reason: str, message: str, kw: dict[str, Any]) -> Action:
    """Our job completed, yet AWS does not show what it asked for: say so, and look once more
    (after the backoff) before sending it again; AWS may be slow to show the result."""
    unconfirmed = replace(job, missing=True, verified=False)
    state = State("reconciling", reason, message)
    return Action("show", state, job=unconfirmed, event="Warning", release=True, failure=True, **kw)


def in_progress(job: Job) -> State:
    return State("reconciling", "JobInProgress", f"{job.describe()} is {job.status or 'submitted'}")


def decide(s: Snapshot) -> Action:
    """The next action for a BackendAuth. Ready only from an observation of AWS."""
    if s.spec_error is not None:
        return _stall("InvalidSpec", s.spec_error)
    in_flight = s.job is not None and not s.job.terminal
    if s.paused:
        # A job in flight keeps its turn: another job on the app/env would be refused anyway.
        state = State("reconciling", "Paused", "paused by the annotation; no AWS calls")
        return Action("show", state, release=not in_flight and s.marker is None)
    if s.observed is None:
        job = s.job
        if (
            job is not None
            and job.terminal
            and not s.marker
            and not s.requested
            and job.fingerprint == s.fingerprint
            and (s.secrets_digest is None or job.secrets_digest == s.secrets_digest)
            and (job.verified or (job.failed and job.generation == s.generation))
        ):
            # Unpaused, or a spec change AWS does not see (deletionPolicy): what was last
            # observed for this very request still holds, so no AWS call.
            return _settled(replace(job, generation=s.generation) if job.verified else job)
        if s.now < s.not_before and not s.requested:
            return NOTHING
        if s.turn_busy is not None and not s.requested:
            # Still another's turn: nothing could be sent anyway, so AWS is not even asked.
            return Action("show", State("reconciling", "JobPending", f"waiting for {s.turn_busy}'s job"))
        return OBSERVE
    return _decide_observed(s, s.observed)


def _settled(job: Job) -> Action:
    if job.failed:
        return _stall("JobFailed", job.error or f"{job.describe()} failed", job, event=None)
    return _ready(
        job,
        "JobCompleted",
        f"{job.describe()} completed; AWS shows the auth resource as the spec says",
        event=None,
    )


def _decide_observed(s: Snapshot, seen: Observation) -> Action:
    # A create job of ours means the auth resource is ours, whatever the annotation says.
    job, clear_marker = s.job, False
    owned = s.owned or (job is not None and job.operation == CREATE_OP)
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
            return Action(
                "show",
                in_progress(found),
                job=found,
                clear_marker=True,
                own=s.marker.operation == CREATE_OP and not s.owned,
                event="Normal",
                event_reason="Recovered",
            )
        # Nothing runs: the call never reached AWS, or its job has ended. AWS's state decides.
        clear_marker = True
        owned = owned or (s.marker.operation == CREATE_OP and seen.resource is not None)
        if s.marker.operation == CREATE_OP and job is not None and job.terminal:
            job = None  # an earlier job (a create found missing): the lost create is what counts
    if job is not None and not job.terminal:
        started = job.submitted_at if job.submitted_at is not None else s.now
        if s.requested:
            job = replace(job, submitted_at=s.now)  # a reconcile request restarts the clock
        elif s.now - started > s.job_timeout:
            return _stall(
                "JobTimedOut",
                f"{job.describe()} is still {job.status or 'running'} after "
                f"{s.job_timeout:.0f}s; set the reconcile-requested-at annotation to look again",
                job,
                clear_marker=clear_marker,
            )
        return Action("show", in_progress(job), job=job, clear_marker=clear_marker)
    # Whether AWS was last sent this very request (Secret values included, when they were read).
    current = (
        job is not None
        and job.fingerprint == s.fingerprint
        and (s.secrets_digest is None or job.secrets_digest == s.secrets_digest)
    )
    if job is not None and current and job.failed and job.generation == s.generation:
        return _stall("JobFailed", job.error or f"{job.describe()} failed", job, clear_marker=clear_marker)
    kw: dict[str, Any] = {"clear_marker": clear_marker, "own": owned and not s.owned}
    if seen.resource is None:
        if job is not None and current and job.completed and not job.missing:
            message = f"{job.describe()} completed, but AWS shows no auth resource; it will be created again"
            return _look_again(job, "ResourceMissing", message, kw)
        return Action("submit", operation=CREATE_OP, **{**kw, "own": False})
    if not owned:
        if not s.adopt:
            return _stall(
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
        if job is not None and current and job.completed:
            return _ready(
                replace(job, verified=True, missing=False),
                "JobCompleted",
                f"{job.describe()} completed; AWS shows the auth resource as the spec says",
                event=None if job.verified else "Normal",
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
                seen_job,
                "Adopted" if adopted else "InSync",
                "AWS shows the auth resource as the spec says",
                event=None if adopted else "Normal",  # adopting posts its own event
                event_reason="Adopted" if adopted else None,
                **kw,
            )
        return Action("submit", operation=UPDATE_OP, event_reason="Adopted" if adopted else None, **kw)
    if job is not None and current and job.completed:
        paths = ", ".join(diff)
        if s.report_drift:
            return _stall("Drifted", f"AWS differs from the spec at {paths} (driftPolicy: Report)", job, **kw)
        if all(create_only(path) for path in diff):
            # No update can change these: sending one would repeat for ever.
            return _stall(
                "Drifted",
                f"AWS differs from the spec at {paths}, which UpdateBackendAuth cannot change (AWS "
                "sets it only when the auth resource is created)",
                job,
                **kw,
            )
        if job.missing and job.operation == UPDATE_OP and not s.requested:
            # Our update completed and AWS still differs on the second look: AWS does not take
            # these values as sent, and sending them again would repeat for ever.
            return _stall(
                "Drifted",
                f"AWS still differs from the spec at {paths} after {job.describe()} completed; "
                "set the reconcile-requested-at annotation to send it again",
                job,
                **kw,
            )
        if job.verified or job.missing:
            # Changed behind our back (or still different on the second look): one update.
            return Action("submit", operation=UPDATE_OP, event_reason="Drifted", **kw)
        # Our own job completed, yet AWS differs: look once more before sending it again.
        return _look_again(job, "Drifted", f"AWS differs from the spec at {paths}; it will be updated", kw)
    return Action("submit", operation=UPDATE_OP, event_reason="Adopted" if adopted else None, **kw)
