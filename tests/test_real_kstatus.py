"""What Flux (kstatus) and Argo CD see of a BackendAuth through its life, on a real kube-apiserver.

Each moment is read from the real API server and judged by the real kstatus library
(``tests/kstatus.py``, what Flux's ``wait``/``healthChecks`` use) and by Argo CD's health
(``tests/argocd_health.py``). Each is made to last, so that it is read deterministically: the
operator is not running yet (as created), the simulator holds the create's answer back
(submitting), holds its jobs RUNNING (job running, update running, being deleted), the operator is
stopped (spec changed before the operator sees it), a fault refuses an update (stalled).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from argocd_health import health
from harness import backendauth, wait_until
from kstatus import BUILD_TIMEOUT, built_kstatus, judge
from real_apiserver import RealBed
from specs import minimal_spec

pytestmark = [pytest.mark.real_apiserver, pytest.mark.integration]

PAUSED = "amplifybackend.gitops.dev/paused"
PENDING = "amplifybackend.gitops.dev/pending"
PAUSED_MESSAGE = "paused by the annotation; no AWS calls"


@pytest.fixture(scope="module")
def kstatus() -> Path:
    return built_kstatus()


def spec(name: str, minimum_length: int | None = None, **overrides: Any) -> dict[str, Any]:
    out = minimal_spec(resourceName=name.replace("-", ""), **overrides)
    if minimum_length is not None:
        out["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": minimum_length}
    return out


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}
    return dict(conditions.get(ctype) or {})


def message(obj: dict[str, Any], ctype: str) -> str:
    return str(condition(obj, ctype)["message"])


def reason(obj: dict[str, Any]) -> str | None:
    return condition(obj, "Ready").get("reason")


class Seen:
    """Reads an object and checks what kstatus and Argo CD make of it, moment by moment."""

    def __init__(self, bed: RealBed, kstatus: Path) -> None:
        self.bed, self.kstatus = bed, kstatus
        self.table: list[str] = []

    def expect(
        self,
        moment: str,
        name: str,
        kstatus: tuple[str, str],
        argocd: tuple[str, str],
        obj: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        obj = obj if obj is not None else self.bed.get(name)
        got_kstatus, got_argocd = judge(self.kstatus, obj)[0], health(obj)
        self.table.append(f"{moment}: kstatus {got_kstatus}, Argo CD {got_argocd}")
        assert (got_kstatus, got_argocd) == (kstatus, argocd), (
            f"{moment}: expected kstatus {kstatus}, Argo CD {argocd}\n"
            + "\n".join(self.table)
            + f"\nstatus: {obj.get('status')}\nmetadata: {obj.get('metadata')}"
        )
        return obj


@pytest.mark.timeout(BUILD_TIMEOUT + 300)
def test_a_backendauth_through_its_life_as_flux_and_argo_cd_see_it(
    make_real_bed: Callable[..., RealBed], kstatus: Path
) -> None:
    bed = make_real_bed(start_operator=False)
    seen = Seen(bed, kstatus)
    name = "life"

    # As created, the operator not running yet: the API server defaulted the status.
    bed.apply(backendauth(name, spec(name, deletionPolicy="Delete")))
    obj = seen.expect(
        "as created", name,
        ("InProgress", "BackendAuth generation is 1, but latest observed generation is 0"),
        ("Progressing", "Waiting for the operator"),
    )  # fmt: skip
    assert obj["status"] == {"observedGeneration": 0}

    # Submitting: the operator has written its marker and called CreateBackendAuth; AWS carried
    # it out but the answer is held back, so no status has been written yet.
    bed.sim_post("hold", {"held": True})  # the job it starts stays RUNNING
    bed.fault("stall", "CreateBackendAuth")
    bed.operator.start()

    def submitting() -> dict[str, Any] | None:
        current = bed.get(name)
        called = bed.count("CreateBackendAuth") == 1
        return current if called and PENDING in current["metadata"].get("annotations", {}) else None

    obj = wait_until(submitting, 60, "the create call in flight")
    seen.expect(
        "submitting", name,
        ("InProgress", "BackendAuth generation is 1, but latest observed generation is 0"),
        ("Progressing", "Waiting for the operator"),
        obj,
    )  # fmt: skip
    bed.operator.kill()  # it never learns the answer

    # Job running: a new operator finds the job the lost call started (no second create).
    bed.operator.start()
    obj = bed.wait_reason(name, "JobInProgress", timeout=60)
    running = message(obj, "Reconciling")
    assert running.startswith("CreateBackendAuth job ") and running.endswith(" is RUNNING")
    seen.expect("job running", name, ("InProgress", running), ("Progressing", running), obj)
    assert bed.count("CreateBackendAuth") == 1

    # Ready.
    bed.sim_post("hold", {"held": False})
    obj = bed.wait_reason(name, "JobCompleted", status="True", timeout=60)
    seen.expect("Ready", name, ("Current", "Resource is Ready"), ("Healthy", message(obj, "Ready")), obj)

    # Spec changed, before the operator sees it (it is stopped).
    bed.operator.stop()
    bed.apply(backendauth(name, spec(name, 14, deletionPolicy="Delete")))
    obj = seen.expect(
        "spec changed, before the operator sees it", name,
        ("InProgress", "BackendAuth generation is 2, but latest observed generation is 1"),
        ("Progressing", "Waiting for the operator to observe generation 2"),
    )  # fmt: skip
    assert obj["metadata"]["generation"] == 2

    # Update running.
    bed.sim_post("hold", {"held": True})
    bed.operator.start()

    def update_running() -> dict[str, Any] | None:
        current = bed.get(name)
        status = current.get("status", {})
        return (
            current
            if status.get("operation") == "UpdateBackendAuth" and reason(current) == "JobInProgress"
            else None
        )

    obj = wait_until(update_running, 60, "the update job")
    running = message(obj, "Reconciling")
    assert running.startswith("UpdateBackendAuth job ")
    seen.expect("update running", name, ("InProgress", running), ("Progressing", running), obj)
    bed.sim_post("hold", {"held": False})
    obj = bed.wait_reason(name, "JobCompleted", status="True", timeout=60)
    assert obj["status"]["observedGeneration"] == 2
    seen.expect(
        "Ready again", name, ("Current", "Resource is Ready"), ("Healthy", message(obj, "Ready")), obj
    )

    # Paused when Ready: still Ready (a Flux wait ends), suspended for Argo CD; no AWS call.
    calls = len(bed.calls()["calls"])
    bed.kubectl("annotate", "backendauth", name, f"{PAUSED}=true")
    obj = bed.wait_reason(name, "Paused", status="True", timeout=60)
    paused = message(obj, "Ready")
    assert paused.startswith(PAUSED_MESSAGE)
    seen.expect("paused when Ready", name, ("Current", "Resource is Ready"), ("Suspended", paused), obj)
    bed.kubectl("annotate", "backendauth", name, f"{PAUSED}-")
    bed.wait_reason(name, "JobCompleted", status="True", timeout=60)
    assert len(bed.calls()["calls"]) == calls

    # Paused before creation (another BackendAuth): never Ready, and kstatus says so.
    bed.apply(backendauth("frozen", spec("frozen"), annotations={PAUSED: "true"}))
    obj = bed.wait_reason("frozen", "Paused", status="False", timeout=60)
    seen.expect(
        "paused before creation", "frozen",
        ("InProgress", PAUSED_MESSAGE), ("Suspended", PAUSED_MESSAGE), obj,
    )  # fmt: skip
    assert bed.count("CreateBackendAuth") == 1

    # Stalled: AWS refuses the update a new spec asks for.
    bed.fault("bad_request", "UpdateBackendAuth")
    bed.apply(backendauth(name, spec(name, 16, deletionPolicy="Delete")))
    obj = bed.wait_reason(name, "BadRequest", timeout=60)
    stalled = message(obj, "Stalled")
    seen.expect("stalled", name, ("Failed", stalled), ("Degraded", stalled), obj)

    # Being deleted: the finalizer holds the object until AWS's delete job (held RUNNING) ends.
    bed.sim_post("hold", {"held": True})
    bed.kubectl("delete", "backendauth", name, "--wait=false")

    def deleting() -> dict[str, Any] | None:
        current = bed.get(name)
        return (
            current
            if bed.count("DeleteBackendAuth") == 1 and current["metadata"].get("deletionTimestamp")
            else None
        )

    obj = wait_until(deleting, 60, "the delete job")
    seen.expect(
        "being deleted", name,
        ("Terminating", "Resource scheduled for deletion"), ("Progressing", "Pending deletion"), obj,
    )  # fmt: skip
    bed.sim_post("hold", {"held": False})
    wait_until(lambda: bed.kubectl("get", "backendauth", name, check=False).returncode != 0, 60, "gone")
