"""The operator's image as a Pod on a real node, installed as users install it.

One node for the module (``tests/real_node.py``): kubelet, containerd and runc, with etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy, all built or installed by
``tests/node/build.sh``; the image from ``tests/docker/image.sh``. The AmplifyBackend simulator
runs in this process, listening on the node's bridge gateway, which is the host as Pods see it.

- ``kubectl apply -k`` of a kustomization that takes ``deploy/`` as it is and sets only the image
  tag, ``imagePullPolicy: Never``, the simulator's endpoint, dummy AWS keys and short poll
  intervals; then, after it is removed, ``helm install`` of the chart. Each brings the operator
  Pod to Ready in a namespace whose Pod Security level is ``restricted``;
- every example BackendAuth reaches Ready, each AWS resource created once, and the API server's
  audit log shows the operator's writes made by its ServiceAccount, from the Pod's address;
- ``kubectl rollout restart`` and deleting the Pod while a job runs (the simulator holds jobs)
  leave every BackendAuth Ready, still created once;
- deleting a BackendAuth lets the controller-manager's garbage collector delete its outputs
  ConfigMap;
- with kube-proxy stopped and its rules removed (the Pods' path to the API server, the
  ``kubernetes`` Service, gone), every operator Pod is ``0/1``, its log and ``/readyz`` name the
  API server and say it cannot be reached, liveness keeps passing; once kube-proxy runs again,
  both are ``1/1`` and a BackendAuth applied meanwhile becomes Ready.

Needs root on Linux; skipped otherwise with the reason, or when something cannot be built, but
under ``CI=true`` never skipped: it fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread
from real_apiserver import REPO, Unavailable, in_ci
from real_node import GATEWAY, IMAGE, RealNode, node_fixture, poll
from tools.built import built_tool

pytestmark = [pytest.mark.real_node, pytest.mark.timeout(600)]

SYSTEM = "backendauth-system"  # deploy/'s namespace
HELM_NAMESPACE = "backendauth-helm"
EXAMPLES_NAMESPACE = "examples"
KIND_ID = ("amplifybackend.gitops.dev/v1alpha1", "BackendAuth")
RESTRICTED = "pod-security.kubernetes.io/enforce"
TAG = IMAGE.split(":")[1]
LEADER_LEASE = (
    "backendauth-operator-leader"  # BACKENDAUTH_LEADER_LEASE's default, in the operator's namespace
)
WAIT = 180  # seconds for a Pod or a BackendAuth to become Ready on a busy 2-core machine


# ---- the node, the simulator, the installs ----------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    workdir = tmp_path_factory.mktemp("real-node")
    nodes = node_fixture(workdir)
    try:
        started = next(nodes)
    except Unavailable as error:
        if in_ci():
            pytest.fail(f"a real node is required under CI=true: {error}")
        pytest.skip(f"no real node here: {error}")
    yield started
    next(nodes, None)


@pytest.fixture(scope="module")
def sim(node: RealNode) -> Iterator[SimulatorThread]:
    """The AmplifyBackend simulator, where the node's Pods reach the host."""
    with SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=2), host=GATEWAY) as simulator:
        yield simulator


def creates(sim: SimulatorThread) -> dict[str, int]:
    """CreateBackendAuth calls per app/env/resource (the simulator's GET /_sim/calls)."""
    calls = sim.call(lambda s: s.backend.summary())
    return {key: ops.get("CreateBackendAuth", 0) for key, ops in calls["byResource"].items()}


def imports(sim: SimulatorThread) -> dict[str, int]:
    """ImportBackendAuth calls per app/env (Amplify, not the spec, names an imported resource)."""
    calls = sim.call(lambda s: s.backend.summary())["calls"]
    found: dict[str, int] = {}
    for call in calls:
        if call["operation"] == "ImportBackendAuth":
            key = f"{call['appId']}/{call['backendEnvironmentName']}"
            found[key] = found.get(key, 0) + 1
    return found


def resource_key(doc: dict[str, Any]) -> str:
    spec = doc["spec"]
    return f"{spec['appId']}/{spec['backendEnvironmentName']}/{spec['resourceName']}"


def imported(doc: dict[str, Any]) -> bool:
    return "import" in doc["spec"]


