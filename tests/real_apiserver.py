"""A real Kubernetes API server for tests: ``kube-apiserver`` and ``etcd`` on 127.0.0.1.

A pytest plugin (``conftest.py`` loads it). The binaries come from ``tests/kube/build.sh``
(``tests/kube/README.md``): it builds them once into a cache outside the repo (~7 minutes
cold) and returns at once when they are there. The build runs when the collected tests include
one marked ``real_apiserver``, before the first test starts (so that a cold build does not count
against a test's timeout); its stderr goes to a log file.

Fixtures:

- ``real_cluster`` (session): etcd and kube-apiserver as in envtest (no controller-manager,
  scheduler or kubelet: nothing runs pods, deletes namespaces' contents or creates default
  ServiceAccounts), token authentication, RBAC authorization, TLS with the server's
  self-signed certificate as the kubeconfig's CA, and the BackendAuth CRD from ``crds/``
  installed and Established. Stopped (SIGTERM, then SIGKILL) at the end of the session; both
  processes are also killed if pytest dies (``PR_SET_PDEATHSIG``).
- ``real_namespace``: a fresh namespace, emptied afterwards (finalizers removed, then its
  BackendAuths, Leases, Secrets and Events deleted).
- ``make_real_bed``: like ``make_bed`` (``conftest.py``), a :class:`RealBed` in a fresh namespace:
  the same helpers as the emulated :class:`harness.Bed`, so scenarios can be shared.

Without the binaries (no Go and nothing built, or a failed build) the tests are skipped with the
reason, except under ``CI=true``, where they fail with the end of the build log. With the
binaries, a server that does not start fails the tests (its logs are in the session's temp dir).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread
from harness import Bed, Operator, operator_env

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "tests" / "kube" / "build.sh"
CRD_FILE = REPO / "crds" / "backendauths.amplifybackend.gitops.dev.yaml"
CRD_NAME = "backendauths.amplifybackend.gitops.dev"
MARKER = "real_apiserver"
START_SECONDS = 90.0  # etcd and kube-apiserver up, on a busy 2-core machine


class Unavailable(Exception):
    """The real API server cannot run here; the message says why."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ---- building the binaries ------------------------------------------------------------------------


@dataclass
class Build:
    """The outcome of ``tests/kube/build.sh`` in this session."""

    log: Path
    bin_dir: Path | None = None
    problem: str | None = None


_build: Build | None = None


def go_available() -> bool:
    """As build.sh looks for Go: ``$GO``, else ``go`` on PATH, else /usr/local/go/bin/go."""
    if os.environ.get("GO"):
        return shutil.which(os.environ["GO"]) is not None
    return shutil.which("go") is not None or os.access("/usr/local/go/bin/go", os.X_OK)


def build_binaries() -> Build:
    """Run ``tests/kube/build.sh`` once per session (stderr to a log); the last stdout line is the
    directory of ``kube-apiserver``, ``kubectl`` and ``etcd``."""
    global _build
    if _build is not None:
        return _build
    log_dir = tempfile.mkdtemp(prefix="backendauth-k8s-build-")
    log = Path(log_dir) / "build.log"
    _build = Build(log)
    if shutil.which("openssl") is None:
        _build.problem = "openssl is not on PATH (it makes the ServiceAccount signing key)"
        return _build
    with log.open("wb") as stderr:
        try:
            result = subprocess.run(
                ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=stderr, timeout=3600, check=False
            )
        except subprocess.TimeoutExpired:
            _build.problem = f"tests/kube/build.sh did not finish within an hour (log: {log})"
            return _build
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    if result.returncode != 0 or not lines:
        why = "Go is not installed and the binaries are not built" if not go_available() else "it failed"
        why += f"; last line: {tail(log, 1)}"
        _build.problem = f"tests/kube/build.sh exited {result.returncode}: {why} (log: {log})"
        return _build
    bin_dir = Path(lines[-1])
    missing = [b for b in ("kube-apiserver", "kubectl", "etcd") if not os.access(bin_dir / b, os.X_OK)]
    if missing:
        _build.problem = f"tests/kube/build.sh printed {bin_dir}, which lacks {', '.join(missing)}"
        return _build
    _build.bin_dir = bin_dir
    atexit.register(shutil.rmtree, log_dir, True)  # kept only when the build failed
    return _build


