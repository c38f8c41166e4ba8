"""Kopf against the emulated API: a probe operator's create handler runs exactly once per object."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from backendauth_testbed.sandbox import EmulatedClusterThread, KubernetesAPI
from sandbox_helpers import API_VERSION, FIXTURES, Kubectl, backendauth, fixture_crd, wait_for

pytestmark = pytest.mark.integration
PROGRESS = "amplifybackend.gitops.dev/last-handled-configuration"


def objects(cluster: EmulatedClusterThread) -> dict[str, dict[str, Any]]:
    def read(api: KubernetesAPI) -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in api.list_objects(api.kind_of(API_VERSION, "BackendAuth"))}

    return cluster.call(read)


def handled(cluster: EmulatedClusterThread, names: list[str]) -> bool:
    """Kopf has run the handler and recorded it: status written, diff-base annotation stored."""
    current = objects(cluster)
    return all(
        name in current
        and current[name].get("status", {}).get("creates")
        and PROGRESS in current[name]["metadata"].get("annotations", {})
        for name in names
    )


@pytest.mark.parametrize("scope", [["-A"], ["-n", "default"]], ids=["all-namespaces", "one-namespace"])
def test_create_handler_runs_exactly_once_per_object(scope: list[str], tmp_path: Path) -> None:
    with EmulatedClusterThread(crds=[fixture_crd()]) as cluster:
        kubectl = Kubectl(cluster.write_kubeconfig(tmp_path / "config"), tmp_path / "cache")
        kubectl.apply(backendauth("early-1"), backendauth("early-2"))  # before the operator starts
        log_path = tmp_path / "kopf.log"
        with log_path.open("w") as log:
            kopf = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kopf",
                    "run",
                    "--standalone",
                    *scope,
                    "--verbose",
                    str(FIXTURES / "kopf_probe_operator.py"),
                ],
                env=kubectl.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(lambda: handled(cluster, ["early-1", "early-2"]), 30, "the early objects handled")
            kubectl.apply(backendauth("late-1"), backendauth("late-2"), backendauth("late-3"))
            wait_for(lambda: handled(cluster, ["late-1", "late-2", "late-3"]), 30, "the late objects handled")

            # Deleting goes through Kopf's finalizer: the object disappears once Kopf releases it.
            kubectl.run("delete", "backendauth", "late-3", "--wait=true", "--timeout=30s")
            # A sentinel: once it is handled, Kopf has also consumed the events caused earlier.
            kubectl.apply(backendauth("sentinel"))
            wait_for(lambda: handled(cluster, ["sentinel"]), 30, "the sentinel handled")
        finally:
            kopf.send_signal(signal.SIGINT)
            try:
                kopf.wait(20)
            finally:
                kopf.kill()
        output = log_path.read_text()

        final = objects(cluster)
        names = ["early-1", "early-2", "late-1", "late-2", "sentinel"]
        assert sorted(final) == sorted(names)
        for name in names:
            assert final[name]["status"]["creates"] == 1, name  # the handler ran once per object
            assert final[name]["status"]["conditions"][0]["type"] == "Ready"
            assert final[name]["metadata"]["finalizers"] == ["amplifybackend.gitops.dev/finalizer"]
            runs = re.findall(rf"\[default/{name}\] Handler 'create' succeeded", output)
            assert len(runs) == 1, f"{name}: {len(runs)} runs\n{output}"
        assert len(re.findall(r"\[default/late-3\] Handler 'delete' succeeded", output)) == 1
        assert "inconsistencies" not in output
        assert "Traceback" not in output
        described = kubectl.run("describe", "backendauth", "early-1").stdout
        assert "ProbeCreated" in described.split("Events:")[1]
