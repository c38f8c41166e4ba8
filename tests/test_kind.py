"""The operator on a kind cluster, installed as users install it (``docs/how-to/kind.md``).

Everything comes from ``tests/kind/build.sh`` (``tests/kind/README.md``): kind from its Go module, and
a node image built here with no registry, every image kubeadm and kind start preloaded. The cluster
runs in the Docker engine of ``tests/kind/engine.sh`` (a dockerd of the test's own); the operator
image is ``tests/docker/image.sh``'s, put on the node with ``kind load docker-image``. The
AmplifyBackend simulator runs in this process, listening on the kind network's gateway: the host as
the node and its Pods see it.

- ``kubectl apply -k`` of a kustomization that takes ``deploy/`` as it is and sets only the image
  tag, ``imagePullPolicy: Never``, the simulator's endpoint and dummy AWS keys: the operator Pods
  become Ready under the ``restricted`` Pod Security profile, and a BackendAuth becomes Ready,
  created once;
- ``kubectl delete -k``, then ``helm install`` of the chart: the same.

Needs root on Linux; skipped otherwise with the reason, or when a piece cannot be built, but under
``CI=true`` never skipped: it fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread
from real_apiserver import REPO, Unavailable, in_ci
from real_node import IMAGE, KUBELET_SYSCTLS, operator_image, poll
from tools.built import built_tool

pytestmark = [pytest.mark.kind, pytest.mark.timeout(1800)]

BUILD = REPO / "tests" / "kind" / "build.sh"
CLUSTER = "backendauth-kind-test"
SYSTEM = "backendauth-system"  # deploy/'s namespace
HELM_NAMESPACE = "backendauth-helm"
RESTRICTED = "pod-security.kubernetes.io/enforce"
TAG = IMAGE.split(":")[1]
WAIT = 300  # seconds for a Pod or a BackendAuth to become Ready on a busy 2-core machine


# What kind is given: kubelet v1.36 refuses a cgroup v1 host unless told otherwise, and this
# machine's is cgroup v1 (with cgroup v2 it changes nothing).
CLUSTER_CONFIG = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
"""


def unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"kind is required under CI=true: {reason}")
    pytest.skip(f"no kind cluster here: {reason}")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


@dataclass
class Kind:
    """A kind cluster in our dockerd, and the tools that reach it."""

    kind: Path
    kubectl: Path
    kubeconfig: Path
    env: dict[str, str]  # DOCKER_HOST of our dockerd, a PATH with Debian's docker first
    gateway: str  # the kind network's gateway: the host, as the node and its Pods see it

    def kubectl_run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run(
            str(self.kubectl), "--kubeconfig", str(self.kubeconfig), *args, check=check, timeout=timeout
        )

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl_run("get", *args, "-o", "json").stdout)

    def apply(self, *docs: dict[str, Any]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
            yaml.safe_dump_all(docs, handle)
            handle.flush()
            self.kubectl_run("apply", "-f", handle.name)

    def diagnostics(self, namespace: str) -> str:
        out = []
        for args in (
            ("get", "nodes,pods", "-A", "-o", "wide"),
            ("get", "backendauths", "-A", "-o", "yaml"),
            ("get", "events", "-A", "--sort-by=.lastTimestamp"),
            ("logs", "-n", namespace, "-l", "app.kubernetes.io/name=backendauth-operator", "--tail=100"),
        ):
            result = self.kubectl_run(*args, check=False)
            out.append(f"$ kubectl {' '.join(args)}\n{result.stdout}{result.stderr}")
        return "\n".join(out)


def build(log: Path) -> dict[str, str]:
    """``tests/kind/build.sh`` (every piece, cached): the names in its env file."""
    with log.open("ab") as err:
        result = subprocess.run(
            ["bash", str(BUILD)], stdout=subprocess.PIPE, stderr=err, timeout=5400, check=False
        )
    lines = result.stdout.decode(errors="replace").split()
    if result.returncode != 0 or not lines or not (Path(lines[-1]) / "env").is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise Unavailable(f"tests/kind/build.sh exited {result.returncode}:\n{tail}")
    env = {}
    for line in (Path(lines[-1]) / "env").read_text().splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kind]:
    if os.uname().sysname != "Linux" or os.geteuid() != 0:
        unavailable("needs root on Linux (a dockerd of its own, privileged node containers)")
    workdir = tmp_path_factory.mktemp("kind")
    log = workdir / "build.log"
    try:
        pieces = build(log)
        image_tar = operator_image(log)
    except Unavailable as error:
        unavailable(str(error))
    engine = pieces["ENGINE"]
    started = run("bash", engine, "start", timeout=600, check=False)
    if started.returncode != 0 or len(started.stdout.split()) < 2:
        unavailable(f"tests/kind/engine.sh start exited {started.returncode}:\n{started.stderr[-3000:]}")
    host, pid = started.stdout.split()[-2:]
    path = os.pathsep.join(["/usr/bin", "/usr/sbin", "/bin", "/sbin", os.environ.get("PATH", "")])
    env = {**os.environ, "DOCKER_HOST": host, "PATH": path}
    kind = Path(pieces["KIND"])
    kubeconfig = workdir / "kubeconfig"
    # kubelet sets these kernel-wide (the node's /proc/sys is the host's for them): put them back.
    sysctls = {path: path.read_text() for path in KUBELET_SYSCTLS if path.exists()}
    try:
        # The operator image, from the archive tests/docker/image.sh saved (named by the image id),
        # into this engine unless it has that image already.
        present = run("docker", "image", "inspect", "--format", "{{.Id}}", IMAGE, env=env, check=False)
        if not present.stdout.strip().startswith("sha256:" + image_tar.stem.rsplit("-", 1)[-1]):
            run("docker", "load", "-i", str(image_tar), env=env, timeout=600)
        (workdir / "cluster.yaml").write_text(CLUSTER_CONFIG)
        run("docker", "image", "inspect", pieces["NODE_IMAGE"], env=env)
        run(str(kind), "delete", "cluster", "--name", CLUSTER, env=env, check=False)  # a killed run's
        created = run(
            str(kind), "create", "cluster", "--name", CLUSTER, "--image", pieces["NODE_IMAGE"],
            "--config", str(workdir / "cluster.yaml"), "--kubeconfig", str(kubeconfig), "--wait", f"{WAIT}s",
            "--retain", env=env, timeout=WAIT + 300, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            logs = workdir / "kind-logs"
            run(str(kind), "export", "logs", str(logs), "--name", CLUSTER, env=env, check=False)
            raise AssertionError(
                f"kind create cluster failed:\n{created.stdout}{created.stderr}\nlogs: {logs}"
            )
        run(str(kind), "load", "docker-image", IMAGE, "--name", CLUSTER, env=env, timeout=600)
        network = json.loads(run("docker", "network", "inspect", "kind", env=env).stdout)[0]
        gateways = [c["Gateway"] for c in network["IPAM"]["Config"] if "." in c.get("Gateway", "")]
        assert gateways, network["IPAM"]
        yield Kind(kind, Path(pieces["KUBECTL"]), kubeconfig, env, gateways[0])
    finally:
        run(str(kind), "delete", "cluster", "--name", CLUSTER, env=env, check=False)
        run("bash", engine, "stop", pid, timeout=120, check=False)
        for path, value in sysctls.items():
            path.write_text(value)


@pytest.fixture(scope="module")
def sim(cluster: Kind) -> Iterator[SimulatorThread]:
    """The AmplifyBackend simulator on the kind network's gateway."""
    with SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=2), host=cluster.gateway) as simulator:
        yield simulator


