"""``aws.classify``: boto3/botocore exceptions → Failure(reason, retryable, message, ambiguous), and the
retry behaviour of ``ClientFactory``'s two kinds of client, checked with real boto3 against the
simulator on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
import types
import urllib.request
from collections.abc import Iterator
from typing import Any

import botocore.endpoint
import botocore.exceptions
import pytest
from botocore.exceptions import ClientError

from backendauth_operator.aws.clients import MUTATING_CONFIG, READ_CONFIG, ClientFactory, classify
from backendauth_operator.core.failure import Failure
from backendauth_testbed.simulator import SimulatorConfig, SimulatorThread

PENDING_MESSAGE = (
    "There is already a pending job for the requested appId: a and backendEnvironmentName: b, "
    "wait for it to complete before creating a new job."
)


def client_error(http: int, code: str | None = None, message: str | None = None) -> ClientError:
    error: dict[str, str] = {}
    if code is not None:
        error["Code"] = code
    if message is not None:
        error["Message"] = message
    response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": http}}
    return ClientError(error_response=response, operation_name="CreateBackendAuth")


# ---- classify: AWS answers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "http, code",
    [
        (429, "TooManyRequestsException"),
        (429, "LimitExceededException"),
        (400, "LimitExceededException"),  # matched by code whatever the status
        (400, "ThrottlingException"),
        (429, None),  # a bare 429
    ],
)
def test_classify_throttling_is_throttled_and_retryable(http: int, code: str | None) -> None:
    failure = classify(client_error(http, code, "Rate exceeded" if code else None))
    assert failure.reason == "Throttled"
    assert failure.retryable is True
    assert failure.ambiguous is False


@pytest.mark.parametrize(
    "http, code",
    [(504, "GatewayTimeoutException"), (500, "InternalServiceException"), (502, None), (503, None)],
)
def test_classify_server_errors_are_unavailable_retryable_and_ambiguous(http: int, code: str | None) -> None:
    failure = classify(client_error(http, code, "Endpoint request timed out" if code else None))
    assert failure == Failure("AWSUnavailable", True, failure.message, ambiguous=True)


def test_classify_server_error_message_names_code_and_aws_message() -> None:
    failure = classify(client_error(504, "GatewayTimeoutException", "Endpoint request timed out"))
    assert "GatewayTimeoutException" in failure.message
    assert "Endpoint request timed out" in failure.message


def test_classify_pending_job_validation_is_job_pending_and_retryable() -> None:
    failure = classify(client_error(400, "ValidationException", PENDING_MESSAGE))
    assert failure.reason == "JobPending"
    assert failure.retryable is True
    assert failure.ambiguous is False
    assert PENDING_MESSAGE in failure.message


def test_classify_other_validation_is_bad_request_not_retryable() -> None:
    failure = classify(client_error(400, "ValidationException", "1 validation error detected: resourceName"))
    assert failure.reason == "BadRequest"
    assert failure.retryable is False


def test_classify_not_found_is_retryable() -> None:
    failure = classify(client_error(404, "NotFoundException", "App app1 not found"))
    assert (failure.reason, failure.retryable, failure.ambiguous) == ("NotFound", True, False)
    assert "App app1 not found" in failure.message


@pytest.mark.parametrize(
    "http, code",
    [
        (403, "AccessDeniedException"),
        (403, "UnrecognizedClientException"),
        (400, "UnrecognizedClientException"),
        (400, "ExpiredTokenException"),
        (401, None),
        (403, None),
    ],
)
def test_classify_access_problems_are_access_denied_and_retryable(http: int, code: str | None) -> None:
    failure = classify(client_error(http, code, "The security token included in the request is invalid."))
    assert (failure.reason, failure.retryable, failure.ambiguous) == ("AccessDenied", True, False)


def test_classify_bad_request_is_not_retryable_and_keeps_aws_message() -> None:
    message = "Invalid UserPoolConfigs: PasswordPolicy.MinimumLength must be at least 6"
    failure = classify(client_error(400, "BadRequestException", message))
    assert failure.reason == "BadRequest"
    assert failure.retryable is False
    assert failure.ambiguous is False
    assert message in failure.message


def test_classify_message_does_not_repeat_the_code() -> None:
    failure = classify(client_error(400, "BadRequestException", "BadRequestException: x"))
    assert failure.message.count("BadRequestException") == 1


def test_classify_missing_message_falls_back_to_code() -> None:
    failure = classify(client_error(409, "ConflictException"))
    assert failure.reason == "BadRequest"
    assert "ConflictException" in failure.message


# ---- classify: errors raised before or instead of an answer -------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        botocore.exceptions.NoCredentialsError(),
        botocore.exceptions.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
    ],
    ids=["no-credentials", "partial-credentials"],
)
def test_classify_missing_credentials_is_access_denied(error: Exception) -> None:
    failure = classify(error)
    assert (failure.reason, failure.retryable, failure.ambiguous) == ("AccessDenied", True, False)
    assert "credentials" in failure.message


@pytest.mark.parametrize(
    "error",
    [
        botocore.exceptions.EndpointConnectionError(endpoint_url="https://amplifybackend.example"),
        botocore.exceptions.ConnectTimeoutError(endpoint_url="https://amplifybackend.example"),
    ],
    ids=["endpoint-connection", "connect-timeout"],
)
def test_classify_unreachable_is_unavailable_but_not_ambiguous(error: Exception) -> None:
    failure = classify(error)
    assert (failure.reason, failure.retryable, failure.ambiguous) == ("AWSUnavailable", True, False)
    assert "amplifybackend.example" in failure.message


@pytest.mark.parametrize(
    "error",
    [
        botocore.exceptions.ReadTimeoutError(endpoint_url="https://amplifybackend.example"),
        botocore.exceptions.ConnectionClosedError(endpoint_url="https://amplifybackend.example"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
    ids=["read-timeout", "connection-closed", "connection-reset"],
)
def test_classify_no_answer_after_sending_is_unavailable_and_ambiguous(error: Exception) -> None:
    failure = classify(error)
    assert (failure.reason, failure.retryable, failure.ambiguous) == ("AWSUnavailable", True, True)


def test_classify_param_validation_is_bad_request() -> None:
    failure = classify(botocore.exceptions.ParamValidationError(report="Missing required parameter AppId"))
    assert (failure.reason, failure.retryable) == ("BadRequest", False)
    assert "AppId" in failure.message


@pytest.mark.parametrize("error", [KeyError("x"), ValueError("y"), RuntimeError("z")])
def test_classify_reraises_unrelated_exceptions(error: Exception) -> None:
    with pytest.raises(type(error)) as raised:
        classify(error)
    assert raised.value is error


# ---- the two kinds of client ---------------------------------------------------------------------


def retries(config: Any) -> dict[str, Any]:
    """A botocore Config's retry settings (the stubs do not declare the attribute)."""
    value: dict[str, Any] = config.retries
    return value


