"""The one writer on a deletion step: what it keeps when its conditional write is refused, and
the reconcile request it echoes."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from backendauth_operator import FINALIZER
from backendauth_operator.core.bookkeeping import DELETE, DELETE_JOB, Job
from backendauth_operator.core.decide import Accepted, Finish, Snapshot, TurnTaken
from backendauth_operator.kube.writer import StepWriter

JOB = Job("del-1", DELETE, "RUNNING", "d1a2b3c4d5e6f7", "staging")


class Refusing:
    """An API server on which the object changed since the step read it: every patch that
    carries a resourceVersion is refused with 409; the others are recorded."""

    def __init__(self) -> None:
        self.unconditional: list[dict[str, Any]] = []

    def patch(
        self, namespace: str, name: str, body: dict[str, Any], version: str | None, sub: str = ""
    ) -> Any:
        if version is not None:
            raise ApiException(status=409, reason="Conflict")
        self.unconditional.append(body)
        return {}

    def post_event(self, *args: Any) -> None:
        raise AssertionError("a refused step posts no event")


class Quiet:
    def info(self, *a: Any) -> None: ...
    def warning(self, *a: Any) -> None: ...


def deleting(**kw: Any) -> Snapshot:
    return Snapshot(
        generation=1, now=0.0, namespace="ns", name="a", version="5", deleting=True,
        finalizers=(FINALIZER,), deletion_policy="Delete", owned=True, **kw,
    )  # fmt: skip


def test_a_refused_write_still_records_the_delete_job_this_step_sent() -> None:
    # The object changed while DeleteBackendAuth was out (the garbage collector took a
    # foregroundDeletion finalizer off): without the record the next step would delete again.
    kube = Refusing()
    s = deleting(delete_submitted=Accepted(JOB))
    written = StepWriter(kube, {"metadata": {}}, Quiet()).write(s, Finish("wait", "running", JOB))  # type: ignore[arg-type]
    assert written.conflicted
    assert kube.unconditional == [{"metadata": {"annotations": {DELETE_JOB: JOB.to_annotation()}}}]


def test_a_refused_write_without_a_call_of_its_own_keeps_nothing() -> None:
    # A poll of a delete job already recorded, or a call that was not sent: nothing to keep.
    for sent in (None, TurnTaken("other/b")):
        kube = Refusing()
        s = deleting(delete_submitted=sent)
        written = StepWriter(kube, {"metadata": {}}, Quiet()).write(s, Finish("wait", "running", JOB))  # type: ignore[arg-type]
        assert written.conflicted and kube.unconditional == []


class Accepting:
    def __init__(self) -> None:
        self.patches: list[tuple[dict[str, Any], str]] = []

    def patch(
        self, namespace: str, name: str, body: dict[str, Any], version: str | None, sub: str = ""
    ) -> Any:
        self.patches.append((body, sub))
        return {"metadata": {"resourceVersion": "6"}}

    def post_event(self, *args: Any) -> None: ...


def test_a_deletion_step_echoes_the_reconcile_request_it_handled() -> None:
    # A deletion that gave up (DeleteFailed) is stepped again on a reconcile request; its write
    # echoes it, so that the events of that write ask for nothing more.
    kube = Accepting()
    s = deleting(request="after-the-iam-fix")
    StepWriter(kube, {"metadata": {}}, Quiet()).write(s, Finish("retry", "AccessDenied"))  # type: ignore[arg-type]
    assert ({"status": {"lastHandledReconcileAt": "after-the-iam-fix"}}, "/status") in kube.patches
