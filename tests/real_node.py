"""A real node for tests: kubelet, containerd and runc, with the control plane around them.

``RealNode`` starts, on this host (root, Linux), from ``tests/node/build.sh``'s binaries:

- a bridge of its own (``BRIDGE``, ``GATEWAY``/16) made before anything else. Every server listens
  on its gateway address: kube-apiserver (bound and advertised there, so Pods reach it through
  the ``kubernetes`` Service, 10.0.0.1:443, by kube-proxy's DNAT), kubelet, and whatever a test
  starts for the Pods (the AmplifyBackend simulator). Nothing listens on the host's own addresses;
- etcd and kube-apiserver (``RealCluster`` of ``real_apiserver.py`` with the flags of a real
  cluster: ServiceAccount and PodSecurity admission, Node and RBAC authorization, an audit log of
  who wrote what), kube-controller-manager (ServiceAccount tokens, ``kube-root-ca.crt``,
  Deployments, garbage collection), kube-scheduler;
- containerd (Debian's 1.6, with its own config, root, state and socket), the pause image and the
  operator image imported into it; kubelet (cgroup v1 and cgroupfs, as this host has), and
  kube-proxy (iptables).

``stop()`` undoes it all, by the pids it started: the test namespaces are deleted and kubelet
stops their Pods (CNI DEL), then the processes stop in reverse order, containerd's shims go,
the mounts under the work dir are unmounted, the bridge is deleted, the ``KUBE-*``/``CNI-*``
iptables chains that were not there before are removed, and ``net.ipv4.ip_forward`` gets its
old value back. One node at a time per host (a lock file).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from real_apiserver import (
    REPO,
    RealCluster,
    Unavailable,
    build_before_tests,
    free_port,
    spawn,
    stop_process,
    tail,
)

NODE_BUILD = REPO / "tests" / "node" / "build.sh"
IMAGE_SCRIPT = REPO / "tests" / "docker" / "image.sh"
IMAGE = "backendauth-operator:test"  # what tests/docker/image.sh builds and saves
PAUSE_IMAGE = "local.test/pause:3.10.2"  # tests/node/build.sh's default name
MARKER = "real_node"
NODE_NAME = "backendauth-node"
BRIDGE = "batest0"
GATEWAY = "10.22.0.1"
POD_SUBNET = "10.22.0.0/16"
SERVICE_RANGE = "10.0.0.0/24"
CNI_BIN_DIR = "/usr/lib/cni"
LOCK_FILE = Path("/run/backendauth-real-node.lock")
# kubelet sets these kernel-wide (kernel.panic, kernel.panic_on_oops, vm.overcommit_memory): a node
# started by a test puts back the values it found.
KUBELET_SYSCTLS = (
    Path("/proc/sys/kernel/panic"),
    Path("/proc/sys/kernel/panic_on_oops"),
    Path("/proc/sys/vm/overcommit_memory"),
)
# What a cold containerd plus the import of a ~500 MB image take on a busy 2-core machine.
NODE_READY_SECONDS = 240.0
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle")
OUR_CHAINS = re.compile(r"^(KUBE-|CNI-)")
# The chains kube-proxy's iptables mode makes, as ``kube-proxy --cleanup`` removes them (its other
# cleanups, of IPVS and nftables, reach beyond what this node made: the host's IPVS table).
KUBE_PROXY_CHAINS = re.compile(
    r"^KUBE-(SERVICES|EXTERNAL-SERVICES|NODEPORTS|POSTROUTING|MARK-MASQ|FORWARD|PROXY-FIREWALL|PROXY-CANARY)$"
    r"|^KUBE-(SVC|SVL|SEP|FW|EXT)-"
)
# While kube-proxy is cut off (``RealNode.cut_kube_proxy``): what Pods send to a ClusterIP that no
# rule translates any more is dropped here, instead of leaving the host by its default route.
CUT_CHAIN = "KUBE-BACKENDAUTH-CUT"


def poll(check: Callable[[], Any], what: str, timeout: float, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (OSError, ValueError, AssertionError, subprocess.SubprocessError) as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)  # a polling interval under a deadline


def run(*args: str, check: bool = True, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False, **kw)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def missing_prerequisites() -> list[str]:
    """Why a node cannot run here (before anything is built); empty when it may."""
    reasons = []
    if os.uname().sysname != "Linux":
        reasons.append("not Linux")
    elif os.geteuid() != 0:
        reasons.append("not root (kubelet, containerd and the bridge need root)")
    for tool in ("ip", "iptables", "openssl", "mount", "umount"):
        if shutil.which(tool) is None:
            reasons.append(f"{tool} is not on PATH")
    if not IMAGE_SCRIPT.exists() and not os.environ.get("BACKENDAUTH_OPERATOR_IMAGE_TAR"):
        reasons.append(f"{IMAGE_SCRIPT.relative_to(REPO)} is missing (it builds the operator image)")
    return reasons


def build_node(log: Path) -> Path:
    """``tests/node/build.sh``: the binaries and the pause image (built once, cached)."""
    with log.open("ab") as err:
        result = subprocess.run(
            ["bash", str(NODE_BUILD)], stdout=subprocess.PIPE, stderr=err, timeout=3600, check=False,
            env={**os.environ, "PAUSE_IMAGE": PAUSE_IMAGE},
        )  # fmt: skip
    lines = result.stdout.decode(errors="replace").split()
    if result.returncode != 0 or not lines:
        raise Unavailable(f"tests/node/build.sh exited {result.returncode}:\n{tail(log)}")
    return Path(lines[-1])


def operator_image(log: Path) -> Path:
    """The operator image as a ``docker save`` archive: ``$BACKENDAUTH_OPERATOR_IMAGE_TAR``, else
    what ``tests/docker/image.sh`` builds (its last line on stdout)."""
    given = os.environ.get("BACKENDAUTH_OPERATOR_IMAGE_TAR")
    if given:
        if not Path(given).is_file():
            raise Unavailable(f"BACKENDAUTH_OPERATOR_IMAGE_TAR={given} is not a file")
        return Path(given)
    with log.open("ab") as err:
        result = subprocess.run(
            ["bash", str(IMAGE_SCRIPT)], stdout=subprocess.PIPE, stderr=err, timeout=3600, check=False
        )
    lines = result.stdout.decode(errors="replace").split()
    if result.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        raise Unavailable(f"tests/docker/image.sh exited {result.returncode}:\n{tail(log)}")
    return Path(lines[-1])


# ---- the host's state that the node changes ----------------------------------------------------------


def chains() -> set[tuple[str, str, str]]:
    """(command, table, chain) of every KUBE-*/CNI-* chain now present."""
    found = set()
    for command in IPTABLES:
        if shutil.which(command) is None:
            continue
        for table in TABLES:
            result = run(command, "-w", "-t", table, "-S", check=False)
            for line in result.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "-N" and OUR_CHAINS.match(parts[1]):
                    found.add((command, table, parts[1]))
    return found


def remove_chains(new: set[tuple[str, str, str]]) -> None:
    """Remove the jumps to the ``new`` chains, then flush and delete them (others are left alone)."""
    by_table: dict[tuple[str, str], set[str]] = {}
    for command, table, chain in new:
        by_table.setdefault((command, table), set()).add(chain)
    for (command, table), names in by_table.items():
        for line in run(command, "-w", "-t", table, "-S", check=False).stdout.splitlines():
            parts = shlex.split(line)  # comments are quoted
            if parts[:1] == ["-A"] and "-j" in parts and parts[parts.index("-j") + 1] in names:
                run(command, "-w", "-t", table, "-D", *parts[1:], check=False)
        for chain in names:
            run(command, "-w", "-t", table, "-F", chain, check=False)
        for chain in names:
            run(command, "-w", "-t", table, "-X", chain, check=False)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first."""
    found = []
    prefix = str(root)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(set(found), key=len, reverse=True)