READ_ATTEMPTS: int = retries(READ_CONFIG)["total_max_attempts"]


def test_client_configs_pin_attempts() -> None:
    assert retries(MUTATING_CONFIG) == {"mode": "standard", "total_max_attempts": 1}
    assert retries(READ_CONFIG)["mode"] == "standard"
    assert READ_ATTEMPTS > 1


RESOURCE_CONFIG = {
    "AuthResources": "USER_POOL_ONLY",
    "Service": "COGNITO",
    "UserPoolConfigs": {"UserPoolName": "p", "SignInMethod": "EMAIL", "RequiredSignUpAttributes": ["EMAIL"]},
}
REGION = "eu-west-1"
_apps = itertools.count(1)


class Sleeps:
    """Stands in for ``time`` in botocore.endpoint: records retry delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(auto_apps=True, job_seconds=0.2)) as running:
        yield running


def offline(mp: pytest.MonkeyPatch) -> None:
    """Fake credentials, no shared config, no proxy: nothing but 127.0.0.1 is used."""
    mp.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "secret-example")
    mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    mp.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_AMPLIFYBACKEND",
    ):
        mp.delenv(name, raising=False)


@pytest.fixture(scope="module")
def factory(sim: SimulatorThread) -> Iterator[ClientFactory]:
    """Clients with fake credentials and no shared config, so nothing but the simulator is used."""
    with pytest.MonkeyPatch.context() as mp:
        offline(mp)
        clients = ClientFactory(sim.url)
        clients.mutating(REGION)
        clients.reading(REGION)
        yield clients


@pytest.fixture
def sleeps(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    sim.call(lambda s: s.backend.clear_faults())
    recorder = Sleeps()
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=recorder.sleep))
    return recorder


def new_app() -> str:
    return f"app{next(_apps)}"


def calls(sim: SimulatorThread, app: str, operation: str) -> list[dict[str, Any]]:
    """The simulator's call log over HTTP, as a test would read it from outside."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{sim.url}/_sim/calls", timeout=10) as answer:
        summary = json.load(answer)
    assert isinstance(summary["byOperation"], dict)
    return [c for c in summary["calls"] if c["appId"] == app and c["operation"] == operation]


