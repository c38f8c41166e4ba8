"""Kopf handlers: a BackendAuth's way from spec to a completed AWS job, one step per call.

One handler, :func:`reconcile`, serves the create, update (spec) and resume causes. Each call
reads the object fresh, takes one step and either returns (the current generation is done:
Ready or Stalled) or raises :class:`Waiting` / ``kopf.TemporaryError`` to be called again:

1. paused → show ``Paused``, no AWS call;
2. invalid spec → ``Stalled/InvalidSpec``, no AWS call;
3. a job in flight → poll ``get_backend_job``; COMPLETED → Ready, FAILED → Stalled;
4. a pending marker without a job (an earlier call may have reached AWS) → recover the job from
   ``list_backend_jobs`` / ``get_backend_auth`` instead of calling again;
5. otherwise submit: wait for our turn on (region, app, env), resolve Secrets, write the pending
   marker, call ``create_backend_auth`` (or ``update_backend_auth`` once created), record the job.

State that must survive a crash lives in annotations under our prefix (Kopf excludes them from
its change detection): the pending marker, the job, whether the auth was created, the failure
count that drives the backoff.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import kopf

from backendauth_operator import GROUP, PLURAL, PREFIX, VERSION, metrics
from backendauth_operator.aws import ClientFactory, Failure, call, classify
from backendauth_operator.config import Settings
from backendauth_operator.kube import KubeClient, SecretMissing
from backendauth_operator.models import (
    BackendAuthSpec,
    InvalidSpecError,
    SecretKeyRef,
    create_backend_auth_kwargs,
    parse_spec,
    update_backend_auth_kwargs,
)
from backendauth_operator.reconcile import (
    TERMINAL_FAILURE,
    TERMINAL_SUCCESS,
    State,
    backoff_delay,
    conditions_for,
    current_reason,
    is_terminal,
    parse_aws_time,
    pick_recovered_job,
)

PENDING = f"{PREFIX}/pending"
JOB = f"{PREFIX}/job"
CREATED = f"{PREFIX}/created"
FAILURES = f"{PREFIX}/failures"
PAUSED = f"{PREFIX}/paused"
DELETE_JOB = f"{PREFIX}/delete-job"
RECONCILE_REQUESTED = f"{PREFIX}/reconcile-requested-at"

CREATE, UPDATE = "CreateBackendAuth", "UpdateBackendAuth"
SECRET_RETRY_CAP = 30.0  # a Secret applied after its BackendAuth is picked up within this time
WAITING_PREFIX = "waiting: "


class Waiting(kopf.TemporaryError):
    """Not a failure: the handler has nothing to do until ``delay`` has passed (a job runs,
    the object is paused, another BackendAuth has the turn). Logged at INFO, not ERROR."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(f"{WAITING_PREFIX}{message}", delay=delay)


class Turns:
    """One job at a time per (region, appId, environment) inside this operator.

    AWS refuses a second pending job on the same app and environment; holding a turn makes the
    other BackendAuths wait quietly instead of collecting ``JobPending`` errors.
    """

    def __init__(self) -> None:
        self._holders: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    def acquire(self, key: tuple[str, str, str], uid: str) -> str | None:
        """Take the turn; return None on success, else the holder's uid."""
        with self._lock:
            holder = self._holders.setdefault(key, uid)
            return None if holder == uid else holder

    def release(self, uid: str) -> None:
        """Give back every turn held by ``uid``."""
        with self._lock:
            for key in [k for k, v in self._holders.items() if v == uid]:
                del self._holders[key]

    def force(self, key: tuple[str, str, str], uid: str) -> None:
        """Take the turn whoever holds it: ``uid`` has a job running there, so AWS agrees."""
        with self._lock:
            self._holders[key] = uid


@dataclass
class OperatorContext:
    """Shared by every handler call (Kopf's ``memo``); shallow-copied per object by Kopf."""

    settings: Settings
    clients: ClientFactory
    kube: KubeClient
    turns: Turns = field(default_factory=Turns)


