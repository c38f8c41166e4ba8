"""The one writer: status, the operator's annotations and events, from a step's outcome.

Only what changes is written, at the end of the step, in one annotation patch and one status
patch; status is built from :class:`~models.BackendAuthStatus`, the model the CRD's status schema
is generated from. The one early write is the pending marker, written before a create or update
is sent (:func:`write_marker`).

Every write is conditional on the ``resourceVersion`` the snapshot was read at (then on the
version the previous write made): a step decided from a stale read changes nothing, and the
conflict comes back as :attr:`~reconcile.Snapshot.stale`, for which decide says read again. The
one exception keeps what a call that went out did: while the object still carries this step's
own marker, its record is written again on the newer version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from backendauth_operator import metrics
from backendauth_operator.bookkeeping import DELETE_JOB, JOB, PENDING, Marker
from backendauth_operator.core.failure import Failure
from backendauth_operator.kube import KubeClient
from backendauth_operator.models import BackendAuthStatus
from backendauth_operator.reconcile import (
    Finish,
    Note,
    Settle,
    Snapshot,
    State,
    Wait,
    conditions_for,
)


def write_marker(kube: KubeClient, s: Snapshot, marker: Marker) -> str | None:
    """The pending marker, before the call it stands for (the one early write), only to the
    version the snapshot was read at (409 if it changed); returns the version it made."""
    return kube.set_annotations(s.namespace, s.name, {PENDING: marker.to_annotation()}, s.version or None)


def _checked(status: dict[str, Any]) -> dict[str, Any]:
    """``status`` as the typed status model reads it: a field the CRD does not have fails here,
    not at the API server."""
    BackendAuthStatus.model_validate(status, by_alias=True, by_name=False)
    return status


def post_note(kube: KubeClient, obj: Mapping[str, Any], note: Note, logger: Any) -> None:
    """``note`` as an event about ``obj``; a failure to post is a warning in the log."""
    try:
        kube.post_event(obj, note.kind, note.reason, note.message)
    except ApiException as error:  # an event is worth a warning, never a failed step
        logger.warning(f"Event {note.reason} not posted: {error.reason}")


def outcome_patches(
    s: Snapshot, outcome: Settle, status: Mapping[str, Any], logger: Any
) -> tuple[dict[str, str | None], dict[str, Any], list[Note]]:
    """The annotation patch, the status patch and the events of a settled step."""
    annotations: dict[str, str | None] = dict(outcome.annotations)
    patch: dict[str, Any] = {}
    events: list[Note] = []
    if outcome.job is not None:
        annotations[JOB] = outcome.job.to_annotation()
        if outcome.job.id:  # a record of an observation alone has no job to show
            patch.update(outcome.job.status_fields())
        if outcome.job.resource:  # the name AWS gave an imported auth resource
            patch["resourceName"] = outcome.job.resource
    if outcome.drift is not None:
        patch["drift"] = list(outcome.drift)
    if outcome.account is not None:
        patch["awsAccountId"] = outcome.account
    for note in outcome.notes:
        if note.log:
            logger.info(note.log)
        events.append(note)
    if outcome.retry is not None:  # its count and delay are in the annotations decide wrote
        metrics.record_retry(outcome.retry.reason, s.account)
    if outcome.state is not None:
        patch.update(_shown(s, outcome.state, status, outcome.error))
        metrics.set_object_state(s.uid, outcome.state.phase, outcome.state.reason)
        if outcome.event and outcome.state.reason != s.previous_reason:
            events.append(Note(outcome.event, outcome.state.reason, outcome.state.message))
            if outcome.event == "Warning":  # whoever reads the operator's log sees trouble too
                logger.warning(f"{outcome.state.reason}: {outcome.state.message}")
    return annotations, patch, events


def _shown(s: Snapshot, state: State, status: Mapping[str, Any], error: str | None) -> dict[str, Any]:
    """The conditions (and error) that show ``state``."""
    shown: dict[str, Any] = {} if error is None else {"error": error}
    shown["observedGeneration"] = s.generation
    shown["conditions"] = conditions_for(state, s.generation, status.get("conditions") or [])
    return shown


@dataclass(frozen=True)
class Written:
    """What a step's writes came to."""

    shown: bool = False  # the object's status was written (observedGeneration among it)
    wrote: bool = False  # something was written on the version decided from
    conflicted: bool = False  # refused: the object changed since it was read


