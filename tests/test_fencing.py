"""Fencing, in one process: two operator contexts (two identities, as two pods would have) step
one BackendAuth on the emulated API with the simulator, from the same read of it. Whatever the
election says, exactly one CreateBackendAuth reaches AWS: the per-app/env turn names the process
that holds it, and the pending marker is written only to the version the step decided from.

And the turn's rules with identities, on the emulated API's Leases.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from backendauth_operator import GROUP, PLURAL, VERSION
from backendauth_operator.aws.clients import ClientFactory
from backendauth_operator.commands.crd import build_crd
from backendauth_operator.config import Settings
from backendauth_operator.kube.client import KubeClient
from backendauth_operator.kube.leases import Leases
from backendauth_operator.runtime.steps import OperatorContext, run_step
from backendauth_operator.runtime.workqueue import Poller
from backendauth_testbed.sandbox.cluster import EmulatedClusterThread
from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread
from harness import backendauth
from specs import minimal_spec

logger = logging.getLogger("test_fencing")
ME = "default/x/uid-x"
OTHER = "default/y/uid-y"


@dataclass
class World:
    api_client: Any
    kube: KubeClient
    sim: SimulatorThread

    def context(self, identity: str, takes_over: bool = False) -> OperatorContext:
        settings = Settings.model_validate(
            {
                "aws_endpoint_url": self.sim.url,
                "default_region": "eu-west-1",
                "retry_base_seconds": 0.1,
                "retry_max_seconds": 1,
                "leader_election": False,
            }
        )
        leases = Leases(self.api_client, "default", 600, identity=identity, takes_over=lambda: takes_over)
        return OperatorContext(
            settings=settings,
            clients=ClientFactory(self.sim.url),
            kube=self.kube,
            leases=leases,
            poller=Poller(1),
        )

    def creates(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.sim.url}/_sim/calls", timeout=10) as response:
            calls: list[dict[str, Any]] = json.loads(response.read())["calls"]
        return [c for c in calls if c["operation"] == "CreateBackendAuth"]

    def apply(self, name: str) -> dict[str, Any]:
        body = backendauth(name, minimal_spec(appId="fenceapp", resourceName=name))
        path = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
        self.kube.request("POST", path, body)
        return self.kube.get_backendauth("default", name)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("AWS_PROFILE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    cluster = EmulatedClusterThread(crds=[build_crd()]).start()
    sim = SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=30)).start()
    try:
        cluster.write_kubeconfig(tmp_path / "kubeconfig")
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(tmp_path / "kubeconfig"), client_configuration=configuration
        )
        api_client = kubernetes.client.ApiClient(configuration)
        yield World(api_client, KubeClient(api_client), sim)
    finally:
        sim.stop()
        cluster.stop()


def test_a_second_operator_stepping_from_the_same_read_neither_calls_nor_writes(world: World) -> None:
    obj = world.apply("fenced")
    first, second = world.context("pod-a"), world.context("pod-b")
    run_step(first, obj, logger)
    assert len(world.creates()) == 1
    late = run_step(second, obj, logger)  # the read from before the first operator's writes
    assert len(world.creates()) == 1, "the second operator sent a create"
    assert late.conflicted  # its outcome was refused: it reads and decides again
    status = world.kube.get_backendauth("default", "fenced")["status"]
    assert status["jobId"] == world.creates()[0]["jobId"]


def test_a_leader_taking_over_the_turn_still_cannot_write_a_marker_to_a_stale_version(world: World) -> None:
    obj = world.apply("stale")
    run_step(world.context("pod-a"), obj, logger)
    # The new leader takes every turn at once, but its step decided from a version that is gone.
    late = run_step(world.context("pod-b", takes_over=True), obj, logger)
    assert len(world.creates()) == 1
    assert late.conflicted


def test_after_a_fresh_read_the_second_operator_follows_the_first_ones_job(world: World) -> None:
    obj = world.apply("follow")
    run_step(world.context("pod-a"), obj, logger)
    fresh = world.kube.get_backendauth("default", "follow")
    run_step(world.context("pod-b"), fresh, logger)
    assert len(world.creates()) == 1
    after = world.kube.get_backendauth("default", "follow")["status"]
    assert after["jobId"] == world.creates()[0]["jobId"]


# ---- the turn's rules with identities --------------------------------------------------------


def leases(world: World, identity: str, takes_over: bool = False, grace: float = 150) -> Leases:
    return Leases(
        world.api_client, "default", 600, identity=identity, takes_over=lambda: takes_over, grace=grace
    )


KEY = ("eu-west-1", "turnapp", "dev")


def test_another_process_holding_the_same_objects_turn_keeps_it(world: World) -> None:
    a, b = leases(world, "pod-a"), leases(world, "pod-b")
    assert a.acquire(KEY, ME) is None
    assert b.acquire(KEY, ME) == f"{ME}@pod-a"
    assert b.held_elsewhere(KEY, ME) == "pod-a"
    b.release(KEY, ME)  # not fenced: left alone
    assert a.holder(KEY) == f"{ME}@pod-a"


def test_the_leader_takes_another_processs_turn_of_the_same_object_at_once(world: World) -> None:
    a, leader = leases(world, "pod-a"), leases(world, "pod-b", takes_over=True)
    assert a.acquire(KEY, ME) is None
    assert leader.held_elsewhere(KEY, ME) is None
    assert leader.acquire(KEY, ME) is None
    assert a.holder(KEY) == f"{ME}@pod-b"
    # Another object's turn is still that object's, whoever leads.
    assert leader.acquire(KEY, OTHER) == f"{ME}@pod-b"


def test_a_hold_older_than_the_grace_is_taken(world: World) -> None:
    a, b = leases(world, "pod-a"), leases(world, "pod-b", grace=0)
    assert a.acquire(KEY, ME) is None
    assert b.acquire(KEY, ME) is None


def test_a_disowned_turn_is_taken_by_the_same_object_only(world: World) -> None:
    a, b = leases(world, "pod-a"), leases(world, "pod-b")
    assert a.acquire(KEY, ME) is None
    a.disown()
    assert a.holder(KEY) == ME
    assert b.acquire(KEY, OTHER) == ME  # the job it guards may still run
    assert b.acquire(KEY, ME) is None


def test_a_fenced_release_frees_another_processs_hold_of_the_same_object(world: World) -> None:
    a, b = leases(world, "pod-a"), leases(world, "pod-b")
    assert a.acquire(KEY, ME) is None
    b.release(KEY, ME, fenced=True)
    assert b.holder(KEY) is None