class _Step:
    """One call of the reconcile handler for one object."""

    def __init__(self, ctx: OperatorContext, obj: Mapping[str, Any], patch: kopf.Patch, logger: Any) -> None:
        self.ctx = ctx
        self.obj = obj
        self.patch = patch
        self.logger = logger
        meta = obj.get("metadata", {})
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid", f"{self.namespace}/{self.name}")
        self.generation: int | None = meta.get("generation")
        self.annotations: dict[str, str] = dict(meta.get("annotations") or {})
        self.status: dict[str, Any] = dict(obj.get("status") or {})
        self.previous_reason = current_reason(self.status.get("conditions") or [])

    # ---- status and events ------------------------------------------------------------------

    def show(self, state: State, event: str | None = None, **fields: Any) -> None:
        """Write the state into the status patch; post an event when asked and the reason changed."""
        for key, value in fields.items():
            self.patch.status[key] = value
        self.patch.status["observedGeneration"] = self.generation
        metrics.set_object_state(self.uid, state.phase, state.reason)
        self.patch.status["conditions"] = conditions_for(
            state, self.generation, self.status.get("conditions") or []
        )
        if event and (state.reason != self.previous_reason or event == "Normal"):
            kopf.event(cast(kopf.Body, self.obj), type=event, reason=state.reason, message=state.message)
        self.previous_reason = state.reason

    def retry_later(self, failure: Failure, cap: float | None = None) -> kopf.TemporaryError:
        """Show a retryable failure and return the error that schedules the retry with backoff."""
        failures = int(self.annotations.get(FAILURES, "0") or 0)
        self.patch.metadata.annotations[FAILURES] = str(failures + 1)
        metrics.record_retry(failure.reason)
        settings = self.ctx.settings
        delay = backoff_delay(
            failures, settings.retry_base_seconds, min(cap or 1e9, settings.retry_max_seconds)
        )
        self.show(
            State("reconciling", failure.reason, failure.message), event="Warning", error=failure.message
        )
        return kopf.TemporaryError(
            f"{failure.reason}: {failure.message}; retrying in {delay:.0f}s", delay=delay
        )

    def stall(self, reason: str, message: str) -> kopf.PermanentError:
        """Show that nothing will change without a new spec, and end this generation's work."""
        self.ctx.turns.release(self.uid)
        self.patch.metadata.annotations[FAILURES] = None
        self.show(State("stalled", reason, message), event="Warning", error=message)
        return kopf.PermanentError(f"{reason}: {message}")

    def wait(self, state: State, event: str | None = None, **fields: Any) -> Waiting:
        self.show(state, event, **fields)
        return Waiting(state.message, delay=self.ctx.settings.job_poll_seconds)

    # ---- the step ---------------------------------------------------------------------------

    def run(self) -> None:
        if self.annotations.get(PAUSED, "").lower() == "true":
            raise self.wait(
                State("reconciling", "Paused", f"paused by the {PAUSED} annotation; no AWS calls")
            )
        try:
            spec = parse_spec(self.obj.get("spec") or {})
        except InvalidSpecError as error:
            raise self.stall("InvalidSpec", str(error)) from None
        region = spec.region or self.ctx.settings.default_region
        if not region:
            raise self.stall("InvalidSpec", "spec.region: required, as the operator has no AWS_REGION set")

        job = json.loads(self.annotations[JOB]) if self.annotations.get(JOB) else None
        if job is not None and not is_terminal(job.get("status")):
            job = self.poll(job, region)
        if job is not None and job.get("generation") == self.generation and is_terminal(job.get("status")):
            self.finish(job)
            return
        if self.annotations.get(PENDING):
            recovered = self.recover(json.loads(self.annotations[PENDING]), spec, region)
            if recovered is not None:
                self.record(recovered, recovered_job=True)
                raise self.wait(self.in_progress(recovered))
        self.submit(spec, region, job)

    def poll(self, job: dict[str, Any], region: str) -> dict[str, Any]:
        """Ask AWS about an unfinished job; return it updated, or raise to poll again later."""
        self.take_turn(region, job)
        try:
            answer = call(
                self.ctx.clients.reading(region), "get_backend_job",
                AppId=job["appId"], BackendEnvironmentName=job["env"], JobId=job["id"],
            )  # fmt: skip
        except Exception as error:
            failure = classify(error)
            raise self.retry_later(failure) from None
        job = {**job, "status": str(answer.get("Status") or ""), "error": str(answer.get("Error") or "")}
        self.patch.metadata.annotations[JOB] = json.dumps(job, sort_keys=True)
        self.patch.metadata.annotations[FAILURES] = None
        if job["status"] == TERMINAL_SUCCESS and job["operation"] == CREATE:
            self.patch.metadata.annotations[CREATED] = "true"
            self.annotations[CREATED] = "true"
        if not is_terminal(job["status"]):
            raise self.wait(self.in_progress(job), status=job["status"], error=job["error"])
        self.ctx.turns.release(self.uid)
        if job.get("submittedAt"):
            metrics.observe_job(job["operation"], job["status"], time.time() - float(job["submittedAt"]))
        return job

    def finish(self, job: dict[str, Any]) -> None:
        """The current generation's job has ended: Ready or Stalled, and nothing more to do."""
        fields = {
            "jobId": job["id"],
            "status": job["status"],
            "operation": job["operation"],
            "appId": job["appId"],
            "backendEnvironmentName": job["env"],
            "error": job.get("error", ""),
        }
        already = self.status.get("jobId") == job["id"] and self.previous_reason in (
            "JobCompleted",
            "JobFailed",
        )
        if job["status"] == TERMINAL_SUCCESS:
            # A create recovered from GetBackendAuth alone has no job id.
            message = (
                f"{job['operation']} job {job['id']} completed"
                if job["id"]
                else f"{job['operation']} completed"
            )
            self.show(State("ready", "JobCompleted", message), None if already else "Normal", **fields)
        elif job["status"] == TERMINAL_FAILURE:
            message = job.get("error") or f"{job['operation']} job {job['id']} failed"
            self.show(State("stalled", "JobFailed", message), None if already else "Warning", **fields)
        self.patch.metadata.annotations[FAILURES] = None

    def in_progress(self, job: Mapping[str, Any]) -> State:
        return State("reconciling", "JobInProgress", f"{job['operation']} job {job['id']} is {job['status']}")

    def take_turn(self, region: str, job: Mapping[str, Any]) -> None:
        # After a restart, the object whose job is running takes its turn back.
        self.ctx.turns.force((region, job["appId"], job["env"]), self.uid)

    def recover(self, marker: Mapping[str, Any], spec: BackendAuthSpec, region: str) -> dict[str, Any] | None:
        """An earlier call may have reached AWS before the operator stopped: find its job.

        Looks for the newest job of the marked operation created since the marker; for a create,
        also asks whether the auth exists. Returns None when nothing was done (safe to call).
        """
        operation = str(marker.get("operation", CREATE))
        marked_at = parse_aws_time(marker.get("at")) or datetime.now(UTC)
        client = self.ctx.clients.reading(region)
        app, env = spec.app_id, spec.backend_environment_name
        try:
            answer = call(
                client, "list_backend_jobs", AppId=app, BackendEnvironmentName=env, Operation=operation
            )
            found = pick_recovered_job(answer.get("Jobs") or [], operation, marked_at)
            if (
                found is None
                and operation == CREATE
                and self._auth_exists(client, app, env, spec.resource_name)
            ):
                found = {"JobId": "", "Status": TERMINAL_SUCCESS, "Operation": CREATE}
        except Exception as error:
            raise self.retry_later(classify(error)) from None
        self.patch.metadata.annotations[PENDING] = None
        if found is None:
            self.logger.info(f"No {operation} reached AWS before the interruption; submitting it now.")
            return None
        self.logger.info(f"Recovered {operation} job {found.get('JobId')!r} instead of calling again.")
        return {
            "id": str(found.get("JobId") or ""),
            "operation": operation,
            "status": str(found.get("Status") or ""),
            "error": str(found.get("Error") or ""),
            "appId": app,
            "env": env,
            "generation": marker.get("generation"),
        }

    @staticmethod
    def _auth_exists(client: Any, app: str, env: str, resource_name: str) -> bool:
        try:
            call(
                client, "get_backend_auth", AppId=app, BackendEnvironmentName=env, ResourceName=resource_name
            )
        except client.exceptions.NotFoundException:
            return False
        return True

    def submit(self, spec: BackendAuthSpec, region: str, last: dict[str, Any] | None) -> None:
        operation = UPDATE if self.annotations.get(CREATED) == "true" else CREATE
        fingerprint = self.fingerprint(spec)
        unchanged = last is not None and last.get("fingerprint") == fingerprint
        if operation == UPDATE and unchanged and last and last.get("status") == TERMINAL_SUCCESS:
            # Nothing AWS would see has changed (e.g. only deletionPolicy): no call.
            same = {**last, "generation": self.generation}
            self.patch.metadata.annotations[JOB] = json.dumps(same, sort_keys=True)
            self.finish(same)
            return
        # Secrets first: a BackendAuth waiting for its Secret must not hold its app's turn.
        try:
            kwargs = self.request(spec, operation)
        except SecretMissing as error:
            self.ctx.turns.release(self.uid)  # had it from an earlier attempt: let the others go
            raise self.retry_later(
                Failure("SecretNotFound", True, str(error)), cap=SECRET_RETRY_CAP
            ) from None

        key = (region, spec.app_id, spec.backend_environment_name)
        holder = self.ctx.turns.acquire(key, self.uid)
        if holder is not None:
            raise self.wait(
                State(
                    "reconciling", "JobPending", f"waiting for another BackendAuth's job on {key[1]}/{key[2]}"
                )
            )
        # The marker goes to the API server *before* the call: if the operator dies after AWS
        # accepted the call but before Kopf's patch lands, the next attempt finds it and recovers.
        marker = {"operation": operation, "at": datetime.now(UTC).isoformat(), "generation": self.generation}
        marker_text = json.dumps(marker, sort_keys=True)
        self.ctx.kube.set_annotations(self.namespace, self.name, {PENDING: marker_text})
        self.logger.info(f"Calling {operation} for {spec.app_id}/{spec.backend_environment_name}.")
        client = self.ctx.clients.mutating(region)
        try:
            answer = call(
                client, "create_backend_auth" if operation == CREATE else "update_backend_auth", **kwargs
            )
        except Exception as error:
            failure = classify(error)
            # Ambiguous: AWS may have done it, so the marker stays (it may have been queued for
            # removal by an earlier recovery in this same step) and the next attempt recovers.
            # Otherwise AWS refused it and there is nothing to recover.
            self.patch.metadata.annotations[PENDING] = marker_text if failure.ambiguous else None
            if not failure.retryable:
                raise self.stall(failure.reason, failure.message) from None
            raise self.retry_later(failure) from None
        job: dict[str, Any] = {
            "id": str(answer.get("JobId") or ""),
            "operation": str(answer.get("Operation") or operation),
            "status": str(answer.get("Status") or ""),
            "error": str(answer.get("Error") or ""),
            "appId": str(answer.get("AppId") or spec.app_id),
            "env": str(answer.get("BackendEnvironmentName") or spec.backend_environment_name),
            "generation": self.generation,
            "fingerprint": fingerprint,
            "submittedAt": time.time(),
        }
        self.record(job)
        if is_terminal(job["status"]):
            self.ctx.turns.release(self.uid)
            raise Waiting("job ended at once", delay=0.1)
        raise self.wait(self.in_progress(job))

    def record(self, job: dict[str, Any], recovered_job: bool = False) -> None:
        """Keep the job in the same PATCH as Kopf's progress, and mirror it in status."""
        self.patch.metadata.annotations[JOB] = json.dumps(job, sort_keys=True)
        self.patch.metadata.annotations[PENDING] = None
        self.patch.metadata.annotations[FAILURES] = None
        if (
            job["status"] == TERMINAL_SUCCESS and job["operation"] == CREATE
        ):  # done at once, or recovered done
            self.patch.metadata.annotations[CREATED] = "true"
        verb = "Recovered" if recovered_job else "Submitted"
        self.show(
            self.in_progress(job),
            None,
            jobId=job["id"],
            status=job["status"],
            operation=job["operation"],
            appId=job["appId"],
            backendEnvironmentName=job["env"],
            error=job["error"],
        )
        kopf.event(
            cast(kopf.Body, self.obj),
            type="Normal",
            reason=verb,
            message=f"{job['operation']} job {job['id']} {verb.lower()}",
        )

    def fingerprint(self, spec: BackendAuthSpec) -> str:
        """A digest of what AWS would be sent, salted with the object's uid; Secret values are
        represented by their references, so none is read or stored for it."""
        request = create_backend_auth_kwargs(spec, lambda ref: f"secretKeyRef:{ref.name}/{ref.key}")
        canonical = json.dumps(request, sort_keys=True, default=str)
        return hashlib.sha256(f"{self.uid}\n{canonical}".encode()).hexdigest()[:32]

    def request(self, spec: BackendAuthSpec, operation: str) -> dict[str, Any]:
        def resolve(ref: SecretKeyRef) -> str:
            return self.ctx.kube.read_secret_key(self.namespace, ref)

        if operation == CREATE:
            return create_backend_auth_kwargs(spec, resolve)
        return update_backend_auth_kwargs(spec, resolve)


