"""The operator at scale: N BackendAuths against the simulator with an AWS rate limit.

Prints one JSON line: time to all Ready against the bound that the rate sets, AWS calls by
operation and outcome, the throttled share, Kubernetes requests per BackendAuth (counted by a
proxy in front of the real API server, or by the emulated one on a port of its own), peak RSS
and CPU time of the operator and of a bare Kopf operator over the same objects, the time from
start to the first AWS call, and what a restart costs once everything is Ready. Not a test:
figures depend on the machine.

The bound: a new BackendAuth needs five AWS calls (GetBackendAuth to see that nothing exists
yet, CreateBackendAuth, one GetBackendJob when the job is done by the first poll,
GetBackendAuth to see the resource as the spec says before it is Ready, GetBackend for its
outputs), so N of them need at least 5N/rate seconds, plus the jobs of one app/env in turn.
``bound_create_and_poll_seconds`` is the bound of the create and the poll alone (2N/rate).

The CPU floor: what bare Kopf spent on the same watch events, plus the AWS calls and
Kubernetes requests the operator made, each at what it costs the libraries alone
(``aws_call_cpu_ms`` by operation and outcome, ``kubernetes_request_cpu_ms``, measured in this
process with nothing else to do). No operator built on Kopf, botocore and the kubernetes client
that makes those calls spends less; what the operator spends above it is its own.

    .venv/bin/python benchmarks/run.py --objects 200 --rate 10
    .venv/bin/python benchmarks/run.py --objects 1000 --rate 50 --api real

``--api real`` runs against a real kube-apiserver and etcd (built by tests/kube/build.sh);
``--api emulated`` (the default) against the emulated API.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from kube_proxy import CountingProxy, RequestCounter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import yaml  # noqa: E402

from backendauth_operator.commands.crd import build_crd  # noqa: E402
from backendauth_testbed.sandbox import EmulatedClusterThread  # noqa: E402
from backendauth_testbed.sandbox.dev import die_with_parent  # noqa: E402
from backendauth_testbed.sandbox.kubeconfig import write_kubeconfig  # noqa: E402
from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread  # noqa: E402


def proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, peak RSS in KiB) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    return cpu, peak


def cpu_shares(cluster: Any, bare: subprocess.Popen[bytes]) -> dict[str, float]:
    """CPU seconds so far of what shares the machine with the operator: the API server (and
    etcd), the bare Kopf operator, this process (the simulator, the emulated API or the counting
    proxy run in its threads) and its finished children (kubectl)."""
    shares = {"bare_kopf": proc_stat(bare.pid)[0]}
    for process in getattr(cluster, "processes", []):  # the real API server's etcd and kube-apiserver
        shares[Path(str(process.args[0])).name] = proc_stat(process.pid)[0]
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    shares["benchmark_process"] = own.ru_utime + own.ru_stime
    shares["kubectl"] = children.ru_utime + children.ru_stime
    return shares


def manifest(i: int, per_app_env: int) -> dict[str, Any]:
    return {
        "apiVersion": "amplifybackend.gitops.dev/v1alpha1",
        "kind": "BackendAuth",
        "metadata": {"name": f"bench-{i:05d}", "namespace": "default"},
        "spec": {
            "appId": f"benchapp{i // per_app_env:05d}",
            "backendEnvironmentName": "dev",
            "resourceName": f"bench{i:05d}",
            "resourceConfig": {
                "authResources": "USER_POOL_ONLY",
                "service": "COGNITO",
                "userPoolConfigs": {
                    "userPoolName": f"bench{i}",
                    "signInMethod": "EMAIL",
                    "requiredSignUpAttributes": ["EMAIL"],
                },
            },
        },
    }


def ready_count(kubectl: list[str], env: dict[str, str]) -> int:
    out = subprocess.run(
        [*kubectl, "get", "backendauths", "-n", "default", "-o",
         "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}"],
        capture_output=True, text=True, env=env, timeout=120,
    ).stdout  # fmt: skip
    return out.split().count("True")


def outputs_read(sim: SimulatorThread) -> int:
    """How many GetBackend calls the simulator has answered."""
    return sim.call(
        lambda simulator: sum(
            1 for c in simulator.backend.calls if c["operation"] == "GetBackend" and c["httpStatus"] == 200
        )
    )


def restart_costs(
    args: argparse.Namespace, operator: subprocess.Popen[bytes], start: Any, sim_url: str, proxy: Any
) -> dict[str, Any]:
    """Stop the operator once all are Ready, start it again, and count what it does in the
    window after it has listed the objects: AWS calls (none are needed, all are in sync) and
    Kubernetes requests."""
    operator.terminate()
    operator.wait(timeout=60)
    with urllib.request.urlopen(f"{sim_url}/_sim/calls", timeout=30) as response:
        before = len(json.loads(response.read())["calls"])
    requests_before = proxy.snapshot()
    start()
    # The window starts once the new operator has listed the BackendAuths (it has seen them all).
    deadline = time.monotonic() + 120
    while proxy.snapshot()["LIST backendauths"] <= requests_before["LIST backendauths"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the restarted operator did not list the BackendAuths")
        time.sleep(0.1)  # sampling
    time.sleep(args.restart_window)  # a measuring window, not synchronisation
    with urllib.request.urlopen(f"{sim_url}/_sim/calls", timeout=30) as response:
        after = json.loads(response.read())["calls"][before:]
    requests = proxy.snapshot() - requests_before
    return {
        "restart_window_seconds": args.restart_window,
        "aws_calls_after_restart": dict(Counter(c["operation"] for c in after)),
        "kubernetes_requests_after_restart": dict(sorted(requests.items())),
    }


def call_costs(
    kubeconfig: Path, namespace: str, name: str, spec: dict[str, Any], samples: int = 200
) -> tuple[dict[str, float], float]:
    """The CPU milliseconds one call costs the libraries alone, measured on this process's own
    thread with nothing else to do: each AWS operation and outcome the operator meets, through
    a boto3 client against an unthrottled simulator (the create with ``spec``'s request), and a
    Kubernetes request through the operator's client (a GET of a BackendAuth, straight to the
    API server)."""
    import kubernetes
    from botocore.exceptions import ClientError

    from backendauth_operator.aws.clients import ClientFactory
    from backendauth_operator.core.models import create_backend_auth_kwargs, parse_spec
    from backendauth_operator.kube.client import KubeClient

    def cost(one: Any) -> float:
        for i in range(10):  # connections, caches
            one(-1 - i)
        started = time.thread_time()
        for i in range(samples):
            one(i)
        return round(1000 * (time.thread_time() - started) / samples, 2)

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    kube = KubeClient(kubernetes.client.ApiClient(configuration))
    request = create_backend_auth_kwargs(parse_spec(spec), lambda ref: "")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    with SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=0)) as sim:
        factory = ClientFactory(sim.url)
        aws, once = factory.reading("eu-west-1"), factory.mutating("eu-west-1")
        jobs: dict[int, str] = {}

        def where(i: int) -> dict[str, str]:
            return {"AppId": f"floor{i}", "BackendEnvironmentName": "dev"}

        def create(i: int) -> None:
            jobs[i] = once.create_backend_auth(**{**request, **where(i)})["JobId"]

        def missing(i: int) -> None:
            with contextlib.suppress(ClientError):
                aws.get_backend_auth(**where(i), ResourceName="nothing-here")

        costs = {"CreateBackendAuth:ok": cost(create)}
        costs["GetBackendJob:ok"] = cost(lambda i: aws.get_backend_job(**where(i), JobId=jobs[i]))
        costs["GetBackendAuth:ok"] = cost(
            lambda i: aws.get_backend_auth(**where(i), ResourceName=request["ResourceName"])
        )
        costs["GetBackendAuth:NotFoundException"] = cost(missing)
        costs["GetBackend:ok"] = cost(lambda i: aws.get_backend(**where(i)))
    return costs, cost(lambda i: kube.get_backendauth(namespace, name))


def compile_bytecode() -> None:
    """Have the bytecode of the operator and its libraries compiled ahead, as the image does:
    with ``PYTHONDONTWRITEBYTECODE`` set and nothing compiled, every start of the operator (and
    of bare Kopf) would compile each module it imports again, seconds of CPU counted as
    theirs. Importing them once with bytecode writing on compiles what is not yet."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    modules = (
        "backendauth_operator.commands.cli, backendauth_operator.runtime.runner, kopf, boto3, botocore.client"
    )
    subprocess.run([sys.executable, "-c", f"import {modules}"], env=env, check=True, timeout=600)


