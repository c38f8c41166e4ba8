"""The record code that turns and the leader election share (``kube/leases.py``), as tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from backendauth_operator.kube.client import micro_time
from backendauth_operator.kube.leases import (
    Conflict,
    KubeLeaseStore,
    Leases,
    election_body,
    lease_body,
    parse_micro_time,
    released_body,
)
from backendauth_operator.kube.leases import _lease as turn_body

KEY = ("eu-west-1", "app", "dev")
NOW = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def test_a_micro_time_reads_back() -> None:
    assert parse_micro_time(micro_time(NOW)) == NOW
    assert parse_micro_time("2026-01-02T03:04:05Z") == NOW.replace(microsecond=0)


@pytest.mark.parametrize("value", [None, "", "yesterday", 12])
def test_an_unreadable_time_is_none(value: Any) -> None:
    assert parse_micro_time(value) is None


def test_both_kinds_write_the_same_record_shape() -> None:
    turn = Leases(None, "default", 60, identity="operator-0")  # the turns' own builder
    stamp = micro_time(NOW)
    bodies = [
        election_body("leader", "operator-0", 15, stamp, "7", 2, None),
        released_body({"metadata": {"name": "leader", "resourceVersion": "8"}, "spec": {}}, stamp),
        turn_body(turn.name(KEY), KEY, "shop/auth/u@operator-0", "9", 60),
    ]
    for body in bodies:
        assert (body["apiVersion"], body["kind"]) == ("coordination.k8s.io/v1", "Lease")
        assert set(body["metadata"]) >= {"name", "resourceVersion"}
    assert bodies[0]["spec"] == {
        "holderIdentity": "operator-0", "leaseDurationSeconds": 15, "acquireTime": stamp,
        "renewTime": stamp, "leaseTransitions": 2,
    }  # fmt: skip
    assert "holderIdentity" not in bodies[1]["spec"] and bodies[1]["spec"]["leaseDurationSeconds"] == 1
    assert bodies[2]["spec"]["holderIdentity"] == "shop/auth/u@operator-0"
    assert bodies[2]["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "backendauth-operator"}


def test_a_new_lease_carries_no_version() -> None:
    assert "resourceVersion" not in lease_body("x", {})["metadata"]


def failing(status: int) -> Any:
    def request(*_: Any, **__: Any) -> dict[str, Any]:
        raise ApiException(status=status, reason="said so")

    return request


def test_the_election_store_reads_a_missing_lease_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backendauth_operator.kube.leases.request", failing(404))
    assert KubeLeaseStore(None, "default", "leader", 1.0).get() is None


@pytest.mark.parametrize("write", ["create", "replace"])
def test_the_election_store_turns_a_409_into_a_conflict(monkeypatch: pytest.MonkeyPatch, write: str) -> None:
    monkeypatch.setattr("backendauth_operator.kube.leases.request", failing(409))
    store = KubeLeaseStore(None, "default", "leader", 1.0)
    with pytest.raises(Conflict):
        getattr(store, write)(lease_body("leader", {}, "1"))


def test_the_election_store_asks_with_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, Any]] = []

    def request(api_client: Any, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        seen.append((method, path, kwargs.get("timeout")))
        return {}

    monkeypatch.setattr("backendauth_operator.kube.leases.request", request)
    store = KubeLeaseStore(None, "ops", "leader", 2.5)
    store.get()
    store.replace(lease_body("leader", {}, "1"))
    store.create(lease_body("leader", {}))
    path = "/apis/coordination.k8s.io/v1/namespaces/ops/leases"
    assert seen == [
        ("GET", f"{path}/leader", (2.5, 2.5)),
        ("PUT", f"{path}/leader", (2.5, 2.5)),
        ("POST", path, (2.5, 2.5)),
    ]
