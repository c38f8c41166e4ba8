"""The integration test bed: the emulated Kubernetes API and the AmplifyBackend simulator, both
over real HTTP on 127.0.0.1, the real ``kubectl`` binary, and the real operator in a subprocess
(so that it can be SIGKILLed and restarted like a crashing pod)."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from backendauth_testbed.sandbox import EmulatedClusterThread
from backendauth_testbed.sandbox.dev import die_with_parent
from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
K8S_GO_MOD = REPO / "tests" / "kube" / "go.mod"

# Fast timings for tests; the production defaults are those of config.Settings
# (docs/reference/configuration.md).
OPERATOR_ENV = {
    "BACKENDAUTH_JOB_POLL_SECONDS": "0.3",
    "BACKENDAUTH_RETRY_BASE_SECONDS": "0.2",
    "BACKENDAUTH_RETRY_MAX_SECONDS": "1",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "BACKENDAUTH_METRICS_PORT": "0",  # off unless a test asks: operators come and go between tests
    "BACKENDAUTH_AWS_MAX_RPS": "200",  # the pace is tested on its own; here it would only slow tests
    # One operator at a time, unless a test runs more (tests/test_leader_real.py elects).
    "BACKENDAUTH_LEADER_ELECTION": "false",
}


def built_kubectl() -> Path | None:
    """The kubectl that ``tests/kube/build.sh`` built (None when it has not been built; this does
    not build it: ``tests/real_apiserver.py`` does)."""
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", K8S_GO_MOD.read_text(), re.M)
    if match is None:
        return None
    default_cache = Path.home() / ".cache" / "amplify-backendauth-operator"
    cache = Path(os.environ.get("BACKENDAUTH_K8S_CACHE") or default_cache)
    path = cache / f"k8s-{match.group(1)}" / "kubectl"
    return path if os.access(path, os.X_OK) else None


def kubectl_binary() -> str:
    """The kubectl the tests run: ``$BACKENDAUTH_KUBECTL``, else ``kubectl`` on PATH, else the one
    ``tests/kube/build.sh`` built; plain ``kubectl`` (failing clearly) when there is none."""
    if os.environ.get("BACKENDAUTH_KUBECTL"):
        return os.environ["BACKENDAUTH_KUBECTL"]
    found = shutil.which("kubectl") or built_kubectl()
    return str(found) if found else "kubectl"


def wait_until(check: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
        except AssertionError as error:
            last = error
        else:
            last = value
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(0.05)


class Operator:
    """``backendauth-operator run`` in a subprocess, with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        # One identity for each Operator, kept across its restarts, as a pod keeps its name
        # across container restarts.
        self.env = {"POD_NAME": f"test-operator-{secrets.token_hex(4)}", **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.args: list[str] = []  # extra arguments of `run`, e.g. --namespace

    def metrics(self) -> str:
        """The operator's /metrics page (the test must have set BACKENDAUTH_METRICS_PORT)."""
        url = f"http://127.0.0.1:{self.env['BACKENDAUTH_METRICS_PORT']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text: str = response.read().decode()
        return text

    def start(self) -> Operator:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"---- operator start #{self.starts} ----\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backendauth_operator.commands.cli", "run", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # no operator outlives a test run that is killed
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, no final patches, like a node dying."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def operator_env(kubeconfig: Path, aws_endpoint_url: str, **extra: str) -> dict[str, str]:
    """The operator's environment: this one without AWS_*/BACKENDAUTH_*, the fast test timings,
    the kubeconfig and the simulator's URL, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKENDAUTH_"))}
    env.update(OPERATOR_ENV, KUBECONFIG=str(kubeconfig), BACKENDAUTH_AWS_ENDPOINT_URL=aws_endpoint_url)
    env.update(extra)
    return env


class Bed:
    """One emulated cluster, one simulator, one operator; helpers to drive and observe them.

    ``namespace`` is where the helpers work; manifests that name ``default`` (those of
    :func:`backendauth` and :func:`secret`) are applied there, so scenarios written for the
    emulated bed (namespace ``default``) also run on a bed elsewhere (``tests/real_apiserver.py``).
    """

    namespace = "default"
    kubectl_path = kubectl_binary()

    def __init__(self, tmp: Path, crd: dict[str, Any], sim_config: SimulatorConfig) -> None:
        self.tmp = tmp
        self.cluster = EmulatedClusterThread(crds=[crd]).start()
        self.sim = SimulatorThread(sim_config)
        self.sim.start()
        self.kubeconfig = tmp / "kubeconfig"
        self.cluster.write_kubeconfig(self.kubeconfig)
        self.operator = Operator(operator_env(self.kubeconfig, self.sim.url), tmp / "operator.log")

    def close(self) -> None:
        self.operator.stop()
        self.sim.stop()
        self.cluster.stop()

    # ---- kubectl --------------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "KUBECACHEDIR": str(self.tmp / "kubecache")}
        result = subprocess.run(
            [self.kubectl_path, *args], input=input, capture_output=True, text=True, env=env, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def here(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """``manifest`` moved from namespace ``default`` into the bed's namespace."""
        if manifest.get("metadata", {}).get("namespace") != "default" or self.namespace == "default":
            return manifest
        return {**manifest, "metadata": {**manifest["metadata"], "namespace": self.namespace}}

    def apply(self, *manifests: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([self.here(m) for m in manifests]))

    def get(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        namespace = namespace or self.namespace
        out = self.kubectl("get", "backendauth", name, "-n", namespace, "-o", "json").stdout
        obj: dict[str, Any] = json.loads(out)
        return obj

    def condition(self, name: str, ctype: str = "Ready") -> dict[str, Any]:
        for condition in self.get(name).get("status", {}).get("conditions", []):
            if condition["type"] == ctype:
                return dict(condition)
        return {}

    def wait_reason(
        self, name: str, reason: str, status: str | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        """Wait until the object's conditions show ``reason`` (and Ready ``status`` if given)."""

        def check() -> dict[str, Any] | None:
            ready = self.condition(name)
            ok = ready.get("reason") == reason and (status is None or ready.get("status") == status)
            return self.get(name) if ok else None

        return wait_until(check, timeout, f"{name} to show {reason}")

    def events(self, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name}"
        out = self.kubectl(
            "get", "events", "-n", self.namespace, "--field-selector", selector, "-o", "json"
        ).stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    # ---- the simulator --------------------------------------------------------------------------

    def sim_post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.sim.url}/_sim/{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def calls(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.sim.url}/_sim/calls", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def state(self) -> dict[str, Any]:
        """The simulator's apps, jobs and auth resources (``resources`` keyed ``app/env/name``)."""
        with urllib.request.urlopen(f"{self.sim.url}/_sim/state", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def count(self, operation: str, resource: str | None = None) -> int:
        calls = self.calls()["calls"]
        return sum(1 for c in calls if c["operation"] == operation and resource in (None, c["resourceName"]))

    def fault(self, fault: str, operation: str = "CreateBackendAuth", count: int = 1) -> None:
        self.sim_post("faults", {"operation": operation, "fault": fault, "count": count})

    def clear_faults(self) -> None:
        self.sim_post("faults/clear", {})


def backendauth(name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A BackendAuth manifest."""
    metadata: dict[str, Any] = {"name": name, "namespace": "default"}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "amplifybackend.gitops.dev/v1alpha1", "kind": "BackendAuth", "metadata": metadata,
            "spec": spec}  # fmt: skip


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    """A Secret manifest (values base64-encoded into ``data``)."""
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
            "type": "Opaque", "data": encoded}  # fmt: skip