def start_cluster(api: str, work: Path) -> tuple[Any, Path, list[str], RequestCounter, Path] | str:
    """An API server in ``work`` (``real``: kube-apiserver and etcd of tests/kube/; else the
    emulated one) with the CRD: the server (``stop()`` ends it), the kubeconfig and kubectl for
    the benchmark itself, what counts the operator's requests (a proxy in front of the real
    server; the emulated one counts on a port of its own), and the operator's kubeconfig, which
    goes through that count. The reason as text when no real API server can be had."""
    if api == "real":
        from real_apiserver import RealCluster, build_binaries, kubeconfig_text

        build = build_binaries()
        if build.bin_dir is None:
            return str(build.problem)
        real = RealCluster(build.bin_dir, work).start()
        proxy = CountingProxy(real.server, real.ca_file).start()
        proxied = work / "operator.kubeconfig"
        proxied.write_text(kubeconfig_text(proxy.url, real.token, None))
        return real, real.kubeconfig, [str(real.kubectl_path)], proxy, proxied
    emulated = EmulatedClusterThread(crds=[build_crd()]).start()
    kubeconfig = emulated.write_kubeconfig(work / "kubeconfig")
    counter = RequestCounter()
    counted = emulated.serve_counted(counter.count)
    proxied = write_kubeconfig(work / "operator.kubeconfig", counted, "default")
    return emulated, kubeconfig, ["kubectl"], counter, proxied


