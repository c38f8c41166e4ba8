"""The one writer: status, the operator's annotations and events, from a step's outcome.

Only what changes is written, at the end of the step, in one annotation patch and one status
patch; status is built from :class:`~models.BackendAuthStatus`, the model the CRD's status schema
is generated from. The one early write is the pending marker, written before a create or update
is sent (:func:`write_marker`).

A deletion step's outcome (:class:`~decide.Finish`) goes the same way: the delete job's
record, the conditions, and our finalizer taken off once AWS's delete job has ended.

Every write is conditional on the ``resourceVersion`` the snapshot was read at (then on the
version the previous write made): a step decided from a stale read changes nothing, and the
conflict comes back as :attr:`~decide.Snapshot.stale`, for which decide says read again.
What a call that went out did is not lost that way: its pending marker stays on the object
until a later step writes its record, and that step finds the job (see
docs/explanation/exactly-once.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from backendauth_operator import FINALIZER, metrics
from backendauth_operator.core.bookkeeping import DELETE_JOB, JOB, PENDING, Marker
from backendauth_operator.core.decide import (
    Accepted,
    Finish,
    Note,
    Settle,
    Snapshot,
    State,
    Wait,
    conditions_for,
    finalizers_for,
    marker_finalizers,
)
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.models import BackendAuthStatus
from backendauth_operator.kube.client import KubeClient, metadata_patch, version_of


def write_marker(kube: KubeClient, s: Snapshot, marker: Marker) -> str | None:
    """The pending marker, before the call it stands for (the one early write), only to the
    version the snapshot was read at (409 if it changed); returns the version it made. With
    deletionPolicy Delete, our finalizer goes on in the same write, before anything exists in
    AWS to be deleted."""
    annotations: dict[str, str | None] = {PENDING: marker.to_annotation()}
    return kube.set_annotations(s.namespace, s.name, annotations, s.version or None, marker_finalizers(s))


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
    body: Mapping[str, Any] | None = None  # the object as the last write left it (None: no write)
    versions: tuple[str, ...] = ()  # the resourceVersions the writes made


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def lean(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` without what no step reads (``metadata.managedFields``, kubectl's copy of the
    last applied manifest): what is kept of an object between its steps."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping) and LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**obj, "metadata": meta}


class StepWriter:
    """Writes a step's outcome for one object."""

    def __init__(self, kube: KubeClient, obj: Mapping[str, Any], logger: Any) -> None:
        self.kube, self.obj, self.logger = kube, obj, logger
        self.status: dict[str, Any] = dict(obj.get("status") or {})

    def write(
        self,
        s: Snapshot,
        outcome: Settle | Wait | Finish,
        outputs: dict[str, str] | Failure | None = None,
    ) -> Written:
        """Write what changed, conditionally on the version the snapshot was read at."""
        annotations: dict[str, str | None] = {}
        finalizers: list[str] | None = None
        patch: dict[str, Any] = {}
        events: list[Note] = []
        if isinstance(outcome, Finish):
            annotations, finalizers, patch, events = deletion_patches(s, outcome, self.status, self.logger)
            if s.request is not None and outcome.outcome != "let_go":
                patch["lastHandledReconcileAt"] = s.request
        else:
            if isinstance(outcome, Settle):
                annotations, patch, events = outcome_patches(s, outcome, self.status, self.logger)
                if outcome.finalizer is not None:
                    finalizers = finalizers_for(s, outcome.finalizer)
            if isinstance(outputs, Failure):
                self.logger.warning(f"Could not read the auth outputs: {outputs.message}")
            elif outputs is not None:
                patch["outputs"] = outputs
                events += self.publish(s, outputs)
            if s.request is not None:
                patch["lastHandledReconcileAt"] = s.request
        # Only what changes is written: a poll that finds the job still running writes nothing,
        # and causes no watch event. Of an object that is gone, nothing.
        annotations = {k: v for k, v in annotations.items() if s.annotations.get(k) != v}
        changed = _checked({k: v for k, v in patch.items() if self.status.get(k) != v})
        if s.gone:
            annotations, finalizers, changed = {}, None, {}
        version = s.version or None
        written: dict[str, Any] = {}
        versions: list[str] = []
        try:
            if annotations or finalizers is not None:
                body = metadata_patch(annotations, finalizers)
                written = self.kube.patch(s.namespace, s.name, body, version)
                version = version_of(written)
                versions += [version] if version else []
            if changed:
                written = self.kube.patch(s.namespace, s.name, {"status": changed}, version, "/status")
                versions += [v for v in [version_of(written)] if v]
        except ApiException as error:
            if error.status == 404:
                return Written()  # deleted meanwhile
            if error.status == 409:
                # Written since this step read it: what it decided may be stale. Nothing more
                # is written; the object is read and decided again. Except the record of a
                # DeleteBackendAuth this step sent (see keep_delete_record).
                self.keep_delete_record(s, outcome)
                return Written(conflicted=True)
            raise
        for note in events:
            post_note(self.kube, self.obj, note, self.logger)
        wrote = bool(annotations or changed or finalizers is not None)
        left = lean(written) if written else None
        return Written(shown="observedGeneration" in patch, wrote=wrote, body=left, versions=tuple(versions))

    def keep_delete_record(self, s: Snapshot, outcome: Settle | Wait | Finish) -> None:
        """A DeleteBackendAuth of this step went out, but the object changed since it was read
        (the garbage collector took a ``foregroundDeletion`` finalizer off, say), so the
        conditional write was refused. A deletion has no pending marker: without the record of
        its job the next step would send DeleteBackendAuth again. So that one annotation, which
        only this operator writes, is written without the version condition; the rest of the
        outcome is decided again on a fresh read."""
        if not (isinstance(outcome, Finish) and outcome.delete_job is not None):
            return
        if not isinstance(s.delete_submitted, Accepted):
            return
        record = metadata_patch({DELETE_JOB: outcome.delete_job.to_annotation()}, None)
        try:
            self.kube.patch(s.namespace, s.name, record, None)
        except ApiException as error:
            if error.status != 404:  # gone meanwhile: nothing to keep
                self.logger.warning(f"Could not record delete job {outcome.delete_job.id}: {error.reason}")

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


def deletion_patches(
    s: Snapshot, finish: Finish, status: Mapping[str, Any], logger: Any
) -> tuple[dict[str, str | None], list[str] | None, dict[str, Any], list[Note]]:
    """The annotation patch, the finalizers (None: as they are), the status patch and the
    events of a deletion step: letting go takes our finalizer off, and nothing else is
    written then (the object may be gone the moment it is off)."""
    annotations: dict[str, str | None] = {}
    patch: dict[str, Any] = {}
    events = [note for note in finish.notes if note.kind]
    for note in finish.notes:
        if note.log:
            logger.info(note.log)
    if finish.outcome == "let_go":
        return annotations, finalizers_for(s, False) if FINALIZER in s.finalizers else None, patch, events
    if finish.delete_job is not None:
        annotations[DELETE_JOB] = finish.delete_job.to_annotation()
    if finish.state is not None:
        shown = _shown(s, finish.state, status, finish.state.message)
        patch = {"conditions": shown["conditions"], "error": shown["error"]}
    if finish.retry_reason is not None:
        metrics.record_retry(finish.retry_reason, s.account)
    if finish.outcome == "wait":
        logger.info(f"Deletion waits: {finish.message}")
    else:  # retried, or given up: the finalizer stays
        logger.warning(f"Deletion {'retried' if finish.outcome == 'retry' else 'failed'}: {finish.message}")
    return annotations, None, patch, events
