"""Two operators on one real kube-apiserver, with the AmplifyBackend simulator: leader election,
hand-over, and the fencing that keeps every auth resource created exactly once even when the
election is off (two operators that both act).

Each test runs ``backendauth-operator run`` processes of its own (stopped by their pids), in a
namespace of its own that also holds the Leases. Lease timings are shorter than the defaults
(6 s / 4 s / 1 s instead of 15 / 10 / 2): the claims are relative to them.

The rollover test's size, as one command:

    BACKENDAUTH_ROLLOVER_OBJECTS=200 .venv/bin/pytest tests/test_leader_real.py -k rollover -p no:timeout
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from harness import Operator, backendauth, operator_env, wait_until
from real_apiserver import RealBed, free_port, kubeconfig_text
from specs import minimal_spec

pytestmark = [pytest.mark.real_apiserver, pytest.mark.integration]

LEASE = "backendauth-operator-leader"
DURATION, RENEW_DEADLINE, RETRY = 6.0, 4.0, 1.0
ELECTION = {
    "BACKENDAUTH_LEASE_DURATION_SECONDS": str(DURATION),
    "BACKENDAUTH_RENEW_DEADLINE_SECONDS": str(RENEW_DEADLINE),
    "BACKENDAUTH_RETRY_PERIOD_SECONDS": str(RETRY),
}
OBJECTS = int(os.environ.get("BACKENDAUTH_ROLLOVER_OBJECTS", "100"))
PER_APP_ENV = 5
SEED = int(os.environ.get("BACKENDAUTH_CHAOS_SEED", str(random.randrange(1_000_000))))


class Candidates:
    """Operator processes of one bed, each with its own name (``POD_NAME``) and log."""

    def __init__(self, bed: RealBed) -> None:
        self.bed = bed
        self.all: list[Operator] = []

    def start(self, election: bool = True, kubeconfig: Path | None = None, **env: str) -> Operator:
        name = f"op-{len(self.all)}"
        operator = Operator(
            operator_env(
                kubeconfig or self.bed.kubeconfig,
                self.bed.sim.url,
                BACKENDAUTH_LEASE_NAMESPACE=self.bed.namespace,
                POD_NAME=name,
                BACKENDAUTH_LEADER_ELECTION="true" if election else "false",
                **ELECTION,
                **env,
            ),
            self.bed.tmp / f"{name}.log",
        )
        self.all.append(operator.start())
        return operator

    def name(self, operator: Operator) -> str:
        return operator.env["POD_NAME"]

    def stop_all(self) -> None:
        for operator in self.all:
            operator.stop()


@pytest.fixture
def candidates(make_real_bed: Callable[..., RealBed]) -> Iterator[Callable[..., Candidates]]:
    made: list[Candidates] = []

    def make(**sim: Any) -> Candidates:
        made.append(Candidates(make_real_bed(start_operator=False, **sim)))
        return made[-1]

    yield make
    for group in made:
        group.stop_all()


def up(operator: Operator) -> bool:
    """The operator has finished starting (Kopf logs this once it can watch)."""
    latest = operator.log.split(f"---- operator start #{operator.starts} ----")[-1]
    return "Initial authentication has finished" in latest


def leader(bed: RealBed) -> str | None:
    out = bed.kubectl("get", "lease", LEASE, "-o", "json", check=False)
    if out.returncode != 0:
        return None
    holder: str | None = json.loads(out.stdout)["spec"].get("holderIdentity")
    return holder


def metric(operator: Operator, name: str) -> float:
    """The sum of one metric's samples on the operator's /metrics page."""
    total = 0.0
    for line in operator.metrics().splitlines():
        if line.startswith(name) and re.match(rf"{re.escape(name)}(\{{| )", line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_mib(operator: Operator) -> float:
    """The operator process's resident memory now (a figure to print, not to assert)."""
    assert operator.process is not None
    for line in Path(f"/proc/{operator.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def manifests(count: int, prefix: str = "ba") -> list[dict[str, Any]]:
    return [
        backendauth(
            f"{prefix}-{i:03d}",
            minimal_spec(
                appId=f"{prefix}app{i // PER_APP_ENV:03d}",
                backendEnvironmentName="dev",
                resourceName=f"{prefix}{i:03d}",
            ),
        )
        for i in range(count)
    ]


def ready_items(bed: RealBed, count: int) -> list[dict[str, Any]] | None:
    out = bed.kubectl("get", "backendauths", "-o", "json", check=False)
    if out.returncode != 0:
        return None
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]

    def is_ready(item: dict[str, Any]) -> bool:
        conditions = item.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    return items if len(items) == count and all(is_ready(i) for i in items) else None


