"""Kopf handlers: every trigger runs one step, observe → decide → act.

A step reads the BackendAuth as it is now, builds a :class:`~reconcile.Snapshot`, asks
:func:`~reconcile.decide` what to do, and does it: it observes AWS when asked (GetBackendJob for
a job in flight, ListBackendJobs after a lost answer, GetBackendAuth for the resource), then
submits a call or writes the outcome. Everything the step decides is written at once, under the
object's lock, by :meth:`Step.write`.

What runs a step:

* a watch event that shows a generation no step has shown yet (a new BackendAuth, a changed
  spec: ``metadata.generation`` against ``status.observedGeneration``, as controller-runtime's
  generation predicate does), or a change of the ``paused`` or ``reconcile-requested-at``
  annotations. One Kopf event handler with one filter serves them all: a coroutine that hands
  the object to the poller, whose step reads it and sees what is asked. Kopf's own change
  handlers (and the annotations and patches they cost per object) are not used;
* the poller, only while the BackendAuth shows ``Reconciling`` (a job runs, a retry is due,
  another BackendAuth has the turn): waiting is a poll, not an error. Settled objects (Ready,
  Stalled, Paused) are not polled and cost no AWS call;
* the resync loop and Secret changes (see ``watched.py``).

Deletion is Kopf's ``on.delete``, only with ``deletionPolicy: Delete``: it must hold the
finalizer until AWS's delete job has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import kopf
from kubernetes.client.exceptions import ApiException

from backendauth_operator import GROUP, PLURAL, VERSION, metrics
from backendauth_operator.amplify import AmplifyBackend
from backendauth_operator.aws import ClientFactory, Failure
from backendauth_operator.bookkeeping import (
    CREATE,
    CREATED,
    DELETE_JOB,
    FAILURES,
    JOB,
    PAUSED,
    PENDING,
    RECONCILE_REQUESTED,
    BadAnnotation,
    Failures,
    Job,
    Marker,
    holder_name,
    is_true,
)
from backendauth_operator.config import Settings
from backendauth_operator.kube import KubeClient, Leases, SecretMissing
from backendauth_operator.models import (
    BackendAuthSpec,
    InvalidSpecError,
    SecretKeyRef,
    create_backend_auth_kwargs,
    has_secrets,
    parse_spec,
    update_backend_auth_kwargs,
)
from backendauth_operator.reconcile import (
    Action,
    Observation,
    Snapshot,
    State,
    backoff_delay,
    conditions_for,
    current_reason,
    decide,
    in_progress,
    now_rfc3339,
)
from backendauth_operator.watched import Poller, Watched

_T = TypeVar("_T")
SECRET_RETRY_CAP = 30.0  # a Secret applied after its BackendAuth is picked up within this time
WAITING_PREFIX = "waiting: "


class Waiting(kopf.TemporaryError):
    """Deletion only: nothing to do until ``delay`` has passed (AWS's delete job runs, another
    BackendAuth has the turn). Kopf logs every retry of a handler at ERROR;
    :class:`DowngradeWaiting` shows these at INFO."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(f"{WAITING_PREFIX}{message}", delay=delay)


