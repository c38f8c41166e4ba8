"""The image built from the Dockerfile, run the way ``deploy/base/deployment.yaml`` runs it, against
the real kube-apiserver (``tests/kube/``) and the AmplifyBackend simulator.

The container gets what the Deployment's pod gets, read from the manifest: its user and group,
a read-only root filesystem with a tmpfs at the emptyDir's mount, no capabilities, no privilege
escalation, Docker's default seccomp profile, its memory and CPU limits, its arguments and its
environment (the downward-API fields filled in as the kubelet would), and nothing else but what
reaching this test bed takes: a kubeconfig with a token of deploy/'s ServiceAccount (bound to
deploy/'s RBAC, as in ``test_real_rbac.py``), the simulator's URL and dummy AWS keys. It shares
the host's network, so the liveness and metrics ports are free ports rather than 8080 and 9090.

The build (``tests/docker/image.sh``, through the ``docker_image`` plugin) happens before the
first test; without Docker the test is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from docker_image import OperatorImage
from harness import backendauth, wait_until
from real_apiserver import REPO, RealBed, RealCluster, free_port, kubeconfig_text
from specs import minimal_spec
from test_real_rbac import install, render_rbac

pytestmark = [pytest.mark.real_apiserver, pytest.mark.integration, pytest.mark.image]

DEPLOYMENT = REPO / "deploy" / "base" / "deployment.yaml"
KUBECONFIG_IN_CONTAINER = "/var/run/backendauth/kubeconfig"


@dataclass
class PodSpec:
    """What the Deployment gives its one container, as ``docker run`` options."""

    manifest: dict[str, Any]
    container: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        (self.container,) = self.manifest["spec"]["template"]["spec"]["containers"]

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.manifest["spec"]["template"]["spec"]
        return spec

    @property
    def grace_seconds(self) -> int:
        return int(self.pod["terminationGracePeriodSeconds"])

    def security_options(self) -> list[str]:
        """The pod's and the container's securityContext, as docker run options; anything the
        test does not know how to reproduce fails it (so that the manifest cannot outgrow it)."""
        pod, ctr = self.pod["securityContext"], self.container["securityContext"]
        user = ctr.get("runAsUser", pod.get("runAsUser"))
        group = ctr.get("runAsGroup", pod.get("runAsGroup"))
        assert user and group and ctr.get("runAsNonRoot", pod.get("runAsNonRoot")), (pod, ctr)
        assert ctr["readOnlyRootFilesystem"] is True and ctr["allowPrivilegeEscalation"] is False
        assert ctr.get("privileged", False) is False and ctr["capabilities"] == {"drop": ["ALL"]}
        for seccomp in (pod.get("seccompProfile"), ctr.get("seccompProfile")):
            assert seccomp in (None, {"type": "RuntimeDefault"}), seccomp  # Docker's default profile
        known = {"runAsNonRoot", "runAsUser", "runAsGroup", "readOnlyRootFilesystem",
                 "allowPrivilegeEscalation", "privileged", "capabilities", "seccompProfile"}  # fmt: skip
        assert set(ctr) <= known and set(pod) <= known | {"fsGroup"}, (pod, ctr)
        return [
            f"--user={user}:{group}", f"--group-add={pod['fsGroup']}", "--read-only",
            "--cap-drop=ALL", "--security-opt=no-new-privileges",
        ]  # fmt: skip

    def volume_options(self) -> list[str]:
        """The emptyDir volumes as tmpfs mounts of their size limit (the only writable places)."""
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        options = []
        for mount in self.container["volumeMounts"]:
            volume = volumes[mount["name"]]
            assert set(volume) == {"name", "emptyDir"}, f"only emptyDir volumes are reproduced: {volume}"
            size = volume["emptyDir"].get("sizeLimit", "64Mi")
            assert re.fullmatch(r"\d+Mi", size), size
            options.append(f"--tmpfs={mount['mountPath']}:rw,nosuid,nodev,size={size[:-2]}m,mode=1777")
        return options

    def limit_options(self) -> list[str]:
        limits = self.container["resources"]["limits"]
        assert re.fullmatch(r"\d+Mi", limits["memory"]) and re.fullmatch(r"\d+", str(limits["cpu"]))
        return [f"--memory={limits['memory'][:-2]}m", f"--cpus={limits['cpu']}"]

    def env(self, pod_name: str, pod_namespace: str) -> dict[str, str]:
        """The container's environment, the downward-API fields filled in as the kubelet would."""
        fields = {"metadata.name": pod_name, "metadata.namespace": pod_namespace}
        env = {}
        for var in self.container["env"]:
            if "value" in var:
                env[var["name"]] = str(var["value"])
            else:
                path = var["valueFrom"]["fieldRef"]["fieldPath"]
                assert path in fields, f"{var['name']}: the test does not provide {path}"
                env[var["name"]] = fields[path]
        return env

    def liveness(self, port: int) -> list[str]:
        """The container's arguments, with the liveness endpoint on ``port``."""
        args: list[str] = list(self.container["args"])
        (index,) = [i for i, a in enumerate(args) if a.startswith("--liveness=")]
        args[index] = re.sub(r":\d+/", f":{port}/", args[index])
        assert args[index] != self.container["args"][index], args
        return args


def get(url: str) -> tuple[int, str]:
    """The status and body of a GET; status 0 when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, ""
    except OSError:
        return 0, ""


class ContainerExited(Exception):
    """The operator's container is no longer running."""