def processes_naming(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (to find the shims of our containerd)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
    return pids


# ---- the node -----------------------------------------------------------------------------------------


@dataclass
class NodeCluster(RealCluster):
    """kube-apiserver as a real cluster runs it, on the bridge's gateway address."""

    audit_log: Path = Path()

    def apiserver_args(self, etcd_url: str, api_port: int) -> list[str]:
        work = self.workdir
        self.audit_log = work / "audit.log"
        policy = work / "audit-policy.yaml"
        # Who wrote BackendAuths, their status, ConfigMaps and Leases: the operator's identity.
        policy.write_text(
            yaml.safe_dump({
                "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                "rules": [
                    {"level": "Metadata", "verbs": ["create", "update", "patch", "delete"], "resources": [
                        {"group": "amplifybackend.gitops.dev"},
                        {"group": "", "resources": ["configmaps", "events"]},
                        {"group": "coordination.k8s.io", "resources": ["leases"]},
                    ]},
                    {"level": "None"},
                ],
            })
        )  # fmt: skip
        return [
            str(self.bin_dir / "kube-apiserver"), "--etcd-servers", etcd_url,
            f"--bind-address={self.address}", f"--advertise-address={self.address}",
            f"--secure-port={api_port}", f"--cert-dir={work / 'certs'}",
            f"--service-cluster-ip-range={SERVICE_RANGE}", "--allow-privileged=true",
            "--enable-admission-plugins=ServiceAccount,PodSecurity",
            "--authorization-mode=Node,RBAC", f"--token-auth-file={work / 'tokens.csv'}",
            f"--service-account-issuer={self.server}/", f"--service-account-key-file={work / 'sa.pub'}",
            f"--service-account-signing-key-file={work / 'sa.key'}",
            # kubectl logs/exec: dial kubelet at the node's InternalIP, not its (unresolvable) name.
            "--kubelet-preferred-address-types=InternalIP",
            f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}",
        ]  # fmt: skip

    def audit(self) -> list[dict[str, Any]]:
        """The audit log's events so far."""
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line.strip()]


