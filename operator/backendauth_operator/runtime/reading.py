"""Read once: a BackendAuth as the API server has it → the :class:`~decide.Snapshot`.

Nothing else parses the object: its spec, the operator's annotations, its conditions and its
deletion all become fields here, and :func:`~decide.decide` looks only at those.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from backendauth_operator.config import Settings
from backendauth_operator.core.bookkeeping import (
    CREATED,
    DELETE_JOB,
    PAUSED,
    BadAnnotation,
    Failures,
    Job,
    Marker,
    is_true,
)
from backendauth_operator.core.decide import (
    RetryPolicy,
    Snapshot,
    current_reason,
    handled_request,
    ready_generation,
    shows_waiting,
)
from backendauth_operator.core.holder import object_id
from backendauth_operator.core.import_variant import IMPORTED_AUTH
from backendauth_operator.core.models import (
    BackendAuthSpec,
    InvalidSpecError,
    create_backend_auth_kwargs,
    has_secrets,
    parse_spec,
)
from backendauth_operator.kube.accounts import OWN, Target

#: The spec error of a BackendAuth without spec.region when no default region is set.
NO_REGION = "spec.region: required, as the operator has no AWS_REGION set"


def read(
    obj: Mapping[str, Any],
    settings: Settings,
    now: float,
    look: bool = False,
    check_secrets: bool = False,
    cause: str | None = None,
    target: Target = OWN,
    gone: bool = False,
) -> Snapshot:
    """The snapshot of ``obj``. ``look``: observe AWS now (a reconcile request, a resync, a
    Secret change); ``check_secrets``: read the Secrets to notice a rotation; ``target``: the
    account its namespace names (default: the operator's own, not known); ``gone``: the watch
    said it was deleted (``obj`` is its last state)."""
    meta = obj.get("metadata", {})
    annotations: dict[str, str] = dict(meta.get("annotations") or {})
    raw = obj.get("spec") or {}
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    request = handled_request(obj)
    look = look or request is not None
    s = Snapshot(
        generation=meta.get("generation"), now=now, namespace=meta["namespace"], name=meta["name"],
        request=request, uid=str(meta.get("uid", f"{meta['namespace']}/{meta['name']}")), me=object_id(obj),
        version=str(meta["resourceVersion"]) if meta.get("resourceVersion") else None,
        annotations=annotations,
        region=raw.get("region") or settings.default_region or "",
        app=str(raw.get("appId")), env=str(raw.get("backendEnvironmentName")),
        resource_name=str(raw.get("resourceName")),
        previous_reason=current_reason(conditions),
        waiting=shows_waiting(conditions),
        ready_generation=ready_generation(conditions),
        paused=is_true(annotations, PAUSED), owned=is_true(annotations, CREATED),
        look=look, check_secrets=check_secrets or look, cause=cause,
        job_timeout=settings.job_timeout_seconds,
        retry=RetryPolicy(settings.retry_base_seconds, settings.retry_max_seconds), jitter=random.random(),
        deleting=gone or bool(meta.get("deletionTimestamp")), gone=gone,
        finalizers=tuple(meta.get("finalizers") or ()),
        deletion_policy=raw.get("deletionPolicy") or settings.default_deletion_policy,
        account=target.account, role=target.role, account_problem=target.problem,
        account_unreadable=target.unreadable,
        ask_own_account=not target.annotated and not target.account and target.unreadable is None,
        recorded_account=str((obj.get("status") or {}).get("awsAccountId") or ""),
        outputs_shown=status.get("outputs") is not None,
    )  # fmt: skip
    if raw.get("import") is not None:
        # An import's auth resource goes by the name AWS gave it, as last observed.
        s = replace(s, variant=IMPORTED_AUTH, resource_name=_linked_name(annotations, status))
    if s.deleting:
        # The delete job counts now, and whether a create (or import) of ours went out (the
        # marker, the job).
        try:
            job = Job.from_annotation(annotations, DELETE_JOB) if annotations.get(DELETE_JOB) else None
            s = replace(
                s,
                delete_job=job,
                job=Job.from_annotation(annotations),
                marker=Marker.from_annotation(annotations),
            )
        except BadAnnotation as error:
            return replace(s, bad_annotation=str(error))
        if s.variant is IMPORTED_AUTH and not s.resource_name:
            # Not seen linked yet: the deletion finds the link by the spec's ids.
            with contextlib.suppress(InvalidSpecError):
                s = replace(s, spec=parse_spec(raw))
        return s
    try:
        failures = Failures.from_annotation(annotations)
        job = Job.from_annotation(annotations)
        s = replace(
            s, job=job, marker=Marker.from_annotation(annotations),
            failures=failures.count, not_before=failures.not_before,
            recorded_account=s.recorded_account or (job.account if job is not None else ""),
        )  # fmt: skip
    except BadAnnotation as error:
        return replace(s, bad_annotation=str(error))
    try:
        spec = parse_spec(raw)
    except InvalidSpecError as error:
        return replace(s, spec_error=str(error))
    if not s.region:
        return replace(s, spec_error=NO_REGION)
    if spec.import_ is not None:
        return replace(
            s, spec=spec, fingerprint=fingerprint(spec, s.uid),
            outputs_config_map=spec.outputs.config_map_name if spec.outputs else None,
        )  # fmt: skip
    desired = create_backend_auth_kwargs(spec, lambda ref: "")["ResourceConfig"]
    return replace(
        s, spec=spec, fingerprint=fingerprint(spec, s.uid), desired=desired,
        has_secrets=has_secrets(desired), adopt=spec.adoption_policy == "AdoptOrCreate",
        report_drift=spec.drift_policy == "Report",
        outputs_config_map=spec.outputs.config_map_name if spec.outputs else None,
    )  # fmt: skip


def fingerprint(spec: BackendAuthSpec, uid: str) -> str:
    """A digest of what AWS would be sent, salted with the object's uid; Secret values are
    represented by their references, so none is read or stored for it."""
    if spec.import_ is not None:
        # The ids as given: literals, and references by name (their values are read each step).
        request = {
            "AppId": spec.app_id, "BackendEnvironmentName": spec.backend_environment_name,
            "Import": spec.import_.model_dump(by_alias=True, exclude_none=True),
        }  # fmt: skip
    else:
        request = create_backend_auth_kwargs(spec, lambda ref: f"secretKeyRef:{ref.name}/{ref.key}")
    canonical = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(f"{uid}\n{canonical}".encode()).hexdigest()[:32]


def _linked_name(annotations: Mapping[str, str], status: Mapping[str, Any]) -> str:
    """The name AWS gave an imported auth resource: the job record's, else the status's ("":
    not observed yet)."""
    try:
        job = Job.from_annotation(annotations)
    except BadAnnotation:
        job = None  # read again, and named, below
    return (job.resource if job is not None else "") or str(status.get("resourceName") or "")