def reconcile(
    memo: Any, namespace: str | None, name: str | None, patch: kopf.Patch, logger: Any, **_: Any
) -> None:
    """Take one step towards the current generation's job having ended (see module docstring)."""
    ctx: OperatorContext = memo.ctx
    # Fresh: the pending marker may be newer than the event Kopf hands us.
    obj = ctx.kube.get_backendauth(str(namespace), str(name))
    if obj.get("metadata", {}).get("deletionTimestamp"):
        return
    _Step(ctx, obj, patch, logger).run()


def _in_flight(annotations: Mapping[str, str]) -> bool:
    """Whether Kopf holds progress for one of our handlers (``<prefix>/reconcile``,
    ``<prefix>/reconcile.spec``, ``<prefix>/delete``): then that handler owns the object."""
    own = (f"{PREFIX}/reconcile", f"{PREFIX}/delete")
    return any(k in own or k.startswith(f"{PREFIX}/reconcile.") for k in annotations)


def pause_flipped(body: kopf.Body, type: str | None = None, **_: Any) -> bool:
    """True when a BackendAuth that no handler is working on must show, or stop showing, Paused.

    Kopf leaves our own annotations out of its change detection, so pausing an object that is
    already Ready causes no update. This filter runs on every watch event and is cheap; the
    handler below runs only when it says so (and so logs only then).
    """
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    if type != "MODIFIED" or meta.get("deletionTimestamp"):
        return False
    if _in_flight(annotations):
        return False  # work in flight: reconcile checks the annotation at each step
    paused = str(annotations.get(PAUSED, "")).lower() == "true"
    shows_paused = current_reason(body.get("status", {}).get("conditions") or []) == "Paused"
    return paused != shows_paused and (paused or JOB in annotations)


