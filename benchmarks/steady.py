"""At rest: N settled BackendAuths at the default pace, what their resyncs cost.

The objects are made Ready first at a high pace (setup, not measured); then the operator is
restarted with the pace and budget under test (``BACKENDAUTH_AWS_MAX_RPS``, default 5;
``BACKENDAUTH_RESYNC_MAX_SHARE``, default 0.5) and ``--period`` (``BACKENDAUTH_RESYNC_SECONDS``,
default 600). Once its first round has begun (a tenth of a period after the start), it counts
for ``--window`` seconds:

- AWS calls per resync (the simulator's call log: every call of a settled object, per
  GetBackendAuth);
- Kubernetes writes per resync (counted in front of the API server: every request that is not a
  GET, LIST or WATCH);
- the share of the pace the resyncs used (their calls / (window x pace));
- the round the operator reports (``backendauth_resync_round_seconds``) against the expected one
  (objects / (share x pace), or the period when that fits) and the one measured (objects / the
  resyncs a second seen in the window), and the oldest read (``backendauth_observation_age_seconds``);
- how long a fresh BackendAuth, applied after the window, waits for its first AWS call, and
  until it is Ready;
- the warnings the operator logged about the round, and the load average of the machine.

Prints one JSON line. Not a test: figures depend on the machine.

    .venv/bin/python benchmarks/steady.py --objects 500
    .venv/bin/python benchmarks/steady.py --objects 5000 --window 180
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from run import manifest, proc_stat, ready_count, start_cluster, stop_all

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import yaml  # noqa: E402

from backendauth_operator.runtime.workqueue import round_seconds  # noqa: E402
from backendauth_testbed.sandbox.dev import die_with_parent  # noqa: E402
from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread  # noqa: E402

WRITES = ("PATCH", "POST", "PUT", "DELETE")


def calls_from(sim: SimulatorThread, start: int = 0) -> list[dict[str, Any]]:
    """The simulator's call log from ``start`` on, read in this process (no JSON of 25,000 calls
    over HTTP each time)."""
    return sim.call(lambda s: [dict(c) for c in s.backend.calls[start:]])


def call_count(sim: SimulatorThread) -> int:
    return sim.call(lambda s: len(s.backend.calls))


def gauge(port: int, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--period", type=float, default=600.0, help="BACKENDAUTH_RESYNC_SECONDS")
    parser.add_argument("--pace", type=float, default=5.0, help="BACKENDAUTH_AWS_MAX_RPS")
    parser.add_argument("--share", type=float, default=0.5, help="BACKENDAUTH_RESYNC_MAX_SHARE")
    parser.add_argument("--window", type=float, default=180.0, help="seconds counted once the round began")
    parser.add_argument("--api", choices=["emulated", "real"], default="real")
    parser.add_argument("--setup-timeout", type=float, default=3600)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="backendauth-steady-"))
    sim = SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=0))
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
        BACKENDAUTH_LEADER_ELECTION="false",
    )  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []

    def start_operator(**extra: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "backendauth_operator.commands.cli", "run"],
            env={**env, "KUBECONFIG": str(proxied), **extra},
            stdout=(work / "operator.log").open("ab"), stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
        )  # fmt: skip
        procs.append(process)
        return process

    load = {"before": os.getloadavg()[0]}
    try:
        # Setup: every object Ready, at a pace that makes it quick (not measured).
        docs = yaml.safe_dump_all([manifest(i, 1) for i in range(args.objects)])
        subprocess.run([*kubectl, "apply", "-f", "-"], input=docs.encode(), env=env, check=True,
                       capture_output=True, timeout=1200)  # fmt: skip
        setup = start_operator(BACKENDAUTH_AWS_MAX_RPS="1000", BACKENDAUTH_RESYNC_SECONDS="0",
                               BACKENDAUTH_JOB_POLL_SECONDS="0.5")  # fmt: skip
        deadline = time.monotonic() + args.setup_timeout
        while ready_count(kubectl, env) < args.objects:
            if time.monotonic() > deadline or setup.poll() is not None:
                print(f"not all Ready; operator log in {work / 'operator.log'}", file=sys.stderr)
                return 1
            time.sleep(5)  # a sampling interval, not synchronisation
        setup.terminate()
        setup.wait(timeout=60)

        # At rest, under test.
        port = free_port()
        seq = call_count(sim)
        started = time.time()
        operator = start_operator(
            BACKENDAUTH_AWS_MAX_RPS=str(args.pace), BACKENDAUTH_RESYNC_SECONDS=str(args.period),
            BACKENDAUTH_RESYNC_MAX_SHARE=str(args.share), BACKENDAUTH_METRICS_PORT=str(port),
        )  # fmt: skip
        load["at_restart"] = os.getloadavg()[0]
        first: dict[str, Any] | None = None
        deadline = time.monotonic() + args.period + 120
        while first is None:
            if time.monotonic() > deadline or operator.poll() is not None:
                print(f"no resync; operator log in {work / 'operator.log'}", file=sys.stderr)
                return 1
            time.sleep(1)  # sampling
            first = next(iter(calls_from(sim, seq)), None)
        round_began = float(first["time"]) - started
        before_window = call_count(sim)
        requests_before = proxy.snapshot()
        time.sleep(args.window)  # a measuring window, not synchronisation
        window = calls_from(sim, before_window)
        requests = proxy.snapshot() - requests_before
        reported = gauge(port, "backendauth_resync_round_seconds")
        age = gauge(port, "backendauth_observation_age_seconds")
        cpu, peak = proc_stat(operator.pid)
        load["window_end"] = os.getloadavg()[0]

        # A fresh object, applied while the resyncs go on.
        fresh = manifest(args.objects, 1)
        fresh["metadata"]["name"] = "fresh"
        fresh_app = fresh["spec"]["appId"]
        mark = call_count(sim)
        applied = time.time()
        subprocess.run([*kubectl, "apply", "-f", "-"], input=yaml.safe_dump(fresh).encode(), env=env,
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        first_fresh: float | None = None
        ready_after: float | None = None
        deadline = time.monotonic() + 300
        while ready_after is None and time.monotonic() < deadline:
            time.sleep(0.2)  # sampling
            if first_fresh is None:
                mine = [c for c in calls_from(sim, mark) if c["appId"] == fresh_app]
                first_fresh = float(mine[0]["time"]) - applied if mine else None
            status = subprocess.run(
                [*kubectl, "get", "backendauth", "fresh", "-o",
                 "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
                capture_output=True, text=True, env=env, timeout=60,
            ).stdout  # fmt: skip
            if status == "True":
                ready_after = time.time() - applied

        by_operation = Counter(c["operation"] for c in window)
        resyncs = by_operation.get("GetBackendAuth", 0)
        writes = {k: n for k, n in sorted(requests.items()) if k.startswith(WRITES)}
        expected = round_seconds(args.objects, args.period, args.pace, args.share)
        log = (work / "operator.log").read_text(errors="replace")
        print(json.dumps({
            "api": args.api, "objects": args.objects, "period_seconds": args.period, "pace": args.pace,
            "share": args.share, "window_seconds": args.window,
            "first_resync_after_restart_seconds": round(round_began, 1),
            "resyncs": resyncs, "aws_calls": dict(sorted(by_operation.items())),
            "aws_calls_per_resync": round(len(window) / max(1, resyncs), 3),
            "kubernetes_writes": writes,
            "kubernetes_writes_per_resync": round(sum(writes.values()) / max(1, resyncs), 3),
            "share_of_pace": round(len(window) / (args.window * args.pace), 3),
            "wanted_reads_per_second": round(args.objects / args.period, 2),
            "round_expected_seconds": round(expected, 1),
            "round_reported_seconds": reported,
            "round_measured_seconds": round(args.objects / (resyncs / args.window), 1) if resyncs else None,
            "oldest_read_seconds": age,
            "fresh_first_aws_call_seconds": round(first_fresh, 2) if first_fresh is not None else None,
            "fresh_ready_seconds": round(ready_after, 2) if ready_after is not None else None,
            "round_warnings": log.count("Resyncs fall behind"),
            "operator_cpu_seconds": round(cpu, 1), "operator_peak_rss_mib": round(peak / 1024, 1),
            "load_average_1m": {k: round(v, 2) for k, v in load.items()},
        }))  # fmt: skip
        return 0
    finally:
        stop_all(procs, sim, proxy, cluster)


if __name__ == "__main__":
    sys.exit(main())
