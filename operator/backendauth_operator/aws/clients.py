"""The AmplifyBackend client: one factory for every boto3 client, and AWS answers → outcomes.

Two kinds of client, with their retry behaviour set explicitly so a botocore upgrade cannot
change it (botocore 1.44 switched the default mode from legacy to standard):

* **mutating** calls (create/update/delete) are made once: botocore's own retry of an ambiguous
  504 would create twice, since CreateBackendAuth has no idempotency token. The operator retries
  them itself, after checking whether the first attempt took effect.
* **read** calls (jobs, get) use botocore's ``standard`` mode with 3 attempts.
"""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.session

from backendauth_operator import metrics
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.role import Role

MUTATING_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=10, read_timeout=60
)
READ_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=10, read_timeout=30
)


STS_CONFIG = botocore.config.Config(
    retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=5, read_timeout=15
)
OWN_ACCOUNT_RETRY_SECONDS = 60.0  # a failed GetCallerIdentity is not asked again sooner


class FailureError(Exception):
    """A :class:`Failure` raised where a caller stops at the first one (a command's reads):
    :func:`classify` gives it back as it was."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class AssumeRoleError(FailureError):
    """AssumeRole of a mapped role failed: :attr:`failure` says why, naming the role. Raised
    from botocore's credential refresh, before the AmplifyBackend request is sent."""


@dataclass
class _OwnAccount:
    """The operator's own account and the STS client that asks it: shared by a factory and
    its counting views."""

    sts: Any = None
    account: str | None = None
    failed_at: float = -OWN_ACCOUNT_RETRY_SECONDS


