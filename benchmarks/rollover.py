"""A rolling update of two operators: how long BackendAuths go unserved, and what a standby costs.

On a real kube-apiserver (built by tests/kube/build.sh) with the AmplifyBackend simulator: two
``backendauth-operator run`` processes with leader election (the default Lease timings, 15 /
10 / 2 s, unless told otherwise) and N BackendAuths, all Ready. Then, as Kubernetes rolls a
Deployment with maxSurge 1 and maxUnavailable 0: a third operator starts, and once it stands
by, the leader gets SIGTERM. At that moment a fresh BackendAuth is applied; the unserved window
is the time from the signal to that object's first AWS call (and to its CreateBackendAuth), as
the simulator's call log records them. The same again for a SIGKILL of the leader (a node
lost): the window is then the Lease running out. Resident memory (VmRSS) of the leader and the
standby is read once all are Ready, and of the new standby once it is up.

Prints one JSON line. Not a test: figures depend on the machine.

    .venv/bin/python benchmarks/rollover.py --objects 50
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from backendauth_testbed.simulator import SimulatorConfig  # noqa: E402
from harness import Operator, operator_env, wait_until  # noqa: E402
from real_apiserver import RealBed, RealCluster, build_binaries  # noqa: E402
from test_leader_real import leader, manifests, ready_items, rss_mib  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument("--job-seconds", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=600, help="for all Ready, and for each step")
    args = parser.parse_args()

    build = build_binaries()
    if build.bin_dir is None:
        print(f"no real API server: {build.problem}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="backendauth-rollover-"))
    cluster = RealCluster(build.bin_dir, work).start()
    (work / "bed").mkdir()
    bed = RealBed(
        work / "bed", cluster, cluster.create_namespace("rollover"),
        SimulatorConfig(auto_apps=True, job_seconds=args.job_seconds),
    )  # fmt: skip
    operators: dict[str, Operator] = {}
    done = False  # the work directory, with the logs, is kept when something failed

    def start() -> Operator:
        name = f"op-{len(operators)}"
        operators[name] = Operator(
            operator_env(
                bed.kubeconfig, bed.sim.url, POD_NAME=name, BACKENDAUTH_LEASE_NAMESPACE=bed.namespace,
                BACKENDAUTH_LEADER_ELECTION="true",
                BACKENDAUTH_LEASE_DURATION_SECONDS=str(args.lease_duration),
                BACKENDAUTH_RENEW_DEADLINE_SECONDS=str(args.renew_deadline),
                BACKENDAUTH_RETRY_PERIOD_SECONDS=str(args.retry_period),
            ),
            work / f"{name}.log",
        ).start()  # fmt: skip
        return operators[name]

    def standing_by(operator: Operator) -> bool:
        return "stands by" in operator.log

    def current_leader() -> Operator:
        return operators[wait_until(lambda: leader(bed), args.timeout, "a leader")]

    def unserved(end: str, stand_by: list[Operator]) -> dict[str, Any]:
        """End the leader by ``end``, apply a fresh BackendAuth at once, and time its service."""
        gone = current_leader()
        assert gone.process is not None
        fresh = manifests(1, end.lower())[0]
        resource = fresh["spec"]["resourceName"]
        signalled = time.time()
        gone.process.send_signal(15 if end == "SIGTERM" else 9)
        bed.apply(fresh)
        gone.process.wait(timeout=60)

        def calls(operation: str | None = None) -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = [
                c for c in bed.calls()["calls"]
                if c.get("resourceName") == resource and operation in (None, c["operation"])
            ]  # fmt: skip
            return found

        created = wait_until(lambda: calls("CreateBackendAuth"), args.timeout, f"{resource} created")
        new_leader = current_leader()
        assert new_leader in stand_by, f"{new_leader.env['POD_NAME']} leads"
        return {
            "seconds_to_first_aws_call": round(calls()[0]["time"] - signalled, 2),
            "seconds_to_create": round(created[0]["time"] - signalled, 2),
            "from": gone.env["POD_NAME"],
            "to": new_leader.env["POD_NAME"],
        }

    try:
        first = start()
        wait_until(lambda: leader(bed) == "op-0", args.timeout, "op-0 leading")
        second = start()
        wait_until(lambda: standing_by(second), args.timeout, "op-1 standing by")
        started = time.monotonic()
        bed.apply(*manifests(args.objects))
        wait_until(lambda: ready_items(bed, args.objects), args.timeout, "all Ready")
        settled = time.monotonic() - started
        rss = {"leader": round(rss_mib(first), 1), "standby": round(rss_mib(second), 1)}

        # The rolling update: a surge pod first, then the old leader goes.
        third = start()
        wait_until(lambda: standing_by(third), args.timeout, "op-2 standing by")
        rss["new_standby_once_up"] = round(rss_mib(third), 1)
        sigterm = unserved("SIGTERM", [second, third])
        sigkill = unserved("SIGKILL", [second, third])
        items = wait_until(lambda: ready_items(bed, args.objects + 2), args.timeout, "all Ready")
        creates = Counter(
            c["resourceName"] for c in bed.calls()["calls"]
            if c["operation"] == "CreateBackendAuth" and c["fault"] in (None, "ambiguous")
        )  # fmt: skip
        print(json.dumps({
            "api": "real", "objects": args.objects,
            "lease_seconds": {"duration": args.lease_duration, "renew_deadline": args.renew_deadline,
                              "retry_period": args.retry_period},
            "seconds_to_all_ready": round(settled, 1),
            "unserved_after_sigterm": sigterm, "unserved_after_sigkill": sigkill,
            "rss_mib": rss,
            "ready": len(items),
            "creates_per_backendauth": sorted(set(creates.values())),
        }))  # fmt: skip
        done = True
        return 0
    finally:
        for operator in operators.values():
            operator.stop()
        bed.close()
        cluster.stop()
        if done:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs in {work}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
