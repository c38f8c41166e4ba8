"""The executor: decide → carry out → record the result, until the plan settles or waits.

It chooses nothing: :func:`~decide.decide` does, and each result comes back as a field of
the next snapshot. Every side effect of a step is a plan it carries out: the reads, the call,
and then the outcome itself (whether this process still leads, the turn given back, the auth
outputs read, the conditional writes and their events, a fenced release). The I/O is behind
:class:`Effects`, so the executor is tested with a fake of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from backendauth_operator.aws.amplify import Resource
from backendauth_operator.core.bookkeeping import PENDING, Job
from backendauth_operator.core.decide import (
    Accepted,
    AskOwnAccount,
    CheckHold,
    CheckLead,
    CheckTurn,
    Delete,
    FindRunning,
    Finish,
    HoldRead,
    Observation,
    Outcome,
    Plan,
    PollDelete,
    PollJob,
    ReadAgain,
    ReadOutputs,
    ReadResource,
    ReadSecrets,
    Rejected,
    Release,
    ReleaseFenced,
    RunningRead,
    SecretsRead,
    Settle,
    Snapshot,
    Submit,
    Submitted,
    TurnRead,
    Wait,
    Withheld,
    Write,
    decide,
    marker_finalizers,
)
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.holder import name_of, object_of
from backendauth_operator.core.import_types import (
    Checked,
    CheckImport,
    IdsRead,
    ImportCheck,
    Link,
    ReadImportIds,
    ReadLinks,
)
from backendauth_operator.kube.writer import Written

MAX_ACTIONS = 16  # a step makes a handful of calls and writes; more would be a loop


class Effects(Protocol):
    """What a step may do besides deciding: read AWS and Kubernetes, and send one call."""

    def turn_holder(self, s: Snapshot) -> str | None:
        """The identity holding the app/env's turn, if any."""

    def held_elsewhere(self, s: Snapshot) -> str | None:
        """Another operator process that holds this object's turn and may still be calling
        AWS for it (its identity), if any."""

    def secrets_digest(self, s: Snapshot) -> str | None:
        """The salted digest of the referenced Secret values; None if one cannot be read."""

    def own_account(self) -> str:
        """The account of the operator's own credentials; empty when it cannot be had."""

    def poll_job(self, s: Snapshot, job: Job) -> Job | Failure: ...

    def unfinished_job(self, s: Snapshot) -> tuple[Job, str | None] | Failure | None:
        """The first unfinished job on the app/env, and who held the turn then."""

    def resource(self, s: Snapshot) -> Resource | Failure: ...

    def submit(self, s: Snapshot, operation: str) -> Submitted:
        """Take the turn, write the pending marker to the version read (:class:`Stale` if it
        changed), make the call unless this process stopped leading (:class:`Withheld`)."""

    def delete(self, s: Snapshot) -> Submitted:
        """Take the turn, call DeleteBackendAuth."""

    def leading(self) -> bool:
        """Whether this process acts now (leads, or runs without leader election)."""

    def give_back(self, s: Snapshot, fenced: bool = False) -> bool:
        """Give back the app/env's turn, never raising (the Lease ends by itself). ``fenced``:
        another process's hold of this object goes too. True when such a hold was left."""

    def outputs(self, s: Snapshot) -> dict[str, str] | Failure:
        """GetBackend's auth outputs of the resource."""

    def write(
        self, s: Snapshot, outcome: Settle | Wait | Finish, outputs: dict[str, str] | Failure | None
    ) -> Written:
        """Write the outcome conditionally on the version read, and post its events."""

    # An import's reads (spec.import)
    def import_ids(self, s: Snapshot) -> IdsRead:
        """The ids of spec.import, each literal or read from its ConfigMap or Secret key."""

    def links(self, s: Snapshot) -> tuple[Link, ...] | Failure:
        """GetBackend: the auth resources on the app/env with their ids."""

    def check_import(self, s: Snapshot) -> Checked:
        """The Cognito reads that check the pools of :attr:`Snapshot.import_ids`."""