class ClientFactory:
    """Creates and caches boto3 clients per (account, region, kind). Thread-safe: handlers run
    in threads.

    A namespace without an account (``role`` None) uses the operator's own credential chain, as
    it always did. A mapped account has one session, shared by every BackendAuth of it, whose
    credentials are botocore's own refreshing credentials: the refresh calls sts:AssumeRole
    with the operator's own credentials, before the assumed ones expire.

    STS is reached at ``AWS_ENDPOINT_URL_STS`` when set (botocore reads it), else at
    ``endpoint_url`` when one is set (the simulator answers STS on the same port), else at AWS.
    """

    def __init__(
        self, endpoint_url: str | None, max_connections: int = 10, region: str | None = None,
        pacers: Pacers | None = None,
    ) -> None:  # fmt: skip
        self.pacers = pacers if pacers is not None else Pacers()
        self.calls: CallCount | None = None  # counted here too when set (see counting)
        self._endpoint_url = endpoint_url
        # One kept connection per thread that may call at once: a full pool discards the extra
        # connection (with a warning), and the next call opens a new one, TLS handshake included.
        self._pool = botocore.config.Config(max_pool_connections=max_connections)
        self._session = boto3.session.Session()
        self._region = region or "us-east-1"
        self._clients: dict[tuple[str, str, bool, str], Any] = {}
        self._sessions: dict[str, tuple[Role, boto3.session.Session]] = {}
        self._own = _OwnAccount()
        self._lock = threading.RLock()
        self._asking = threading.Lock()  # held while the operator's own account is asked

    def counting(self, calls: CallCount) -> ClientFactory:
        """This factory (the same clients, sessions and pacers) with every call made through
        it also counted in ``calls``."""
        view = copy.copy(self)
        view.calls = calls
        return view

    def call(
        self, client: Any, method: str, before_send: Callable[[], None] | None = None,
        key: PaceKey | None = None, **kwargs: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """Make one call with ``client`` (one of this factory's), paced per account and region
        (``key``; default: the client's region in the operator's own account), and count it by
        operation, outcome and account. ``before_send`` runs after the pacing wait, just before
        the request: it may raise to stop it."""
        operation = client.meta.method_to_api_mapping.get(method, method)
        key = key or pace_key("", str(client.meta.region_name))
        pace = self.pacers.of(key)
        pace.wait()
        if self.calls is not None:
            self.calls.count += 1
        if before_send is not None:
            before_send()
        try:
            answer: dict[str, Any] = getattr(client, method)(**kwargs)
        except Exception as error:
            try:
                outcome = classify(error).reason
            except Exception:
                outcome = type(error).__name__
            if outcome == "Throttled":
                pace.throttled()
            metrics.record_aws_call(operation, outcome, key.account)
            raise
        pace.succeeded()
        metrics.record_aws_call(operation, "ok", key.account)
        return answer

    def mutating(self, region: str, role: Role | None = None) -> Any:
        """A client whose calls are attempted exactly once."""
        return self._client(region, role, mutating=True)

    def reading(self, region: str, role: Role | None = None, service: str = "amplifybackend") -> Any:
        """A client whose calls botocore may retry (they change nothing). ``service``: the
        botocore service name (``cognito-idp`` and ``cognito-identity`` for the hand-off's
        reads, which only ever read)."""
        return self._client(region, role, mutating=False, service=service)

    def _client(
        self, region: str, role: Role | None, *, mutating: bool, service: str = "amplifybackend"
    ) -> Any:
        account = role.account if role is not None else ""
        key = (account, region, mutating, service)
        with self._lock:  # boto3 sessions are not safe to create clients from concurrently
            session = self._session if role is None else self._assumed(role)
            if key not in self._clients:
                make: Any = session.client  # typed per service name; the name here is a variable
                self._clients[key] = make(
                    service,
                    region_name=region,
                    endpoint_url=self._endpoint(service),
                    config=(MUTATING_CONFIG if mutating else READ_CONFIG).merge(self._pool),
                )
            return self._clients[key]

    def _endpoint(self, service: str) -> str | None:
        """Where ``service`` is reached: botocore's own override of that service
        (``AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER``...) when one is set, which botocore
        reads itself; else ``endpoint_url`` (the simulator answers every service on one port)."""
        if service != "amplifybackend":
            variable = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
            if service == "cognito-idp":
                variable = "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"
            if os.environ.get(variable):
                return None
        return self._endpoint_url

    def _sts_client(self) -> Any:
        with self._lock:
            if self._own.sts is None:
                endpoint = None if os.environ.get("AWS_ENDPOINT_URL_STS") else self._endpoint_url
                self._own.sts = self._session.client(
                    "sts", region_name=self._region, endpoint_url=endpoint, config=STS_CONFIG
                )
            return self._own.sts

    def _assumed(self, role: Role) -> boto3.session.Session:
        """The session of ``role``'s account (a new one, and new clients, when its role changed)."""
        known = self._sessions.get(role.account)
        if known is not None and known[0] == role:
            return known[1]
        credentials = botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=lambda: self._assume(role), method="assume-role"
        )
        core = botocore.session.get_session()
        # The session's credentials: botocore's refreshing ones, refreshed by AssumeRole.
        core._credentials = credentials  # type: ignore[attr-defined]
        session = boto3.session.Session(botocore_session=core)
        self._sessions[role.account] = (role, session)
        for key in [k for k in self._clients if k[0] == role.account]:
            del self._clients[key]
        return session

    def _assume(self, role: Role) -> dict[str, Any]:
        """botocore's refresh: AssumeRole with the operator's own credentials."""
        kwargs: dict[str, Any] = {"RoleArn": role.arn, "RoleSessionName": role.session_name}
        if role.external_id:
            kwargs["ExternalId"] = role.external_id
        try:
            answer = self._sts_client().assume_role(**kwargs)
        except Exception as error:
            try:
                failure = classify(error)
            except Exception:
                failure = Failure("AWSUnavailable", True, f"{type(error).__name__}: {error}")
            words = "refused" if failure.reason == "AccessDenied" else "failed"
            message = f"sts:AssumeRole of {role.arn} {words}: {failure.message}"
            raise AssumeRoleError(Failure(failure.reason, failure.retryable, message)) from None
        credentials = answer["Credentials"]
        expiration = credentials["Expiration"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": expiration.isoformat() if hasattr(expiration, "isoformat") else str(expiration),
        }

    def known_own_account(self) -> str:
        """The operator's own account if it was asked already (no call); else empty."""
        with self._lock:
            return self._own.account or ""

    def own_account(self) -> str:
        """The account of the operator's own credentials (sts:GetCallerIdentity, asked once);
        empty when it cannot be had (asked again a minute later)."""
        with self._asking:  # one question at a time: the steps that wait for it share its answer
            with self._lock:
                if self._own.account is not None:
                    return self._own.account
                if time.monotonic() - self._own.failed_at < OWN_ACCOUNT_RETRY_SECONDS:
                    return ""
            try:
                account = str(self._sts_client().get_caller_identity().get("Account") or "")
            except Exception:
                account = ""
            with self._lock:
                if account:
                    self._own.account = account
                else:
                    self._own.failed_at = time.monotonic()
            return account


_THROTTLING_CODES = {
    "TooManyRequestsException",
    "LimitExceededException",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
}
_ACCESS_CODES = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "MissingAuthenticationToken",
}


