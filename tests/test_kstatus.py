"""What Flux (kstatus) and Argo CD show for each status the operator writes, side by side.

The objects are hand-written with the operator's own ``conditions_for``, so they have the exact
shape it writes; kstatus is the real library (``tests/kstatus.py``), Argo CD's health the real
Lua (``tests/argocd_health.py``). ``test_real_kstatus.py`` takes a BackendAuth through the same
moments on a real API server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from argocd_health import health
from backendauth_operator.core.decide import State, conditions_for
from backendauth_operator.core.models import status_on_create
from kstatus import BUILD_TIMEOUT, built_kstatus, judge

PAUSED = "amplifybackend.gitops.dev/paused"
PAUSED_MESSAGE = "paused by the annotation; no AWS calls"
RUNNING = "CreateBackendAuth job j-1 is RUNNING"
READY_MESSAGE = "CreateBackendAuth job j-1 completed; AWS shows the auth resource as the spec says"


def backendauth(
    state: State | None = None,
    generation: int = 1,
    observed: int | None = 1,
    status: dict[str, Any] | None = None,
    paused: bool = False,
    deleting: bool = False,
) -> dict[str, Any]:
    """A BackendAuth as the API server returns it, with the status the operator writes for ``state``
    (or ``status`` as given)."""
    metadata: dict[str, Any] = {"name": "shop-auth", "namespace": "shop", "generation": generation}
    if paused:
        metadata["annotations"] = {PAUSED: "true"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        metadata["finalizers"] = ["amplifybackend.gitops.dev/finalizer"]
    obj: dict[str, Any] = {
        "apiVersion": "amplifybackend.gitops.dev/v1alpha1",
        "kind": "BackendAuth",
        "metadata": metadata,
        "spec": {"appId": "d1a2b3c4d5e6f7", "backendEnvironmentName": "staging", "resourceName": "shopauth"},
    }
    if state is not None:
        obj["status"] = {"observedGeneration": observed, "conditions": conditions_for(state, observed)}
    elif status is not None:
        obj["status"] = status
    return obj


@dataclass(frozen=True)
class Moment:
    name: str
    obj: dict[str, Any]
    kstatus: tuple[str, str | None]  # (status, message); None: any message
    argocd: tuple[str, str | None]


MOMENTS = [
    Moment("created, with the CRD's default status", backendauth(status=status_on_create()),
           ("InProgress", "BackendAuth generation is 1, but latest observed generation is 0"),
           ("Progressing", "Waiting for the operator")),
    Moment("job running", backendauth(State("reconciling", "JobInProgress", RUNNING)),
           ("InProgress", RUNNING), ("Progressing", RUNNING)),
    Moment("throttled, will retry", backendauth(State("reconciling", "Throttled", "Rate exceeded")),
           ("InProgress", "Rate exceeded"), ("Progressing", "Rate exceeded")),
    Moment("Ready", backendauth(State("ready", "JobCompleted", READY_MESSAGE)),
           ("Current", "Resource is Ready"), ("Healthy", READY_MESSAGE)),
    Moment("spec changed, before the operator sees it",
           backendauth(State("ready", "JobCompleted", READY_MESSAGE), generation=2, observed=1),
           ("InProgress", "BackendAuth generation is 2, but latest observed generation is 1"),
           ("Progressing", "Waiting for the operator to observe generation 2")),
    Moment("stalled", backendauth(State("stalled", "JobFailed", "UserPool creation failed")),
           ("Failed", "UserPool creation failed"), ("Degraded", "UserPool creation failed")),
    Moment("paused when Ready", backendauth(State("ready", "Paused", PAUSED_MESSAGE), paused=True),
           ("Current", "Resource is Ready"), ("Suspended", PAUSED_MESSAGE)),
    Moment("paused before creation", backendauth(State("reconciling", "Paused", PAUSED_MESSAGE), paused=True),
           ("InProgress", PAUSED_MESSAGE), ("Suspended", PAUSED_MESSAGE)),
    Moment("paused, before the operator has seen it", backendauth(status=status_on_create(), paused=True),
           ("InProgress", None), ("Suspended", None)),
    Moment("being deleted", backendauth(State("ready", "JobCompleted", READY_MESSAGE), deleting=True),
           ("Terminating", "Resource scheduled for deletion"), ("Progressing", "Pending deletion")),
]  # fmt: skip


@pytest.fixture(scope="module")
def kstatus() -> Path:
    return built_kstatus()


def matches(got: tuple[str, str], want: tuple[str, str | None]) -> bool:
    return got[0] == want[0] and (want[1] is None or got[1] == want[1])


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_each_state_as_flux_and_argo_cd_show_it(kstatus: Path) -> None:
    judged = judge(kstatus, *(m.obj for m in MOMENTS))
    wrong = [
        f"{m.name}: kstatus {got}, Argo CD {health(m.obj)}; expected {m.kstatus}, {m.argocd}"
        for m, got in zip(MOMENTS, judged, strict=True)
        if not (matches(got, m.kstatus) and matches(health(m.obj), m.argocd))
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_without_the_default_status_kstatus_would_call_a_new_object_current(kstatus: Path) -> None:
    # Why the CRD defaults the status: an object with no status at all is "current" to kstatus,
    # so a Flux wait would end before the operator has even seen it.
    assert judge(kstatus, backendauth()) == [("Current", "Resource is current")]


@pytest.mark.timeout(BUILD_TIMEOUT + 120)
def test_the_command_reads_lists_and_reports_bad_input(kstatus: Path, tmp_path: Path) -> None:
    items = [backendauth(State("ready", "JobCompleted", "done")), backendauth(status=status_on_create())]
    listed = {"apiVersion": "v1", "kind": "List", "items": items}
    assert [s for s, _ in judge(kstatus, listed)] == ["Current", "InProgress"]
    with pytest.raises(AssertionError, match="not JSON"):
        judge(kstatus, {"x": 1}, {"kind": float("nan")})
