# ruff: noqa: E501  (the decision table reads best one row to a line)
"""A resync of a settled BackendAuth as a table: what it reads in AWS and what it writes.

One GetBackendAuth always; GetBackend (the outputs) only when they may have changed: the status
lacks them, a job of ours just completed, or GetBackendAuth answers otherwise than when they
were last read. When nothing changed, the step writes nothing at all: no annotation, no status,
no event (each would be a watch event for every client)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest

from backendauth_operator.config import Settings
from backendauth_operator.core.bookkeeping import COMPLETED, CREATED, JOB, UPDATE
from backendauth_operator.core.decide import (
    Observation,
    Plan,
    ReadResource,
    ReadSecrets,
    SecretsRead,
    Settle,
    Submit,
    decide,
)
from backendauth_operator.kube.accounts import Target
from backendauth_operator.kube.writer import StepWriter
from backendauth_operator.runtime.executor import execute
from backendauth_operator.runtime.reading import read
from test_decide import DESIRED, DIFFERENT, job, snap

SEEN = Observation(resource=DESIRED)
# AWS answers otherwise, yet as the spec says: a value the spec leaves to AWS has changed.
OTHERWISE = Observation(resource={**DESIRED, "IdentityPoolConfigs": {"IdentityPoolName": "other"}})
VERIFIED = job(COMPLETED, op=UPDATE, verified=True, outputs_for=SEEN.digest)
SETTLED = snap(look=True, check_secrets=True, secrets=SecretsRead(None), owned=True, job=VERIFIED, outputs_shown=True,
               previous_reason="JobCompleted", ready_generation=1)  # fmt: skip


@dataclass(frozen=True)
class Row:
    situation: str
    snapshot: Any
    check: Callable[[Plan], bool]


def ready(outputs: bool) -> Callable[[Plan], bool]:
    def check(plan: Plan) -> bool:
        return (
            isinstance(plan, Settle)
            and plan.state is not None
            and plan.state.phase == "ready"
            and plan.outputs is outputs
        )

    return check


ROWS = [
    Row("a resync reads the Secrets (Kubernetes), then AWS: GetBackendAuth", replace(SETTLED, secrets=None), lambda p: isinstance(p, ReadSecrets)),
    Row("... GetBackendAuth first, whatever the status shows", SETTLED, lambda p: isinstance(p, ReadResource)),
    Row("AWS answers as when the outputs were read: Ready, no GetBackend", replace(SETTLED, observed=SEEN), ready(False)),
    Row("... and the job recorded is the one the object has: no annotation to write (removing an absent one writes nothing)",
        replace(SETTLED, observed=SEEN), lambda p: isinstance(p, Settle) and p.job == VERIFIED and all(v is None for v in p.annotations.values())),
    Row("AWS answers otherwise, though as the spec says: the outputs are read again", replace(SETTLED, observed=OTHERWISE),
        lambda p: ready(True)(p) and isinstance(p, Settle) and p.job is not None and p.job.outputs_for == OTHERWISE.digest),
    Row("the status lacks the outputs: they are read", replace(SETTLED, observed=SEEN, outputs_shown=False), ready(True)),
    Row("a job of ours just completed (first look since): the outputs are read",
        replace(SETTLED, look=False, job=replace(VERIFIED, verified=False, outputs_for=""), observed=SEEN), ready(True)),
    Row("a record from before outputs were tracked: read once, then remembered",
        replace(SETTLED, job=replace(VERIFIED, outputs_for=""), observed=SEEN),
        lambda p: ready(True)(p) and isinstance(p, Settle) and p.job is not None and p.job.outputs_for == SEEN.digest),
    Row("drift found by the resync: one update, no GetBackend", replace(SETTLED, observed=Observation(resource=DIFFERENT)),
        lambda p: isinstance(p, Submit) and p.operation == UPDATE),
    Row("drift only reported: Stalled, no GetBackend", replace(SETTLED, report_drift=True, observed=Observation(resource=DIFFERENT)),
        lambda p: isinstance(p, Settle) and p.state is not None and p.state.reason == "Drifted" and not p.outputs),
    Row("the auth resource is gone: said (ResourceMissing), looked at again before a create, no GetBackend",
        replace(SETTLED, observed=Observation(resource=None)),
        lambda p: isinstance(p, Settle) and p.state is not None and p.state.reason == "ResourceMissing" and not p.outputs),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.situation for r in ROWS])
def test_resync_rows(row: Row) -> None:
    plan = decide(row.snapshot)
    assert row.check(plan), plan


# ---- the whole step against fakes: one AWS call, no Kubernetes write --------------------------


class FakeEffects:
    """AWS shows the resource as the spec says; every call is counted."""

    def __init__(self, resource: Mapping[str, Any]) -> None:
        self.calls: list[str] = []
        self.config = resource

    def secrets_digest(self, s: Any) -> str:
        return ""

    def resource(self, s: Any) -> Any:
        from backendauth_operator.aws.amplify import Resource

        self.calls.append("GetBackendAuth")
        return Resource(self.config)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected effect {name}")


class FakeKube:
    """Records every write; applies the status and annotation patches to ``obj``."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj, self.writes = obj, []  # type: list[str]

    def patch(self, namespace: str, name: str, body: Mapping[str, Any], version: Any, sub: str = "") -> Any:
        """The writer's one conditional merge patch: of the status, or of the annotations."""
        if sub == "/status":
            self.writes.append("status")
            self.obj.setdefault("status", {}).update(body["status"])
            return {**self.obj, "metadata": {**self.obj["metadata"], "resourceVersion": "3"}}
        self.writes.append("annotations")
        meta = self.obj["metadata"].setdefault("annotations", {})
        for key, value in body["metadata"]["annotations"].items():
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value
        return {**self.obj, "metadata": {**self.obj["metadata"], "resourceVersion": "2"}}

    def post_event(self, *args: Any) -> None:
        self.writes.append("event")

    def write_config_map(self, *args: Any, **kw: Any) -> None:
        self.writes.append("configmap")