class Install:
    """The operator installed one way, in its namespace, with its ServiceAccount."""

    def __init__(
        self, node: RealNode, how: str, namespace: str, service_account: str, folder: Path | None = None
    ) -> None:
        self.node, self.how, self.namespace, self.service_account = node, how, namespace, service_account
        self.folder = folder  # the kustomization applied, for `kubectl delete -k`

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def pods(self) -> list[dict[str, Any]]:
        """The operator's Pods that are not being deleted, newest first."""
        items = self.node.cluster.get_json(
            "pods", "-n", self.namespace, "-l", "app.kubernetes.io/name=backendauth-operator"
        )["items"]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return sorted(live, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)

    def ready_pod(self) -> dict[str, Any]:
        """Wait until every replica of the operator is Ready and one of them holds the leader
        Lease; return the leader's Pod (the one that acts)."""

        def ready() -> dict[str, Any] | None:
            self.node.check_processes()
            pods = self.pods()
            wanted = self.node.cluster.get_json("deployment", "backendauth-operator", "-n", self.namespace)
            if len(pods) != wanted["spec"]["replicas"]:
                return None
            for pod in pods:
                conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
                if conditions.get("Ready") != "True":
                    return None
            lease = self.node.kubectl(
                "get", "lease", LEADER_LEASE, "-n", self.namespace, "-o", "jsonpath={.spec.holderIdentity}",
                check=False,
            ).stdout.strip()  # fmt: skip
            return next((pod for pod in pods if pod["metadata"]["name"] == lease), None)

        try:
            pod: dict[str, Any] = poll(
                ready, f"the operator Pods in {self.namespace} to be Ready, one leading", WAIT, 1
            )
        except AssertionError:
            print(self.diagnostics())
            raise
        return pod

    def diagnostics(self) -> str:
        out = []
        for args in (
            ("get", "pods,deployments,replicasets", "-A", "-o", "wide"),
            ("get", "backendauths", "-A", "-o", "yaml"),
            ("get", "events", "-A", "--sort-by=.lastTimestamp"),
            ("logs", "-n", self.namespace, "-l", "app.kubernetes.io/name=backendauth-operator", "--tail=200"),
        ):
            result = self.node.kubectl(*args, check=False)
            out.append(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
        return "\n".join(out) + "\n" + self.node.logs()


def kustomization(folder: Path, endpoint: str) -> Path:
    """deploy/ as it is, with the test image, its pull policy, the simulator and dummy keys."""
    folder.mkdir()
    patch = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "backendauth-operator", "namespace": SYSTEM},
        "spec": {"template": {"spec": {"containers": [{
            "name": "operator", "imagePullPolicy": "Never",
            "env": [
                {"name": "BACKENDAUTH_AWS_ENDPOINT_URL", "value": endpoint},
                {"name": "AWS_ACCESS_KEY_ID", "value": "node-test-dummy"},
                {"name": "AWS_SECRET_ACCESS_KEY", "value": "node-test-dummy"},
                {"name": "BACKENDAUTH_JOB_POLL_SECONDS", "value": "1"},
                {"name": "BACKENDAUTH_RETRY_BASE_SECONDS", "value": "1"},
            ],
        }]}}},
    }  # fmt: skip
    (folder / "operator.yaml").write_text(yaml.safe_dump(patch))
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes other kustomizations by relative path only.
        "resources": [os.path.relpath(REPO / "deploy", folder)],
        "images": [{"name": "backendauth-operator", "newTag": TAG}],
        "patches": [{"path": "operator.yaml"}],
    }))  # fmt: skip
    return folder


def example_documents() -> list[dict[str, Any]]:
    """Every manifest of examples/ (not examples/invalid/), in EXAMPLES_NAMESPACE unless named."""
    docs = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc.setdefault("metadata", {}).setdefault("namespace", EXAMPLES_NAMESPACE)
                docs.append(doc)
    return docs


def backendauths(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if (d.get("apiVersion"), d.get("kind")) == KIND_ID]


@dataclass
class State:
    """What the module's tests share: the current install and the BackendAuths applied."""

    install: Install | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def state() -> State:
    return State()


@pytest.fixture(scope="module")
def kustomized(
    node: RealNode, sim: SimulatorThread, state: State, tmp_path_factory: pytest.TempPathFactory
) -> Install:
    """``kubectl apply -k`` of deploy/ (through a kustomization of the test's) and its Pod Ready."""
    folder = kustomization(tmp_path_factory.mktemp("kustomize") / "install", sim.url)
    # The CRD first, Established, so that nothing races its registration.
    node.kubectl("apply", "-k", str(folder), "--server-side")
    node.kubectl("wait", "--for=condition=Established", "crd/backendauths.amplifybackend.gitops.dev")
    state.install = Install(node, "kustomize", SYSTEM, "backendauth-operator", folder)
    state.install.ready_pod()
    return state.install