class StepWriter:
    """Writes a step's outcome for one object."""

    def __init__(self, kube: KubeClient, obj: Mapping[str, Any], logger: Any) -> None:
        self.kube, self.obj, self.logger = kube, obj, logger
        self.status: dict[str, Any] = dict(obj.get("status") or {})

    def write(
        self,
        s: Snapshot,
        outcome: Settle | Wait,
        outputs: dict[str, str] | Failure | None = None,
    ) -> Written:
        """Write what changed, conditionally on the version the snapshot was read at."""
        annotations: dict[str, str | None] = {}
        patch: dict[str, Any] = {}
        events: list[Note] = []
        if isinstance(outcome, Settle):
            annotations, patch, events = outcome_patches(s, outcome, self.status, self.logger)
        if isinstance(outputs, Failure):
            self.logger.warning(f"Could not read the auth outputs: {outputs.message}")
        elif outputs is not None:
            patch["outputs"] = outputs
            events += self.publish(s, outputs)
        if s.request is not None:
            patch["lastHandledReconcileAt"] = s.request
        # Only what changes is written: a poll that finds the job still running writes nothing,
        # and causes no watch event.
        annotations = {k: v for k, v in annotations.items() if s.annotations.get(k) != v}
        changed = _checked({k: v for k, v in patch.items() if self.status.get(k) != v})
        version = s.version or None
        try:
            if annotations:
                version = self.write_annotations(s, annotations, version)
            if changed:
                version = self.kube.patch_status(s.namespace, s.name, changed, version)
        except ApiException as error:
            if error.status == 404:
                return Written()  # deleted meanwhile
            if error.status == 409:
                # Written since this step read it: what it decided may be stale. Nothing more
                # is written; the object is read and decided again.
                return Written(conflicted=True)
            raise
        for note in events:
            post_note(self.kube, self.obj, note, self.logger)
        return Written(shown="observedGeneration" in patch, wrote=bool(annotations or changed))

    def write_annotations(
        self, s: Snapshot, annotations: dict[str, str | None], version: str | None
    ) -> str | None:
        """Write the step's annotations to ``version``. After a call went out, its record must
        not be lost to an unrelated change (a user's annotation, Kopf's finalizer): while the
        object still carries this step's marker, the same record is written to the newer
        version."""
        marker = s.annotations.get(PENDING) if s.sent else None
        for _ in range(5):
            try:
                return self.kube.set_annotations(s.namespace, s.name, annotations, version)
            except ApiException as error:
                if error.status != 409 or marker is None:
                    raise
            current = self.kube.get_backendauth(s.namespace, s.name)
            meta = current.get("metadata") or {}
            if (meta.get("annotations") or {}).get(PENDING) != marker:
                self.logger.warning("The pending marker changed while the call was made; deciding again.")
                break
            version = meta.get("resourceVersion")
        raise ApiException(status=409, reason="Conflict")

    def publish(self, s: Snapshot, outputs: Mapping[str, str]) -> list[Note]:
        """The outputs into the ConfigMap the spec names; a failure is an event, never a failed step."""
        if not s.outputs_config_map:
            return []
        data = {**{k: v for k, v in outputs.items() if v}, "region": s.region}
        try:
            self.kube.write_config_map(s.namespace, s.outputs_config_map, data, owner=self.obj)
        except ApiException as error:
            message = f"ConfigMap {s.namespace}/{s.outputs_config_map} not written: {error.reason}"
            self.logger.warning(message)
            return [Note("Warning", "OutputsNotWritten", message)]
        return []


def write_deletion(patch: kopf.Patch, body: kopf.Body, s: Snapshot, finish: Finish, logger: Any) -> None:
    """A deletion step's outcome, through Kopf's patch of the object and Kopf's events."""
    if finish.delete_job is not None:
        patch.metadata.annotations[DELETE_JOB] = finish.delete_job.to_annotation()
    for note in finish.notes:
        if note.log:
            logger.info(note.log)
        if note.kind == "Normal":
            kopf.info(body, reason=note.reason, message=note.message)
        elif note.kind == "Warning":
            kopf.warn(body, reason=note.reason, message=note.message)
    if finish.state is not None:
        shown = _shown(s, finish.state, body.get("status") or {}, finish.state.message)
        patch.status["conditions"] = _checked(shown)["conditions"]
        patch.status["error"] = shown["error"]