def assert_created_once_and_no_foreign_jobs(bed: RealBed, items: list[dict[str, Any]]) -> None:
    """Each auth resource: exactly one CreateBackendAuth carried out by AWS (the simulator's
    call log: refused-for-a-pending-job creates count, injected 429s and plain 504s do not, as
    AWS never saw them), one create job, and no status showing another resource's job."""
    calls = bed.calls()["calls"]
    executed = Counter(
        c["resourceName"]
        for c in calls
        if c["operation"] == "CreateBackendAuth" and c["fault"] in (None, "ambiguous")
    )
    state = bed.state()
    jobs = Counter(j["resourceName"] for j in state["jobs"] if j["operation"] == "CreateBackendAuth")
    owner = {j["jobId"]: j["resourceName"] for j in state["jobs"]}
    twice = {r: n for r, n in executed.items() if n != 1}
    assert not twice, f"creates carried out more than once: {twice}"
    for item in items:
        resource = item["spec"]["resourceName"]
        assert executed[resource] == 1 and jobs[resource] == 1, f"{resource}: {executed[resource]} creates"
        job_id = item["status"].get("jobId")
        if job_id:
            assert owner.get(job_id) == resource, (
                f"{item['metadata']['name']} shows {owner.get(job_id)}'s job"
            )


@pytest.mark.timeout(900)
@pytest.mark.parametrize("election", [True, False], ids=["election", "no-election-fencing"])
def test_rollover_of_two_operators_creates_each_resource_once(
    candidates: Callable[..., Candidates], election: bool
) -> None:
    """Two operators at once; every few seconds a new one starts and, once up, the oldest gets
    SIGTERM (a rolling update, over and over). With the election off both act at once: only
    the fencing (conditional marker and record, per-process turns) keeps creates single."""
    rng = random.Random(SEED)
    print(f"rollover seed {SEED}, {OBJECTS} BackendAuths, election {election}")
    # Jobs of 2 s, five in turn per app/env: the work spans several rollovers.
    group = candidates(seed=SEED, job_seconds=2, throttle_rate=0.1, timeout_rate=0.1, ambiguous_rate=0.1)
    bed = group.bed
    running = [group.start(election), group.start(election)]
    wait_until(lambda: all(up(o) for o in running), 90, "two operators up")
    bed.apply(*manifests(OBJECTS))

    deadline = time.monotonic() + 600
    rollovers = 0
    items = None
    while items is None:
        assert time.monotonic() < deadline, f"not all Ready after {rollovers} rollovers (seed {SEED})"
        pause_until = time.monotonic() + rng.uniform(1.0, 4.0)
        while items is None and time.monotonic() < pause_until:
            items = ready_items(bed, OBJECTS)
        if items is None:
            fresh = group.start(election)
            wait_until(lambda fresh=fresh: up(fresh), 90, "the new operator up")  # type: ignore[misc]
            running.pop(0).stop()  # SIGTERM, as a rolling update does
            running.append(fresh)
            rollovers += 1
    print(f"rollover: {OBJECTS} Ready after {rollovers} rollovers")
    group.stop_all()
    assert_created_once_and_no_foreign_jobs(bed, items)


@pytest.mark.timeout(300)
def test_a_standby_takes_over_after_the_leader_is_killed_and_at_once_after_a_sigterm(
    candidates: Callable[..., Candidates],
) -> None:
    group = candidates(job_seconds=0.5)
    bed = group.bed
    first = group.start()
    wait_until(lambda: leader(bed) == group.name(first), 60, "the first operator leading")
    second = group.start()
    wait_until(lambda: up(second), 60, "the standby up")
    bed.apply(*manifests(5, "before"))
    wait_until(lambda: ready_items(bed, 5), 90, "Ready under the first leader")
    print(f"resident memory: leader {rss_mib(first):.0f} MiB, standby {rss_mib(second):.0f} MiB")

    killed = time.monotonic()
    first.kill()
    wait_until(lambda: leader(bed) == group.name(second), DURATION * 3, "the standby leading")
    failover = time.monotonic() - killed
    print(f"failover after SIGKILL: {failover:.1f}s (lease {DURATION:g}s, retry {RETRY:g}s)")
    assert failover <= DURATION + RETRY * 1.2 + 1.5
    bed.apply(*manifests(5, "after"))
    wait_until(lambda: ready_items(bed, 10), 90, "Ready under the new leader")

    third = group.start()
    wait_until(lambda: up(third), 60, "a new standby up")
    stopped = time.monotonic()
    second.stop()  # SIGTERM: the Lease is released, not left to run out
    wait_until(lambda: leader(bed) == group.name(third), DURATION * 3, "the new standby leading")
    handover = time.monotonic() - stopped
    print(f"hand-over after SIGTERM: {handover:.1f}s")
    assert handover < DURATION
    assert "released the leader Lease" in second.log
    assert f"The leader is {group.name(second)}" in third.log  # the standby named the leader
    items = wait_until(lambda: ready_items(bed, 10), 30, "all Ready")
    assert_created_once_and_no_foreign_jobs(bed, items)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("ending", ["SIGKILL", "SIGTERM"])
