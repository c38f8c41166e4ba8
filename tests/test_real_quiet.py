"""At rest on the real API server: what a settled BackendAuth costs.

- Settled objects through a full round of resyncs: one GetBackendAuth each, no GetBackend, no
  other AWS call, and no watch event for any of them (a watch from the list's resourceVersion
  sees nothing: no status patch, no annotation).
- Drift is still found and corrected within a round, and a changed answer in AWS makes the
  outputs be read again (once).
- Resyncs that want more than their budget: their calls stay within their share of the pace,
  the round gauge shows the stretched round, the warning is logged once, and a new
  BackendAuth's first AWS call comes within seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from typing import Any

import pytest

from harness import backendauth, wait_until
from real_apiserver import RealBed, free_port
from sim import sim_state
from specs import minimal_spec

pytestmark = [pytest.mark.real_apiserver, pytest.mark.integration]

ENV = "staging"


def spec_of(i: int, prefix: str) -> dict[str, Any]:
    """An app of its own per object (no waiting for another's turn), a password policy to drift."""
    name = f"{prefix}{i:02d}"
    spec = minimal_spec(appId=name, resourceName=name)
    spec["resourceConfig"]["userPoolConfigs"]["passwordPolicy"] = {"minimumLength": 12}
    return spec


def apply_settled(bed: RealBed, prefix: str, n: int, timeout: float = 120) -> list[str]:
    names = [f"{prefix}{i:02d}" for i in range(n)]
    bed.apply(*[backendauth(name, spec_of(i, prefix)) for i, name in enumerate(names)])
    for name in names:
        bed.wait_reason(name, "JobCompleted", status="True", timeout=timeout)
    return names


def calls_since(bed: RealBed, seq: int) -> list[dict[str, Any]]:
    return [c for c in bed.calls()["calls"] if c["seq"] > seq]


def last_seq(bed: RealBed) -> int:
    calls = bed.calls()["calls"]
    return int(calls[-1]["seq"]) if calls else 0


def start_watch(bed: RealBed, seconds: int) -> tuple[subprocess.Popen[str], str]:
    """A watch of the namespace's BackendAuths from the list's resourceVersion, ended by the
    API server after ``seconds``; every event it sees is printed as a JSON line."""
    collection = f"/apis/amplifybackend.gitops.dev/v1alpha1/namespaces/{bed.namespace}/backendauths"
    listed = json.loads(bed.kubectl("get", "--raw", collection).stdout)
    version = listed["metadata"]["resourceVersion"]
    assert version and len(listed["items"]) > 0, listed["metadata"]
    path = f"{collection}?watch=1&resourceVersion={version}&timeoutSeconds={seconds}"
    env = {**os.environ, "KUBECONFIG": str(bed.kubeconfig)}
    process = subprocess.Popen(
        [bed.kubectl_path, "get", "--raw", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    return process, version


def change_in_aws(bed: RealBed, name: str, change: Any) -> None:
    """Someone edits the auth resource in the Amplify console."""
    config = sim_state(bed)["resources"][f"{name}/{ENV}/{name}"]
    change(config)
    bed.sim_post("resources", {"appId": name, "backendEnvironmentName": ENV, "resourceName": name,
                               "resourceConfig": config})  # fmt: skip


def reads(calls: list[dict[str, Any]], name: str, operation: str = "GetBackendAuth") -> int:
    return sum(1 for c in calls if c["operation"] == operation and c["appId"] == name)


@pytest.mark.timeout(300)
def test_settled_objects_cost_one_read_each_per_round_and_no_kubernetes_write(make_real_bed: Any) -> None:
    period = 6.0
    bed: RealBed = make_real_bed(start_operator=False)
    bed.operator.env.update(BACKENDAUTH_RESYNC_SECONDS=str(period), BACKENDAUTH_AWS_MAX_RPS="5")
    bed.operator.start()
    names = apply_settled(bed, "quiet", 8)

    # A full round, watched from the list's resourceVersion.
    watch, version = start_watch(bed, seconds=int(3 * period))
    mark = last_seq(bed)

    def each_read_once() -> bool:
        calls = calls_since(bed, mark)
        return all(reads(calls, name) >= 1 for name in names)

    wait_until(each_read_once, 2 * period + 10, "a full round of resyncs")
    out, err = watch.communicate(timeout=6 * period)
    assert watch.returncode == 0, err
    round_calls = calls_since(bed, mark)
    operations = {c["operation"] for c in round_calls}
    assert operations == {"GetBackendAuth"}, f"no GetBackend, no other call: {operations}"
    assert out.strip() == "", f"watch events since resourceVersion {version}: {out[:2000]}"

    # Drift is found and corrected within a round.
    change_in_aws(bed, "quiet00", lambda c: c["userPoolConfigs"].update(passwordPolicy={"minimumLength": 8}))
    wait_until(
        lambda: bed.count("UpdateBackendAuth", "quiet00") == 1, 2 * period + 10, "the correcting update"
    )
    obj = bed.wait_reason("quiet00", "JobCompleted", status="True")
    assert obj["status"]["operation"] == "UpdateBackendAuth" and obj["status"]["drift"] == []
    stored = sim_state(bed)["resources"][f"quiet00/{ENV}/quiet00"]
    assert stored["userPoolConfigs"]["passwordPolicy"]["minimumLength"] == 12

    # AWS answers otherwise, though still as the spec says (a value the spec leaves to AWS):
    # the outputs are read again, once; the next rounds read GetBackendAuth only.
    mark = last_seq(bed)
    change_in_aws(
        bed, "quiet01", lambda c: c["userPoolConfigs"].update(forgotPassword={"deliveryMethod": "EMAIL"})
    )
    wait_until(lambda: reads(calls_since(bed, mark), "quiet01", "GetBackend") == 1, 2 * period + 10,
               "the outputs read again")  # fmt: skip
    wait_until(lambda: reads(calls_since(bed, mark), "quiet01") >= 3, 4 * period + 10, "two more rounds")
    assert reads(calls_since(bed, mark), "quiet01", "GetBackend") == 1
    assert bed.condition("quiet01")["reason"] == "JobCompleted"
    assert bed.get("quiet01")["status"]["outputs"]["userPoolId"]
    assert "lastObservedAt" not in bed.get("quiet01")["status"]


def metric(text: str, name: str) -> float:
    (line,) = [row for row in text.splitlines() if row.startswith(f"{name} ")]
    return float(line.split()[1])


@pytest.mark.timeout(300)
def test_resyncs_that_want_more_than_their_budget_stretch_the_round_and_leave_the_pace_to_new_work(
    make_real_bed: Any,
) -> None:
    # 16 objects every 2 s want 8 reads/s; the budget is 0.5 of 4 calls/s: a round of 8 s.
    period, pace, share, n = 2.0, 4.0, 0.5, 16
    bed: RealBed = make_real_bed(start_operator=False)
    bed.operator.env.update(
        BACKENDAUTH_RESYNC_SECONDS=str(period), BACKENDAUTH_AWS_MAX_RPS=str(pace),
        BACKENDAUTH_RESYNC_MAX_SHARE=str(share), BACKENDAUTH_METRICS_PORT=str(free_port()),
    )  # fmt: skip
    bed.operator.start()
    names = apply_settled(bed, "busy", n, timeout=180)

    # The resyncs' calls over a window of 16 s: at most the share of the pace (and the one
    # token the budget may hold at the start).
    window = 16.0
    started = time.time()
    mark = last_seq(bed)
    wait_until(lambda: any(c["time"] >= started + window for c in calls_since(bed, mark)), window + 30,
               "calls past the window")  # fmt: skip
    inside = [c for c in calls_since(bed, mark) if c["time"] < started + window]
    assert {c["operation"] for c in inside} == {"GetBackendAuth"}, "only resyncs, one call each"
    measured = len(inside) / (window * pace)
    assert measured <= share + 2 / (window * pace), f"resyncs used {measured:.2f} of the pace"
    assert measured >= share / 2, f"resyncs used only {measured:.2f} of the pace"

    text = bed.operator.metrics()
    assert metric(text, "backendauth_resync_round_seconds") == pytest.approx(n / (pace * share))
    assert metric(text, "backendauth_resync_period_seconds") == period
    assert metric(text, "backendauth_observation_age_seconds") > 0

    # A new BackendAuth goes before the resyncs: its first AWS call within seconds.
    applied = time.time()
    mark = last_seq(bed)
    bed.apply(backendauth("fresh", minimal_spec(appId="freshapp", resourceName="fresh")))
    first = wait_until(lambda: next((c for c in calls_since(bed, mark) if c["appId"] == "freshapp"), None),
                       30, "the new object's first AWS call")  # fmt: skip
    assert first["time"] - applied < 5, f"first AWS call {first['time'] - applied:.1f}s after the apply"
    bed.wait_reason("fresh", "JobCompleted", status="True", timeout=60)

    log = bed.operator.log
    assert log.count("Resyncs fall behind") == 1, log[-3000:]
    said = next(line for line in log.splitlines() if "Resyncs fall behind" in line)
    # Said when the round started to stretch (objects were still getting Ready then), once.
    assert re.search(
        r"Resyncs fall behind: \d+ settled BackendAuths \(account 000000000000, region eu-west-1\)", said
    ), said
    assert "0.5 of the pace of 4 calls/s" in said and "every 2s" in said, said
    assert all(name in {c["appId"] for c in bed.calls()["calls"]} for name in names)
