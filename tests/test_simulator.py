"""Tests of the AmplifyBackend simulator, driven by real boto3 (and raw HTTP where boto3 can't go)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from backendauth_testbed.simulator import Simulator, SimulatorConfig, SimulatorThread

APP, ENV, RES = "app1", "dev", "auth1"
SECRET, PRIVATE_KEY = "s3cr3t-google-value", "-----BEGIN PRIVATE KEY-----abc"

RESOURCE_CONFIG: dict[str, Any] = {
    "AuthResources": "IDENTITY_POOL_AND_USER_POOL",
    "Service": "COGNITO",
    "IdentityPoolConfigs": {"IdentityPoolName": "idp", "UnauthenticatedLogin": False},
    "UserPoolConfigs": {
        "UserPoolName": "users",
        "SignInMethod": "EMAIL",
        "RequiredSignUpAttributes": ["EMAIL", "NAME"],
        "PasswordPolicy": {"MinimumLength": 8, "AdditionalConstraints": ["REQUIRE_DIGIT"]},
        "OAuth": {
            "OAuthGrantType": "CODE",
            "OAuthScopes": ["OPENID", "EMAIL"],
            "RedirectSignInURIs": ["https://shop.example.com/callback"],
            "RedirectSignOutURIs": ["https://shop.example.com/"],
            "SocialProviderSettings": {
                "Google": {"ClientId": "gid", "ClientSecret": SECRET},
                "SignInWithApple": {
                    "ClientId": "aid",
                    "KeyId": "k",
                    "TeamId": "t",
                    "PrivateKey": PRIVATE_KEY,
                },
            },
        },
    },
}

# The same, as it goes over the wire: a raw request body for CreateBackendAuth.
RAW_CREATE: dict[str, Any] = {
    "backendEnvironmentName": ENV,
    "resourceName": RES,
    "resourceConfig": {
        "authResources": "USER_POOL_ONLY",
        "service": "COGNITO",
        "userPoolConfigs": {
            "userPoolName": "users",
            "signInMethod": "EMAIL",
            "requiredSignUpAttributes": ["EMAIL"],
        },
    },
}


# ---- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A fresh simulator knowing app1/dev, with 0.2 s jobs, in a background thread."""
    with SimulatorThread(SimulatorConfig(apps=[(APP, ENV)], job_seconds=0.2, seed=1)) as s:
        yield s