def show_pause(memo: Any, body: kopf.Body, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    """Show Paused on a settled BackendAuth, or its job's outcome again once unpaused. No AWS call."""
    step = _Step(memo.ctx, body, patch, logger)
    if str(step.annotations.get(PAUSED, "")).lower() == "true":
        step.show(State("reconciling", "Paused", f"paused by the {PAUSED} annotation; no AWS calls"))
        return
    job = json.loads(step.annotations[JOB])
    if is_terminal(job.get("status")) and job.get("generation") == step.generation:
        step.finish(job)


def reconcile_requested(body: kopf.Body, type: str | None = None, **_: Any) -> bool:
    """True when ``reconcile-requested-at`` holds a value not yet handled, and no handler is busy."""
    meta = body.get("metadata", {})
    annotations = meta.get("annotations") or {}
    if type not in ("ADDED", "MODIFIED") or meta.get("deletionTimestamp"):
        return False
    if _in_flight(annotations):
        return False  # work in flight: it talks to AWS anyway; the request is handled afterwards
    requested = annotations.get(RECONCILE_REQUESTED)
    return requested is not None and requested != body.get("status", {}).get("lastHandledReconcileAt")


def handle_reconcile_request(memo: Any, body: kopf.Body, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    """Check the latest job against AWS now (one read), show what it says, echo the request."""
    ctx: OperatorContext = memo.ctx
    step = _Step(ctx, body, patch, logger)
    job = json.loads(step.annotations[JOB]) if step.annotations.get(JOB) else None
    paused = str(step.annotations.get(PAUSED, "")).lower() == "true"
    spec = body.get("spec") or {}
    region = spec.get("region") or ctx.settings.default_region
    if job and job.get("id") and region and not paused:
        try:
            answer = call(
                ctx.clients.reading(region), "get_backend_job",
                AppId=job["appId"], BackendEnvironmentName=job["env"], JobId=job["id"],
            )  # fmt: skip
        except Exception as error:
            failure = classify(error)
            patch.status["error"] = f"reconcile request: {failure.reason}: {failure.message}"
        else:
            job = {**job, "status": str(answer.get("Status") or ""), "error": str(answer.get("Error") or "")}
            patch.metadata.annotations[JOB] = json.dumps(job, sort_keys=True)
            if is_terminal(job["status"]) and job.get("generation") == step.generation:
                step.finish(job)
    patch.status["lastHandledReconcileAt"] = step.annotations[RECONCILE_REQUESTED]
    logger.info(f"Reconcile request {step.annotations[RECONCILE_REQUESTED]!r} handled.")


def delete(memo: Any, body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    """Apply the deletion policy: Retain (default) leaves AWS alone; Delete removes the auth
    resource and waits for AWS's delete job before Kubernetes lets the object go."""
    ctx: OperatorContext = memo.ctx
    annotations = body.get("metadata", {}).get("annotations") or {}
    policy = spec.get("deletionPolicy") or ctx.settings.default_deletion_policy
    ctx.turns.release(str(body.get("metadata", {}).get("uid")))
    if policy != "Delete" or annotations.get(CREATED) != "true":
        logger.info(f"Deletion policy {policy}: the Amplify auth resource is left in place.")
        return
    if str(annotations.get(PAUSED, "")).lower() == "true":
        # Deleting must still work while paused; AWS is not called, so the resource stays.
        kopf.warn(body, reason="Paused", message="paused: the Amplify auth resource is retained")
        return
    step = _Step(ctx, body, patch, logger)
    region = spec.get("region") or ctx.settings.default_region or ""
    job = json.loads(annotations[DELETE_JOB]) if annotations.get(DELETE_JOB) else None
    try:
        if job is None:
            answer = call(
                ctx.clients.mutating(region), "delete_backend_auth",
                AppId=spec["appId"], BackendEnvironmentName=spec["backendEnvironmentName"],
                ResourceName=spec["resourceName"],
            )  # fmt: skip
            job = {"id": str(answer.get("JobId") or ""), "status": str(answer.get("Status") or "")}
            patch.metadata.annotations[DELETE_JOB] = json.dumps(job, sort_keys=True)
            kopf.info(
                body,
                reason="Deleting",
                message=f"DeleteBackendAuth job {job['id']} submitted",
            )
        if not is_terminal(job["status"]):
            answer = call(
                ctx.clients.reading(region), "get_backend_job",
                AppId=spec["appId"], BackendEnvironmentName=spec["backendEnvironmentName"], JobId=job["id"],
            )  # fmt: skip
            job = {**job, "status": str(answer.get("Status") or ""), "error": str(answer.get("Error") or "")}
            patch.metadata.annotations[DELETE_JOB] = json.dumps(job, sort_keys=True)
    except Exception as error:
        failure = classify(error)
        if failure.reason == "NotFound":
            logger.info("The Amplify auth resource is already gone.")
            return
        if not failure.retryable:
            raise kopf.PermanentError(f"{failure.reason}: {failure.message}") from None
        raise step.retry_later(failure) from None
    if not is_terminal(job["status"]):
        raise Waiting(
            f"DeleteBackendAuth job {job['id']} is {job['status']}", delay=ctx.settings.job_poll_seconds
        )
    if job["status"] == TERMINAL_FAILURE:
        # Keep the finalizer: letting go would orphan a resource the user asked to delete.
        raise step.stall("DeleteFailed", job.get("error") or f"DeleteBackendAuth job {job['id']} failed")


def forget(memo: Any, uid: str | None, **_: Any) -> None:
    """A deleted BackendAuth gives back its turn."""
    memo.ctx.turns.release(str(uid))
    metrics.set_object_state(str(uid), None, None)


def register(registry: kopf.OperatorRegistry | None = None) -> None:
    """Attach the handlers to Kopf's registry (the default one unless given)."""
    resource = (GROUP, VERSION, PLURAL)
    kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
    kopf.on.create(*resource, id="reconcile", **kw)(reconcile)
    kopf.on.resume(*resource, id="reconcile", **kw)(reconcile)
    kopf.on.update(*resource, id="reconcile", field="spec", **kw)(reconcile)
    kopf.on.delete(*resource, id="delete", **kw)(delete)
    kopf.on.event(*resource, id="pause", when=pause_flipped, **kw)(show_pause)
    kopf.on.event(*resource, id="reconcile-request", when=reconcile_requested, **kw)(handle_reconcile_request)
    kopf.on.event(*resource, id="forget", when=lambda type, **_: type == "DELETED", **kw)(forget)


class DowngradeWaiting(logging.Filter):
    """Kopf logs every TemporaryError at ERROR; a :class:`Waiting` is routine, so show it at INFO."""

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
