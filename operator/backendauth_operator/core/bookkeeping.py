"""What the operator remembers about a BackendAuth between steps, and its annotation forms.

Only what cannot be observed in AWS is kept, in annotations under the operator's prefix (Kopf
leaves them out of its change detection, and they survive a restart):

* ``job``: the latest AWS job this BackendAuth started (id, operation, status, the generation
  and request fingerprint it was for). AWS cannot say which auth resource a job belongs to, so
  the job id must be remembered to follow it.
* ``pending``: the marker written *before* a mutating call. A call whose answer was lost (a
  crash, a 504) may still have started a job; the marker makes the next step look for it
  instead of calling again.
* ``created``: this BackendAuth created (or adopted) its auth resource. An auth resource that
  exists in AWS without it belongs to someone else.
* ``failures``: consecutive retryable failures and the time before which no new attempt is
  made (the backoff must survive a restart, or a crash loop would hammer AWS).
* ``delete-job``: the DeleteBackendAuth job that must end before the object may go.

Every parse is defensive: an annotation edited by hand raises :class:`BadAnnotation`, which
names the annotation, rather than an arbitrary exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from backendauth_operator import PREFIX

JOB = f"{PREFIX}/job"
PENDING = f"{PREFIX}/pending"
CREATED = f"{PREFIX}/created"
FAILURES = f"{PREFIX}/failures"
DELETE_JOB = f"{PREFIX}/delete-job"
PAUSED = f"{PREFIX}/paused"
RECONCILE_REQUESTED = f"{PREFIX}/reconcile-requested-at"

CREATE, UPDATE, DELETE = "CreateBackendAuth", "UpdateBackendAuth", "DeleteBackendAuth"
IMPORT = "ImportBackendAuth"
#: The operations that bring an auth resource into being for a BackendAuth (it owns it then).
CREATING = frozenset({CREATE, IMPORT})
COMPLETED, FAILED = "COMPLETED", "FAILED"


def is_terminal(job_status: str | None) -> bool:
    """Only COMPLETED and FAILED end a job; any other value, known or not, means still running."""
    return job_status in (COMPLETED, FAILED)


class BadAnnotation(ValueError):
    """An operator annotation that cannot be read; the message names it."""


def _load(annotations: Mapping[str, str], key: str) -> dict[str, Any] | None:
    text = annotations.get(key)
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise BadAnnotation(
            f"annotation {key} is not JSON; remove it to let the operator start over"
        ) from None
    if not isinstance(value, dict):
        raise BadAnnotation(
            f"annotation {key} must be a JSON object; remove it to let the operator start over"
        )
    return value


def _text(data: Mapping[str, Any], key: str, annotation: str, required: bool = False) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadAnnotation(f"annotation {annotation}: {key} must be a string")
    return value


def _number(data: Mapping[str, Any], key: str, annotation: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadAnnotation(f"annotation {annotation}: {key} must be a number")
    return float(value)


def _generation(data: Mapping[str, Any], annotation: str) -> int | None:
    value = data.get("generation")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadAnnotation(f"annotation {annotation}: generation must be an integer")
    return value


@dataclass(frozen=True)
class Job:
    """An AWS job of this BackendAuth, as remembered and as shown in status."""

    id: str
    operation: str
    status: str
    app_id: str
    env: str
    error: str = ""
    generation: int | None = None
    fingerprint: str = ""
    submitted_at: float | None = None  # wall clock of the submit (or of the recovery)
    verified: bool = False  # AWS was observed as the spec says after the job completed
    missing: bool = False  # completed, yet AWS did not show it as asked on the first look
    secrets_digest: str = ""  # salted digest of the Secret values sent (never the values)
    account: str = ""  # the AWS account the job was started in (empty: the operator's own, unknown)
    # The GetBackendAuth answer the outputs were last read for (a digest): a resync that sees
    # the same answer does not read the outputs again.
    outputs_for: str = ""
    # The auth resource's name as AWS shows it, when the spec does not give it (an import).
    resource: str = ""

    @property
    def terminal(self) -> bool:
        return is_terminal(self.status)

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any], operation: str, app_id: str, env: str, **kw: Any) -> Job:
        """The job an AWS answer describes (a create/update/delete answer, or a ListBackendJobs
        item); what the answer leaves out is taken from the call."""
        return cls(
            id=str(answer.get("JobId") or ""), operation=str(answer.get("Operation") or operation),
            status=str(answer.get("Status") or ""), error=str(answer.get("Error") or ""),
            app_id=str(answer.get("AppId") or app_id), env=str(answer.get("BackendEnvironmentName") or env),
            **kw,
        )  # fmt: skip

    def answered(self, answer: Mapping[str, Any]) -> Job:
        """The job updated with an AWS answer (GetBackendJob or a ListBackendJobs item)."""
        return replace(self, status=str(answer.get("Status") or ""), error=str(answer.get("Error") or ""))

    def to_annotation(self) -> str:
        data = {
            "id": self.id, "operation": self.operation, "status": self.status, "error": self.error,
            "appId": self.app_id, "env": self.env, "generation": self.generation,
            "fingerprint": self.fingerprint, "submittedAt": self.submitted_at,
            "verified": self.verified or None, "missing": self.missing or None,
            "secretsDigest": self.secrets_digest or None, "account": self.account or None,
            "outputsFor": self.outputs_for or None, "resource": self.resource or None,
        }  # fmt: skip
        return json.dumps({k: v for k, v in data.items() if v is not None}, sort_keys=True)

    @classmethod
    def from_annotation(cls, annotations: Mapping[str, str], key: str = JOB) -> Job | None:
        data = _load(annotations, key)
        if data is None:
            return None
        return cls(
            id=_text(data, "id", key),
            operation=_text(data, "operation", key),  # empty for a record of an observation alone
            status=_text(data, "status", key),
            app_id=_text(data, "appId", key),
            env=_text(data, "env", key),
            error=_text(data, "error", key),
            generation=_generation(data, key),
            fingerprint=_text(data, "fingerprint", key),
            submitted_at=_number(data, "submittedAt", key),
            verified=data.get("verified") is True,
            missing=data.get("missing") is True,
            secrets_digest=_text(data, "secretsDigest", key),
            account=_text(data, "account", key),
            outputs_for=_text(data, "outputsFor", key),
            resource=_text(data, "resource", key),
        )

    def status_fields(self) -> dict[str, Any]:
        """The job as ``status`` shows it (AWS's words, verbatim)."""
        return {
            "jobId": self.id, "operation": self.operation, "status": self.status,
            "appId": self.app_id, "backendEnvironmentName": self.env, "error": self.error,
        }  # fmt: skip

    def describe(self) -> str:
        return f"{self.operation} job {self.id}" if self.id else self.operation


@dataclass(frozen=True)
class Marker:
    """Written before a mutating call: the call may have reached AWS even if no answer came."""

    operation: str
    at: float  # wall clock
    generation: int | None
    fingerprint: str = ""

    def to_annotation(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_annotation(cls, annotations: Mapping[str, str]) -> Marker | None:
        data = _load(annotations, PENDING)
        if data is None:
            return None
        operation = _text(data, "operation", PENDING, required=True)
        if operation not in (CREATE, UPDATE, IMPORT):
            raise BadAnnotation(f"annotation {PENDING}: operation must be {CREATE}, {UPDATE} or {IMPORT}")
        return cls(
            operation=operation,
            at=_number(data, "at", PENDING) or 0.0,
            generation=_generation(data, PENDING),
            fingerprint=_text(data, "fingerprint", PENDING),
        )


@dataclass(frozen=True)
class Failures:
    """Consecutive retryable failures, and no new attempt before ``not_before`` (wall clock)."""

    count: int = 0
    not_before: float = 0.0

    def to_annotation(self) -> str:
        return json.dumps({"count": self.count, "notBefore": self.not_before}, sort_keys=True)

    @classmethod
    def from_annotation(cls, annotations: Mapping[str, str]) -> Failures:
        data = _load(annotations, FAILURES)
        if data is None:
            return cls()
        count = data.get("count", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise BadAnnotation(f"annotation {FAILURES}: count must be a non-negative integer")
        return cls(count=count, not_before=_number(data, "notBefore", FAILURES) or 0.0)


def is_true(annotations: Mapping[str, str], key: str) -> bool:
    return str(annotations.get(key, "")).strip().lower() == "true"