def stop_all(procs: list[subprocess.Popen[bytes]], *servers: Any) -> None:
    """Stop the processes this benchmark started (by their handles; killed after 15 s), then
    the simulator, the proxy and the API server."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    for server in servers:
        server.stop()


OBJECT_RESOURCES = ("backendauths", "backendauths/status", "events", "leases")


def object_requests(requests: Counter[str]) -> int:
    """The requests a BackendAuth makes on its own (on itself, its events, its turn's Lease),
    watches and lists not counted."""
    return sum(
        n for kind, n in requests.items()
        if kind.split(" ")[0] not in ("WATCH", "LIST") and kind.split(" ", 1)[-1] in OBJECT_RESOURCES
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="AWS's rate limit, requests per second")
    parser.add_argument("--job-seconds", type=float, default=3.0)
    parser.add_argument(
        "--max-rps", type=float, default=None, help="BACKENDAUTH_AWS_MAX_RPS (default: --rate)"
    )
    parser.add_argument("--api", choices=["emulated", "real"], default="emulated")
    parser.add_argument("--per-app-env", type=int, default=1, help="BackendAuths per app/environment")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--restart-window", type=float, default=10.0,
        help="after all are Ready, restart the operator and count its calls for this long (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--calls-out", type=Path, default=None,
        help="also write the simulator's call log (times relative to the operator's start) to this file",
    )  # fmt: skip
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="backendauth-bench-"))
    compile_bytecode()
    sim = SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=args.job_seconds, rate_limit=args.rate))
    sim.start()
    servers = start_cluster(args.api, work)
    if isinstance(servers, str):
        print(f"no real API server: {servers}", file=sys.stderr)
        return 2
    cluster, kubeconfig, kubectl, proxy, proxied = servers
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BACKENDAUTH_"))}
    env.update(
        KUBECONFIG=str(kubeconfig), BACKENDAUTH_AWS_ENDPOINT_URL=sim.url, AWS_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", BACKENDAUTH_METRICS_PORT="0",
        # The first poll of a job comes after it has ended: one GetBackendJob each, as the bound counts.
        BACKENDAUTH_JOB_POLL_SECONDS=str(args.job_seconds + 1),
        BACKENDAUTH_AWS_MAX_RPS=str(args.max_rps or args.rate),
        BACKENDAUTH_RESYNC_SECONDS="0",
        BACKENDAUTH_LEADER_ELECTION="false",  # one operator: its own costs, no Lease renewals
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        docs = yaml.safe_dump_all([manifest(i, args.per_app_env) for i in range(args.objects)])
        subprocess.run([*kubectl, "apply", "-f", "-"], input=docs.encode(), env=env, check=True,
                       capture_output=True, timeout=600)  # fmt: skip
        # A bare Kopf operator over the same objects: the memory floor of any Kopf operator.
        # The operator starts once it has seen them all, so that the two do not share the CPU
        # while starting and the time to the first AWS call is the operator's own.
        seen_all = work / "bare.seen-all"
        bare = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--quiet",
             str(REPO / "benchmarks" / "bare_kopf.py")],
            env={**env, "BARE_KOPF_EXPECT": str(args.objects), "BARE_KOPF_SEEN_ALL": str(seen_all)},
            stdout=(work / "bare.log").open("wb"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )  # fmt: skip
        procs.append(bare)
        deadline = time.monotonic() + 300
        while not seen_all.exists():
            if time.monotonic() > deadline or bare.poll() is not None:
                print(
                    f"the bare Kopf operator did not see every object; see {work / 'bare.log'}",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.1)  # sampling
        started = time.time()
        shares_before = cpu_shares(cluster, bare)

        def start_operator() -> subprocess.Popen[bytes]:
            # The operator alone is counted (through the proxy, or on the emulator's counted port).
            process = subprocess.Popen(
                [sys.executable, "-m", "backendauth_operator.commands.cli", "run"],
                env={**env, "KUBECONFIG": str(proxied)},
                stdout=(work / "operator.log").open("ab"), stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )  # fmt: skip
            procs.append(process)
            return process

        operator = start_operator()
        deadline = time.monotonic() + args.timeout
        # Listing every object costs the API server and kubectl as much CPU as the operator
        # spends on them (a core at 5,000 objects, if done each second). So the list is asked
        # for only once every BackendAuth has had its outputs read (GetBackend, in the step
        # that makes it Ready), a count the simulator in this process keeps for free.
        while outputs_read(sim) < args.objects or ready_count(kubectl, env) < args.objects:
            if time.monotonic() > deadline or operator.poll() is not None:
                print(f"not all Ready; operator log in {work / 'operator.log'}", file=sys.stderr)
                return 1
            time.sleep(0.25)  # a sampling interval, not synchronisation
        elapsed = time.time() - started
        requests = proxy.snapshot()
        cpu, peak = proc_stat(operator.pid)
        shares = {k: round(v - shares_before.get(k, 0.0), 1) for k, v in cpu_shares(cluster, bare).items()}
        bare_cpu, bare_peak = proc_stat(bare.pid)
        with urllib.request.urlopen(f"{sim.url}/_sim/calls", timeout=30) as response:
            calls = json.loads(response.read())["calls"]
        by = Counter(f"{c['operation']}:{c['errorCode'] or 'ok'}" for c in calls)
        throttled = sum(1 for c in calls if c["httpStatus"] == 429)
        first_call = min((c["time"] for c in calls), default=started) - started
        if args.calls_out is not None:
            log = [{"t": round(c["time"] - started, 3), "op": c["operation"]} for c in calls]
            args.calls_out.write_text(json.dumps(log))
        # Two calls per BackendAuth at the rate (create, one poll), and jobs on one app/env in turn.
        bound = 5 * args.objects / args.rate + args.job_seconds * args.per_app_env
        create_and_poll = 2 * args.objects / args.rate + args.job_seconds * args.per_app_env
        restart = restart_costs(args, operator, start_operator, sim.url, proxy) if args.restart_window else {}
        # What the calls made cost the libraries alone, added to what bare Kopf spent on the
        # same watch events: no operator built on these libraries can spend less per object.
        aws_costs, kube_cost = call_costs(Path(kubeconfig), "default", "bench-00000", manifest(0, 1)["spec"])
        mean_aws = sum(aws_costs.values()) / len(aws_costs)
        k8s_requests = sum(n for k, n in requests.items() if not k.startswith(("WATCH", "LIST", "GET (")))
        floor = (
            1000 * bare_cpu
            + sum(n * aws_costs.get(kind, mean_aws) for kind, n in by.items())
            + k8s_requests * kube_cost
        ) / args.objects
        print(json.dumps({
            "api": args.api, "objects": args.objects, "rate_limit": args.rate,
            "seconds_to_all_ready": round(elapsed, 1), "bound_seconds": round(bound, 1),
            "ratio_to_bound": round(elapsed / bound, 2),
            "bound_create_and_poll_seconds": round(create_and_poll, 1),
            "aws_calls": dict(sorted(by.items())),
            "throttled_share": round(throttled / max(1, len(calls)), 4),
            "seconds_to_first_aws_call": round(first_call, 2),
            "operator_peak_rss_mib": round(peak / 1024, 1),
            "bare_kopf_peak_rss_mib": round(bare_peak / 1024, 1),
            "rss_ratio": round(peak / max(1, bare_peak), 2),
            "operator_cpu_ms_per_backendauth": round(1000 * cpu / args.objects, 1),
            "bare_kopf_cpu_ms_per_backendauth": round(1000 * bare_cpu / args.objects, 1),
            "aws_call_cpu_ms": aws_costs,
            "kubernetes_request_cpu_ms": kube_cost,
            "cpu_floor_ms_per_backendauth": round(floor, 1),
            # Watches are long-lived streams, not per-object work; everything else is counted.
            "kubernetes_requests_per_backendauth": round(
                sum(n for k, n in requests.items() if not k.startswith("WATCH")) / args.objects, 2
            ),
            # What each BackendAuth costs on its own: the requests on it, its events and its
            # turn's Lease; the process's own (API discovery, the reachability probe, the lists
            # its watches start with) are in the figure above, not in this one.
            "object_requests_per_backendauth": round(object_requests(requests) / args.objects, 2),
            "kubernetes_requests": dict(sorted(requests.items())),
            # Where the machine's CPU went from the operator's start to all Ready, in seconds.
            "cpu_seconds_to_all_ready": {"operator": round(cpu, 1), **shares},
            **restart,
        }))  # fmt: skip
        return 0
    finally:
        stop_all(procs, sim, proxy, cluster)


if __name__ == "__main__":
    sys.exit(main())
