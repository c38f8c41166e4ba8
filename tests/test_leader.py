"""The leader election's state machine, with a fake clock and a fake Lease API (no processes).

The rules are client-go's: a Lease whose record has not changed for its duration, as the
candidate measured it, may be taken; a leader acts only until its renew deadline after the
start of its last successful renewal; a released Lease is free at once.
"""

from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backendauth_operator.config import ConfigError, load_settings
from backendauth_operator.kube.leases import Conflict
from backendauth_operator.runtime.leader import LeaderElector, SoleOperator


class FakeLeases:
    """One Lease with resourceVersion semantics; ``down`` makes every request fail (a cut link)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False
        self.name = "leader"
        self.writes = 0

    def _check(self) -> None:
        if self.down:
            raise TimeoutError("the API server does not answer")

    def get(self) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.lease)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise Conflict("exists")
        return self._store(body)

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise Conflict("stale")
        return self._store(body)

    @property
    def holder(self) -> str | None:
        return ((self.lease or {}).get("spec") or {}).get("holderIdentity")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FakeLeases:
    return FakeLeases()


def elector(store: FakeLeases, clock: Clock, identity: str) -> LeaderElector:
    return LeaderElector(store, identity, 15, 10, 2, clock=clock, wall=clock.wall)


def test_the_first_candidate_creates_the_lease_and_leads(store: FakeLeases, clock: Clock) -> None:
    a = elector(store, clock, "a")
    assert not a.acting()
    assert a.try_acquire_or_renew()
    assert a.acting() and store.holder == "a"
    assert store.lease is not None and store.lease["spec"]["leaseDurationSeconds"] == 15


def test_a_second_candidate_stands_by_while_the_leader_renews(store: FakeLeases, clock: Clock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    for _ in range(20):  # 40 s of renewals every 2 s
        assert not b.try_acquire_or_renew()
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert a.acting() and not b.acting()
    assert store.holder == "a"


def test_a_lease_not_renewed_for_its_duration_is_taken(store: FakeLeases, clock: Clock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b sees the record now
    clock.now += 14.9
    assert not b.try_acquire_or_renew()
    clock.now += 0.2
    assert b.try_acquire_or_renew()
    assert store.holder == "b" and store.lease is not None
    assert store.lease["spec"]["leaseTransitions"] == 1


def test_expiry_is_measured_from_when_the_candidate_saw_the_record_not_from_its_timestamps(
    store: FakeLeases, clock: Clock
) -> None:
    a = elector(store, clock, "a")
    assert a.try_acquire_or_renew()
    clock.now += 3600  # a's wall clock says the Lease is an hour old ...
    b = elector(store, clock, "b")
    assert not b.try_acquire_or_renew()  # ... but b has only just seen it
    clock.now += 15.1
    assert b.try_acquire_or_renew()


def test_a_leader_that_cannot_renew_stops_acting_at_its_deadline_before_the_lease_can_be_taken(
    store: FakeLeases, clock: Clock
) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    renewed = clock.now
    store.down = True
    while a.acting():
        assert not a.try_acquire_or_renew()  # fails, and never raises
        clock.now += 0.5
    stopped = clock.now
    store.down = False
    assert stopped - renewed <= 10.0
    while not b.try_acquire_or_renew():
        assert not a.acting()
        clock.now += 0.5
    assert clock.now - stopped >= 5.0 - 0.5  # lease duration - renew deadline, to the step


def test_a_leader_that_regains_the_api_server_before_anyone_took_over_leads_again(
    store: FakeLeases, clock: Clock
) -> None:
    a = elector(store, clock, "a")
    assert a.try_acquire_or_renew()
    store.down = True
    clock.now += 11
    assert not a.try_acquire_or_renew() and not a.acting()
    store.down = False
    assert a.try_acquire_or_renew() and a.acting()  # still the holder: renewing is safe


def test_two_candidates_racing_for_a_free_lease_have_one_winner(store: FakeLeases, clock: Clock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    # Both read "no Lease"; only the first create succeeds.
    real_get = store.get
    seen = [real_get(), real_get()]
    store.get = lambda: seen.pop(0) if seen else real_get()  # type: ignore[method-assign]
    results = [a.try_acquire_or_renew(), b.try_acquire_or_renew()]
    assert results == [True, False]
    assert a.acting() and not b.acting()


def test_a_stale_renewal_is_refused_by_the_resource_version(store: FakeLeases, clock: Clock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    stale = store.get()
    assert not b.try_acquire_or_renew()
    clock.now += 16
    assert b.try_acquire_or_renew()
    # a's renewal written from the version it read before b took over: refused.
    store.get = lambda: copy.deepcopy(stale)  # type: ignore[method-assign]
    clock.now += 1
    assert not a.try_acquire_or_renew()
    assert store.holder == "b"


def test_release_frees_the_lease_for_the_next_candidate_at_once(store: FakeLeases, clock: Clock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.stop(drain_seconds=0)
    assert not a.acting()
    assert store.lease is not None
    assert store.holder is None and store.lease["spec"]["leaseDurationSeconds"] == 1
    assert b.try_acquire_or_renew()  # no waiting for the 15 s to run out


def test_a_standby_releases_nothing(store: FakeLeases, clock: Clock) -> None:
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    writes = store.writes
    b.stop(drain_seconds=0)
    assert store.writes == writes and store.holder == "a"


def test_stopping_waits_for_the_steps_in_flight_before_releasing(store: FakeLeases, clock: Clock) -> None:
    a = LeaderElector(store, "a", 15, 10, 2)  # the real clock: stop() waits on it
    assert a.try_acquire_or_renew()
    entered, finish = threading.Event(), threading.Event()
    holders: list[str | None] = []

    def step() -> None:
        with a.working():
            entered.set()
            finish.wait(10)
            holders.append(store.holder)

    worker = threading.Thread(target=step)
    worker.start()
    assert entered.wait(10)
    stopper = threading.Thread(target=a.stop, kwargs={"drain_seconds": 10})
    stopper.start()
    deadline = time.monotonic() + 10
    while a.acting() and time.monotonic() < deadline:  # stops acting at once ...
        pass
    assert not a.acting()
    finish.set()
    worker.join(10)
    stopper.join(10)
    assert holders == ["a"]  # ... but the Lease went only after the step ended
    assert store.holder is None


def test_the_sole_operator_always_acts_and_takes_over_nothing() -> None:
    gate = SoleOperator()
    assert gate.acting() and not gate.takes_over()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BACKENDAUTH_RENEW_DEADLINE_SECONDS": "15"}, "BACKENDAUTH_RENEW_DEADLINE_SECONDS"),
        ({"BACKENDAUTH_RETRY_PERIOD_SECONDS": "9"}, "BACKENDAUTH_RETRY_PERIOD_SECONDS"),
        ({"BACKENDAUTH_LEASE_DURATION_SECONDS": "-1"}, "BACKENDAUTH_LEASE_DURATION_SECONDS"),
        ({"BACKENDAUTH_LEADER_ELECTION": "maybe"}, "BACKENDAUTH_LEADER_ELECTION"),
        ({"BACKENDAUTH_LEADER_LEASE": "Not_A_Name"}, "BACKENDAUTH_LEADER_LEASE"),
    ],
)
def test_bad_election_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], variable: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_election_defaults_are_controller_runtimes(monkeypatch: pytest.MonkeyPatch) -> None:
    for suffix in ("LEADER_ELECTION", "LEADER_LEASE", "LEASE_DURATION_SECONDS", "RENEW_DEADLINE_SECONDS",
                   "RETRY_PERIOD_SECONDS"):  # fmt: skip
        monkeypatch.delenv(f"BACKENDAUTH_{suffix}", raising=False)
    settings = load_settings()
    assert settings.leader_election is True
    assert settings.leader_lease == "backendauth-operator-leader"
    assert (
        settings.lease_duration_seconds,
        settings.renew_deadline_seconds,
        settings.retry_period_seconds,
    ) == (
        15,
        10,
        2,
    )