@pytest.fixture(scope="module")
def examples(node: RealNode, kustomized: Install, sim: SimulatorThread, state: State) -> list[dict[str, Any]]:
    """Every example applied and Ready under the kustomize install."""
    docs = example_documents()
    node.kubectl("create", "namespace", EXAMPLES_NAMESPACE)
    # examples/import.yaml links pools made outside Amplify, whose ids it reads from ConfigMap
    # existing-pools in its namespace (as `backendauth-operator dev` seeds them); the operator's
    # region is AWS's default here, as deploy/ sets none.
    pools = sim.call(
        lambda s: s.backend.seed_pools(
            {"region": "us-east-1", "userPoolName": "existing", "identityPool": {"name": "existing_ids"}}
        )
    )
    clients = pools["clients"]
    ids = {"userPoolId": pools["userPoolId"], "webClientId": clients["web"],
           "nativeClientId": clients["native"], "identityPoolId": pools["identityPoolId"]}  # fmt: skip
    for namespace in sorted({d["metadata"]["namespace"] for d in backendauths(docs) if imported(d)}):
        node.cluster.apply({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "existing-pools", "namespace": namespace}, "data": ids,
        })  # fmt: skip
    others = [d for d in docs if (d.get("apiVersion"), d.get("kind")) != KIND_ID]
    if others:  # Secrets before the BackendAuths that refer to them
        node.cluster.apply(*others)
    node.cluster.apply(*backendauths(docs))
    state.examples = backendauths(docs)
    wait_ready(kustomized, state.examples)
    return state.examples


def wait_ready(install: Install, auths: list[dict[str, Any]]) -> None:
    for namespace in sorted({d["metadata"]["namespace"] for d in auths}):
        names = [d["metadata"]["name"] for d in auths if d["metadata"]["namespace"] == namespace]
        result = install.node.kubectl(
            "wait", "--for=condition=Ready", "-n", namespace, *(f"backendauth/{n}" for n in names),
            f"--timeout={WAIT}s", check=False, timeout=WAIT + 10,
        )  # fmt: skip
        if result.returncode != 0:
            raise AssertionError(f"not Ready: {result.stderr}\n{install.diagnostics()}")


def assert_created_once(sim: SimulatorThread, auths: list[dict[str, Any]]) -> None:
    """Each BackendAuth's CreateBackendAuth (or, for an import, ImportBackendAuth) sent once."""
    counts, linked = creates(sim), imports(sim)
    for doc in auths:
        if imported(doc):
            key = f"{doc['spec']['appId']}/{doc['spec']['backendEnvironmentName']}"
            assert linked.get(key) == 1, (
                f"{doc['metadata']['name']}: {linked.get(key)} ImportBackendAuth calls"
            )
        else:
            assert counts.get(resource_key(doc)) == 1, (
                f"{doc['metadata']['name']}: {counts.get(resource_key(doc))} CreateBackendAuth calls"
            )


# ---- kustomize ----------------------------------------------------------------------------------------


