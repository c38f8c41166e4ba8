"""What a step does besides deciding, for real: the AWS face, the Lease of the app/env, the
referenced Secrets, and the pending marker written before a call.

Fencing: the marker is written only to the version the step read (a conflict comes back as
:class:`~decide.Stale`, and nothing is sent), and the call itself is sent only while this
process acts and within ``SEND_WINDOW_SECONDS`` of taking the turn (checked after the pacing
wait, just before the request: :class:`~decide.Withheld` otherwise)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from backendauth_operator import metrics
from backendauth_operator.aws.amplify import AmplifyBackend, NotSentError, Resource
from backendauth_operator.aws.clients import ClientFactory
from backendauth_operator.aws.cognito import Cognito
from backendauth_operator.core.bookkeeping import CREATE, DELETE, IMPORT, Job, Marker
from backendauth_operator.core.decide import (
    Accepted,
    Finish,
    NotSent,
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
from backendauth_operator.core.holder import name_of
from backendauth_operator.core.import_types import Checked, IdsRead, ImportIds, Link
from backendauth_operator.core.models import (
    BackendAuthSpec,
    SecretKeyRef,
    create_backend_auth_kwargs,
    import_backend_auth_kwargs,
    update_backend_auth_kwargs,
)
from backendauth_operator.kube.client import KubeClient, SecretMissing, version_of
from backendauth_operator.kube.leases import SEND_WINDOW_SECONDS, Leases
from backendauth_operator.kube.writer import StepWriter, Written, write_marker
from backendauth_operator.runtime import import_reads
from backendauth_operator.runtime.leader import Gate, SoleOperator
from backendauth_operator.runtime.workqueue import Watched


def secrets_digest(uid: str, values: Mapping[str, str]) -> str:
    """A digest of Secret values (by ``name/key``), salted with the object's uid, so that a
    rotation is noticed without keeping (or showing) any value."""
    canonical = json.dumps(dict(values), sort_keys=True)
    return hashlib.sha256(f"{uid}\nsecrets\n{canonical}".encode()).hexdigest()[:32]


class LiveEffects:
    """:class:`~executor.Effects` against AWS and the API server, for one object."""

    def __init__(
        self, clients: ClientFactory, kube: KubeClient, leases: Leases, logger: Any, gate: Gate | None = None
    ) -> None:
        self.clients, self.kube, self.leases, self.logger = clients, kube, leases, logger
        self.gate: Gate = gate or SoleOperator()

    def aws(self, s: Snapshot) -> AmplifyBackend:
        return AmplifyBackend(self.clients, s.region, s.role, s.account)

    def spec(self, s: Snapshot) -> BackendAuthSpec:
        assert s.spec is not None, "no call is planned for an invalid spec"
        return s.spec

    def own_account(self) -> str:
        return self.clients.own_account()

    def turn_holder(self, s: Snapshot) -> str | None:
        return self.leases.holder(s.turn)

    def held_elsewhere(self, s: Snapshot) -> str | None:
        return self.leases.held_elsewhere(s.turn, s.me)

    def secrets_digest(self, s: Snapshot) -> str | None:
        refs = self.spec(s).secret_refs()
        if not refs:
            return ""
        try:
            values = {f"{r.name}/{r.key}": self.kube.read_secret_key(s.namespace, r, 8192) for r in refs}
        except SecretMissing:
            return None
        return secrets_digest(s.uid, values)

    def poll_job(self, s: Snapshot, job: Job) -> Job | Failure:
        answered = self.aws(s).job(job, s.app, s.env)
        done = isinstance(answered, Job) and answered.terminal and answered.operation != DELETE
        if isinstance(answered, Job) and done and answered.submitted_at:
            seconds = time.time() - answered.submitted_at
            metrics.observe_job(answered.operation, answered.status, seconds, s.account)
        return answered

    def unfinished_job(self, s: Snapshot) -> tuple[Job, str | None] | Failure | None:
        jobs = self.aws(s).unfinished_jobs(s.app, s.env)
        if isinstance(jobs, Failure):
            return jobs
        return (jobs[0], self.leases.holder(s.turn)) if jobs else None

    def resource(self, s: Snapshot) -> Resource | Failure:
        return self.aws(s).resource(s.app, s.env, s.resource_name)

    def submit(self, s: Snapshot, operation: str) -> Submitted:
        try:
            kwargs, sent = self.request(s, operation)
        except SecretMissing as error:
            return NotSent(Failure(error.reason, True, str(error)))
        holder = self.leases.acquire(s.turn, s.me)
        if holder is not None:
            return TurnTaken(name_of(holder))
        taken = time.monotonic()
        # The marker reaches the API server *before* the call: if the answer is lost (a crash,
        # a 504), the next step looks for the job instead of calling again. It is written only
        # to the version read: if another step (of this or another operator) wrote since,
        # nothing is sent and the object is read and decided again.
        marker = Marker(operation, time.time(), s.generation, s.fingerprint)
        try:
            version = write_marker(self.kube, s, marker)
        except ApiException as error:
            if error.status == 409:
                return Stale()
            raise

        def may_send() -> None:  # after pacing, just before the request goes out
            if not self.gate.acting():
                raise NotSentError("this operator no longer leads")
            if time.monotonic() - taken > SEND_WINDOW_SECONDS:
                raise NotSentError(f"not sent within {SEND_WINDOW_SECONDS:g}s of taking the turn")

        self.logger.info(f"Calling {operation} for {s.app}/{s.env}.")
        try:
            job = self.aws(s).submit(
                operation, kwargs, before_send=may_send, generation=s.generation,
                fingerprint=s.fingerprint, submitted_at=time.time(),
                secrets_digest=secrets_digest(s.uid, sent) if sent else "", account=s.account,
            )  # fmt: skip
        except NotSentError as error:
            self.logger.info(f"{operation} not sent: {error}.")
            return Withheld(str(error), marker, version)
        if isinstance(job, Failure):
            return Rejected(job, marker, version)
        return Accepted(job, marker, version)

    def request(self, s: Snapshot, operation: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The call's keyword arguments, and the Secret values they carry (by ``name/key``)."""
        if operation == IMPORT:
            # The ids read (and checked) in this very step; ids are no secrets.
            assert isinstance(s.import_ids, ImportIds), "an import is sent only once its ids were read"
            return import_backend_auth_kwargs(self.spec(s), s.import_ids.as_dict()), {}
        return call_arguments(self.kube, s, self.spec(s), operation)

    def import_ids(self, s: Snapshot) -> IdsRead:
        config = self.spec(s).import_
        assert config is not None, "read only for spec.import"
        return import_reads.read_ids(self.kube, s.namespace, config)

    def links(self, s: Snapshot) -> tuple[Link, ...] | Failure:
        return import_reads.links(self.aws(s), s.app, s.env)

    def check_import(self, s: Snapshot) -> Checked:
        assert isinstance(s.import_ids, ImportIds), "checked only once its ids were read"
        return import_reads.check(Cognito(self.clients, s.region, s.role, s.account), s.import_ids)

    def delete(self, s: Snapshot) -> Submitted:
        holder = self.leases.acquire(s.turn, s.me)
        if holder is not None:
            return TurnTaken(name_of(holder))

        def may_send() -> None:  # after pacing: a process that stopped leading sends nothing
            if not self.gate.acting():
                raise NotSentError("another operator leads; it deletes")

        name = s.resource_name
        if not name and s.spec is not None and s.spec.import_ is not None:
            found = self.unlinked_name(s)
            if isinstance(found, Failure):
                return Rejected(found)
            name = found
        try:
            job = self.aws(s).delete(s.app, s.env, name, before_send=may_send)
        except NotSentError as error:
            return Withheld(str(error))
        return Rejected(job) if isinstance(job, Failure) else Accepted(job)

    def unlinked_name(self, s: Snapshot) -> str | Failure:
        """The auth resource to unlink for an import not yet seen linked: the one GetBackend
        shows with the spec's ids. None there while an import still runs on the app/env (it may
        link them yet): JobPending, so the deletion waits; none otherwise: NotFound.

        The two reads are not one: an import that ends between GetBackend and ListBackendJobs
        shows in neither. So when no job runs, GetBackend is asked once more, and only its
        answer says NotFound (nothing that runs can link the ids after that)."""
        assert s.spec is not None and s.spec.import_ is not None
        ids = import_reads.read_ids(self.kube, s.namespace, s.spec.import_)
        found = import_reads.linked_name(self.aws(s), s.app, s.env, ids)
        if not (isinstance(found, Failure) and found.reason == "NotFound"):
            return found
        running = self.aws(s).unfinished_jobs(s.app, s.env)
        if isinstance(running, Failure):
            return running
        if running:
            message = f"{running[0].describe()} runs on {s.app}/{s.env}; the unlink waits for it"
            return Failure("JobPending", True, message)
        return import_reads.linked_name(self.aws(s), s.app, s.env, ids)

    def release(self, s: Snapshot, fenced: bool = False) -> bool:
        """Give back the turn this object holds through this process. ``fenced``: this step's
        writes were accepted on the version it read, so another process's hold of the same
        object is stale and goes too. True when such a hold was left in place."""
        return self.leases.release(s.turn, s.me, fenced=fenced)

    def outputs(self, s: Snapshot) -> dict[str, str] | Failure:
        seen = import_reads.outputs_of(s.observed.links if s.observed else None, s.import_ids)
        if seen is not None:  # an import's observation was GetBackend itself: no second call
            return seen
        return self.aws(s).outputs(s.app, s.env, s.resource_name)

    def leading(self) -> bool:
        return self.gate.acting()

    def give_back(self, s: Snapshot, fenced: bool = False) -> bool:
        """:meth:`release`, where a failure is only a warning: the Lease ends by itself."""
        try:
            return self.release(s, fenced=fenced)
        except ApiException as error:
            self.logger.warning(f"Could not give back the turn on {s.app}/{s.env}: {error.reason}")
            return False


