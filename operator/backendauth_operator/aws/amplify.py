"""The one I/O face to AWS Amplify Backend: every call the operator makes, with typed answers.

Each method returns what AWS said as a value (a :class:`~bookkeeping.Job`, a resource
configuration, the auth outputs), or a :class:`~core.failure.Failure` that says what went wrong
(throttled, unavailable, refused, ambiguous, a pending job, access denied). None raises for an
AWS answer, so the caller records the result and lets the decision table choose.

Reads go through the retrying client, mutating calls through the client that calls once
(:mod:`clients` says why).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backendauth_operator.aws.clients import ClientFactory, classify, pace_key
from backendauth_operator.core.bookkeeping import CREATE, DELETE, IMPORT, Job
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.models import AMPLIFY_META_OUTPUTS
from backendauth_operator.core.role import Role


class NotSentError(Exception):
    """Raised by a ``before_send`` check to stop a mutating call before it goes out (this
    process stopped leading, or pacing held the call too long); it is never sent."""


BeforeSend = Callable[[], None] | None


@dataclass(frozen=True)
class Resource:
    """GetBackendAuth's answer: the ``ResourceConfig``, or None when AWS has no such resource."""

    config: Mapping[str, Any] | None


class AmplifyBackend:
    """The AmplifyBackend calls of one region of one account: ``account`` (empty: the operator's
    own, not known) under ``role`` (None: the operator's own credentials)."""

    def __init__(
        self, clients: ClientFactory, region: str, role: Role | None = None, account: str = ""
    ) -> None:
        self.clients, self.region, self.role = clients, region, role
        self.key = pace_key(account, region)

    def _read(self, method: str, **kwargs: Any) -> dict[str, Any] | Failure:
        try:
            client = self.clients.reading(self.region, self.role)
            return self.clients.call(client, method, key=self.key, **kwargs)
        except Exception as error:
            return classify(error)

    def job(self, job: Job, app: str, env: str) -> Job | Failure:
        """GetBackendJob: ``job`` with AWS's status and error now (on ``app``/``env`` unless the
        job names its own)."""
        answer = self._read(
            "get_backend_job", AppId=job.app_id or app, BackendEnvironmentName=job.env or env, JobId=job.id
        )
        return answer if isinstance(answer, Failure) else job.answered(answer)

    def unfinished_jobs(self, app: str, env: str) -> list[Job] | Failure:
        """ListBackendJobs: the jobs on the app/env that have not ended."""
        answer = self._read("list_backend_jobs", AppId=app, BackendEnvironmentName=env, MaxResults=25)
        if isinstance(answer, Failure):
            return answer
        jobs = [Job.from_answer(item, "", app, env) for item in answer.get("Jobs") or []]
        return [job for job in jobs if not job.terminal]

    def config(self, app: str, env: str, name: str) -> dict[str, Any] | Failure:
        """GetBackendAuth: the auth resource's ``ResourceConfig`` (empty when AWS gives none),
        or why not (``NotFound`` when there is no such resource)."""
        answer = self._read("get_backend_auth", AppId=app, BackendEnvironmentName=env, ResourceName=name)
        return answer if isinstance(answer, Failure) else dict(answer.get("ResourceConfig") or {})

    def resource(self, app: str, env: str, name: str) -> Resource | Failure:
        """GetBackendAuth: the auth resource's configuration, or none."""
        answer = self.config(app, env, name)
        if isinstance(answer, Failure):
            return Resource(None) if answer.reason == "NotFound" else answer
        return Resource(answer or None)

    def auth_resources(self, app: str, env: str) -> dict[str, AuthMeta] | Failure:
        """GetBackend: the app/env's auth resources by name, from the amplify-meta document."""
        answer = self._read("get_backend", AppId=app, BackendEnvironmentName=env)
        return answer if isinstance(answer, Failure) else amplify_meta_auth(answer.get("AmplifyMetaConfig"))

    def outputs(self, app: str, env: str, name: str) -> dict[str, str] | Failure:
        """GetBackend: the ids apps need for ``name``, from the amplify-meta document."""
        found = self.auth_resources(app, env)
        if isinstance(found, Failure):
            return found
        return dict(found[name].outputs) if name in found else {}

    def submit(
        self, operation: str, kwargs: Mapping[str, Any], before_send: BeforeSend = None, **job: Any
    ) -> Job | Failure:
        """CreateBackendAuth, UpdateBackendAuth or ImportBackendAuth, attempted once: the job AWS
        started, or why not (``ambiguous`` when AWS may have started it anyway). ``before_send``
        runs after the pacing wait, just before the request; its :class:`NotSentError` passes
        through."""
        methods = {CREATE: "create_backend_auth", IMPORT: "import_backend_auth"}
        method = methods.get(operation, "update_backend_auth")
        try:
            client = self.clients.mutating(self.region, self.role)
            answer = self.clients.call(client, method, before_send=before_send, key=self.key, **kwargs)
        except NotSentError:
            raise
        except Exception as error:
            return classify(error)
        return Job.from_answer(
            answer, operation, str(kwargs["AppId"]), str(kwargs["BackendEnvironmentName"]), **job
        )

    def delete(self, app: str, env: str, name: str, before_send: BeforeSend = None) -> Job | Failure:
        """DeleteBackendAuth, attempted once: the delete job, or why not (``before_send`` as
        for :meth:`submit`)."""
        try:
            answer = self.clients.call(
                self.clients.mutating(self.region, self.role), "delete_backend_auth", before_send=before_send,
                key=self.key, AppId=app, BackendEnvironmentName=env, ResourceName=name,
            )  # fmt: skip
        except NotSentError:
            raise
        except Exception as error:
            return classify(error)
        # The job is remembered under the call's app/env and operation, whatever the answer echoes.
        return Job.from_answer({key: answer.get(key) for key in ("JobId", "Status")}, DELETE, app, env)


@dataclass(frozen=True)
class AuthMeta:
    """One auth resource in GetBackend's amplify-meta document (``auth`` → its name)."""

    name: str
    outputs: dict[str, str]  # the ids apps need, under the keys of ``status.outputs``
    service_type: str = ""  # ``managed`` (the Amplify CLI made the pools) or ``imported``


def amplify_meta_auth(meta_config: Any) -> dict[str, AuthMeta]:
    """The auth resources of an amplify-meta document as the Amplify CLI writes it (``auth`` →
    name → ``serviceType`` and ``output``), by name: the one reader of that document. Anything
    unreadable yields nothing rather than an error: no resources when the document is not JSON
    or has no ``auth`` object; no ids for an entry without an ``output`` object."""
    try:
        meta = json.loads(meta_config) if isinstance(meta_config, str) else meta_config
    except ValueError:
        return {}
    auth = meta.get("auth") if isinstance(meta, Mapping) else None
    if not isinstance(auth, Mapping):
        return {}
    found: dict[str, AuthMeta] = {}
    for name, entry in auth.items():
        entry = entry if isinstance(entry, Mapping) else {}
        output = entry.get("output")
        output = output if isinstance(output, Mapping) else {}
        ids = {
            ours: str(output[theirs]) for theirs, ours in AMPLIFY_META_OUTPUTS.items() if output.get(theirs)
        }
        found[str(name)] = AuthMeta(str(name), ids, str(entry.get("serviceType") or ""))
    return found


def auth_outputs(meta_config: Any, resource_name: str) -> dict[str, str]:
    """The ids of ``resource_name`` in an amplify-meta document (none when it is not there)."""
    found = amplify_meta_auth(meta_config).get(resource_name)
    return dict(found.outputs) if found is not None else {}
