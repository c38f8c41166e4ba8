"""The one codec of a turn's holder (``core.holder``): what a turn Lease's holderIdentity says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backendauth_operator.core.holder import holder_of, name_of, object_id, object_of, process_of
from backendauth_operator.kube.client import micro_time
from backendauth_operator.kube.leases import Leases


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"metadata": {"namespace": "shop", "name": "auth", "uid": "u-1"}}, "shop/auth/u-1"),
        ({"metadata": {"namespace": "shop", "name": "auth"}}, "shop/auth/shop/auth"),  # no uid yet
    ],
)
def test_the_object_id_of_a_body(body: dict[str, Any], expected: str) -> None:
    assert object_id(body) == expected


@pytest.mark.parametrize(
    ("holder", "obj", "process", "name"),
    [
        ("shop/auth/u-1@operator-0", "shop/auth/u-1", "operator-0", "shop/auth"),
        ("shop/auth/u-1", "shop/auth/u-1", "", "shop/auth"),  # disowned, or written by an older version
        ("shop/auth/u-1@pod@node", "shop/auth/u-1", "pod@node", "shop/auth"),  # the first @ ends the object
    ],
)
def test_a_holder_is_read_into_its_parts(holder: str, obj: str, process: str, name: str) -> None:
    assert (object_of(holder), process_of(holder), name_of(holder)) == (obj, process, name)


def test_a_holder_without_a_process_is_the_object_id() -> None:
    assert holder_of("shop/auth/u-1", "") == "shop/auth/u-1"
    assert name_of("shop/auth/u-1") == "shop/auth"  # an object id reads as a holder


NAMES = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@given(namespace=NAMES, name=NAMES, uid=st.uuids(), process=st.text(min_size=1, max_size=40))
def test_what_is_written_reads_back(namespace: str, name: str, uid: object, process: str) -> None:
    me = object_id({"metadata": {"namespace": namespace, "name": name, "uid": str(uid)}})
    holder = holder_of(me, process)
    assert object_of(holder) == me
    assert process_of(holder) == process
    assert name_of(holder) == f"{namespace}/{name}"


def test_a_turn_lease_names_its_holder_with_the_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[dict[str, Any]] = []

    def request(api_client: Any, method: str, path: str, body: Any = None, **_: Any) -> dict[str, Any]:
        written.append(body)
        return {**body, "metadata": {**body["metadata"], "resourceVersion": "1"}}

    monkeypatch.setattr("backendauth_operator.kube.leases.request", request)
    leases = Leases(None, "default", 60, identity="operator-0")
    assert leases.acquire(("eu-west-1", "app", "dev"), "shop/auth/u-1") is None
    (body,) = written
    assert body["spec"]["holderIdentity"] == holder_of("shop/auth/u-1", "operator-0")


def test_micro_time_is_kubernetes_microtime() -> None:
    moment = datetime(2026, 1, 2, 4, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert micro_time(moment) == "2026-01-02T03:04:05.123456Z"
    assert micro_time(moment.astimezone(UTC)) == micro_time(moment)
