"""The API server's reachability as the operator sees it: what the log says and how often, the
metric, ``/readyz``, and Kopf's retries, with a fake clock and fake probes (the real cut is
``test_real_reachability.py``)."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from backendauth_operator import metrics
from backendauth_operator.kube.client import KubeClient
from backendauth_operator.runtime import reachability
from backendauth_operator.runtime.probes import ProbeServer, Readiness, parse_endpoint
from backendauth_operator.runtime.reachability import (
    KOPF_BACKOFFS,
    ApiServerMonitor,
    KopfBackoffs,
    QuietUnreachableRetries,
    Reachability,
    describe,
    version_probe,
)
from harness import wait_until

SERVER = "https://10.96.0.1:443"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def said(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="test.reachability")
    yield caplog


def reach(clock: Clock) -> Reachability:
    return Reachability(SERVER, logging.getLogger("test.reachability"), clock=clock)


def gauge() -> float:
    value = metrics.METRICS.registry.get_sample_value("backendauth_kube_api_reachable")
    assert value is not None
    return value


# ---- what the log says, and how often


def test_an_outage_is_warned_at_once_then_once_a_minute_and_its_end_in_one_line(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    r = reach(clock)
    r.record(True)
    assert [m.getMessage() for m in said.records] == [f"The Kubernetes API server {SERVER} answers."]
    said.clear()
    for _ in range(27):  # a probe every 5 s for 135 s, none answered
        clock.now += 5
        r.record(False, "no connection within 5s")
    warnings = [m for m in said.records if m.levelno == logging.WARNING]
    assert [w.getMessage().split(": no answer for ")[1].split(" ")[0] for w in warnings] == [
        "5s",
        "1m05s",
        "2m05s",
    ]
    assert all(SERVER in w.getMessage() and "no connection within 5s" in w.getMessage() for w in warnings)
    said.clear()
    clock.now += 5
    r.record(True)
    clock.now += 5
    r.record(True)
    assert [(m.levelname, m.getMessage()) for m in said.records] == [
        ("INFO", f"The Kubernetes API server {SERVER} answers again, after 2m20s.")
    ]


def test_a_second_outage_is_warned_at_once_even_within_the_minute(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    r = reach(clock)
    r.record(False, "refused")
    clock.now += 5
    r.record(True)
    clock.now += 5
    r.record(False, "refused")
    assert len([m for m in said.records if m.levelno == logging.WARNING]) == 2


def test_never_reached_at_start_is_warned_at_the_first_failed_probe(
    clock: Clock, said: pytest.LogCaptureFixture
) -> None:
    r = reach(clock)
    clock.now += 6
    r.record(False, "no connection within 5s")
    (warning,) = said.records
    assert warning.levelno == logging.WARNING and "no answer for 6s" in warning.getMessage()


def test_the_metric_follows_the_probes(clock: Clock) -> None:
    r = reach(clock)
    assert gauge() == 0, "not reachable before the first answer"
    r.record(True)
    assert gauge() == 1
    r.record(False, "refused")
    assert gauge() == 0
    r.record(True)
    assert gauge() == 1


def test_listeners_hear_of_each_change_but_not_of_the_first_answer(clock: Clock) -> None:
    r = reach(clock)
    heard: list[bool] = []
    r.on_change(heard.append)
    r.record(True)
    r.record(True)
    r.record(False, "refused")
    r.record(False, "refused")
    r.record(True)
    assert heard == [False, True]


def test_dropping_connections_empties_the_pool_of_the_operators_client() -> None:
    client = KubeClient(
        kubernetes.client.ApiClient(kubernetes.client.Configuration(host="http://127.0.0.1:1"))
    )
    manager = client.api_client.rest_client.pool_manager
    manager.connection_from_url("http://127.0.0.1:1/")
    assert len(manager.pools) == 1
    client.drop_connections()
    assert len(manager.pools) == 0


# ---- readiness


def test_readiness_says_why_in_one_line_and_recovers(clock: Clock) -> None:
    r = reach(clock)
    ready, reason = r.readiness()
    assert not ready and reason == f"the Kubernetes API server {SERVER} has not answered yet"
    clock.now += 12
    r.record(False, "no connection within 5s")
    ready, reason = r.readiness()
    assert not ready and SERVER in reason and "12s" in reason and "no connection within 5s" in reason
    r.record(True)
    assert r.readiness() == (True, "")


def test_readiness_is_the_first_failing_named_check() -> None:
    readiness = Readiness()
    state = {"started": False, "api": False}
    readiness.add("operator", lambda: (state["started"], "starting"))
    readiness.add("kube-api", lambda: (state["api"], "cannot be reached:\n  no answer"))
    assert readiness.verdict() == (False, "operator: starting")
    state["started"] = True
    assert readiness.verdict() == (False, "kube-api: cannot be reached: no answer")
    state["api"] = True
    assert readiness.verdict() == (True, "ok")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_readyz_and_healthz_share_the_liveness_address(clock: Clock) -> None:
    r = reach(clock)
    readiness = Readiness()
    readiness.add("kube-api", r.readiness)
    calls = []

    async def kopf_probes() -> dict[str, Any]:
        calls.append(clock.now)
        return {"probe": len(calls)}

    server = ProbeServer("http://127.0.0.1:0/healthz", readiness, kopf_probes, clock=clock)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.bound_port}"

        async def fetch(path: str) -> tuple[int, str]:
            return await asyncio.to_thread(get, base + path)

        status, body = await fetch("/readyz")
        assert (
            status == 503 and body == f"kube-api: the Kubernetes API server {SERVER} has not answered yet\n"
        )
        r.record(True)
        assert await fetch("/readyz") == (200, "ok\n")
        r.record(False, "no connection within 5s")
        status, body = await fetch("/readyz")
        assert status == 503 and body.count("\n") == 1 and "no connection within 5s" in body

        # The liveness path answers Kopf's probe results whatever the API server does, refreshed
        # at most every 10 s (as Kopf's own health reporter).
        assert await fetch("/healthz") == (200, json.dumps({"probe": 1}))
        clock.now += 5
        assert await fetch("/healthz") == (200, json.dumps({"probe": 1}))
        clock.now += 5
        assert await fetch("/healthz") == (200, json.dumps({"probe": 2}))
        assert (await fetch("/other"))[0] == 404
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [("https://0.0.0.0:8080/healthz", "only http://"), ("http://0.0.0.0:8080/readyz", "readiness path")],
)
def test_a_liveness_url_that_cannot_be_served_is_refused(endpoint: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_endpoint(endpoint)


def test_the_liveness_url_is_read_as_kopf_reads_it() -> None:
    assert parse_endpoint("http://0.0.0.0:8080/healthz") == ("0.0.0.0", 8080, "/healthz")
    assert parse_endpoint("http://:9000") == ("localhost", 9000, "/")


# ---- Kopf's retries


def test_kopf_retries_follow_the_short_schedule_while_the_api_server_answers(clock: Clock) -> None:
    r = reach(clock)
    r.record(True)
    assert list(KopfBackoffs(r)) == list(KOPF_BACKOFFS)
    assert max(KOPF_BACKOFFS) <= 5, "a request waiting to retry is sent again soon after the path is back"
    assert list(KopfBackoffs(None)) == list(KOPF_BACKOFFS)


def test_kopf_retries_go_on_while_the_api_server_cannot_be_reached(clock: Clock) -> None:
    r = reach(clock)  # never reached yet: a discovery at start-up must not give up
    backoffs = iter(KopfBackoffs(r))
    assert len(list(islice(backoffs, 100))) == 100
    r.record(False, "refused")
    assert len(list(islice(backoffs, 100))) == 100
    r.record(True)
    assert list(backoffs) == [], "once it answers, an error that persists is Kopf's to escalate"


def test_kopf_retry_lines_for_connection_errors_show_only_when_verbose() -> None:
    quiet = QuietUnreachableRetries()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kopf.objects", logging.ERROR, __file__, 1, message, (), None)

    timeout = record(
        "Request attempt #3/9 failed; will retry: GET https://10.96.0.1/apis -> ConnectionTimeoutError('x')"
    )
    forbidden = record(
        "Request attempt #3/9 failed; will retry: GET https://x/apis -> APIForbiddenError('no')"
    )
    escalated = record("Request attempt #9/9 failed; escalating: GET https://x/apis -> TimeoutError()")
    urllib3_retry = record(
        "Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection "
        "broken by 'ReadTimeoutError(\"HTTPSConnectionPool(host='127.0.0.1', port=6443): Read timed out.\")'"
        ": /apis/amplifybackend.gitops.dev/v1alpha1/namespaces/shop/backendauths/auth"
    )
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        assert not quiet.filter(timeout)
        assert not quiet.filter(urllib3_retry)
        assert quiet.filter(forbidden) and forbidden.levelno == logging.ERROR
        assert quiet.filter(escalated) and escalated.levelno == logging.ERROR
        root.setLevel(logging.DEBUG)
        assert quiet.filter(timeout) and timeout.levelname == "DEBUG"
    finally:
        root.setLevel(level)


# ---- the probe


def test_failures_are_described_in_a_few_words() -> None:
    pool = urllib3.HTTPConnectionPool("10.96.0.1", 443)
    connect = urllib3.exceptions.MaxRetryError(pool, "/version", urllib3.exceptions.ConnectTimeoutError("x"))
    read = urllib3.exceptions.ReadTimeoutError(pool, "/version", "read timed out")
    assert describe(connect) == "no connection within 5s"
    refused = urllib3.exceptions.NewConnectionError(
        None, "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    assert describe(urllib3.exceptions.MaxRetryError(pool, "/version", refused)) == (
        "no connection: [Errno 111] Connection refused"
    )
    assert describe(read) == "no answer within 5s"
    assert describe(ApiException(status=503, reason="Service Unavailable")) == "HTTP 503 Service Unavailable"
    assert describe(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )


class Answers(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("status", "answered"), [(200, True), (401, True), (403, True), (503, False)])
def test_any_answer_below_500_proves_the_api_server_reachable(status: int, answered: bool) -> None:
    handler = type("Handler", (Answers,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{server.server_port}")
        configuration.retries = 0
        probe = version_probe(kubernetes.client.ApiClient(configuration))
        if answered:
            probe()
        else:
            with pytest.raises(ApiException):
                probe()
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_accepts_but_never_answers_fails_the_probe_within_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reachability, "PROBE_TIMEOUT", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts; nobody ever reads or answers
        configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{silent.getsockname()[1]}")
        configuration.retries = 0
        probe = version_probe(kubernetes.client.ApiClient(configuration))
        started = time.monotonic()
        with pytest.raises(urllib3.exceptions.HTTPError) as failed:
            probe()
        assert time.monotonic() - started < 5
        assert describe(failed.value) == "no answer within 0.5s"


def test_the_monitor_feeds_what_its_probe_finds(clock: Clock) -> None:
    answering = threading.Event()

    def probe() -> None:
        if not answering.is_set():
            raise ConnectionRefusedError(111, "Connection refused")

    r = reach(clock)
    monitor = ApiServerMonitor(probe, r, interval=0.01).start()
    try:
        wait_until(lambda: r.reachable is False, 5, "a failed probe")
        answering.set()
        wait_until(lambda: r.reachable is True, 5, "an answered probe")
    finally:
        monitor.stop()


def test_run_refuses_a_liveness_url_it_cannot_serve_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-m", "backendauth_operator.commands.cli", "run", "--liveness=http://0.0.0.0:8080/readyz"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "backendauth-operator: --liveness: /readyz is the readiness path; use another (e.g. /healthz)"
    ]