@dataclass
class Container:
    """One ``docker run -d`` of the image; removed at the end."""

    image: OperatorImage
    name: str
    started: bool = False

    def run(self, options: list[str], args: list[str]) -> None:
        self.image.docker("run", "--detach", f"--name={self.name}", *options, self.image.tag, *args)
        self.started = True

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(
            self.image.docker("inspect", "--format={{json .State}}", self.name).stdout
        )
        return state

    def logs(self) -> str:
        result = self.image.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def running(self) -> bool:
        """True while it runs; a container that exited fails the test at once, with its log
        (not an AssertionError, which ``wait_until`` would take for "not yet")."""
        state = self.state()
        if not state["Running"]:
            raise ContainerExited(f"the container exited ({state['ExitCode']}):\n{self.logs()[-4000:]}")
        return True

    def remove(self) -> None:
        if self.started:
            self.image.docker("rm", "--force", self.name, check=False)


@pytest.fixture
def container(operator_image: OperatorImage) -> Iterator[Container]:
    box = Container(operator_image, f"backendauth-image-test-{uuid.uuid4().hex[:8]}")
    yield box
    box.remove()


@dataclass
class ServiceAccount:
    """deploy/'s ServiceAccount in the operator's namespace, and a kubeconfig with its token."""

    namespace: str
    kubeconfig: Path


@pytest.fixture
def service_account(
    real_cluster: RealCluster, real_namespace: str, tmp_path: Path
) -> Iterator[ServiceAccount]:
    """deploy/'s ServiceAccount and RBAC, moved to a namespace of the operator's own (its pod's,
    where its Leases go) with ``real_namespace`` as the watched one; a kubeconfig with a token
    of that ServiceAccount, readable in the container (the CA embedded: no host path)."""
    real = real_cluster
    namespace = real.create_namespace("image-operator")
    suffix = uuid.uuid4().hex[:6]
    applied, account = install(real, render_rbac(str(real.kubectl_path)), namespace, real_namespace, suffix)
    try:
        token = real.kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
        config = yaml.safe_load(kubeconfig_text(real.server, token, real.ca_file))
        if real.ca_file is not None:
            cluster = config["clusters"][0]["cluster"]
            del cluster["certificate-authority"]
            cluster["certificate-authority-data"] = base64.b64encode(real.ca_file.read_bytes()).decode()
        path = tmp_path / "container.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o644)  # read by uid 65532 in the container; the test's tmp dir is private
        yield ServiceAccount(namespace, path)
    finally:
        for obj in applied:
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                real.kubectl(
                    "delete", obj["kind"].lower(), obj["metadata"]["name"], "--wait=false", check=False
                )
        real.empty_namespace(namespace)


def test_the_image_runs_as_the_deployment_runs_it_reaches_ready_and_stops_on_sigterm(
    operator_image: OperatorImage,
    container: Container,
    make_real_bed: Callable[..., RealBed],
    service_account: ServiceAccount,
) -> None:
    pod = PodSpec(yaml.safe_load(DEPLOYMENT.read_text()))
    bed = make_real_bed(start_operator=False, lease_namespace=service_account.namespace)
    pod_name = f"backendauth-operator-{uuid.uuid4().hex[:10]}-{uuid.uuid4().hex[:5]}"
    liveness_port, metrics_port = free_port(), free_port()
    env = {
        **pod.env(pod_name, service_account.namespace),
        # What this test bed takes instead of a cluster's: the host's ports, the API server's
        # address and the ServiceAccount's token, the simulator, keys the simulator accepts.
        "BACKENDAUTH_METRICS_PORT": str(metrics_port),
        "KUBECONFIG": KUBECONFIG_IN_CONTAINER,
        "BACKENDAUTH_AWS_ENDPOINT_URL": bed.sim.url,
        "AWS_ACCESS_KEY_ID": "AKIDIMAGETEST",
        "AWS_SECRET_ACCESS_KEY": "image-test-secret",
    }
    options = [
        *pod.security_options(), *pod.volume_options(), *pod.limit_options(), "--network=host",
        f"--volume={service_account.kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro",
        *[f"--env={name}={value}" for name, value in env.items()],
    ]  # fmt: skip
    container.run(options, pod.liveness(liveness_port))

    # Kopf answers /healthz once it runs (before the fix, the process exited at start-up:
    # no passwd entry for uid 65532).
    wait_until(
        lambda: container.running() and get(f"http://127.0.0.1:{liveness_port}/healthz")[0] == 200,
        90,
        "/healthz to answer 200",
    )
    bed.apply(backendauth("imaged", minimal_spec(resourceName="imaged")))
    try:
        bed.kubectl("wait", "--for=condition=Ready", "backendauth/imaged", "--timeout=90s")
    except AssertionError as error:
        raise AssertionError(f"{error}\ncontainer log:\n{container.logs()[-4000:]}") from None
    status = bed.get("imaged")["status"]
    assert (status["status"], status["operation"]) == ("COMPLETED", "CreateBackendAuth")
    assert bed.count("CreateBackendAuth") == 1

    code, metrics = get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert code == 200
    assert re.search(r'^backendauth_aws_calls_total\{[^}]*operation="CreateBackendAuth"', metrics, re.M), (
        metrics
    )
    assert re.search(r"^backendauth_resources\{", metrics, re.M), metrics

    # SIGTERM (docker stop sends it, then SIGKILL after the grace period, as the kubelet does):
    # the operator ends by itself, with 0.
    assert container.running()
    operator_image.docker(
        "stop", f"--time={pod.grace_seconds}", container.name, timeout=pod.grace_seconds + 30
    )
    state = container.state()
    log = container.logs()
    assert (state["Running"], state["OOMKilled"], state["ExitCode"]) == (False, False, 0), (
        state,
        log[-4000:],
    )
    assert "Traceback" not in log, log[-4000:]
    assert "image-test-secret" not in log