class StepEffects(LiveEffects):
    """:class:`LiveEffects` for one step of one object as read (``obj``): it also writes the
    step's outcome, and tells the registry what was observed and shown."""

    def __init__(
        self,
        clients: ClientFactory,
        kube: KubeClient,
        leases: Leases,
        logger: Any,
        gate: Gate,
        obj: Mapping[str, Any],
        watched: Watched,
    ) -> None:
        super().__init__(clients, kube, leases, logger, gate)
        self.obj, self.watched = obj, watched
        self.written: Mapping[str, Any] | None = None  # the object as the step's last write left it
        read = version_of(obj)
        self.versions: set[str] = {read} if read else set()  # the versions read and written

    def submit(self, s: Snapshot, operation: str) -> Submitted:
        submitted = super().submit(s, operation)
        if isinstance(submitted, Accepted | Rejected | Withheld) and submitted.version:
            self.versions.add(submitted.version)  # the pending marker's
        return submitted

    def write(
        self, s: Snapshot, outcome: Settle | Wait | Finish, outputs: dict[str, str] | Failure | None
    ) -> Written:
        if s.observed is not None:
            # When AWS was last read: the resync loop's schedule, the metrics and this line; never
            # the status (a timestamp there would be a write, and a watch event, per read).
            self.watched.observed(s.uid, time.time())
            found = "found" if s.observed.resource else "none"
            self.logger.debug(f"Read the auth resource in AWS ({found}).")
        written = StepWriter(self.kube, self.obj, self.logger).write(s, outcome, outputs)
        if written.shown and not written.conflicted:
            self.watched.shown(s.uid, s.generation)
        self.written = written.body
        self.versions.update(written.versions)
        return written


def call_arguments(
    kube: KubeClient, s: Snapshot, spec: BackendAuthSpec, operation: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The keyword arguments of ``operation`` for ``spec``, its Secret references resolved in
    the object's namespace, and the Secret values they carry (by ``name/key``)."""
    sent: dict[str, str] = {}
    assert spec.resource_config is not None, "an import sends the ids it read"
    oauth = spec.resource_config.user_pool_configs.o_auth
    apple = (
        oauth.social_provider_settings.sign_in_with_apple
        if oauth and oauth.social_provider_settings
        else None
    )

    def resolve(ref: SecretKeyRef) -> str:
        # The same limits as the inline values: 4096 characters, 8192 for Apple's .p8 key.
        limit = 8192 if apple is not None and ref is apple.private_key_ref else 4096
        sent[f"{ref.name}/{ref.key}"] = kube.read_secret_key(s.namespace, ref, limit)
        return sent[f"{ref.name}/{ref.key}"]

    build = create_backend_auth_kwargs if operation == CREATE else update_backend_auth_kwargs
    return build(spec, resolve), sent