def creates(sim: SimulatorThread) -> dict[str, int]:
    calls = sim.call(lambda s: s.backend.summary())
    return {key: ops.get("CreateBackendAuth", 0) for key, ops in calls["byResource"].items()}


def user_pool_auth(name: str, namespace: str, env: str) -> dict[str, Any]:
    pool = name.replace("-", "")
    return {
        "apiVersion": "amplifybackend.gitops.dev/v1alpha1", "kind": "BackendAuth",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"appId": "d1a2b3c4d5e6f7", "backendEnvironmentName": env, "resourceName": pool,
                 "resourceConfig": {"authResources": "USER_POOL_ONLY", "service": "COGNITO",
                                    "userPoolConfigs": {"userPoolName": pool, "signInMethod": "EMAIL",
                                                        "requiredSignUpAttributes": ["EMAIL"]}}},
    }  # fmt: skip


def operator_ready(cluster: Kind, namespace: str) -> list[dict[str, Any]]:
    """Wait until every replica of the operator's Deployment is Ready; return its Pods."""

    def ready() -> list[dict[str, Any]] | None:
        pods = [
            p
            for p in cluster.get_json(
                "pods", "-n", namespace, "-l", "app.kubernetes.io/name=backendauth-operator"
            )["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]
        wanted = cluster.get_json("deployment", "backendauth-operator", "-n", namespace)["spec"]["replicas"]
        if len(pods) != wanted:
            return None
        for pod in pods:
            conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
            if conditions.get("Ready") != "True":
                return None
        return pods

    try:
        pods: list[dict[str, Any]] = poll(ready, f"the operator Pods in {namespace} to be Ready", WAIT, 2)
    except AssertionError:
        print(cluster.diagnostics(namespace))
        raise
    return pods


def backendauth_ready(cluster: Kind, sim: SimulatorThread, auth: dict[str, Any], namespace: str) -> None:
    cluster.apply(auth)
    name = auth["metadata"]["name"]
    result = cluster.kubectl_run(
        "wait", "--for=condition=Ready", "-n", auth["metadata"]["namespace"], f"backendauth/{name}",
        f"--timeout={WAIT}s", check=False, timeout=WAIT + 10,
    )  # fmt: skip
    assert result.returncode == 0, f"{name} not Ready: {result.stderr}\n{cluster.diagnostics(namespace)}"
    spec = auth["spec"]
    key = f"{spec['appId']}/{spec['backendEnvironmentName']}/{spec['resourceName']}"
    assert creates(sim).get(key) == 1, creates(sim)


def kustomization(folder: Path, endpoint: str) -> Path:
    """deploy/ as it is, with the loaded image, its pull policy, the simulator and dummy keys."""
    folder.mkdir()
    patch = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "backendauth-operator", "namespace": SYSTEM},
        "spec": {"template": {"spec": {"containers": [{
            "name": "operator", "imagePullPolicy": "Never",
            "env": [
                {"name": "BACKENDAUTH_AWS_ENDPOINT_URL", "value": endpoint},
                {"name": "AWS_ACCESS_KEY_ID", "value": "kind-test-dummy"},
                {"name": "AWS_SECRET_ACCESS_KEY", "value": "kind-test-dummy"},
            ],
        }]}}},
    }  # fmt: skip
    (folder / "operator.yaml").write_text(yaml.safe_dump(patch))
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(REPO / "deploy", folder)],
        "images": [{"name": "backendauth-operator", "newTag": TAG}],
        "patches": [{"path": "operator.yaml"}],
    }))  # fmt: skip
    return folder


