"""A smoke run of the scale benchmark: it runs, says what it measured, and the counts that do
not depend on the machine hold (times and memory are figures, not assertions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    # Counted by the proxy: every step reads its object and writes what changed.
    requests = figures["kubernetes_requests"]
    assert requests["GET backendauths"] >= 6 and requests["PATCH backendauths/status"] >= 6
    assert 5 <= figures["kubernetes_requests_per_backendauth"] <= 20
    for key in ("operator_peak_rss_mib", "bare_kopf_peak_rss_mib", "operator_cpu_ms_per_backendauth",
                "seconds_to_first_aws_call", "ratio_to_bound"):  # fmt: skip
        assert figures[key] > 0, key