def make_client(url: str) -> Any:
    """A boto3 client without retries, so that each fault is seen once."""
    return boto3.client(
        "amplifybackend",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def client(sim: SimulatorThread) -> Any:
    return make_client(sim.url)


def http(url: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, str], Any]:
    """One raw HTTP call; returns (status, headers, parsed JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def control(sim: SimulatorThread, path: str, body: Any = None) -> Any:
    """POST (or GET without a body) to a /_sim endpoint and expect 200."""
    status, _, payload = http(f"{sim.url}/_sim/{path}", "GET" if body is None else "POST", body)
    assert status == 200, payload
    return payload


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``predicate`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


def wait_job(client: Any, job_id: str, app: str = APP, env: str = ENV) -> dict[str, Any]:
    """Poll GetBackendJob until the job is COMPLETED or FAILED."""

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get_backend_job(AppId=app, BackendEnvironmentName=env, JobId=job_id)
        return job if job["Status"] in ("COMPLETED", "FAILED") else None

    result: dict[str, Any] = wait_for(done)
    return result


def create(client: Any, name: str = RES, config: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = client.create_backend_auth(
        AppId=APP, BackendEnvironmentName=ENV, ResourceName=name, ResourceConfig=config or RESOURCE_CONFIG
    )
    return result


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    err = exc.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


# ---- the API -----------------------------------------------------------------------------------


def test_lifecycle_create_get_update_delete(sim: SimulatorThread, client: Any) -> None:
    control(sim, "hold", {"held": True})  # so that the job is surely still running below
    job = create(client)
    assert (job["AppId"], job["BackendEnvironmentName"], job["Operation"], job["Status"]) == (
        APP,
        ENV,
        "CreateBackendAuth",
        "RUNNING",
    )
    # The resource exists only once its create job has completed.
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    control(sim, "hold", {"held": False})
    done = wait_job(client, job["JobId"])
    assert done["Status"] == "COMPLETED" and "Error" not in done
    assert done["CreateTime"] <= done["UpdateTime"]

    got = client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert (got["AppId"], got["BackendEnvironmentName"], got["ResourceName"]) == (APP, ENV, RES)
    assert got["ResourceConfig"] == RESOURCE_CONFIG

    upd = client.update_backend_auth(
        AppId=APP,
        BackendEnvironmentName=ENV,
        ResourceName=RES,
        ResourceConfig={
            "AuthResources": "IDENTITY_POOL_AND_USER_POOL",
            "Service": "COGNITO",
            "UserPoolConfigs": {"PasswordPolicy": {"MinimumLength": 12}},
        },
    )
    assert upd["Operation"] == "UpdateBackendAuth"
    assert wait_job(client, upd["JobId"])["Status"] == "COMPLETED"
    pool = client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)["ResourceConfig"][
        "UserPoolConfigs"
    ]
    assert pool["PasswordPolicy"] == {"MinimumLength": 12, "AdditionalConstraints": ["REQUIRE_DIGIT"]}
    assert pool["UserPoolName"] == "users"  # not in the Update shape, so kept

    dele = client.delete_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    assert dele["Operation"] == "DeleteBackendAuth"
    assert wait_job(client, dele["JobId"])["Status"] == "COMPLETED"
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)

    jobs = client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)["Jobs"]
    assert [j["Operation"] for j in jobs] == ["DeleteBackendAuth", "UpdateBackendAuth", "CreateBackendAuth"]
    only = client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV, Operation="UpdateBackendAuth")
    assert [j["JobId"] for j in only["Jobs"]] == [upd["JobId"]]
    page = client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV, MaxResults=2)
    assert len(page["Jobs"]) == 2
    rest = client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV, NextToken=page["NextToken"])
    assert [j["JobId"] for j in rest["Jobs"]] == [job["JobId"]] and "NextToken" not in rest


def test_update_and_delete_of_missing_resource_are_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.NotFoundException, match="auth1"):
        client.update_backend_auth(
            AppId=APP,
            BackendEnvironmentName=ENV,
            ResourceName=RES,
            ResourceConfig={"AuthResources": "USER_POOL_ONLY", "Service": "COGNITO", "UserPoolConfigs": {}},
        )
    with pytest.raises(client.exceptions.NotFoundException):
        client.delete_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_backend_job(AppId=APP, BackendEnvironmentName=ENV, JobId="no-such-job")


def test_pending_job_rule(sim: SimulatorThread, client: Any) -> None:
    control(sim, "hold", {"held": True})  # the create job cannot finish before the second call
    job = create(client)
    with pytest.raises(ClientError) as exc:
        create(client, name="other")
    code, status, message = error_of(exc)
    assert (code, status) == ("ValidationException", 400)
    assert message == (
        "There is already a pending job for the requested appId: app1 and "
        "backendEnvironmentName: dev, wait for it to complete before creating a new job."
    )
    # Another environment of the same app is not blocked.
    control(sim, "apps", {"appId": APP, "backendEnvironmentName": "prod"})
    client.create_backend_auth(
        AppId=APP, BackendEnvironmentName="prod", ResourceName=RES, ResourceConfig=RESOURCE_CONFIG
    )
    control(sim, "hold", {"held": False})
    assert wait_job(client, job["JobId"])["Status"] == "COMPLETED"
    assert create(client, name="other")["Status"] == "RUNNING"


def test_unknown_app_is_not_found_unless_auto_apps(sim: SimulatorThread, client: Any) -> None:
    with pytest.raises(client.exceptions.NotFoundException) as exc:
        client.get_backend_auth(AppId="ghost", BackendEnvironmentName="qa", ResourceName=RES)
    assert "ghost" in str(exc.value) and "qa" in str(exc.value)
    assert exc.value.response["ResourceType"] == "BackendEnvironment"
    assert control(sim, "config", {"auto_apps": True})["auto_apps"] is True
    client.create_backend_auth(
        AppId="ghost", BackendEnvironmentName="qa", ResourceName=RES, ResourceConfig=RESOURCE_CONFIG
    )
    assert "ghost:qa" in control(sim, "state")["apps"]


def test_existing_auth_is_bad_request(client: Any) -> None:
    wait_job(client, create(client)["JobId"])
    with pytest.raises(client.exceptions.BadRequestException, match="already exists"):
        create(client)


def test_invalid_enum_is_bad_request_naming_the_field(client: Any) -> None:
    bad = copy.deepcopy(RESOURCE_CONFIG)
    bad["UserPoolConfigs"]["SignInMethod"] = "FOO"
    bad["UserPoolConfigs"]["RequiredSignUpAttributes"] = ["EMAIL", "SHOE_SIZE"]
    with pytest.raises(client.exceptions.BadRequestException) as exc:
        create(client, config=bad)
    message = error_of(exc)[2]
    assert "resourceConfig.userPoolConfigs.signInMethod: 'FOO' is not one of EMAIL," in message
    assert "resourceConfig.userPoolConfigs.requiredSignUpAttributes[1]: 'SHOE_SIZE'" in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda b: b["resourceConfig"]["userPoolConfigs"].pop("signInMethod"),
            "resourceConfig.userPoolConfigs.signInMethod: required member is missing",
        ),
        (lambda b: b.pop("resourceName"), "resourceName: required member is missing"),
        (lambda b: b["resourceConfig"].update(colour="blue"), "resourceConfig.colour: unknown member"),
        (lambda b: b.update(appId="app1"), "appId: unknown member"),  # a URI member does not go in the body
        (
            lambda b: b["resourceConfig"]["userPoolConfigs"].update(requiredSignUpAttributes="EMAIL"),
            "resourceConfig.userPoolConfigs.requiredSignUpAttributes: expected a list",
        ),
        (
            lambda b: b["resourceConfig"].update(
                identityPoolConfigs={"identityPoolName": "i", "unauthenticatedLogin": "no"}
            ),
            "resourceConfig.identityPoolConfigs.unauthenticatedLogin: expected a boolean",
        ),
    ],
)
def test_invalid_raw_request_is_bad_request(
    sim: SimulatorThread, mutate: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    body = copy.deepcopy(RAW_CREATE)
    mutate(body)
    status, headers, payload = http(f"{sim.url}/backend/{APP}/auth", "POST", body)
    assert status == 400 and headers["x-amzn-ErrorType"] == "BadRequestException"
    assert expected in payload["message"]


def test_raw_request_edge_cases(sim: SimulatorThread) -> None:
    status, _, payload = http(f"{sim.url}/backend/{APP}/auth", "POST", ["not", "an", "object"])
    assert status == 400 and "JSON object" in payload["message"]
    status, _, payload = http(f"{sim.url}/backend/{APP}/job/{ENV}", "POST", {"maxResults": 26})
    assert status == 400 and "maxResults: value must be at most 25" in payload["message"]
    status, headers, _ = http(f"{sim.url}/backend/{APP}/api", "POST", {})
    assert status == 404 and headers["x-amzn-ErrorType"] == "UnknownOperationException"
    status, _, payload = http(f"{sim.url}/backend/{APP}/auth", "POST", RAW_CREATE)
    assert status == 200 and payload["status"] == "RUNNING"


def test_update_backend_job_and_forced_job_state(sim: SimulatorThread, client: Any) -> None:
    control(sim, "hold", {"held": True})
    job = create(client)
    forced = control(sim, f"jobs/{job['JobId']}", {"status": "FAILED", "error": "boom"})
    assert (forced["status"], forced["error"]) == ("FAILED", "boom")
    got = client.get_backend_job(AppId=APP, BackendEnvironmentName=ENV, JobId=job["JobId"])
    assert (got["Status"], got["Error"]) == ("FAILED", "boom")
    with pytest.raises(client.exceptions.NotFoundException):  # a failed create leaves nothing
        client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    job2 = create(client)
    out = client.update_backend_job(
        AppId=APP, BackendEnvironmentName=ENV, JobId=job2["JobId"], Status="COMPLETED"
    )
    assert out["Status"] == "COMPLETED"
    assert client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)["ResourceConfig"]
    status, _, _ = http(f"{sim.url}/_sim/jobs/nope", "POST", {"status": "FAILED"})
    assert status == 404


def test_hold_keeps_jobs_running_until_released(sim: SimulatorThread, client: Any) -> None:
    control(sim, "config", {"job_seconds": 0.0})
    control(sim, "hold", {"held": True})
    job = create(client)

    def status() -> str:
        got = client.get_backend_job(AppId=APP, BackendEnvironmentName=ENV, JobId=job["JobId"])
        return str(got["Status"])

    assert status() == "RUNNING"
    control(sim, "hold", {"held": False})
    assert status() == "COMPLETED"


def test_zero_second_jobs_complete_at_once(sim: SimulatorThread, client: Any) -> None:
    control(sim, "config", {"job_seconds": 0})
    assert create(client)["Status"] == "COMPLETED"
    assert client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)


# ---- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        ("throttle", "TooManyRequestsException", 429),
        ("timeout", "GatewayTimeoutException", 504),
        ("bad_request", "BadRequestException", 400),
        ("access_denied", "AccessDeniedException", 403),
        ("not_found", "NotFoundException", 404),
        ("internal", "InternalServiceException", 500),
        ("pending_job", "ValidationException", 400),
    ],
)
def test_queued_fault_is_raised_and_not_carried_out(
    sim: SimulatorThread, client: Any, fault: str, code: str, status: int
) -> None:
    control(sim, "faults", {"operation": "CreateBackendAuth", "fault": fault, "count": 1})
    with pytest.raises(ClientError) as exc:
        create(client)
    assert error_of(exc)[:2] == (code, status)
    assert client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)["Jobs"] == []
    assert create(client)["Status"] == "RUNNING"  # the fault was used up


def test_modelled_faults_map_to_modelled_exceptions(sim: SimulatorThread, client: Any) -> None:
    control(sim, "faults", {"operation": "*", "fault": "throttle", "count": 1})
    control(sim, "faults", {"operation": "GetBackendJob", "fault": "timeout", "count": 2})
    with pytest.raises(client.exceptions.TooManyRequestsException):
        client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)
    for _ in range(2):
        with pytest.raises(client.exceptions.GatewayTimeoutException):
            client.get_backend_job(AppId=APP, BackendEnvironmentName=ENV, JobId="x")
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_backend_job(AppId=APP, BackendEnvironmentName=ENV, JobId="x")


def test_ambiguous_fault_carries_out_the_request(sim: SimulatorThread, client: Any) -> None:
    # "*" skips read operations for an ambiguous fault, so the list call below is not hit.
    control(sim, "faults", {"operation": "*", "fault": "ambiguous", "count": 1})
    client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)
    with pytest.raises(client.exceptions.GatewayTimeoutException):
        create(client)
    jobs = client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV, Operation="CreateBackendAuth")
    jobs = jobs["Jobs"]
    assert len(jobs) == 1
    call = next(c for c in control(sim, "calls")["calls"] if c["operation"] == "CreateBackendAuth")
    assert (call["httpStatus"], call["errorCode"], call["fault"], call["jobId"]) == (
        504,
        "GatewayTimeoutException",
        "ambiguous",
        jobs[0]["JobId"],
    )
    status, _, _ = http(
        f"{sim.url}/_sim/faults", "POST", {"operation": "GetBackendJob", "fault": "ambiguous"}
    )
    assert status == 400


def test_fault_rates(sim: SimulatorThread, client: Any) -> None:
    control(sim, "config", {"throttle_rate": 1.0})
    with pytest.raises(client.exceptions.TooManyRequestsException):
        client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)
    control(sim, "config", {"throttle_rate": 0.0, "timeout_rate": 1.0})
    with pytest.raises(client.exceptions.GatewayTimeoutException):
        create(client)
    control(sim, "config", {"timeout_rate": 0.0, "ambiguous_rate": 1.0, "fail_rate": 1.0})
    client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)  # reads are never ambiguous
    with pytest.raises(client.exceptions.GatewayTimeoutException):
        create(client)
    control(sim, "config", {"ambiguous_rate": 0.0})
    (job,) = client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)["Jobs"]
    failed = wait_job(client, job["JobId"])
    assert failed["Status"] == "FAILED" and "Simulated failure" in failed["Error"]
    with pytest.raises(client.exceptions.NotFoundException):
        client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)


def test_latency_is_added(sim: SimulatorThread, client: Any) -> None:
    control(sim, "config", {"latency_ms": 150})
    start = time.monotonic()
    client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)
    assert time.monotonic() - start >= 0.15


def test_bad_control_requests_are_rejected(sim: SimulatorThread) -> None:
    for path, body in [
        ("config", {"fail_rate": 2}),
        ("config", {"colour": 1}),
        ("config", {"latency_ms": "x"}),
        ("faults", {"fault": "gremlins"}),
        ("faults", {"operation": "Nope", "fault": "throttle"}),
        ("faults", {"fault": "throttle", "count": 0}),
        ("apps", {"appId": ""}),
        ("hold", {"held": "yes"}),
    ]:
        status, _, _ = http(f"{sim.url}/_sim/{path}", "POST", body)
        assert status == 400, (path, body)
    assert control(sim, "config")["fail_rate"] == 0.0


# ---- the call log and secrets ------------------------------------------------------------------


def test_calls_log_counts_and_never_holds_secrets(
    sim: SimulatorThread, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="backendauth_testbed.simulator")
    job = create(client)
    wait_job(client, job["JobId"])
    client.get_backend_auth(AppId=APP, BackendEnvironmentName=ENV, ResourceName=RES)
    with pytest.raises(client.exceptions.BadRequestException):
        create(client)
    status, _, raw = http(f"{sim.url}/_sim/calls")
    assert status == 200
    calls = raw["calls"]
    first = calls[0]
    assert {
        k: first[k]
        for k in (
            "seq",
            "operation",
            "appId",
            "backendEnvironmentName",
            "resourceName",
            "httpStatus",
            "errorCode",
            "jobId",
        )
    } == {
        "seq": 1,
        "operation": "CreateBackendAuth",
        "appId": APP,
        "backendEnvironmentName": ENV,
        "resourceName": RES,
        "httpStatus": 200,
        "errorCode": None,
        "jobId": job["JobId"],
    }
    assert isinstance(first["time"], float)
    assert (calls[-1]["httpStatus"], calls[-1]["errorCode"]) == (400, "BadRequestException")
    assert raw["byOperation"]["CreateBackendAuth"] == 2
    assert raw["byResource"][f"{APP}/{ENV}/{RES}"]["GetBackendAuth"] == 1
    assert raw["byResource"][f"{APP}/{ENV}/{RES}"]["GetBackendJob"] >= 1  # polls count for the resource
    everything = json.dumps(raw) + json.dumps(control(sim, "state")) + caplog.text
    assert SECRET not in everything and PRIVATE_KEY not in everything
    assert "CreateBackendAuth app1/dev/auth1 -> 200 OK" in caplog.text
    control(sim, "reset", {})
    assert control(sim, "calls")["calls"] == []
    assert client.list_backend_jobs(AppId=APP, BackendEnvironmentName=ENV)["Jobs"] == []


# ---- the async API and the command -------------------------------------------------------------


def test_async_api_start_and_stop() -> None:
    async def main() -> None:
        sim = Simulator(SimulatorConfig(auto_apps=True, job_seconds=0))
        await sim.start(host="127.0.0.1", port=0)
        try:
            assert sim.url.startswith("http://127.0.0.1:")
            async with (
                aiohttp.ClientSession() as session,
                session.post(f"{sim.url}/backend/any/auth", json=RAW_CREATE) as resp,
            ):
                assert resp.status == 200
                assert (await resp.json())["status"] == "COMPLETED"
        finally:
            await sim.stop()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _command() -> list[str]:
    script = Path(sys.executable).parent / "backendauth-operator"
    return [str(script)] if script.exists() else [sys.executable, "-m", "backendauth_operator.commands.cli"]


@pytest.mark.integration
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_command_serves_boto3_and_stops_on_signal(sig: signal.Signals) -> None:
    port = _free_port()
    args = ["simulator", "--port", str(port), "--app", "a:b", "--job-seconds", "0"]
    proc = subprocess.Popen(
        [*_command(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the simulator printed nothing"
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        c = make_client(f"http://127.0.0.1:{port}")
        out = c.create_backend_auth(
            AppId="a", BackendEnvironmentName="b", ResourceName="r", ResourceConfig=RESOURCE_CONFIG
        )
        assert out["Status"] == "COMPLETED"
        with pytest.raises(c.exceptions.NotFoundException):
            c.list_backend_jobs(AppId="a", BackendEnvironmentName="other")
        proc.send_signal(sig)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr is not None
        assert SECRET not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_command_rejects_a_bad_app() -> None:
    proc = subprocess.run(
        [*_command(), "simulator", "--port", "0", "--app", "no-colon"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "APPID:ENV" in proc.stderr


def test_thread_start_failure_leaves_no_thread(sim: SimulatorThread) -> None:
    port = int(sim.url.rsplit(":", 1)[1])
    taken = SimulatorThread(SimulatorConfig(), port=port)
    with pytest.raises(OSError):
        taken.start()
    assert not taken._thread.is_alive()


def test_the_rate_limit_answers_429_beyond_the_quota_and_refills() -> None:
    from backendauth_testbed.simulator.state import Backend

    backend = Backend(SimulatorConfig(auto_apps=True, rate_limit=3.0))

    def status() -> int:
        return backend.handle("ListBackendJobs", {"appId": APP, "backendEnvironmentName": ENV}, b"{}")[0]

    assert [status() for _ in range(3)] == [200, 200, 200]  # one second's worth at once
    assert status() == 429
    deadline = time.monotonic() + 5
    while status() == 429:  # a token comes back within a third of a second
        assert time.monotonic() < deadline
        time.sleep(0.05)