def test_kind_node_runs_the_images_built_here_and_pulls_none(cluster: Kind) -> None:
    (node,) = cluster.get_json("nodes")["items"]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.5"
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    # kube-system's and kind's own Pods run (kindnetd, coredns, kube-proxy, local-path-provisioner)
    # from the preloaded images: no Pod ever pulled one.
    poll(
        lambda: all(
            {c["type"]: c["status"] for c in p["status"].get("conditions", [])}.get("Ready") == "True"
            for p in cluster.get_json("pods", "-A")["items"]
        ),
        "every Pod of the new cluster to be Ready",
        WAIT,
        2,
    )
    names = [p["metadata"]["name"] for p in cluster.get_json("pods", "-A")["items"]]
    for prefix in (
        "coredns-",
        "kindnet-",
        "kube-proxy-",
        "local-path-provisioner-",
        "etcd-",
        "kube-apiserver-",
    ):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    events = cluster.get_json("events", "-A", "--field-selector", "reason=Pulling")["items"]
    assert not events, [e["message"] for e in events]


def test_kustomize_install_on_kind_brings_a_backendauth_to_ready(cluster: Kind, sim: SimulatorThread) -> None:
    with tempfile.TemporaryDirectory(prefix="backendauth-kind-kustomize-") as tmp:
        folder = kustomization(Path(tmp) / "install", sim.url)
        cluster.kubectl_run("apply", "-k", str(folder), "--server-side")
        labels = cluster.get_json("namespace", SYSTEM)["metadata"]["labels"]
        assert labels.get(RESTRICTED) == "restricted"
        pods = operator_ready(cluster, SYSTEM)
        assert all(p["spec"]["containers"][0]["image"] == IMAGE for p in pods)
        cluster.kubectl_run("create", "namespace", "kind-examples")
        backendauth_ready(cluster, sim, user_pool_auth("on-kind", "kind-examples", "kind"), SYSTEM)
        print(cluster.kubectl_run("get", "pods,backendauths", "-A").stdout)
        # Uninstalled as a user would: the BackendAuths first, while the operator runs.
        cluster.kubectl_run("delete", "backendauths", "--all", "-n", "kind-examples", f"--timeout={WAIT}s",
                            timeout=WAIT + 10)  # fmt: skip
        cluster.kubectl_run(
            "delete", "-k", str(folder), "--wait=true", f"--timeout={WAIT}s", timeout=WAIT + 10
        )


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    return built_tool(["bash", str(REPO / "tests" / "tools" / "build.sh"), "helm"], "helm", 1800)


def test_helm_install_on_kind_brings_a_backendauth_to_ready(
    cluster: Kind, sim: SimulatorThread, helm_binary: Path, tmp_path: Path
) -> None:
    namespace = {"name": HELM_NAMESPACE, "labels": {RESTRICTED: "restricted"}}
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": namespace})
    values = {
        "image": {"tag": TAG, "pullPolicy": "Never"},
        "aws": {"endpointUrl": sim.url},
        "extraEnv": [{"name": "AWS_ACCESS_KEY_ID", "value": "kind-test-dummy"},
                     {"name": "AWS_SECRET_ACCESS_KEY", "value": "kind-test-dummy"}],
    }  # fmt: skip
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    home = tmp_path / "helm-home"
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
           "KUBECONFIG": str(cluster.kubeconfig)}  # fmt: skip
    chart = REPO / "charts" / "amplify-backendauth-operator"
    run(str(helm_binary), "install", "backendauth", str(chart), "--namespace", HELM_NAMESPACE,
        "--values", str(tmp_path / "values.yaml"), "--wait", "--timeout", f"{WAIT}s",
        env=env, timeout=WAIT + 60)  # fmt: skip
    pods = operator_ready(cluster, HELM_NAMESPACE)
    assert all(p["spec"]["containers"][0]["image"] == IMAGE for p in pods)
    backendauth_ready(cluster, sim, user_pool_auth("from-helm", HELM_NAMESPACE, "helm"), HELM_NAMESPACE)
    print(cluster.kubectl_run("get", "pods,backendauths", "-A").stdout)