class ObjectLocks:
    """One step at a time per object: a poll, an event and a resync may arrive together."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` (namespace/name) for the block."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def forget(self, key: str) -> None:
        with self._guard:
            self._locks.pop(key, None)


@dataclass
class OperatorContext:
    """Shared by every handler call (Kopf's ``memo``); shallow-copied per object by Kopf."""

    settings: Settings
    clients: ClientFactory
    kube: KubeClient
    leases: Leases
    poller: Poller  # steps new generations and waiting objects (started by the runner)
    locks: ObjectLocks = field(default_factory=ObjectLocks)
    watched: Watched = field(default_factory=Watched)


class _Failed(Exception):
    """An AWS or Kubernetes call failed in a way the step shows and retries later."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Step:
    """One step for one BackendAuth: observe, decide, act, write."""

    def __init__(
        self,
        ctx: OperatorContext,
        obj: Mapping[str, Any],
        logger: Any,
        requested: bool = False,
        look: bool = False,
        check_secrets: bool = False,
        cause: str | None = None,
    ) -> None:
        self.ctx, self.obj, self.logger = ctx, obj, logger
        meta = obj.get("metadata", {})
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid", f"{self.namespace}/{self.name}")
        self.me = f"{self.namespace}/{self.name}/{self.uid}"
        self.generation: int | None = meta.get("generation")
        self.annotations: dict[str, str] = dict(meta.get("annotations") or {})
        self.status: dict[str, Any] = dict(obj.get("status") or {})
        self.previous_reason = current_reason(self.status.get("conditions") or [])
        self.requested = requested  # a reconcile-requested-at to echo
        self.look = look or requested  # observe AWS now (a request, a resync, a Secret change)
        self.check_secrets = check_secrets or self.look  # read the Secrets to notice a rotation
        self.cause = cause  # what started this step, for events (never a secret value)
        # What this step writes, all at once at the end.
        self.annotation_patch: dict[str, str | None] = {}
        self.status_patch: dict[str, Any] = {}
        self.events: list[tuple[str, str, str]] = []
        self.spec: BackendAuthSpec | None = None
        self.region = ""
        self.shown: State | None = None  # what the conditions show after this step

    # ---- the step ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            snapshot = self.snapshot()
        except BadAnnotation as error:
            self.show(State("stalled", "BadAnnotation", str(error)), event="Warning", error=str(error))
            self.write()
            return
        action = decide(snapshot)
        if action.kind == "observe":
            try:
                snapshot = self.observe(snapshot)
            except _Failed as failed:
                self.fail(failed.failure, snapshot)
                self.write()
                return
            action = decide(snapshot)
        self.act(action, snapshot)
        self.write()

    def snapshot(self) -> Snapshot:
        job = Job.from_annotation(self.annotations)
        marker = Marker.from_annotation(self.annotations)
        failures = Failures.from_annotation(self.annotations)
        base = Snapshot(
            generation=self.generation, now=time.time(), paused=is_true(self.annotations, PAUSED),
            job=job, marker=marker, not_before=failures.not_before, requested=self.look,
            owned=is_true(self.annotations, CREATED), job_timeout=self.ctx.settings.job_timeout_seconds,
        )  # fmt: skip
        try:
            spec = parse_spec(self.obj.get("spec") or {})
        except InvalidSpecError as error:
            return replace(base, spec_error=str(error))
        region = spec.region or self.ctx.settings.default_region
        if not region:
            return replace(base, spec_error="spec.region: required, as the operator has no AWS_REGION set")
        self.spec, self.region = spec, region
        desired = create_backend_auth_kwargs(spec, lambda ref: "")["ResourceConfig"]
        busy = None
        if self.previous_reason == "JobPending" and marker is None and (job is None or job.terminal):
            # Waiting for the app/env's turn: a Kubernetes read says whether it is still taken.
            holder = self.ctx.leases.holder(self.key)
            busy = holder_name(holder) if holder and holder != self.me else None
        return replace(
            base, fingerprint=self.fingerprint(spec), desired=desired, has_secrets=has_secrets(desired),
            turn_busy=busy,
            adopt=spec.adoption_policy == "AdoptOrCreate", report_drift=spec.drift_policy == "Report",
            secrets_digest=self.secrets_digest(spec) if self.check_secrets else None,
        )  # fmt: skip

    def secrets_digest(self, spec: BackendAuthSpec, values: Mapping[str, str] | None = None) -> str | None:
        """A digest of the referenced Secret values, salted with the object's uid, so that a
        rotation is noticed without keeping (or showing) any value. None if one cannot be read."""
        refs = spec.secret_refs()
        if not refs:
            return ""
        if values is None:
            try:
                values = {
                    f"{r.name}/{r.key}": self.ctx.kube.read_secret_key(self.namespace, r, 8192) for r in refs
                }
            except SecretMissing:
                return None
        canonical = json.dumps(dict(values), sort_keys=True)
        return hashlib.sha256(f"{self.uid}\nsecrets\n{canonical}".encode()).hexdigest()[:32]

    @property
    def key(self) -> tuple[str, str, str]:
        assert self.spec is not None
        return (self.region, self.spec.app_id, self.spec.backend_environment_name)

    def observe(self, s: Snapshot) -> Snapshot:
        """Read what AWS has: the job in flight, the unfinished job after a lost answer, the resource."""
        assert self.spec is not None
        aws = AmplifyBackend(self.ctx.clients, self.region)
        app, env = self.spec.app_id, self.spec.backend_environment_name
        job, running = s.job, None
        if job is not None and not job.terminal and job.id:
            job = _answer(aws.job(job, app, env))
            if job.terminal and job.submitted_at:
                metrics.observe_job(job.operation, job.status, time.time() - job.submitted_at)
            if not job.terminal:
                # Still running: AWS's state cannot have settled yet, no need to read it.
                return replace(s, job=job, observed=Observation(resource=None))
        if s.marker is not None:
            running = self.unfinished_job(aws, app, env)
        resource = _answer(aws.resource(app, env, self.spec.resource_name))
        self.status_patch["lastObservedAt"] = now_rfc3339()
        return replace(s, job=job, observed=Observation(resource=resource.config, running=running))

    def unfinished_job(self, aws: AmplifyBackend, app: str, env: str) -> Job | None:
        """After a lost answer: the unfinished job on the app/env, if it can only be ours."""
        for candidate in _answer(aws.unfinished_jobs(app, env)):
            holder = self.ctx.leases.holder(self.key)
            if holder != self.me:
                # Not ours to claim: wait until it ends, then AWS's state decides.
                name = holder_name(holder) if holder else "someone outside this operator"
                raise _Failed(Failure("JobPending", True, f"a job of {name} runs on {app}/{env}"))
            return candidate
        return None

    def act(self, action: Action, s: Snapshot) -> None:
        if action.clear_marker:
            self.annotation_patch[PENDING] = None
        if action.own:
            self.annotation_patch[CREATED] = "true"
        if action.job is not None:
            self.annotation_patch[JOB] = action.job.to_annotation()
            if action.job.id:  # a record of an observation alone has no job to show
                self.status_patch.update(action.job.status_fields())
        if action.drift is not None:
            self.status_patch["drift"] = list(action.drift)
        if action.event_reason == "Recovered" and action.job is not None:
            self.logger.info(f"Recovered {action.job.describe()} instead of calling again.")
            self.events.append(("Normal", "Recovered", f"{action.job.describe()} recovered"))
        elif action.event_reason == "Adopted":
            self.logger.info("Adopted the auth resource that AWS already has.")
            self.events.append(("Normal", "Adopted", "took over the auth resource that AWS already has"))
        elif action.event_reason == "Drifted" and action.drift:
            message = f"AWS differs from the spec at {', '.join(action.drift)}: updating"
            self.logger.info(message)
            self.events.append(("Warning", "Drifted", message))
        if action.release:
            self.release(s)
        if action.kind == "show":
            assert action.state is not None
            if action.failure:
                self.backoff(s, action.state.reason)
            elif action.settled:
                self.annotation_patch[FAILURES] = None
            trouble = action.state.phase == "stalled" or action.failure
            error = action.state.message if trouble else (action.job.error if action.job else "")
            self.show(action.state, action.event, error=error)
            if action.state.phase == "ready" and s.observed is not None:
                self.publish_outputs()
        elif action.kind == "submit":
            assert action.operation is not None
            self.submit(action.operation, s)

    def release(self, s: Snapshot) -> None:
        if self.spec is None:
            return
        try:
            self.ctx.leases.release(self.key, self.me)
        except ApiException as error:  # the lease ends by itself; never fail a step for it
            self.logger.warning(
                f"Could not give back the turn on {self.key[1]}/{self.key[2]}: {error.reason}"
            )

    def submit(self, operation: str, s: Snapshot) -> None:
        """Resolve Secrets, take the app/env's turn, write the marker, make the call."""
        assert self.spec is not None
        try:
            kwargs, sent = self.request(self.spec, operation)
        except SecretMissing as error:
            self.release(s)
            self.fail(Failure(error.reason, True, str(error)), s, cap=SECRET_RETRY_CAP)
            return
        app, env = self.spec.app_id, self.spec.backend_environment_name
        holder = self.ctx.leases.acquire(self.key, self.me)
        if holder is not None:
            name = holder_name(holder)
            self.show(State("reconciling", "JobPending", f"waiting for {name}'s job on {app}/{env}"))
            return
        # The marker reaches the API server *before* the call: if the answer is lost (a crash,
        # a 504), the next step looks for the job instead of calling again.
        marker = Marker(operation, time.time(), self.generation, s.fingerprint)
        self.ctx.kube.set_annotations(self.namespace, self.name, {PENDING: marker.to_annotation()})
        self.annotations[PENDING] = marker.to_annotation()  # what the object has now
        self.logger.info(f"Calling {operation} for {app}/{env}.")
        job = AmplifyBackend(self.ctx.clients, self.region).submit(
            operation, kwargs, generation=self.generation, fingerprint=s.fingerprint,
            submitted_at=time.time(), secrets_digest=self.secrets_digest(self.spec, sent) or "",
        )  # fmt: skip
        if isinstance(job, Failure):
            failure = job
            if failure.ambiguous:
                # AWS may have done it: the marker stays (even if this step's recovery had
                # queued the previous one for removal), and the turn with it.
                self.annotation_patch[PENDING] = marker.to_annotation()
            else:  # AWS refused it: nothing to recover, the turn goes back
                self.annotation_patch[PENDING] = None
                self.release(s)
            if not failure.retryable:
                self.annotation_patch[FAILURES] = None
                self.show(State("stalled", failure.reason, failure.message), "Warning", error=failure.message)
                return
            self.fail(failure, s)
            return
        if operation == CREATE:
            self.annotation_patch[CREATED] = "true"
        self.annotation_patch.update({JOB: job.to_annotation(), PENDING: None, FAILURES: None})
        self.status_patch.update(job.status_fields())
        because = f" ({self.cause})" if self.cause else ""
        self.events.append(("Normal", "Submitted", f"{job.describe()} submitted{because}"))
        self.show(in_progress(job))

    def fail(self, failure: Failure, s: Snapshot, cap: float | None = None) -> None:
        """Show a retryable failure; the next attempt waits for the backoff."""
        self.backoff(s, failure.reason, cap)
        self.show(State("reconciling", failure.reason, failure.message), "Warning", error=failure.message)

    def backoff(self, s: Snapshot, reason: str, cap: float | None = None) -> None:
        failures = Failures.from_annotation(self.annotations)
        settings = self.ctx.settings
        delay = backoff_delay(
            failures.count, settings.retry_base_seconds, min(cap or 1e9, settings.retry_max_seconds)
        )
        self.annotation_patch[FAILURES] = Failures(failures.count + 1, s.now + delay).to_annotation()
        metrics.record_retry(reason)

    def waits(self) -> bool:
        """Whether the object is left waiting (its job runs, a retry is due, another BackendAuth
        has the turn), so that the poller steps it again. Settled and paused objects are not.
        A step that only waited shows what it showed before."""
        if self.shown is not None:
            return self.shown.phase == "reconciling" and self.shown.reason != "Paused"
        return shows_waiting(self.status.get("conditions") or [])

    # ---- writing ----------------------------------------------------------------------------

    def show(self, state: State, event: str | None = None, **fields: Any) -> None:
        """The one place conditions are set; an event is posted (and a warning logged) when the
        reason changes."""
        self.status_patch.update(fields)
        self.status_patch["observedGeneration"] = self.generation
        self.status_patch["conditions"] = conditions_for(
            state, self.generation, self.status.get("conditions") or []
        )
        metrics.set_object_state(self.uid, state.phase, state.reason)
        self.shown = state
        if event and state.reason != self.previous_reason:
            self.events.append((event, state.reason, state.message))
            if event == "Warning":  # whoever reads the operator's log sees trouble too
                self.logger.warning(f"{state.reason}: {state.message}")
        self.previous_reason = state.reason

    def write(self) -> None:
        if self.requested:
            self.status_patch["lastHandledReconcileAt"] = self.annotations.get(RECONCILE_REQUESTED)
        # Only what changes is written: a poll that finds the job still running writes nothing,
        # and causes no watch event.
        annotations = {k: v for k, v in self.annotation_patch.items() if self.annotations.get(k) != v}
        status = {k: v for k, v in self.status_patch.items() if self.status.get(k) != v}
        try:
            if annotations:
                self.ctx.kube.set_annotations(self.namespace, self.name, annotations)
            if status:
                self.ctx.kube.patch_status(self.namespace, self.name, status)
            if "observedGeneration" in self.status_patch:
                self.ctx.watched.shown(self.uid, self.status_patch["observedGeneration"])
        except ApiException as error:
            if error.status == 404:
                return  # deleted meanwhile
            raise
        for kind, reason, message in self.events:
            try:
                self.ctx.kube.post_event(self.obj, kind, reason, message)
            except ApiException as error:  # an event is worth a warning, never a failed step
                self.logger.warning(f"Event {reason} not posted: {error.reason}")

    # ---- requests ---------------------------------------------------------------------------

    def fingerprint(self, spec: BackendAuthSpec) -> str:
        """A digest of what AWS would be sent, salted with the object's uid; Secret values are
        represented by their references, so none is read or stored for it."""
        request = create_backend_auth_kwargs(spec, lambda ref: f"secretKeyRef:{ref.name}/{ref.key}")
        canonical = json.dumps(request, sort_keys=True, default=str)
        return hashlib.sha256(f"{self.uid}\n{canonical}".encode()).hexdigest()[:32]

    def request(self, spec: BackendAuthSpec, operation: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The call's keyword arguments, and the Secret values they carry (by ``name/key``)."""
        sent: dict[str, str] = {}

        oauth = spec.resource_config.user_pool_configs.o_auth
        apple = (
            oauth.social_provider_settings.sign_in_with_apple
            if oauth and oauth.social_provider_settings
            else None
        )

        def resolve(ref: SecretKeyRef) -> str:
            # The same limits as the inline values: 4096 characters, 8192 for Apple's .p8 key.
            limit = 8192 if apple is not None and ref is apple.private_key_ref else 4096
            sent[f"{ref.name}/{ref.key}"] = self.ctx.kube.read_secret_key(self.namespace, ref, limit)
            return sent[f"{ref.name}/{ref.key}"]

        build = create_backend_auth_kwargs if operation == CREATE else update_backend_auth_kwargs
        return build(spec, resolve), sent

    def publish_outputs(self) -> None:
        """The ids apps need, from GetBackend's amplify-meta: into status, and into the ConfigMap
        the spec names. A failure here never changes the outcome: it is retried next time."""
        assert self.spec is not None
        spec = self.spec
        aws = AmplifyBackend(self.ctx.clients, self.region)
        outputs = aws.outputs(spec.app_id, spec.backend_environment_name, spec.resource_name)
        if isinstance(outputs, Failure):
            self.logger.warning(f"Could not read the auth outputs: {outputs.message}")
            return
        self.status_patch["outputs"] = outputs
        target = self.spec.outputs.config_map_name if self.spec.outputs else None
        if target:
            data = {**{k: v for k, v in outputs.items() if v}, "region": self.region}
            try:
                self.ctx.kube.write_config_map(self.namespace, target, data, owner=self.obj)
            except ApiException as error:
                message = f"ConfigMap {self.namespace}/{target} not written: {error.reason}"
                self.logger.warning(message)
                self.events.append(("Warning", "OutputsNotWritten", message))


def _answer(answer: _T | Failure) -> _T:
    """An AWS answer, or the step's failure."""
    if isinstance(answer, Failure):
        raise _Failed(answer)
    return answer


def step(
    ctx: OperatorContext,
    namespace: str,
    name: str,
    logger: Any,
    look: bool = False,
    check_secrets: bool = False,
    cause: str | None = None,
    from_event: bool = False,
) -> None:
    """Run one step for the object as the API server has it now, read under the object's lock
    (nothing if it is gone or going); if it is left waiting, the poller steps it again. A
    ``reconcile-requested-at`` not yet handled is handled by whichever step sees it.

    ``from_event``: nothing either if the object no longer asks for a step (the event that
    asked predates a step's writes): a refused create must not be sent again."""
    with ctx.locks.hold(f"{namespace}/{name}"):
        try:
            obj = ctx.kube.get_backendauth(namespace, name)
        except ApiException as error:
            if error.status == 404:
                return
            raise
        if obj.get("metadata", {}).get("deletionTimestamp"):
            return
        if from_event and not asks_for_step(obj):
            return
        requested = reconcile_requested(obj)
        done = Step(
            ctx, obj, logger, requested=requested, look=look, check_secrets=check_secrets, cause=cause
        )
        done.run()
    if requested:
        logger.info("Reconcile request handled.")
    if done.waits():
        ctx.poller.schedule(namespace, name)


def unobserved(body: Mapping[str, Any]) -> bool:
    """A generation no step has shown yet: a new BackendAuth, or a changed spec (the API server
    counts spec changes in ``metadata.generation``; each step writes ``status.observedGeneration``)."""
    generation = body.get("metadata", {}).get("generation")
    return bool(generation != (body.get("status") or {}).get("observedGeneration"))


def shows_waiting(conditions: list[Mapping[str, Any]]) -> bool:
    """Conditions that say the object waits: Reconciling, and not because it is paused."""
    busy = any(c.get("type") == "Reconciling" and c.get("status") == "True" for c in conditions)
    return busy and current_reason(conditions) != "Paused"


def pause_flipped(body: Mapping[str, Any]) -> bool:
    """True when a BackendAuth must show, or stop showing, Paused."""
    annotations = body.get("metadata", {}).get("annotations") or {}
    shows_paused = current_reason(body.get("status", {}).get("conditions") or []) == "Paused"
    return is_true(annotations, PAUSED) != shows_paused


def asks_for_step(body: Mapping[str, Any]) -> bool:
    """A new generation, a reconcile request or a pause flip that no step has handled yet."""
    return unobserved(body) or reconcile_requested(body) or pause_flipped(body)


def reconcile_requested(body: Mapping[str, Any]) -> bool:
    """True when ``reconcile-requested-at`` holds a value not yet handled."""
    requested = (body.get("metadata", {}).get("annotations") or {}).get(RECONCILE_REQUESTED)
    return requested is not None and requested != body.get("status", {}).get("lastHandledReconcileAt")


def noteworthy(memo: Any, body: kopf.Body, type: str | None = None, **_: Any) -> bool:
    """The filter of :func:`on_event`, called by Kopf for every watch event, silently (a
    handler's every success is logged). It feeds the registry that the resync loop and Secret
    changes use, and costs no API call. One filter for every case: Kopf builds the keyword
    arguments of every filter of every event, at a thousand objects that is CPU worth saving."""
    if type == "DELETED":
        return True
    ctx: OperatorContext = memo.ctx
    ctx.watched.update(body)
    meta = body.get("metadata", {})
    if meta.get("deletionTimestamp"):
        return False  # the delete handler's, if the policy is Delete
    conditions = body.get("status", {}).get("conditions") or []
    if type in (None, "ADDED") and shows_waiting(conditions):
        # Seen for the first time (a restart lists every object): one that waits is polled.
        ctx.poller.ensure(str(meta.get("namespace")), str(meta.get("name")))
    fresh = unobserved(body) and not ctx.watched.has_shown(str(meta.get("uid")), meta.get("generation"))
    # A pause flip counts on changes only, so that a restart does not step every paused object.
    return fresh or reconcile_requested(body) or (type == "MODIFIED" and pause_flipped(body))


async def on_event(
    memo: Any, body: kopf.Body, type: str | None, uid: str | None, namespace: str | None,
    name: str | None, logger: Any, **_: Any,
) -> None:  # fmt: skip
    """What a watch event asks for: a new BackendAuth or a changed spec is stepped; a reconcile
    request observes AWS now and is echoed in ``status.lastHandledReconcileAt``; paused or
    unpaused, one step (no AWS call while paused); a deleted BackendAuth is forgotten.

    The handler only schedules: the poller runs the step on a handler thread as soon as one
    of its slots is free, and the step reads the object to see what is asked. Being a
    coroutine, the handler itself costs no thread hop per event. Kopf does not retry an event
    handler: a step that fails is tried again by the poller."""
    ctx: OperatorContext = memo.ctx
    ns, n = str(namespace), str(name)
    if type == "DELETED":
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(ctx.poller.executor, forget, ctx, body, str(uid), ns, n, logger)
        return
    ctx.poller.schedule(ns, n, delay=0, from_event=True)


def deletes_in_aws(memo: Any, spec: kopf.Spec, **_: Any) -> bool:
    """The delete handler's filter: the object's deletion policy (or the default) is Delete."""
    ctx: OperatorContext = memo.ctx
    return (spec.get("deletionPolicy") or ctx.settings.default_deletion_policy) == "Delete"


def delete(memo: Any, body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    """Apply the deletion policy: Retain (default) leaves AWS alone; Delete removes the auth
    resource and waits for AWS's delete job before Kubernetes lets the object go."""
    ctx: OperatorContext = memo.ctx
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    policy = spec.get("deletionPolicy") or ctx.settings.default_deletion_policy
    region = spec.get("region") or ctx.settings.default_region or ""
    key = (region, str(spec.get("appId")), str(spec.get("backendEnvironmentName")))
    me = f"{meta.get('namespace')}/{meta.get('name')}/{meta.get('uid')}"
    if policy != "Delete" or not is_true(annotations, CREATED) or is_true(annotations, PAUSED):
        if policy == "Delete" and is_true(annotations, PAUSED):
            # Deleting must still work while paused; AWS is not called, so the resource stays.
            kopf.warn(body, reason="Paused", message="paused: the Amplify auth resource is retained")
        else:
            logger.info(f"Deletion policy {policy}: the Amplify auth resource is left in place.")
        ctx.leases.release(key, me)
        return
    job = Job.from_annotation(annotations, DELETE_JOB) if annotations.get(DELETE_JOB) else None
    delay = ctx.settings.job_poll_seconds
    aws = AmplifyBackend(ctx.clients, region)
    try:
        if job is None:
            holder = ctx.leases.acquire(key, me)
            if holder is not None:
                raise Waiting(f"{holder_name(holder)} has the turn on {key[1]}/{key[2]}", delay=delay)
            job = _answer(aws.delete(key[1], key[2], spec["resourceName"]))
            patch.metadata.annotations[DELETE_JOB] = job.to_annotation()
            kopf.info(body, reason="Deleting", message=f"{job.describe()} submitted")
        if not job.terminal:
            job = _answer(aws.job(job, key[1], key[2]))
            patch.metadata.annotations[DELETE_JOB] = job.to_annotation()
    except _Failed as failed:
        failure = failed.failure
        if failure.reason == "NotFound":
            logger.info("The Amplify auth resource is already gone.")
            ctx.leases.release(key, me)
            return
        if not failure.ambiguous:
            ctx.leases.release(key, me)
        if not failure.retryable:
            raise kopf.PermanentError(f"{failure.reason}: {failure.message}") from None
        metrics.record_retry(failure.reason)
        raise kopf.TemporaryError(f"{failure.reason}: {failure.message}", delay=delay) from None
    if not job.terminal:
        raise Waiting(f"{job.describe()} is {job.status}", delay=delay)
    ctx.leases.release(key, me)
    if job.failed:
        # Keep the finalizer: letting go would orphan a resource the user asked to delete.
        message = job.error or f"{job.describe()} failed"
        patch.status["conditions"] = conditions_for(
            State("stalled", "DeleteFailed", message),
            meta.get("generation"),
            body.get("status", {}).get("conditions") or [],
        )
        patch.status["error"] = message
        kopf.warn(body, reason="DeleteFailed", message=message)
        raise kopf.PermanentError(f"DeleteFailed: {message}")


def forget(ctx: OperatorContext, body: kopf.Body, uid: str, namespace: str, name: str, logger: Any) -> None:
    """A deleted BackendAuth: give back a turn it may still hold (an object without a finalizer
    goes at once, even mid-job), and drop its lock, registry entry and metrics. Under the
    object's lock, so a step that is writing its outcome finishes first."""
    key = f"{namespace}/{name}"
    with ctx.locks.hold(key):
        spec = body.get("spec") or {}
        region = spec.get("region") or ctx.settings.default_region or ""
        turn = (region, str(spec.get("appId")), str(spec.get("backendEnvironmentName")))
        try:
            ctx.leases.release(turn, f"{namespace}/{name}/{uid}")
        except ApiException as error:  # the lease ends by itself
            logger.warning(f"Could not give back the turn on {turn[1]}/{turn[2]}: {error.reason}")
        policy = spec.get("deletionPolicy") or ctx.settings.default_deletion_policy
        if policy != "Delete":
            logger.info(f"Deletion policy {policy}: the Amplify auth resource is left in place.")
    ctx.poller.cancel(namespace, name)
    ctx.locks.forget(key)
    ctx.watched.forget(uid)
    metrics.set_object_state(uid, None, None)


def referenced_secret(
    memo: Any, namespace: str | None, name: str | None, type: str | None = None, **_: Any
) -> bool:
    """A Secret that some BackendAuth's clientSecretRef/privateKeyRef names has been created or changed."""
    return type in ("ADDED", "MODIFIED") and bool(memo.ctx.watched.referencing(str(namespace), str(name)))


def secret_changed(memo: Any, namespace: str | None, name: str | None, logger: Any, **_: Any) -> None:
    """Each BackendAuth that uses the Secret compares the salted digest of the values it last sent
    with the current one (Kubernetes reads only); a rotation makes one UpdateBackendAuth."""
    ctx: OperatorContext = memo.ctx
    for entry in ctx.watched.referencing(str(namespace), str(name)):
        step(ctx, entry.namespace, entry.name, ObjectLogger(entry.namespace, entry.name),
             check_secrets=True, cause=f"Secret {namespace}/{name} changed")  # fmt: skip


class ObjectLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Log lines about one BackendAuth outside Kopf's handlers, prefixed as Kopf prefixes them."""

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(logging.getLogger("backendauth_operator.objects"), {})
        self.prefix = f"[{namespace}/{name}] "

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.prefix}{msg}", kwargs


def poll(ctx: OperatorContext, namespace: str, name: str, from_event: bool = False) -> None:
    """A BackendAuth's turn with the poller: what an event asked for, or a waiting object
    (poll its job, retry when due, wait for a turn)."""
    step(ctx, namespace, name, ObjectLogger(namespace, name), from_event=from_event)


def resync(ctx: OperatorContext, entry: Any) -> None:
    """Observe a settled BackendAuth in AWS again (drift); called by the resync loop."""
    step(
        ctx, entry.namespace, entry.name, ObjectLogger(entry.namespace, entry.name), look=True, cause="resync"
    )


def register(registry: kopf.OperatorRegistry | None = None) -> None:
    """Attach the handlers to Kopf's registry (the default one unless given)."""
    resource = (GROUP, VERSION, PLURAL)
    kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
    # Only deletionPolicy Delete needs the finalizer (Kopf adds it when a delete handler's
    # filter matches): a Retained object is let go at once, and costs no finalizer patch.
    kopf.on.delete(*resource, id="delete", when=deletes_in_aws, **kw)(delete)
    kopf.on.event(*resource, id="event", when=noteworthy, **kw)(on_event)
    kopf.on.event("", "v1", "secrets", id="secret-changed", when=referenced_secret, **kw)(secret_changed)


class DowngradeWaiting(logging.Filter):
    """Kopf logs every TemporaryError at ERROR; a deletion's :class:`Waiting` is routine, so
    show it at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR:
            message = record.getMessage()
            if f"failed temporarily: {WAITING_PREFIX}" in message:
                record.msg, record.args = (
                    message.replace(f"failed temporarily: {WAITING_PREFIX}", "is waiting: "),
                    (),
                )
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class HideScheduling(logging.Filter):
    """The event handler only schedules a step (which logs what it does); Kopf's "Handler
    'event' succeeded." after each would say nothing, a thousand times over."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Handler 'event' succeeded."
