"""The Argo CD health check (deploy/argocd/health.lua), run as Argo CD runs it (tests/argocd_health.py).

Hand-written objects use the operator's own ``conditions_for``, so they have the exact shape the
operator writes. ``tests/fixtures/captured/*.json`` are whole objects captured from runs of the
operator; each carries its expected health in a top-level ``expectedHealth``: either a status
string (``"Healthy"``) or ``{"status": ..., "message": ...}`` (the message is compared when given).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from argocd_health import CONFIGMAP, CONFIGMAP_KEY, INVALID_STATUS, SCRIPT, configmap_text, health
from backendauth_operator.core.decide import State, conditions_for

CAPTURED = Path(__file__).parent / "fixtures" / "captured"
PAUSED = "amplifybackend.gitops.dev/paused"
DONE = "CreateBackendAuth job j-1 completed"


def backendauth(
    phase: str | None = None,
    reason: str = "",
    message: str = "",
    generation: int = 1,
    observed: int | None = 1,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A BackendAuth with the status the operator writes for ``State(phase, reason, message)``."""
    obj: dict[str, Any] = {
        "apiVersion": "amplifybackend.gitops.dev/v1alpha1",
        "kind": "BackendAuth",
        "metadata": {"name": "shop-auth", "namespace": "shop", "generation": generation,
                     "annotations": annotations or {}},
        "spec": {"appId": "d1a2b3c4d5e6f7", "backendEnvironmentName": "staging", "resourceName": "shopauth"},
    }  # fmt: skip
    if phase is not None:
        obj["status"] = {
            "observedGeneration": observed,
            "conditions": conditions_for(State(phase, reason, message), observed),  # type: ignore[arg-type]
        }
    return obj


# ---- every branch ------------------------------------------------------------------------------


def test_no_status_yet_is_progressing_waiting_for_the_operator() -> None:
    assert health(backendauth()) == ("Progressing", "Waiting for the operator")


def test_a_status_without_conditions_is_progressing() -> None:
    obj = backendauth()
    obj["status"] = {"observedGeneration": 1}
    assert health(obj) == ("Progressing", "Waiting for the operator")


def test_the_status_the_api_server_gives_a_new_object_is_progressing() -> None:
    obj = backendauth()
    obj["status"] = {"observedGeneration": 0}  # the CRD's default
    assert health(obj) == ("Progressing", "Waiting for the operator")


def test_an_object_without_metadata_is_progressing() -> None:
    assert health({"apiVersion": "amplifybackend.gitops.dev/v1alpha1", "kind": "BackendAuth"}) == (
        "Progressing",
        "Waiting for the operator",
    )


def test_ready_for_the_current_generation_is_healthy() -> None:
    obj = backendauth("ready", "JobCompleted", DONE, generation=2, observed=2)
    assert health(obj) == ("Healthy", DONE)


def test_ready_for_an_older_generation_is_progressing() -> None:
    obj = backendauth("ready", "JobCompleted", DONE, generation=3, observed=2)
    assert health(obj) == ("Progressing", "Waiting for the operator to observe generation 3")


def test_ready_without_observed_generation_is_not_healthy() -> None:
    obj = backendauth("ready", "JobCompleted", "done", generation=1, observed=None)
    assert health(obj)[0] == "Progressing"


def test_stalled_is_degraded_with_the_stalled_message() -> None:
    message = "spec.resourceConfig.identityPoolConfigs: identityPoolConfigs is required"
    assert health(backendauth("stalled", "InvalidSpec", message)) == ("Degraded", message)


def test_a_failed_job_is_degraded() -> None:
    obj = backendauth("stalled", "JobFailed", "UserPool creation failed", generation=4, observed=4)
    assert health(obj) == ("Degraded", "UserPool creation failed")


def test_stalled_without_a_message_shows_the_reason() -> None:
    assert health(backendauth("stalled", "BadRequest", "")) == ("Degraded", "BadRequest")


def test_stalled_for_an_older_generation_waits_for_the_operator_instead_of_degrading() -> None:
    # A fixed spec was just applied: the old Stalled no longer describes it.
    obj = backendauth("stalled", "InvalidSpec", "bad", generation=2, observed=1)
    assert health(obj) == ("Progressing", "Waiting for the operator to observe generation 2")


def test_reconciling_is_progressing_with_its_message() -> None:
    obj = backendauth("reconciling", "Throttled", "TooManyRequestsException: Rate exceeded")
    assert health(obj) == ("Progressing", "TooManyRequestsException: Rate exceeded")


def test_a_running_job_is_progressing() -> None:
    obj = backendauth("reconciling", "JobInProgress", "CreateBackendAuth job j-1 is RUNNING")
    assert health(obj) == ("Progressing", "CreateBackendAuth job j-1 is RUNNING")


def test_progressing_falls_back_to_the_ready_message_then_to_waiting() -> None:
    obj = backendauth("reconciling", "Submitting", "")
    assert health(obj) == ("Progressing", "Waiting for the operator")
    obj["status"]["conditions"] = [c for c in obj["status"]["conditions"] if c["type"] != "Reconciling"]
    obj["status"]["conditions"][0]["message"] = "submitting CreateBackendAuth"
    assert health(obj) == ("Progressing", "submitting CreateBackendAuth")