def create(client: Any, app: str) -> Any:
    return client.create_backend_auth(
        AppId=app, BackendEnvironmentName="dev", ResourceName="auth1", ResourceConfig=RESOURCE_CONFIG
    )


def inject(sim: SimulatorThread, operation: str, fault: str, count: int = 1) -> None:
    sim.call(lambda s: s.backend.inject_fault(operation, fault, count))


@pytest.mark.integration
@pytest.mark.parametrize(
    "fault, reason, retryable, ambiguous",
    [
        ("throttle", "Throttled", True, False),
        ("timeout", "AWSUnavailable", True, True),
        ("ambiguous", "AWSUnavailable", True, True),
        ("internal", "AWSUnavailable", True, True),
        ("bad_request", "BadRequest", False, False),
        ("access_denied", "AccessDenied", True, False),
        ("not_found", "NotFound", True, False),
        ("pending_job", "JobPending", True, False),
    ],
)
def test_classify_simulator_faults_through_real_boto3(
    sim: SimulatorThread,
    factory: ClientFactory,
    sleeps: Sleeps,
    fault: str,
    reason: str,
    retryable: bool,
    ambiguous: bool,
) -> None:
    app = new_app()
    inject(sim, "CreateBackendAuth", fault)
    with pytest.raises(ClientError) as raised:
        create(factory.mutating(REGION), app)
    failure = classify(raised.value)
    assert (failure.reason, failure.retryable, failure.ambiguous) == (reason, retryable, ambiguous)
    assert len(calls(sim, app, "CreateBackendAuth")) == 1  # the mutating client never retries
    assert sleeps.delays == []


@pytest.mark.integration
def test_create_without_fault_succeeds_through_the_factory(
    sim: SimulatorThread, factory: ClientFactory, sleeps: Sleeps
) -> None:
    app = new_app()
    answer = create(factory.mutating(REGION), app)
    assert answer["JobId"]
    assert [c["httpStatus"] for c in calls(sim, app, "CreateBackendAuth")] == [200]


@pytest.mark.integration
def test_mutating_client_makes_exactly_one_attempt_on_504(
    sim: SimulatorThread, factory: ClientFactory, sleeps: Sleeps
) -> None:
    app = new_app()
    inject(sim, "CreateBackendAuth", "timeout", 5)
    with pytest.raises(ClientError):
        create(factory.mutating(REGION), app)
    made = calls(sim, app, "CreateBackendAuth")
    assert [(c["httpStatus"], c["fault"]) for c in made] == [(504, "timeout")]
    assert sleeps.delays == []


@pytest.mark.integration
def test_mutating_client_does_not_retry_an_ambiguous_504_that_created_a_job(
    sim: SimulatorThread, factory: ClientFactory, sleeps: Sleeps
) -> None:
    app = new_app()
    inject(sim, "CreateBackendAuth", "ambiguous")
    with pytest.raises(ClientError) as raised:
        create(factory.mutating(REGION), app)
    assert classify(raised.value).ambiguous is True
    assert len(calls(sim, app, "CreateBackendAuth")) == 1
    jobs = factory.reading(REGION).list_backend_jobs(AppId=app, BackendEnvironmentName="dev")["Jobs"]
    assert len(jobs) == 1  # carried out once: the 504 was a lie, and nobody sent it twice