def test_a_job_running_when_the_leader_goes_is_followed_by_the_new_leader_to_ready(
    candidates: Callable[..., Candidates], ending: str
) -> None:
    """A BackendAuth created while the other operator stands by; the leader submits its create
    and goes (killed, or a rolling update's SIGTERM) while the job runs. The new leader polls
    that job until it ends: Ready, with one create."""
    group = candidates(job_seconds=0.5)
    bed = group.bed
    first = group.start()
    wait_until(lambda: leader(bed) == group.name(first), 60, "the first operator leading")
    second = group.start()
    wait_until(lambda: up(second), 60, "the standby up")
    bed.sim.call(lambda s: s.backend.hold(True))  # jobs stay RUNNING until released
    try:
        bed.apply(*manifests(1, "during"))

        def submitted() -> bool:
            out = bed.kubectl("get", "backendauth", "during-000", "-o", "json", check=False)
            return out.returncode == 0 and bool(json.loads(out.stdout).get("status", {}).get("jobId"))

        wait_until(submitted, 60, "the create job submitted by the leader")
        if ending == "SIGKILL":
            first.kill()
        else:
            first.stop()
        wait_until(lambda: leader(bed) == group.name(second), DURATION * 3, "the standby leading")
    finally:
        bed.sim.call(lambda s: s.backend.hold(False))
    items = wait_until(lambda: ready_items(bed, 1), 60, "Ready under the new leader")
    assert_created_once_and_no_foreign_jobs(bed, items)


class Blackhole:
    """A TCP forwarder to ``target`` that can stop answering: after :meth:`cut`, bytes in either
    direction are read and dropped, and new connections are accepted but never served."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.cut_off = threading.Event()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.cut_off.is_set():
                threading.Thread(target=self._pump, args=(client, None), daemon=True).start()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        try:
            while data := source.recv(65536):
                if sink is not None and not self.cut_off.is_set():
                    sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        self.cut_off.set()

    def close(self) -> None:
        self.closed.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.mark.timeout(300)
def test_a_leader_cut_off_from_the_api_server_stops_acting_before_its_lease_can_be_taken(
    candidates: Callable[..., Candidates],
) -> None:
    group = candidates(job_seconds=0.5)
    bed = group.bed
    server = urlparse(bed.real.server)
    hole = Blackhole((str(server.hostname), int(server.port or 443)))
    try:
        kubeconfig = bed.tmp / "through-the-hole"
        kubeconfig.write_text(
            kubeconfig_text(f"https://127.0.0.1:{hole.port}", bed.real.token, bed.real.ca_file, bed.namespace)
        )
        cut_one = group.start(kubeconfig=kubeconfig, BACKENDAUTH_METRICS_PORT=str(free_port()))
        wait_until(lambda: leader(bed) == group.name(cut_one), 60, "the operator behind the hole leading")
        other = group.start()
        wait_until(lambda: up(other), 60, "the standby up")
        bed.apply(*manifests(5, "before"))
        wait_until(lambda: ready_items(bed, 5), 90, "Ready under the first leader")
        assert metric(cut_one, "backendauth_leader") == 1

        cut = time.monotonic()
        hole.cut()
        wait_until(
            lambda: metric(cut_one, "backendauth_leader") == 0, RENEW_DEADLINE * 3, "the leader stopping"
        )
        stopped = time.monotonic()
        calls_when_stopped = metric(cut_one, "backendauth_aws_calls_total")
        # The Lease cannot have been taken yet: the cut-off leader stopped first.
        assert leader(bed) == group.name(cut_one)
        wait_until(lambda: leader(bed) == group.name(other), DURATION * 3, "the standby leading")
        taken = time.monotonic()
        print(
            f"cut-off leader stopped after {stopped - cut:.1f}s; the Lease was taken after {taken - cut:.1f}s"
        )
        assert stopped - cut <= RENEW_DEADLINE + 1.5

        bed.apply(*manifests(5, "after"))
        items = wait_until(lambda: ready_items(bed, 10), 90, "Ready under the new leader")
        assert metric(cut_one, "backendauth_aws_calls_total") == calls_when_stopped
        assert_created_once_and_no_foreign_jobs(bed, items)
        assert "stopped leading" in cut_one.log
    finally:
        group.stop_all()
        hole.close()
