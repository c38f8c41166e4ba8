"""Turns: the per-app/env ``Lease`` (against the emulated API over HTTP)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes
import pytest

from backendauth_operator.kube import leases as lease_module
from backendauth_operator.kube.leases import Leases
from backendauth_testbed.sandbox import EmulatedClusterThread

KEY = ("eu-west-1", "app1", "dev")
OTHER_KEY = ("eu-west-1", "app2", "dev")


@pytest.fixture(scope="module")
def api_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    cluster = EmulatedClusterThread(crds=[]).start()
    path = Path(tmp_path_factory.mktemp("leases")) / "kubeconfig"
    cluster.write_kubeconfig(path)
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=configuration)
    yield kubernetes.client.ApiClient(configuration)
    cluster.stop()


@pytest.fixture
def leases(api_client: object) -> Leases:
    # Each test uses keys of its own (see key()), so one namespace serves them all.
    return Leases(api_client, "default", duration_seconds=60)


def key(request: pytest.FixtureRequest, app: str = "app") -> tuple[str, str, str]:
    return ("eu-west-1", f"{app}-{request.node.name}"[:60], "dev")


@pytest.mark.integration
def test_first_acquire_takes_the_turn(leases: Leases, request: pytest.FixtureRequest) -> None:
    k = key(request)
    assert leases.acquire(k, "ns/a/1") is None
    assert leases.holder(k) == "ns/a/1"


@pytest.mark.integration
def test_a_second_holder_is_told_who_has_it(leases: Leases, request: pytest.FixtureRequest) -> None:
    k = key(request)
    leases.acquire(k, "ns/a/1")
    assert leases.acquire(k, "ns/b/2") == "ns/a/1"


@pytest.mark.integration
def test_the_holder_takes_it_again(leases: Leases, request: pytest.FixtureRequest) -> None:
    k = key(request)
    assert leases.acquire(k, "ns/a/1") is None
    assert leases.acquire(k, "ns/a/1") is None


@pytest.mark.integration
def test_keys_are_independent(leases: Leases, request: pytest.FixtureRequest) -> None:
    first, second = key(request, "one"), key(request, "two")
    assert leases.acquire(first, "ns/a/1") is None
    assert leases.acquire(second, "ns/b/2") is None
    assert leases.acquire(first, "ns/b/2") == "ns/a/1"


@pytest.mark.integration
def test_released_turn_goes_to_the_next(leases: Leases, request: pytest.FixtureRequest) -> None:
    k = key(request)
    leases.acquire(k, "ns/a/1")
    leases.release(k, "ns/a/1")
    assert leases.holder(k) is None
    assert leases.acquire(k, "ns/b/2") is None


@pytest.mark.integration
def test_only_the_holder_can_release(leases: Leases, request: pytest.FixtureRequest) -> None:
    k = key(request)
    leases.acquire(k, "ns/a/1")
    leases.release(k, "ns/b/2")
    assert leases.holder(k) == "ns/a/1"
    leases.release(("eu-west-1", "never-used", "dev"), "ns/a/1")  # no Lease at all: harmless


@pytest.mark.integration
def test_an_expired_turn_can_be_taken(api_client: object, request: pytest.FixtureRequest) -> None:
    k = key(request)
    short = Leases(api_client, "default", duration_seconds=60)
    assert short.acquire(k, "ns/a/1") is None
    coordination = kubernetes.client.CoordinationV1Api(api_client)
    lease = coordination.read_namespaced_lease(short.name(k), "default")
    stale = (datetime.now(UTC) - timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    coordination.patch_namespaced_lease(
        short.name(k), "default", {"spec": {"renewTime": stale, "acquireTime": stale}}
    )
    assert lease.spec.holder_identity == "ns/a/1"
    assert short.holder(k) is None
    assert short.acquire(k, "ns/b/2") is None
    assert short.holder(k) == "ns/b/2"


@pytest.mark.integration
def test_a_free_turn_costs_one_request_to_take_and_one_to_give_back(
    leases: Leases, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = key(request)
    calls: list[str] = []
    real = lease_module.request

    def counting(api_client: object, method: str, *args: object, **kwargs: object) -> dict[str, object]:
        calls.append(method)
        return real(api_client, method, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lease_module, "request", counting)
    assert leases.acquire(k, "ns/a/1") is None
    leases.release(k, "ns/a/1")
    assert calls == ["POST", "PUT"]
    calls.clear()
    assert leases.acquire(k, "ns/b/2") is None  # the remembered version: no read
    assert calls == ["PUT"]


@pytest.mark.integration
def test_a_stale_memory_never_makes_a_second_holder(
    api_client: object, request: pytest.FixtureRequest
) -> None:
    """Two operators: the first remembers the Lease as free, the second has taken it since."""
    k = key(request)
    first = Leases(api_client, "default", duration_seconds=60)
    second = Leases(api_client, "default", duration_seconds=60)
    assert first.acquire(k, "ns/a/1") is None
    first.release(k, "ns/a/1")
    assert second.acquire(k, "ns/b/2") is None
    assert first.acquire(k, "ns/c/3") == "ns/b/2"
    first.release(k, "ns/c/3")  # not the holder: nothing changes
    assert second.holder(k) == "ns/b/2"
    second.release(k, "ns/b/2")
    assert first.acquire(k, "ns/c/3") is None
    assert second.holder(k) == "ns/c/3"


def test_lease_names_are_dns_labels_whatever_the_app_and_env() -> None:
    name = Leases.name(("eu-west-1", "d1a2b3c4d5e6f7", "Staging Env/With Slashes"))
    assert name.startswith("backendauth-") and len(name) <= 63
    assert name == name.lower() and all(c.isalnum() or c == "-" for c in name)
    assert Leases.name(KEY) != Leases.name(OTHER_KEY)


@pytest.mark.integration
def test_many_threads_racing_for_one_turn_have_exactly_one_winner(
    leases: Leases, request: pytest.FixtureRequest
) -> None:
    k = key(request)
    results: dict[str, str | None] = {}
    start = threading.Barrier(8)

    def contend(me: str) -> None:
        start.wait()
        results[me] = leases.acquire(k, me)

    threads = [threading.Thread(target=contend, args=(f"ns/o{i}/{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [me for me, holder in results.items() if holder is None]
    assert len(winners) == 1
    assert leases.holder(k) == winners[0]