def execute(s: Snapshot, effects: Effects) -> tuple[Snapshot, Outcome]:
    """Run a step to its outcome; returns the last snapshot with it."""
    for _ in range(MAX_ACTIONS):
        plan: Plan = decide(s)
        if isinstance(plan, Settle | Wait | ReadAgain | Finish):
            return s, plan
        s = carry_out(plan, s, effects)
    raise RuntimeError(f"no outcome after {MAX_ACTIONS} actions: {plan}")


def carry_out(plan: Plan, s: Snapshot, effects: Effects) -> Snapshot:
    """Do what ``plan`` asks; its result becomes a field of the returned snapshot."""
    if isinstance(plan, AskOwnAccount):
        return replace(s, account=effects.own_account(), ask_own_account=False)
    if isinstance(plan, ReadSecrets):
        return replace(s, secrets=SecretsRead(effects.secrets_digest(s)))
    if isinstance(plan, CheckTurn):
        holder = effects.turn_holder(s)
        busy = name_of(holder) if holder and object_of(holder) != s.me else None
        return replace(s, turn_read=TurnRead(busy))
    if isinstance(plan, CheckHold):
        return replace(s, hold=HoldRead(effects.held_elsewhere(s)))
    if isinstance(plan, PollJob) and s.job is not None:
        answered = effects.poll_job(s, s.job)
        if isinstance(answered, Failure):
            return replace(s, polled=True, failure=answered)
        return replace(s, polled=True, job=answered)
    if isinstance(plan, FindRunning):
        found = effects.unfinished_job(s)
        if isinstance(found, Failure):
            return replace(s, failure=found)
        if found is None:
            return replace(s, running=RunningRead(None))
        job, holder = found
        return replace(s, running=RunningRead(job, holder))
    if isinstance(plan, ReadResource):
        resource = effects.resource(s)
        if isinstance(resource, Failure):
            return replace(s, failure=resource)
        seen = Observation(resource=resource.config, running=_running(s))
        return replace(s, observed=seen)
    if isinstance(plan, ReadImportIds):
        return replace(s, import_ids=effects.import_ids(s))
    if isinstance(plan, ReadLinks):
        shown = effects.links(s)
        if isinstance(shown, Failure):
            return replace(s, failure=shown)
        return replace(s, observed=Observation(resource=None, running=_running(s), links=shown))
    if isinstance(plan, CheckImport):
        return replace(s, import_check=ImportCheck(effects.check_import(s)))
    if isinstance(plan, Submit):
        outcome = effects.submit(s, plan.operation)
        if isinstance(outcome, Accepted | Rejected | Withheld) and outcome.marker is not None:
            # What the object has now (our finalizer too, if the marker's write put it on), and
            # the version the marker's write made.
            marked = {**s.annotations, PENDING: outcome.marker.to_annotation()}
            finalizers = marker_finalizers(s)
            s = replace(
                s, annotations=marked, version=outcome.version or s.version,
                finalizers=s.finalizers if finalizers is None else tuple(finalizers),
            )  # fmt: skip
        return replace(s, submitted=outcome)
    if isinstance(plan, Delete):
        sent = effects.delete(s)
        return replace(s, delete_submitted=sent, delete_job=sent.job if isinstance(sent, Accepted) else None)
    if isinstance(plan, PollDelete) and s.delete_job is not None:
        polled = effects.poll_job(s, s.delete_job)
        if isinstance(polled, Failure):
            return replace(s, failure=polled)
        return replace(s, delete_polled=True, delete_job=polled)
    if isinstance(plan, CheckLead):
        return replace(s, lead_rechecked=True, leading=s.leading and effects.leading())
    if isinstance(plan, Release):
        return replace(s, released=True, foreign_hold=effects.give_back(s))
    if isinstance(plan, ReadOutputs):
        return replace(s, outputs_read=effects.outputs(s))
    if isinstance(plan, Write):
        outputs = dict(plan.outputs) if isinstance(plan.outputs, Mapping) else plan.outputs
        written = effects.write(s, plan.outcome, outputs)
        return replace(s, written=True, wrote=written.wrote, stale=written.conflicted)
    if isinstance(plan, ReleaseFenced):
        effects.give_back(s, fenced=True)
        return replace(s, fenced_released=True)
    raise AssertionError(f"not an action: {plan}")


def _running(s: Snapshot) -> Job | None:
    """The unfinished job FindRunning found on the app/env in this step, if any."""
    return s.running.job if s.running is not None else None