def test_reconciling_reason_paused_is_suspended_with_its_message() -> None:
    message = f"paused by the {PAUSED} annotation; no AWS calls"
    obj = backendauth("reconciling", "Paused", message, annotations={PAUSED: "true"})
    assert health(obj) == ("Suspended", message)


def test_paused_when_ready_is_suspended_though_ready_stays_true() -> None:
    message = "paused by the annotation; no AWS calls; AWS last showed the auth resource as the spec says"
    obj = backendauth("ready", "Paused", message, annotations={PAUSED: "true"})
    assert [c["status"] for c in obj["status"]["conditions"]] == ["True", "False", "False"]
    assert health(obj) == ("Suspended", message)
    del obj["metadata"]["annotations"][PAUSED]  # unpaused, until the operator shows it
    assert health(obj) == ("Suspended", message)


def test_the_paused_annotation_suspends_even_before_the_operator_shows_it() -> None:
    obj = backendauth("ready", "JobCompleted", DONE, annotations={PAUSED: "true"})
    assert health(obj) == ("Suspended", f"Paused by the {PAUSED} annotation")
    assert health(backendauth(annotations={PAUSED: "true"}))[0] == "Suspended"


def test_reason_paused_suspends_until_the_operator_sees_the_annotation_removed() -> None:
    obj = backendauth("reconciling", "Paused", "paused", annotations={})
    assert health(obj) == ("Suspended", "paused")


@pytest.mark.parametrize("value", ["false", "", "yes", "1"])
def test_other_paused_values_do_not_suspend(value: str) -> None:
    obj = backendauth("ready", "JobCompleted", "done", annotations={PAUSED: value})
    assert health(obj)[0] == "Healthy"


def test_stalled_wins_over_paused() -> None:
    obj = backendauth("stalled", "InvalidSpec", "bad", annotations={PAUSED: "true"})
    assert health(obj) == ("Degraded", "bad")


def test_an_object_being_deleted_is_pending_deletion_whatever_its_conditions() -> None:
    for phase in ("ready", "stalled", "reconciling"):
        obj = backendauth(phase, "JobCompleted", "done")
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        assert health(obj) == ("Progressing", "Pending deletion")


def test_a_condition_that_is_false_does_not_count() -> None:
    obj = backendauth("ready", "JobCompleted", "done")
    for condition in obj["status"]["conditions"]:
        condition["status"] = "False" if condition["type"] == "Ready" else condition["status"]
    assert health(obj) == ("Progressing", "done")


# ---- the runner is as strict as Argo CD ---------------------------------------------------------


def test_the_runner_refuses_the_string_library_as_argo_cd_does() -> None:
    with pytest.raises(Exception, match="string"):
        health({}, script='return {status = string.lower("HEALTHY")}')
    with pytest.raises(Exception, match="index a string"):
        health({}, script='return {status = ("Healthy"):lower()}')


def test_an_unknown_health_status_becomes_unknown_as_in_argo_cd() -> None:
    assert health({}, script='return {status = "Fine"}') == ("Unknown", INVALID_STATUS)


def test_a_script_that_returns_no_table_is_an_error() -> None:
    with pytest.raises(TypeError, match="expect table"):
        health({}, script="return 42")


# ---- captured objects ---------------------------------------------------------------------------


def captured_files() -> list[Path]:
    return sorted(CAPTURED.glob("*.json"))


def test_there_are_captured_objects() -> None:
    assert len(captured_files()) >= 3


@pytest.mark.parametrize("path", captured_files(), ids=lambda p: p.stem)
def test_captured_objects_have_their_expected_health(path: Path) -> None:
    obj = json.loads(path.read_text())
    expected = obj.pop("expectedHealth")
    if isinstance(expected, str):
        expected = {"status": expected}
    status, message = health(obj)
    assert status == expected["status"], f"{path.name}: {status} ({message})"
    if "message" in expected:
        assert message == expected["message"]


# ---- the argocd-cm snippet ----------------------------------------------------------------------


def test_the_configmap_carries_health_lua_verbatim_under_argo_cds_key() -> None:
    assert CONFIGMAP.read_text() == configmap_text(), "run `python tests/argocd_health.py` to regenerate"
    configmap = yaml.safe_load(CONFIGMAP.read_text())
    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["name"] == "argocd-cm"
    assert configmap["data"] == {CONFIGMAP_KEY: SCRIPT.read_text()}
    assert CONFIGMAP_KEY == "resource.customizations.health.amplifybackend.gitops.dev_BackendAuth"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_configmap_merges_into_an_existing_argocd_cm_with_kustomize(tmp_path: Path) -> None:
    existing = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": "argocd"},
        "data": {"url": "https://argocd.example.com"},
    }
    (tmp_path / "argocd-cm.yaml").write_text(yaml.safe_dump(existing))
    shutil.copy(CONFIGMAP, tmp_path / "patch.yaml")
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": ["argocd-cm.yaml"], "patches": [{"path": "patch.yaml"}]})
    )
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    merged = yaml.safe_load(rendered)
    assert merged["data"] == {"url": "https://argocd.example.com", CONFIGMAP_KEY: SCRIPT.read_text()}
