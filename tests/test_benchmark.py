"""Smoke runs of the benchmarks: each runs, says what it measured, and the counts that do
not depend on the machine hold. Times and memory are figures, not assertions, except the
bounds a leader election sets: those hold on any machine, in one direction or the other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from real_apiserver import build_binaries, unavailable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent


def test_the_benchmark_prints_one_line_of_figures_and_a_restart_costs_no_aws_call() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--objects", "6", "--rate", "30",
         "--job-seconds", "0.5", "--per-app-env", "2", "--restart-window", "3", "--timeout", "120"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [row for row in out.stdout.splitlines() if row.startswith("{")]
    figures = json.loads(line)
    assert figures["api"] == "emulated" and figures["objects"] == 6
    calls = figures["aws_calls"]
    assert calls["CreateBackendAuth:ok"] == 6, "one create per BackendAuth"
    assert not [op for op in calls if not op.endswith(":ok") and "NotFound" not in op], calls
    assert figures["throttled_share"] == 0.0
    assert figures["aws_calls_after_restart"] == {}, "everything is in sync: a restart calls nothing"
    # Counted by the proxy: the requests of the objects themselves, and the process's besides. (Two
    # per app/env here, so they also wait for turns: Lease reads, a JobPending status. With one
    # per app/env a new BackendAuth costs 8 of its own, see docs/explanation/benchmarks.md.)
    requests = figures["kubernetes_requests"]
    assert requests["PATCH backendauths/status"] >= 6
    assert 5 <= figures["object_requests_per_backendauth"] <= figures["kubernetes_requests_per_backendauth"]
    assert 5 <= figures["kubernetes_requests_per_backendauth"] <= 20
    for key in ("operator_peak_rss_mib", "bare_kopf_peak_rss_mib", "operator_cpu_ms_per_backendauth",
                "seconds_to_first_aws_call", "ratio_to_bound"):  # fmt: skip
        assert figures[key] > 0, key


@pytest.mark.real_apiserver
@pytest.mark.timeout(300)
def test_the_rollover_benchmark_hands_over_within_the_lease_and_creates_each_resource_once() -> None:
    """Shorter Lease timings (6 / 4 / 1 s) and five objects; the bounds are the election's own:
    after a SIGTERM the Lease is released, so the fresh object is served before it could have
    run out; after a SIGKILL it cannot be served before the killed leader's Lease runs out
    (renewed at most one retry period before the kill)."""
    build = build_binaries()
    if build.bin_dir is None:
        unavailable(build.problem or "the build failed", build.log)
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "rollover.py"), "--objects", "5",
         "--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1", "--timeout", "120"],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [row for row in out.stdout.splitlines() if row.startswith("{")]
    figures = json.loads(line)
    assert figures["ready"] == 7 and figures["creates_per_backendauth"] == [1], figures
    sigterm, sigkill = figures["unserved_after_sigterm"], figures["unserved_after_sigkill"]
    assert sigterm["seconds_to_create"] < 6, sigterm
    # The killed leader renewed at most one retry period (and its requests) before the kill.
    assert sigkill["seconds_to_first_aws_call"] >= 6 - 1 - 2, sigkill
    assert sigterm["to"] != sigterm["from"] and sigkill["to"] != sigkill["from"]
    assert all(mib > 0 for mib in figures["rss_mib"].values()), figures["rss_mib"]


@pytest.mark.real_apiserver
@pytest.mark.timeout(300)
def test_the_steady_state_benchmark_counts_one_aws_call_and_no_kubernetes_write_per_resync() -> None:
    """Twelve settled objects, a period of 12 s (a round that fits the budget of 2.5 reads/s):
    the counts that do not depend on the machine."""
    build = build_binaries()
    if build.bin_dir is None:
        unavailable(build.problem or "the build failed", build.log)
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "steady.py"), "--objects", "12", "--period", "12",
         "--window", "10"],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [row for row in out.stdout.splitlines() if row.startswith("{")]
    figures = json.loads(line)
    assert figures["resyncs"] >= 1 and figures["aws_calls"] == {"GetBackendAuth": figures["resyncs"]}
    assert figures["aws_calls_per_resync"] == 1.0 and figures["kubernetes_writes"] == {}
    assert figures["round_expected_seconds"] == figures["round_reported_seconds"] == 12.0
    assert figures["round_warnings"] == 0 and figures["fresh_first_aws_call_seconds"] is not None
