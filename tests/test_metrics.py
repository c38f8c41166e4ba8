"""The operator's Prometheus metrics: names, labels, the per-state gauge, the server."""

from __future__ import annotations

import threading
import urllib.request

import pytest
from prometheus_client import REGISTRY as GLOBAL_REGISTRY
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from backendauth_operator import metrics
from backendauth_operator.metrics import OperatorMetrics


@pytest.fixture
def m() -> OperatorMetrics:
    return OperatorMetrics()


ACCOUNT_LABELLED = ("backendauth_aws_calls", "backendauth_retries", "backendauth_job_duration_seconds")


def value(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    """The sample's value in the registry, or None when the series does not exist; ``account``
    is the operator's own (empty) unless given."""
    if name.startswith(ACCOUNT_LABELLED):
        labels.setdefault("account", "")
    return m.registry.get_sample_value(name, labels)


def series(m: OperatorMetrics, name: str) -> list[dict[str, str]]:
    """The label sets of every sample called ``name`` in the rendered text."""
    text = m.render().decode()
    return [
        dict(sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def test_aws_calls_are_counted_by_operation_and_outcome(m: OperatorMetrics) -> None:
    m.record_aws_call("CreateBackendAuth", "ok")
    m.record_aws_call("CreateBackendAuth", "Throttled")
    m.record_aws_call("CreateBackendAuth", "Throttled")
    m.record_aws_call("GetBackendJob", "ok")
    total = "backendauth_aws_calls_total"
    assert value(m, total, operation="CreateBackendAuth", outcome="ok") == 1
    assert value(m, total, operation="CreateBackendAuth", outcome="Throttled") == 2
    assert value(m, total, operation="GetBackendJob", outcome="ok") == 1
    assert value(m, total, operation="GetBackendJob", outcome="Throttled") is None


def test_calls_retries_and_jobs_carry_the_account(m: OperatorMetrics) -> None:
    m.record_aws_call("CreateBackendAuth", "ok", "111111111111")
    m.record_aws_call("CreateBackendAuth", "ok", "222222222222")
    m.record_aws_call("CreateBackendAuth", "Throttled", "222222222222")
    m.record_retry("Throttled", "222222222222")
    m.observe_job("CreateBackendAuth", "COMPLETED", 3.0, "111111111111")
    total = "backendauth_aws_calls_total"
    assert value(m, total, operation="CreateBackendAuth", outcome="ok", account="111111111111") == 1
    assert value(m, total, operation="CreateBackendAuth", outcome="ok", account="222222222222") == 1
    assert value(m, total, operation="CreateBackendAuth", outcome="Throttled", account="111111111111") is None
    assert value(m, "backendauth_retries_total", reason="Throttled", account="222222222222") == 1
    jobs = "backendauth_job_duration_seconds_count"
    assert value(m, jobs, operation="CreateBackendAuth", result="COMPLETED", account="111111111111") == 1
    assert value(m, jobs, operation="CreateBackendAuth", result="COMPLETED", account="222222222222") is None


def test_retries_are_counted_by_reason(m: OperatorMetrics) -> None:
    m.record_retry("Throttled")
    m.record_retry("AWSUnavailable")
    m.record_retry("Throttled")
    assert value(m, "backendauth_retries_total", reason="Throttled") == 2
    assert value(m, "backendauth_retries_total", reason="AWSUnavailable") == 1


def test_job_durations_land_in_buckets_from_seconds_to_hours(m: OperatorMetrics) -> None:
    m.observe_job("CreateBackendAuth", "COMPLETED", 3.0)
    m.observe_job("CreateBackendAuth", "COMPLETED", 5400.0)
    m.observe_job("UpdateBackendAuth", "FAILED", 42.0)
    name = "backendauth_job_duration_seconds"
    ok = {"operation": "CreateBackendAuth", "result": "COMPLETED"}
    assert value(m, f"{name}_count", **ok) == 2
    assert value(m, f"{name}_sum", **ok) == 5403.0
    assert value(m, f"{name}_bucket", **ok, le="5.0") == 1
    assert value(m, f"{name}_bucket", **ok, le="3600.0") == 1
    assert value(m, f"{name}_bucket", **ok, le="7200.0") == 2
    assert value(m, f"{name}_count", operation="UpdateBackendAuth", result="FAILED") == 1
    buckets = {s["le"] for s in series(m, f"{name}_bucket") if s["operation"] == "CreateBackendAuth"}
    assert {"1.0", "60.0", "3600.0", "14400.0", "+Inf"} <= buckets


def test_negative_job_durations_from_clock_skew_count_as_zero(m: OperatorMetrics) -> None:
    m.observe_job("CreateBackendAuth", "COMPLETED", -2.0)
    labels = {"operation": "CreateBackendAuth", "result": "COMPLETED"}
    assert value(m, "backendauth_job_duration_seconds_sum", **labels) == 0


def test_resource_counts_move_when_an_object_changes_state(m: OperatorMetrics) -> None:
    gauge = "backendauth_resources"
    m.set_object_state("uid-1", "reconciling", "Submitting")
    m.set_object_state("uid-2", "reconciling", "Submitting")
    assert value(m, gauge, condition="Reconciling", reason="Submitting") == 2

    m.set_object_state("uid-1", "reconciling", "JobInProgress")
    assert value(m, gauge, condition="Reconciling", reason="Submitting") == 1
    assert value(m, gauge, condition="Reconciling", reason="JobInProgress") == 1

    m.set_object_state("uid-1", "ready", "JobCompleted")
    m.set_object_state("uid-2", "stalled", "InvalidSpec")
    assert value(m, gauge, condition="Ready", reason="JobCompleted") == 1
    assert value(m, gauge, condition="Stalled", reason="InvalidSpec") == 1
    assert value(m, gauge, condition="Reconciling", reason="JobInProgress") == 0
    assert value(m, gauge, condition="Reconciling", reason="Submitting") == 0


def test_repeating_the_same_state_counts_the_object_once(m: OperatorMetrics) -> None:
    for _ in range(5):
        m.set_object_state("uid-1", "Ready", "JobCompleted")
    assert value(m, "backendauth_resources", condition="Ready", reason="JobCompleted") == 1
    assert m.tracked_objects() == 1


def test_forgetting_an_object_removes_it_from_the_counts(m: OperatorMetrics) -> None:
    m.set_object_state("uid-1", "ready", "JobCompleted")
    m.set_object_state("uid-1", None, None)
    m.set_object_state("never-seen", None, None)  # forgetting an unknown object is harmless
    assert value(m, "backendauth_resources", condition="Ready", reason="JobCompleted") == 0
    assert m.tracked_objects() == 0


def test_a_missing_reason_is_an_empty_label(m: OperatorMetrics) -> None:
    m.set_object_state("uid-1", "reconciling", None)
    assert value(m, "backendauth_resources", condition="Reconciling", reason="") == 1


def test_an_unknown_phase_is_refused_rather_than_made_a_series(m: OperatorMetrics) -> None:
    with pytest.raises(ValueError, match="unknown phase"):
        m.set_object_state("uid-1", "exploded", "Boom")
    assert series(m, "backendauth_resources") == []


def test_a_thousand_objects_make_a_handful_of_series_not_a_thousand(m: OperatorMetrics) -> None:
    states = [("ready", "JobCompleted"), ("reconciling", "Throttled"), ("stalled", "InvalidSpec")]
    for i in range(1000):
        phase, reason = states[i % 3]
        m.set_object_state(f"uid-{i}", phase, reason)
    labels = series(m, "backendauth_resources")
    assert len(labels) == 3
    assert all(set(label) == {"condition", "reason"} for label in labels)
    total = sum(
        value(m, "backendauth_resources", condition=c, reason=r) or 0
        for c, r in (("Ready", "JobCompleted"), ("Reconciling", "Throttled"), ("Stalled", "InvalidSpec"))
    )
    assert total == 1000


def test_concurrent_updates_from_handler_threads_keep_the_counts_exact(m: OperatorMetrics) -> None:
    phases = [("reconciling", "Submitting"), ("reconciling", "JobInProgress"), ("ready", "JobCompleted")]
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for i in range(200):
            uid = f"uid-{n}-{i % 25}"
            for phase, reason in phases:
                m.set_object_state(uid, phase, reason)
                m.record_aws_call("GetBackendJob", "ok")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert value(m, "backendauth_resources", condition="Ready", reason="JobCompleted") == 8 * 25
    assert value(m, "backendauth_resources", condition="Reconciling", reason="Submitting") == 0
    assert value(m, "backendauth_resources", condition="Reconciling", reason="JobInProgress") == 0
    assert value(m, "backendauth_aws_calls_total", operation="GetBackendJob", outcome="ok") == 8 * 200 * 3


def test_render_is_the_prometheus_text_format_with_the_documented_names(m: OperatorMetrics) -> None:
    m.record_aws_call("CreateBackendAuth", "ok")
    m.record_retry("Throttled")
    m.observe_job("CreateBackendAuth", "COMPLETED", 1.5)
    m.set_object_state("uid-1", "ready", "JobCompleted")
    families = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    assert families["backendauth_aws_calls"].type == "counter"
    assert families["backendauth_retries"].type == "counter"
    assert families["backendauth_job_duration_seconds"].type == "histogram"
    assert families["backendauth_resources"].type == "gauge"
    text = m.render().decode()
    assert 'backendauth_aws_calls_total{account="",operation="CreateBackendAuth",outcome="ok"} 1.0' in text
    assert 'backendauth_resources{condition="Ready",reason="JobCompleted"} 1.0' in text


def test_the_metrics_stay_out_of_the_global_registry() -> None:
    OperatorMetrics().record_aws_call("CreateBackendAuth", "ok")
    metrics.record_aws_call("CreateBackendAuth", "ok")
    assert b"backendauth_" not in generate_latest(GLOBAL_REGISTRY)
    assert b"python_gc_objects_collected_total" not in metrics.render()


def test_the_server_serves_the_registry_over_http(m: OperatorMetrics) -> None:
    m.record_retry("Throttled")
    m.start_server(0, addr="127.0.0.1")
    try:
        (port,) = m.server_ports()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert 'backendauth_retries_total{account="",reason="Throttled"} 1.0' in body
        assert "python_gc_objects_collected_total" not in body  # not the global registry
    finally:
        m.stop_servers()
    assert m.server_ports() == []


def test_module_functions_record_into_the_process_metrics() -> None:
    before = (
        metrics.METRICS.registry.get_sample_value(
            "backendauth_aws_calls_total",
            {"operation": "DeleteBackendAuth", "outcome": "NotFound", "account": ""},
        )
        or 0
    )
    metrics.record_aws_call("DeleteBackendAuth", "NotFound")
    metrics.record_retry("AWSUnavailable")
    metrics.observe_job("DeleteBackendAuth", "COMPLETED", 12.0)
    metrics.set_object_state("module-test-uid", "stalled", "BadRequest")
    try:
        text = metrics.render().decode()
        after = metrics.METRICS.registry.get_sample_value(
            "backendauth_aws_calls_total",
            {"operation": "DeleteBackendAuth", "outcome": "NotFound", "account": ""},
        )
        assert after == before + 1
        assert 'backendauth_resources{condition="Stalled",reason="BadRequest"}' in text
        job = 'backendauth_job_duration_seconds_count{account="",operation="DeleteBackendAuth",'
        job += 'result="COMPLETED"}'
        assert job in text
    finally:
        metrics.set_object_state("module-test-uid", None, None)


def test_the_module_server_can_be_started_and_stopped() -> None:
    metrics.start_metrics_server(0, addr="127.0.0.1")
    try:
        (port,) = metrics.METRICS.server_ports()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200
    finally:
        metrics.stop_metrics_server()