def classify(error: BaseException) -> Failure:
    """Map an exception from a boto3 call to the retry table of docs/explanation/retries.md.

    Matches on HTTP status as well as on error code: the API reference and the botocore model
    name the 429 and 504 errors differently (LimitExceededException vs TooManyRequestsException).
    """
    if isinstance(error, FailureError):
        return error.failure
    if isinstance(error, botocore.exceptions.ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = str(err.get("Message", "")) or code
        http = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"{code}: {message}" if code and code not in message else message
        if http == 429 or code in _THROTTLING_CODES:
            return Failure("Throttled", True, text)
        if code == "ValidationException" and "pending job" in message.lower():
            return Failure("JobPending", True, text)
        if http == 404 or code == "NotFoundException":
            return Failure("NotFound", True, text)
        if http in (401, 403) or code in _ACCESS_CODES:
            return Failure("AccessDenied", True, text)
        if http >= 500 or http == 0:
            return Failure("AWSUnavailable", True, text, ambiguous=True)
        return Failure("BadRequest", False, text)
    if isinstance(
        error, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return Failure("AccessDenied", True, f"no usable AWS credentials: {error}")
    if isinstance(
        error, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.EndpointConnectionError
    ):
        # The request never reached AWS.
        return Failure("AWSUnavailable", True, f"cannot reach AWS: {error}")
    if isinstance(error, botocore.exceptions.ParamValidationError):
        return Failure("BadRequest", False, f"request refused by botocore: {error}")
    if isinstance(error, botocore.exceptions.BotoCoreError | OSError):
        # Read timeouts, dropped connections: the request may have been carried out.
        return Failure("AWSUnavailable", True, f"AWS did not answer: {error}", ambiguous=True)
    raise error


class Pacer:
    """Paces every AmplifyBackend call of one region: a token bucket whose rate halves when AWS
    throttles and creeps back up (by a tenth of the ceiling per success) to ``max_rps``.

    Throttled answers count against the account's quota, which the Amplify console and CLI of
    the same account share: being throttled is not free, so the operator slows down first.
    Thread-safe; :meth:`wait` blocks the calling handler thread until its turn.
    """

    MIN_RPS = 0.05

    def __init__(self, max_rps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_rps = max_rps
        self.rate = max_rps
        self._clock = clock
        self._next = clock()  # when the next call may go
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take the next slot; return how long to wait for it (0 when it is free now)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + 1.0 / self.rate
            return slot - now

    def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            time.sleep(delay)

    def throttled(self) -> None:
        with self._lock:
            self.rate = max(self.MIN_RPS, self.rate / 2)
            self._next = max(self._next, self._clock() + 1.0 / self.rate)

    def succeeded(self) -> None:
        with self._lock:
            self.rate = min(self.max_rps, self.rate + self.max_rps / 10)

    def free_in(self) -> float:
        """Seconds until the next slot is free (0: a call now would go at once). A slot reserved
        ahead means calls are waiting for the pace: work that goes before any resync."""
        with self._lock:
            return max(0.0, self._next - self._clock())


@dataclass(frozen=True)
class PaceKey:
    """What one pace is kept for: AWS's limits apply per account and region. ``account`` is
    empty for the operator's own account when it is not known."""

    account: str
    region: str

    def __str__(self) -> str:  # as logs say it
        account = self.account or "(the operator's own)"
        return f"account {account}, region {self.region or '(default)'}"


def pace_key(account: str, region: str) -> PaceKey:
    """The key of the pace (and of anything else kept per account and region). The one
    definition: :meth:`ClientFactory.call` and the resync budget (``runtime/workqueue.py``) both key by it."""
    return PaceKey(account, region)


class Pacers:
    """The pacers of one process, one per :class:`PaceKey`, each with the ceiling ``max_rps``
    (``BACKENDAUTH_AWS_MAX_RPS``). Created by whoever runs the operator or a command, and handed
    to its :class:`ClientFactory`: every call made through that factory is paced by it, and the
    resync loop reads the same pacers for its budget. Thread-safe."""

    def __init__(self, max_rps: float = 5.0) -> None:
        self.max_rps = max_rps
        self._pacers: dict[PaceKey, Pacer] = {}
        self._lock = threading.Lock()

    def of(self, key: PaceKey) -> Pacer:
        """The one pacer of ``key``, shared by every call there."""
        with self._lock:
            if key not in self._pacers:
                self._pacers[key] = Pacer(self.max_rps)
            return self._pacers[key]


class CallCount:
    """A count of the AWS calls made through the :class:`ClientFactory` it is given to (see
    :meth:`ClientFactory.counting`): the resync loop charges its budget with the calls each
    resync made. Read and bumped by the one thread that uses that factory."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count