def build_before_tests(session: pytest.Session, marker: str, what: str, build: Callable[[], str]) -> None:
    """Run ``build`` (it returns a one-line outcome) before the first test, if a selected test
    carries ``marker``: a cold build takes minutes, which must not count against a test's timeout."""
    if session.config.option.collectonly:
        return
    if any(item.get_closest_marker(marker) for item in session.items):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"{marker}: {what}")
        start = time.monotonic()
        outcome = build()
        if reporter is not None:
            reporter.write_line(f"{marker}: {outcome} ({time.monotonic() - start:.1f}s)")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) the binaries before any test runs, if a selected test needs them."""

    def build() -> str:
        built = build_binaries()
        return str(built.bin_dir or f"unavailable: {built.problem}")

    build_before_tests(session, MARKER, "tests/kube/build.sh (builds only when not built yet)", build)


def unavailable(reason: str, log: Path | None = None) -> NoReturn:
    """Skip, or under CI=true fail, with ``reason`` (and the end of ``log``)."""
    if in_ci():
        pytest.fail(f"the real API server is required under CI=true: {reason}\n{tail(log) if log else ''}")
    pytest.skip(f"real API server unavailable: {reason}")


# ---- the cluster ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def killed_with_parent() -> None:
    """In the child, before exec: SIGKILL when pytest dies, even by SIGKILL (PR_SET_PDEATHSIG, as
    ``backendauth_testbed.sandbox.dev.die_with_parent`` but with SIGKILL): a kube-apiserver
    whose etcd died with it would hang in its graceful shutdown after a SIGTERM, and neither
    holds anything worth a clean stop (their data is in the session's temp dir)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


def spawn(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a server process with its output in ``log``; it is killed if pytest dies."""
    with log.open("ab") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
            preexec_fn=killed_with_parent,
        )  # fmt: skip


def stop_process(process: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; always reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def kubeconfig_text(server: str, token: str, ca_file: Path | None, namespace: str | None = None) -> str:
    cluster: dict[str, Any] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    else:
        cluster["insecure-skip-tls-verify"] = True
    context: dict[str, Any] = {"cluster": "real", "user": "user"}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "real", "cluster": cluster}],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [{"name": "real", "context": context}],
        "current-context": "real",
    }
    return yaml.safe_dump(config)


@dataclass
class RealCluster:
    """etcd + kube-apiserver on 127.0.0.1, and the built kubectl to drive them."""

    bin_dir: Path
    workdir: Path
    server: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    ca_file: Path | None = None
    kubeconfig: Path = Path()
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    address: str = "127.0.0.1"  # where kube-apiserver listens (tests/real_node.py: a bridge's)
    install_crd: bool = True

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    # ---- lifecycle

    def start(self) -> RealCluster:
        work = self.workdir
        subprocess.run(
            ["openssl", "genrsa", "-out", "sa.key", "2048"], cwd=work, check=True, capture_output=True
        )
        subprocess.run(
            ["openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], cwd=work, check=True,
            capture_output=True,
        )  # fmt: skip
        (work / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        etcd = spawn(
            [str(self.bin_dir / "etcd"), "--data-dir", str(work / "etcd"),
             "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"default={peer_url}", "--unsafe-no-fsync"],
            work / "etcd.log", work,
        )  # fmt: skip
        self.processes.append(etcd)
        self._poll(lambda: _etcd_healthy(etcd_url), "etcd to be healthy", etcd, work / "etcd.log")
        self.server = f"https://{self.address}:{api_port}"
        apiserver = spawn(self.apiserver_args(etcd_url, api_port), work / "kube-apiserver.log", work)
        self.processes.append(apiserver)
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
        self._poll(lambda: self._ready(insecure), "/readyz", apiserver, work / "kube-apiserver.log")
        # The server made itself a CA and a serving certificate for 127.0.0.1 (apiserver.crt holds
        # both): trust that CA rather than skipping verification, when it verifies.
        ca_file = work / "certs" / "apiserver.crt"
        try:
            self._ready(ssl.create_default_context(cafile=str(ca_file)))
        except (OSError, ssl.SSLError):
            self.ca_file = None
        else:
            self.ca_file = ca_file
        self.kubeconfig = self.write_kubeconfig(work / "admin.kubeconfig", self.token)
        if self.install_crd:
            self.kubectl("apply", "-f", str(CRD_FILE))
            self.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
        return self

    def apiserver_args(self, etcd_url: str, api_port: int) -> list[str]:
        """kube-apiserver's command line: as envtest's, with no ServiceAccount admission (no
        controller-manager makes the default ServiceAccounts)."""
        work = self.workdir
        return [
            str(self.bin_dir / "kube-apiserver"), "--etcd-servers", etcd_url,
            "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
            "--disable-admission-plugins=ServiceAccount", f"--cert-dir={work / 'certs'}",
            "--authorization-mode=RBAC", f"--secure-port={api_port}", f"--bind-address={self.address}",
            f"--service-account-issuer={self.server}/", f"--service-account-key-file={work / 'sa.pub'}",
            f"--service-account-signing-key-file={work / 'sa.key'}",
            f"--token-auth-file={work / 'tokens.csv'}",
        ]  # fmt: skip

    def _poll(
        self, check: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path
    ) -> None:
        deadline = time.monotonic() + START_SECONDS
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise Unavailable(f"{log.stem} exited {process.returncode}:\n{tail(log)}")
            try:
                if check():
                    return
            except (OSError, ssl.SSLError, ValueError) as error:
                last = error
            time.sleep(0.1)  # a polling interval under a deadline
        raise Unavailable(f"timed out after {START_SECONDS}s waiting for {what} ({last!r}):\n{tail(log)}")

    def _ready(self, context: ssl.SSLContext) -> bool:
        request = urllib.request.Request(
            f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return bool(response.status == 200 and response.read().strip() == b"ok")
        except urllib.error.HTTPError:  # 500 while post-start hooks run
            return False

    def stop(self) -> None:
        for process in reversed(self.processes):  # the API server first, then etcd
            stop_process(process)
        self.processes.clear()

    # ---- helpers

    def write_kubeconfig(self, path: Path, token: str, namespace: str | None = None) -> Path:
        """A kubeconfig for ``token`` (the admin's, or a ServiceAccount's), optionally with a namespace."""
        path.write_text(kubeconfig_text(self.server, token, self.ca_file, namespace))
        path.chmod(0o600)
        return path

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """The built kubectl against this server (the admin unless ``kubeconfig`` is given)."""
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or self.kubeconfig),
            "KUBECACHEDIR": str(self.workdir / "kubecache"),
        }
        result = subprocess.run(
            [str(self.kubectl_path), *args], input=input, capture_output=True, text=True, env=env,
            timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def apply(self, *objects: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects), check=check)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def create_namespace(self, prefix: str = "t", labels: dict[str, str] | None = None) -> str:
        """A new namespace with a unique name starting with ``prefix``."""
        name = f"{prefix[:40].rstrip('-')}-{uuid.uuid4().hex[:6]}"
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = labels
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        return name

    def empty_namespace(self, namespace: str) -> None:
        """Remove what a test left in ``namespace``: no controller-manager empties a deleted one.

        Finalizers are dropped first, so that no BackendAuth waits for an operator that is gone.
        """
        names = self.kubectl("get", "backendauths", "-n", namespace, "-o", "name", check=False).stdout.split()
        for name in names:
            self.kubectl(
                "patch", name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                check=False,
            )  # fmt: skip
        self.kubectl("delete", "backendauths,leases,secrets,events", "--all", "-n", namespace, "--wait=false")
        self.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _etcd_healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return bool(json.loads(response.read()).get("health") == "true")


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """etcd + kube-apiserver for the whole session, the CRD installed (see the module's docstring)."""
    build = build_binaries()
    if build.bin_dir is None:
        unavailable(build.problem or "the build failed", build.log)
    cluster = RealCluster(build.bin_dir, tmp_path_factory.mktemp("real-apiserver"))
    try:
        cluster.start()
    except (Unavailable, subprocess.CalledProcessError, AssertionError) as error:
        cluster.stop()  # the binaries are there: not starting is a failure, not a reason to skip
        pytest.fail(f"the real API server did not start (logs in {cluster.workdir}): {error}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def real_namespace(real_cluster: RealCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, emptied afterwards."""
    prefix = "".join(c if c.isalnum() else "-" for c in request.node.name.lower().removeprefix("test_"))
    namespace = real_cluster.create_namespace(prefix.strip("-")[:30] or "t")
    yield namespace
    real_cluster.empty_namespace(namespace)


class RealBed(Bed):
    """A :class:`harness.Bed` on the real API server: a simulator and the operator (a subprocess)
    of its own, in its own namespace, which is also its Lease namespace unless told otherwise.

    ``operator_kubeconfig`` runs the operator under another identity (a ServiceAccount's token);
    the bed's own kubectl is the admin's, in the bed's namespace.
    """

    def __init__(
        self,
        tmp: Path,
        real: RealCluster,
        namespace: str,
        sim_config: SimulatorConfig,
        operator_kubeconfig: Path | None = None,
        lease_namespace: str | None = None,
    ) -> None:
        self.tmp = tmp
        self.real = real
        self.namespace = namespace
        self.kubectl_path = str(real.kubectl_path)
        self.kubeconfig = real.write_kubeconfig(tmp / "kubeconfig", real.token, namespace)
        self.sim = SimulatorThread(sim_config)
        self.sim.start()
        env = operator_env(
            operator_kubeconfig or self.kubeconfig, self.sim.url,
            BACKENDAUTH_LEASE_NAMESPACE=lease_namespace or namespace,
        )  # fmt: skip
        self.operator = Operator(env, tmp / "operator.log")

    def close(self) -> None:
        self.operator.stop()
        self.sim.stop()  # the cluster is the session's; the namespace is emptied by its fixture


@pytest.fixture
def make_real_bed(
    real_cluster: RealCluster, real_namespace: str, tmp_path: Path
) -> Iterator[Callable[..., RealBed]]:
    """Build a :class:`RealBed` in this test's namespace (``real_namespace``)."""
    beds: list[RealBed] = []

    def make(
        start_operator: bool = True,
        operator_kubeconfig: Path | None = None,
        lease_namespace: str | None = None,
        **sim: Any,
    ) -> RealBed:
        config = SimulatorConfig(**{"auto_apps": True, "job_seconds": 0.5, **sim})
        tmp = tmp_path / f"realbed{len(beds)}"
        tmp.mkdir()
        bed = RealBed(tmp, real_cluster, real_namespace, config, operator_kubeconfig, lease_namespace)
        beds.append(bed)
        if start_operator:
            bed.operator.start()
        return bed

    yield make
    for bed in beds:
        bed.close()


@pytest.fixture
def real_bed(make_real_bed: Callable[..., RealBed]) -> RealBed:
    """The usual bed on the real server: the real CRD, a simulator with auto-registered apps, the operator."""
    return make_real_bed()