def test_kustomize_install_runs_the_operator_pod_under_the_restricted_profile(
    node: RealNode, kustomized: Install
) -> None:
    labels = node.cluster.get_json("namespace", SYSTEM)["metadata"]["labels"]
    assert labels.get(RESTRICTED) == "restricted"
    pod = kustomized.ready_pod()
    assert pod["spec"]["nodeName"] == "backendauth-node"
    assert pod["spec"]["serviceAccountName"] == "backendauth-operator"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == IMAGE and container["imagePullPolicy"] == "Never"
    assert container["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # Only dummy keys and the endpoint were added: no credentials of the cluster in its env.
    assert not any("TOKEN" in e["name"] or "KUBECONFIG" in e["name"] for e in container.get("env", []))


def test_examples_become_ready_each_created_once_by_the_service_account(
    node: RealNode, kustomized: Install, examples: list[dict[str, Any]], sim: SimulatorThread
) -> None:
    assert_created_once(sim, examples)
    pod = kustomized.ready_pod()
    assert all(s["restartCount"] == 0 for s in pod["status"]["containerStatuses"])
    # Who wrote the BackendAuths' status: the operator, as its ServiceAccount, from its Pod.
    writes = [
        e for e in node.cluster.audit()
        if e.get("objectRef", {}).get("resource") == "backendauths"
        and e["objectRef"].get("subresource") == "status" and e["verb"] in ("patch", "update")
    ]  # fmt: skip
    assert writes, "no status write in the audit log"
    users = {e["user"]["username"] for e in writes}
    assert users == {kustomized.user}, users
    print(node.kubectl("get", "pods", "-n", SYSTEM, "-o", "wide").stdout)  # shown with pytest -s
    print(node.kubectl("get", "backendauths", "-A").stdout)
    # The metrics Service answers through kube-proxy (its ClusterIP, from the host), from either
    # replica; the leader's own metrics (its Pod IP) count one ok create (or import) per example.
    service = node.cluster.get_json("service", "backendauth-operator-metrics", "-n", SYSTEM)["spec"]
    port = service["ports"][0]["port"]
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from the env
    with direct.open(f"http://{service['clusterIP']}:{port}/metrics", timeout=10) as response:
        assert "backendauth_leader " in response.read().decode()
    with direct.open(f"http://{pod['status']['podIP']}:{port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert "backendauth_leader 1.0" in metrics

    def ok(operation: str) -> float:
        return sum(
            s.value
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
            if s.name == "backendauth_aws_calls_total"
            and s.labels.get("operation") == operation
            and s.labels.get("outcome") == "ok"
        )

    linked = [d for d in examples if imported(d)]
    assert linked, "examples/ has an import"
    sent = {"CreateBackendAuth": ok("CreateBackendAuth"), "ImportBackendAuth": ok("ImportBackendAuth")}
    assert sent == {"CreateBackendAuth": len(examples) - len(linked), "ImportBackendAuth": len(linked)}, sent
    pod_ips = {ip["ip"] for p in kustomized.pods() for ip in p["status"]["podIPs"]}
    assert {e["sourceIPs"][0] for e in writes} <= pod_ips, (pod_ips, writes[-1]["sourceIPs"])


def test_a_rollout_restart_keeps_every_backendauth_ready_without_a_second_create(
    node: RealNode, kustomized: Install, examples: list[dict[str, Any]], sim: SimulatorThread, state: State
) -> None:
    old = kustomized.ready_pod()["metadata"]["name"]
    node.kubectl("rollout", "restart", "-n", SYSTEM, "deployment/backendauth-operator")
    node.kubectl("rollout", "status", "-n", SYSTEM, "deployment/backendauth-operator", f"--timeout={WAIT}s",
                 timeout=WAIT + 10)  # fmt: skip
    new = kustomized.ready_pod()
    assert new["metadata"]["name"] != old
    # The new Pod works: a BackendAuth made now becomes Ready too.
    auth = user_pool_auth("after-restart", EXAMPLES_NAMESPACE, "restart")
    node.cluster.apply(auth)
    state.examples = [*state.examples, auth]
    wait_ready(kustomized, state.examples)
    assert_created_once(sim, state.examples)


def user_pool_auth(name: str, namespace: str, env: str) -> dict[str, Any]:
    """A small BackendAuth of its own app environment."""
    pool = name.replace("-", "")
    return {
        "apiVersion": "amplifybackend.gitops.dev/v1alpha1", "kind": "BackendAuth",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"appId": "d1a2b3c4d5e6f7", "backendEnvironmentName": env, "resourceName": pool,
                 "resourceConfig": {"authResources": "USER_POOL_ONLY", "service": "COGNITO",
                                    "userPoolConfigs": {"userPoolName": pool, "signInMethod": "EMAIL",
                                                        "requiredSignUpAttributes": ["EMAIL"]}}},
    }  # fmt: skip


def test_deleting_the_pod_while_a_job_runs_ends_ready_with_one_create(
    node: RealNode, kustomized: Install, examples: list[dict[str, Any]], sim: SimulatorThread, state: State
) -> None:
    auth = user_pool_auth("during-job", EXAMPLES_NAMESPACE, "jobs")
    sim.call(lambda s: s.backend.hold(True))  # the job stays RUNNING until released
    try:
        node.cluster.apply(auth)
        poll(lambda: creates(sim).get(resource_key(auth)) == 1, "the CreateBackendAuth call", WAIT)
        old = kustomized.ready_pod()["metadata"]["name"]
        conditions = node.cluster.get_json("backendauth", "during-job", "-n", EXAMPLES_NAMESPACE)
        ready = [c for c in conditions.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        assert not ready or ready[0]["status"] != "True", "Ready before its job ended"
        # The leader goes: the standby takes the Lease over and finds the job running.
        node.kubectl("delete", "pod", "-n", SYSTEM, old, "--wait=false")
        poll(
            lambda: old not in [p["metadata"]["name"] for p in kustomized.pods()],
            "the leader Pod to go",
            WAIT,
        )
        new = kustomized.ready_pod()
        assert new["metadata"]["name"] != old
    finally:
        sim.call(lambda s: s.backend.hold(False))
    state.examples = [*state.examples, auth]
    wait_ready(kustomized, state.examples)
    assert_created_once(sim, state.examples)


def test_deleting_a_backendauth_garbage_collects_its_outputs_configmap(
    node: RealNode, kustomized: Install, examples: list[dict[str, Any]]
) -> None:
    (doc,) = [d for d in examples if d["spec"].get("outputs", {}).get("configMapName") and not imported(d)]
    namespace, name = doc["metadata"]["namespace"], doc["spec"]["outputs"]["configMapName"]
    configmap = node.cluster.get_json("configmap", name, "-n", namespace)
    (owner,) = configmap["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("BackendAuth", doc["metadata"]["name"])
    node.kubectl("delete", "backendauth", doc["metadata"]["name"], "-n", namespace, f"--timeout={WAIT}s",
                 timeout=WAIT + 10)  # fmt: skip
    poll(
        lambda: node.kubectl("get", "configmap", name, "-n", namespace, check=False).returncode != 0,
        f"the garbage collector to delete configmap {name}", WAIT,
    )  # fmt: skip
    # The garbage collector did it, not the operator.
    deletes = [
        e for e in node.cluster.audit()
        if e["verb"] == "delete" and e.get("objectRef", {}).get("resource") == "configmaps"
        and e["objectRef"].get("name") == name
    ]  # fmt: skip
    users = {e["user"]["username"] for e in deletes}
    assert users == {"system:serviceaccount:kube-system:generic-garbage-collector"}, users


def pod_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def restarts(pods: list[dict[str, Any]]) -> dict[str, int]:
    return {
        p["metadata"]["name"]: sum(s["restartCount"] for s in p["status"]["containerStatuses"]) for p in pods
    }


def readyz(pod: dict[str, Any]) -> tuple[int, str]:
    """``/readyz`` of the Pod, from the host (the Pod's address on the bridge)."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(f"http://{pod['status']['podIP']}:8080/readyz", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_without_kube_proxy_the_pods_are_not_ready_and_say_why_then_resume(
    node: RealNode, kustomized: Install, examples: list[dict[str, Any]], sim: SimulatorThread, state: State
) -> None:
    """kube-proxy stopped and its rules gone: the Pods cannot reach the API server through the
    ``kubernetes`` Service. Each Pod shows 0/1 and its log says why; liveness keeps passing; both
    come back, and work resumes, once kube-proxy runs again."""
    kustomized.ready_pod()
    before = restarts(kustomized.pods())
    server = "https://10.0.0.1:443"  # the kubernetes Service, as the Pods see it
    auth = user_pool_auth("during-cut", EXAMPLES_NAMESPACE, "cut")
    node.cut_kube_proxy()
    cut = time.monotonic()
    try:

        def not_ready() -> list[dict[str, Any]] | None:
            pods = kustomized.pods()
            return pods if len(pods) == len(before) and not any(pod_ready(p) for p in pods) else None

        try:
            pods = poll(not_ready, "every operator Pod to be 0/1 without kube-proxy", 45, 1)
        except AssertionError:
            print(kustomized.diagnostics())
            raise
        unready_after = time.monotonic() - cut
        node.cluster.apply(auth)
        state.examples = [*state.examples, auth]
        for pod in pods:
            name = pod["metadata"]["name"]
            log = node.kubectl("logs", "-n", SYSTEM, name).stdout
            assert f"The Kubernetes API server {server} cannot be reached" in log, (name, log[-3000:])
            code, body = readyz(pod)
            assert code == 503 and f"{server} cannot be reached" in body, (name, code, body)
        print(node.kubectl("get", "pods", "-n", SYSTEM).stdout)  # shown with pytest -s
        # The node itself stays Ready: kubelet talks to the API server directly.
        conditions = node.cluster.get_json("node", "backendauth-node")["status"]["conditions"]
        assert {c["type"]: c["status"] for c in conditions}["Ready"] == "True"
    finally:
        node.restore_kube_proxy()
    back = time.monotonic()
    kustomized.ready_pod()  # every replica 1/1 again, one leading
    pods_back_after = time.monotonic() - back
    result = node.kubectl(
        "wait", "--for=condition=Ready", "-n", EXAMPLES_NAMESPACE, "backendauth/during-cut", "--timeout=45s",
        check=False, timeout=55,
    )  # fmt: skip
    assert result.returncode == 0, f"not Ready within 45s of kube-proxy's return\n{kustomized.diagnostics()}"
    ready_after = time.monotonic() - back
    # Liveness kept passing: no restart, no failed liveness probe; readiness said why.
    assert restarts(kustomized.pods()) == before
    events = node.cluster.get_json("events", "-n", SYSTEM, "--field-selector", "reason=Unhealthy")["items"]
    messages = [e["message"] for e in events if e["involvedObject"]["name"] in before]
    assert not [m for m in messages if m.startswith("Liveness")], messages
    assert [m for m in messages if m.startswith("Readiness probe failed") and "503" in m], messages
    assert_created_once(sim, state.examples)
    print(
        f"0/1 after {unready_after:.0f}s of the cut; after kube-proxy's return: 1/1 after "
        f"{pods_back_after:.0f}s, the BackendAuth applied during the cut Ready after {ready_after:.0f}s"
    )


# ---- helm -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    return built_tool(["bash", str(REPO / "tests" / "tools" / "build.sh"), "helm"], "helm", 1800)


def helm(node: RealNode, binary: Path, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="backendauth-helm-home-") as home:
        env = {**os.environ, "HOME": home, "XDG_CACHE_HOME": f"{home}/cache",
               "XDG_CONFIG_HOME": f"{home}/config", "XDG_DATA_HOME": f"{home}/data",
               "KUBECONFIG": str(node.cluster.kubeconfig)}  # fmt: skip
        result = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def uninstall_kustomized(node: RealNode, state: State) -> None:
    """Remove the kustomize install and what it managed (the BackendAuths first, while it runs)."""
    install = state.install
    if install is None or install.how != "kustomize":
        return
    for namespace in sorted({d["metadata"]["namespace"] for d in state.examples}):
        node.kubectl(
            "delete", "backendauths", "--all", "-n", namespace, f"--timeout={WAIT}s", timeout=WAIT + 10
        )
    node.kubectl("delete", "-k", str(install.folder), "--wait=true", f"--timeout={WAIT}s", timeout=WAIT + 10)
    state.install, state.examples = None, []


def test_helm_install_brings_backendauths_to_ready_as_the_service_account(
    node: RealNode, sim: SimulatorThread, state: State, helm_binary: Path, tmp_path: Path
) -> None:
    uninstall_kustomized(node, state)
    namespace = {"name": HELM_NAMESPACE, "labels": {RESTRICTED: "restricted"}}
    node.cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": namespace})
    values = {
        "image": {"tag": TAG, "pullPolicy": "Never"},
        "aws": {"endpointUrl": sim.url},
        "operator": {"jobPollSeconds": 1, "retryBaseSeconds": 1},
        "extraEnv": [{"name": "AWS_ACCESS_KEY_ID", "value": "node-test-dummy"},
                     {"name": "AWS_SECRET_ACCESS_KEY", "value": "node-test-dummy"}],
    }  # fmt: skip
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    chart = REPO / "charts" / "amplify-backendauth-operator"
    helm(node, helm_binary, "install", "backendauth", str(chart), "--namespace", HELM_NAMESPACE,
         "--values", str(tmp_path / "values.yaml"), "--wait", "--timeout", f"{WAIT}s")  # fmt: skip
    install = Install(node, "helm", HELM_NAMESPACE, "backendauth-operator")
    state.install = install
    pod = install.ready_pod()
    assert pod["spec"]["containers"][0]["image"] == IMAGE
    auth = user_pool_auth("from-helm", HELM_NAMESPACE, "helm")
    node.cluster.apply(auth)
    wait_ready(install, [auth])
    assert_created_once(sim, [auth])
    writes = {
        e["user"]["username"] for e in node.cluster.audit()
        if e.get("objectRef", {}).get("name") == "from-helm" and e["objectRef"].get("subresource") == "status"
    }  # fmt: skip
    assert writes == {install.user}, writes
    print(node.kubectl("get", "pods", "-n", HELM_NAMESPACE).stdout)
    print("node start-up (s):", json.dumps({k: round(v, 1) for k, v in node.timings.items()}))