@pytest.mark.integration
def test_a_client_with_botocore_retries_would_repeat_the_504(
    sim: SimulatorThread, factory: ClientFactory, sleeps: Sleeps
) -> None:
    """The contrast that makes the one-attempt check meaningful: botocore does retry a 504."""
    app = new_app()
    inject(sim, "CreateBackendAuth", "timeout", 5)
    with pytest.raises(ClientError):
        create(factory.reading(REGION), app)
    assert len(calls(sim, app, "CreateBackendAuth")) == READ_ATTEMPTS
    assert len(sleeps.delays) == READ_ATTEMPTS - 1


@pytest.mark.integration
def test_reading_client_retries_a_throttled_read_within_one_call(
    sim: SimulatorThread, factory: ClientFactory, sleeps: Sleeps
) -> None:
    app = new_app()
    job_id = create(factory.mutating(REGION), app)["JobId"]
    inject(sim, "GetBackendJob", "throttle")
    answer = factory.reading(REGION).get_backend_job(AppId=app, BackendEnvironmentName="dev", JobId=job_id)
    assert answer["JobId"] == job_id
    made = calls(sim, app, "GetBackendJob")
    assert [(c["httpStatus"], c["fault"]) for c in made] == [(429, "throttle"), (200, None)]
    assert len(sleeps.delays) == 1


@pytest.mark.integration
def test_reading_client_gives_up_after_its_attempts_and_classify_says_throttled(
    sim: SimulatorThread, factory: ClientFactory, sleeps: Sleeps
) -> None:
    app = new_app()
    job_id = create(factory.mutating(REGION), app)["JobId"]
    inject(sim, "GetBackendJob", "throttle", 10)
    with pytest.raises(ClientError) as raised:
        factory.reading(REGION).get_backend_job(AppId=app, BackendEnvironmentName="dev", JobId=job_id)
    assert classify(raised.value).reason == "Throttled"
    assert len(calls(sim, app, "GetBackendJob")) == READ_ATTEMPTS


@pytest.mark.integration
def test_factory_caches_one_client_per_region_and_kind(factory: ClientFactory) -> None:
    assert factory.mutating(REGION) is factory.mutating(REGION)
    assert factory.reading(REGION) is factory.reading(REGION)
    assert factory.mutating(REGION) is not factory.reading(REGION)
    assert factory.mutating(REGION).meta.region_name == REGION


def test_unreachable_endpoint_is_classified_not_ambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ClientFactory(f"http://127.0.0.1:{port}").mutating(REGION)
    with pytest.raises(botocore.exceptions.EndpointConnectionError) as raised:
        create(client, "app-unreachable")
    failure = classify(raised.value)
    assert (failure.reason, failure.ambiguous) == ("AWSUnavailable", False)


@pytest.mark.integration
def test_a_client_keeps_a_connection_for_each_thread_that_calls_at_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Sixteen calls in flight together (each held 300 ms by the simulator): with a pool of
    sixteen, every connection is kept for the next call; with botocore's default of ten, six are
    thrown away (and the next calls open new ones, a TLS handshake each against AWS)."""
    offline(monkeypatch)

    def discarded(factory: ClientFactory) -> int:
        client = factory.reading(REGION)
        start = threading.Barrier(16)

        def one() -> None:
            start.wait()
            client.get_backend(AppId="pooled", BackendEnvironmentName="dev")

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
            threads = [threading.Thread(target=one) for _ in range(16)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        return sum("Connection pool is full" in r.getMessage() for r in caplog.records)

    with SimulatorThread(SimulatorConfig(auto_apps=True, latency_ms=300)) as slow:
        assert discarded(ClientFactory(slow.url, max_connections=16)) == 0
        assert discarded(ClientFactory(slow.url)) > 0, "the default pool is too small to show it"