@dataclass
class RealNode:
    """The node and its control plane (see the module's docstring)."""

    bin_dir: Path
    workdir: Path
    pause_tar: Path
    image_tar: Path
    cluster: NodeCluster = field(init=False)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    chains_before: set[tuple[str, str, str]] = field(default_factory=set)
    netns_before: set[str] = field(default_factory=set)
    ip_forward: str | None = None
    sysctls_before: dict[Path, str] = field(default_factory=dict)
    lock: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    kube_proxy_args: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def kubectl(self) -> Callable[..., subprocess.CompletedProcess[str]]:
        return self.cluster.kubectl

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run("ctr", "--address", str(self.socket), "-n", "k8s.io", *args, check=check, timeout=timeout)

    # ---- start

    def start(self) -> RealNode:
        begin = time.monotonic()
        self.lock = LOCK_FILE.open("w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            poll(lambda: _try_lock(self.lock), f"the node lock {LOCK_FILE} (another node runs)", 900, 2)
        self.chains_before = chains()
        self.netns_before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
        self.ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        self.sysctls_before = {path: path.read_text() for path in KUBELET_SYSCTLS if path.exists()}
        self._bridge()
        self.cluster = NodeCluster(
            self.bin_dir, self.workdir / "control-plane", address=GATEWAY, install_crd=False
        )
        self.cluster.workdir.mkdir()
        self.cluster.start()
        self.timings["apiserver"] = time.monotonic() - begin
        self._controllers()
        self._containerd()
        self.timings["containerd"] = time.monotonic() - begin
        self._import(self.pause_tar)
        self._import(self.image_tar)
        self.timings["images"] = time.monotonic() - begin
        self._kubelet()
        self._kube_proxy()
        poll(lambda: self.kubectl("get", "node", NODE_NAME, check=False).returncode == 0,
             "kubelet to register the node", NODE_READY_SECONDS)  # fmt: skip
        self.kubectl("wait", "--for=condition=Ready", f"node/{NODE_NAME}",
                     f"--timeout={NODE_READY_SECONDS:.0f}s", timeout=NODE_READY_SECONDS + 10)  # fmt: skip
        # The default ServiceAccount of `default` shows the controller-manager is at work.
        poll(lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
             "the controller-manager to create the default ServiceAccount", 120)  # fmt: skip
        self.timings["ready"] = time.monotonic() - begin
        return self

    def _bridge(self) -> None:
        # Left by a run that was killed (we hold the lock: no other node uses it).
        if run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
            run("ip", "link", "delete", BRIDGE)
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{GATEWAY}/16", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        process = spawn(args, self.workdir / f"{name}.log", self.workdir)
        self.processes.append((name, process))
        return process

    def _alive(self, name: str, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is not None:
            raise Unavailable(f"{name} exited {process.returncode}:\n{tail(self.workdir / f'{name}.log')}")

    def _controllers(self) -> None:
        bins, cluster = self.bin_dir, self.cluster
        certs = cluster.workdir / "certs"
        self._spawn("kube-controller-manager", [
            str(bins / "kube-controller-manager"), f"--kubeconfig={cluster.kubeconfig}",
            f"--service-account-private-key-file={cluster.workdir / 'sa.key'}",
            # Becomes the kube-root-ca.crt ConfigMap, the ca.crt of every ServiceAccount volume.
            f"--root-ca-file={certs / 'apiserver.crt'}",
            "--leader-elect=false", "--secure-port=0", "--allocate-node-cidrs=false",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            # Each controller acts as its own ServiceAccount (the audit log tells them apart).
            "--use-service-account-credentials=true",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
        ])  # fmt: skip
        self._spawn("kube-scheduler", [
            str(bins / "kube-scheduler"), f"--kubeconfig={cluster.kubeconfig}",
            "--leader-elect=false", "--secure-port=0",
        ])  # fmt: skip

    def _containerd(self) -> None:
        base = self.workdir / "containerd"
        (base / "root").mkdir(parents=True)
        (base / "state").mkdir()
        cni_conf = self.workdir / "cni" / "net.d"
        cni_conf.mkdir(parents=True)
        (cni_conf / "10-podnet.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "podnet", "plugins": [
                {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(self.workdir / "cni" / "ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }))  # fmt: skip
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = base / "config.toml"
        config.write_text(f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{base / "ttrpc.sock"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Without it every sandbox fails here: runc cannot give the pause process its negative
  # OOM score ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{cni_conf}"
""")
        process = self._spawn("containerd", ["containerd", "--config", str(config)])

        def answers() -> bool:
            self._alive("containerd", process)  # raises Unavailable if it exited
            return self.ctr("version", check=False).returncode == 0

        poll(answers, "containerd to answer", 60)

    def _import(self, tar: Path) -> None:
        self.ctr("images", "import", str(tar), timeout=600)

    def _kubelet(self) -> None:
        work = self.workdir / "kubelet"
        work.mkdir()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            # This host is cgroup v1: kubelet 1.35+ refuses it unless told not to.
            "failCgroupV1": False, "cgroupDriver": "cgroupfs", "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [], "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": GATEWAY, "port": free_port(), "readOnlyPort": 0, "healthzPort": 0,
            # The API server has no client certificate for kubelet (kubectl logs): anonymous.
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            # An image evicted here could not be pulled back: no image GC, eviction only when full.
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                             "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
            "podLogsDir": str(work / "pod-logs"), "volumePluginDir": str(work / "volume-plugins"),
            "serializeImagePulls": False, "resolvConf": "/etc/resolv.conf",
        }  # fmt: skip
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        self._spawn("kubelet", [
            str(self.bin_dir / "kubelet"), f"--config={work / 'config.yaml'}",
            f"--kubeconfig={self.cluster.kubeconfig}", f"--hostname-override={NODE_NAME}",
            f"--node-ip={GATEWAY}", f"--root-dir={work / 'root'}", f"--cert-dir={work / 'pki'}",
        ])  # fmt: skip

    def _kube_proxy(self) -> None:
        self.kube_proxy_args = [
            str(self.bin_dir / "kube-proxy"), "--proxy-mode=iptables",
            f"--kubeconfig={self.cluster.kubeconfig}", f"--hostname-override={NODE_NAME}",
            f"--cluster-cidr={POD_SUBNET}",
            # Leave the host's conntrack settings and route_localnet alone.
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0", "--iptables-localhost-nodeports=false",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--healthz-bind-address=127.0.0.1:{free_port()}",
        ]  # fmt: skip
        self._spawn("kube-proxy", self.kube_proxy_args)

    def cut_kube_proxy(self) -> None:
        """Stop kube-proxy (by its pid) and remove the iptables chains it made, as
        ``kube-proxy --cleanup`` does: a new connection from a Pod to a Service's ClusterIP (the
        ``kubernetes`` Service's 10.0.0.1:443 too) goes nowhere; it is dropped on this host
        (:data:`CUT_CHAIN`). Connections already made keep their translation (conntrack), as on
        any node. :meth:`restore_kube_proxy` undoes it."""
        index = next(i for i, (name, _) in enumerate(self.processes) if name == "kube-proxy")
        _, process = self.processes.pop(index)
        stop_process(process, grace=20)
        remove_chains({c for c in chains() - self.chains_before if KUBE_PROXY_CHAINS.match(c[2])})
        run("iptables", "-w", "-N", CUT_CHAIN)
        run("iptables", "-w", "-A", CUT_CHAIN, "-s", POD_SUBNET, "-d", SERVICE_RANGE, "-j", "DROP")
        run("iptables", "-w", "-I", "FORWARD", "1", "-j", CUT_CHAIN)

    def restore_kube_proxy(self) -> None:
        """Start kube-proxy again, with the same command line, once the cut is gone; return when its
        rules translate the ``kubernetes`` Service again."""
        remove_chains({c for c in chains() if c[2] == CUT_CHAIN})
        if any(name == "kube-proxy" for name, _ in self.processes):
            return
        self._spawn("kube-proxy", self.kube_proxy_args)

        def translated() -> bool:
            self.check_processes()
            rules = run("iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES", check=False).stdout
            jumps = run("iptables", "-w", "-t", "nat", "-S", "PREROUTING", check=False).stdout
            return "10.0.0.1/32" in rules and "KUBE-SERVICES" in jumps

        poll(translated, "kube-proxy to translate the kubernetes Service again", 60)

    def check_processes(self) -> None:
        """Fail, with its log's end, if a component has exited."""
        for name, process in self.processes:
            self._alive(name, process)

    # ---- stop

    def stop(self) -> None:
        """Undo everything :meth:`start` did (each step runs even if one before failed)."""
        cluster = getattr(self, "cluster", None)
        alive = {name for name, p in self.processes if p.poll() is None}
        if cluster is not None and {"kubelet", "containerd"} <= alive and cluster.processes:
            with contextlib.suppress(Exception):
                self._delete_namespaces()
        for name, process in reversed(self.processes):
            if name == "containerd":
                with contextlib.suppress(Exception):
                    self._kill_tasks()
            stop_process(process, grace=20)
        self.processes.clear()
        if cluster is not None:
            cluster.stop()
        for pid in processes_naming(f"-address {self.socket}"):  # containerd-shim-runc-v2
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for point in mounts_under(self.workdir):
            run("umount", "-l", point, check=False)
        if os.path.isdir("/run/netns"):
            for name in set(os.listdir("/run/netns")) - self.netns_before:
                if name.startswith("cni-"):
                    run("umount", "-l", f"/run/netns/{name}", check=False)
                    with contextlib.suppress(OSError):
                        os.unlink(f"/run/netns/{name}")
        run("ip", "link", "delete", BRIDGE, check=False)
        remove_chains(chains() - self.chains_before)
        if self.ip_forward is not None:
            Path("/proc/sys/net/ipv4/ip_forward").write_text(self.ip_forward + "\n")
        for path, value in self.sysctls_before.items():
            with contextlib.suppress(OSError):
                path.write_text(value)
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def _delete_namespaces(self) -> None:
        """Delete the namespaces the tests made, and wait until containerd runs no container."""
        keep = {"default", "kube-system", "kube-public", "kube-node-lease"}
        names = self.kubectl("get", "namespaces", "-o", "name").stdout.split()
        doomed = [n for n in names if n.removeprefix("namespace/") not in keep]
        if doomed:
            self.kubectl("delete", *doomed, "--wait=false", check=False)
        self.kubectl("delete", "pods", "--all", "-A", "--wait=false", check=False)
        poll(lambda: not self.ctr("tasks", "ls", "-q").stdout.split(), "the node's containers to stop", 90, 1)

    def _kill_tasks(self) -> None:
        """Kill what still runs in containerd (a teardown whose namespace deletion failed)."""
        tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
        for task in tasks:
            self.ctr("tasks", "delete", "--force", task, check=False)

    # ---- helpers for tests

    def logs(self, *names: str, lines: int = 30) -> str:
        """The end of the named components' logs (all of them by default)."""
        chosen = names or (*(name for name, _ in self.processes), "control-plane/kube-apiserver")
        return "\n".join(f"--- {n}\n{tail(self.workdir / f'{n}.log', lines)}" for n in chosen)


def _try_lock(lock: Any) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@dataclass
class Prepared:
    """What ``prepare`` found or built this session: the binaries' directory and the image, or why not."""

    log: Path
    bin_dir: Path | None = None
    image_tar: Path | None = None
    problem: str | None = None


_prepared: Prepared | None = None


def prepare() -> Prepared:
    """Once per session: the prerequisites, ``tests/node/build.sh`` and the operator image."""
    global _prepared
    if _prepared is not None:
        return _prepared
    log_dir = tempfile.mkdtemp(prefix="backendauth-node-build-")
    prepared = _prepared = Prepared(Path(log_dir) / "build.log")
    try:
        reasons = missing_prerequisites()
        if reasons:
            raise Unavailable("; ".join(reasons))
        prepared.bin_dir = build_node(prepared.log)
        prepared.image_tar = operator_image(prepared.log)
    except (Unavailable, OSError, subprocess.SubprocessError) as error:
        prepared.problem = str(error)
    else:
        atexit.register(shutil.rmtree, log_dir, True)  # kept only when something failed
    return prepared


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build (or find) everything before the first test, if a selected test needs a node."""

    def build() -> str:
        prepared = prepare()
        return str(prepared.bin_dir or f"unavailable: {(prepared.problem or '').splitlines()[0]}")

    build_before_tests(
        session, MARKER, "tests/node/build.sh and tests/docker/image.sh (built once, cached)", build
    )


def node_fixture(workdir: Path) -> Iterator[RealNode]:
    """Start a node from what :func:`prepare` found, yield it, stop it. Unavailable: why not."""
    prepared = prepare()
    if prepared.bin_dir is None or prepared.image_tar is None:
        raise Unavailable(prepared.problem or "the node could not be prepared")
    node = RealNode(prepared.bin_dir, workdir, prepared.bin_dir / "pause-image.tar", prepared.image_tar)
    try:
        node.start()
    except BaseException:
        logs = node.logs() if node.processes else ""
        node.stop()
        raise AssertionError(f"the node did not start (logs in {workdir}):\n{logs}") from None
    try:
        yield node
    finally:
        node.stop()