class Quiet:
    def info(self, *a: Any) -> None: ...
    def warning(self, *a: Any) -> None: ...


MANIFEST = {
    "metadata": {"namespace": "default", "name": "shop", "uid": "u-1", "generation": 1, "resourceVersion": "1",
                 "annotations": {CREATED: "true"}},
    "spec": {"appId": "app", "backendEnvironmentName": "dev", "resourceName": "shop", "region": "eu-west-1",
             "resourceConfig": {"authResources": "USER_POOL_ONLY", "service": "COGNITO",
                                "userPoolConfigs": {"userPoolName": "shop", "signInMethod": "EMAIL",
                                                    "requiredSignUpAttributes": ["EMAIL"]}}},
}  # fmt: skip


def resync_once(obj: dict[str, Any], kube: FakeKube, outputs: dict[str, str]) -> tuple[list[str], Settle]:
    """One resync step (look=True) of ``obj``: the AWS calls it made, and its outcome as written."""
    settings = Settings(default_region="eu-west-1")
    # The operator's own account is known (asked once per process, not per resync).
    s = read(obj, settings, 1_800_000_000.0, look=True, target=Target(account="123456789012"))
    assert s.desired is not None
    effects = FakeEffects(s.desired)
    s, outcome = execute(s, effects)  # type: ignore[arg-type]
    assert isinstance(outcome, Settle)
    calls = list(effects.calls) + (["GetBackend"] if outcome.outputs else [])
    StepWriter(kube, obj, Quiet()).write(s, outcome, outputs if outcome.outputs else None)  # type: ignore[arg-type]
    return calls, outcome


def test_a_settled_resync_makes_one_aws_call_and_no_kubernetes_write() -> None:
    import copy

    obj = copy.deepcopy(MANIFEST)
    kube = FakeKube(obj)
    outputs = {"userPoolId": "eu-west-1_abc", "appClientIdWeb": "web", "appClientId": "native"}
    # The first look (the object was adopted as in sync): outputs read, everything written.
    calls, _ = resync_once(obj, kube, outputs)
    assert calls == ["GetBackendAuth", "GetBackend"] and "status" in kube.writes
    assert "outputsFor" in obj["metadata"]["annotations"][JOB]
    for _ in range(3):  # then every resync: GetBackendAuth only, and nothing written
        kube.writes.clear()
        calls, outcome = resync_once(obj, kube, outputs)
        assert calls == ["GetBackendAuth"], calls
        assert kube.writes == [], kube.writes
        assert outcome.state is not None and outcome.state.phase == "ready"
    assert "lastObservedAt" not in obj["status"]
    assert obj["status"]["awsAccountId"] == "123456789012"
