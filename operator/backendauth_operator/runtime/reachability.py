"""Whether the Kubernetes API server can be reached: found out within seconds, said once.

Without it, an operator whose path to the API server drops packets (a node whose service
routing broke) shows nothing: its watches stall silently, its requests wait on TCP's schedule,
and its liveness probe passes. Here one thread per process probes the API server every
:data:`PROBE_INTERVAL` seconds, each time on a fresh connection (``GET /version``; connect,
TLS and answer within :data:`PROBE_TIMEOUT` seconds each), so that a connect that hangs counts
as much as a refused one. What it finds:

- the log: a warning naming the API server at the first probe that fails, then at most one a
  :data:`REPEAT_SECONDS`; one line when it answers again;
- the metric ``backendauth_kube_api_reachable`` (0/1);
- the readiness check ``kube-api`` of ``/readyz`` (:mod:`backendauth_operator.runtime.probes`);
- Kopf's retries of its own requests (:class:`KopfBackoffs`): they go on for as long as the API
  server cannot be reached, instead of giving up after Kopf's fixed schedule (a discovery
  request that gives up at start-up would end the operator).

Any HTTP answer below 500 counts as reachable (a 401 or 403 proves the path works; it is
another problem); a 5xx is what a load balancer in front of a missing API server answers.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from backendauth_operator import metrics
from backendauth_operator.runtime.kopf_adapter import KOPF_RETRY_WITHOUT_ANSWER

PROBE_INTERVAL = 5.0  # seconds between the starts of two probes
PROBE_TIMEOUT = 5.0  # for the connection (TCP and TLS), and again for the answer
REPEAT_SECONDS = 60.0  # at most one warning this often while it lasts

# Kopf's own requests: its default retry schedule (1, 1, 2, 3, 5, 8, 13, 21) capped at a few
# seconds, so that a watch or a patch waiting to retry is sent again soon after the API server
# is back rather than up to 21 s later; then, while it cannot be reached, for ever.
KOPF_BACKOFFS: tuple[float, ...] = (1, 1, 2, 3, 5, 5, 5, 5)
KOPF_BACKOFF_WHILE_UNREACHABLE = 5.0

logger = logging.getLogger("backendauth_operator.runtime.reachability")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Reachability:
    """What is known of the API server's reachability, and what is said about it.

    Fed by :meth:`record` (the monitor's probes); read by ``/readyz`` (:meth:`readiness`), by
    :class:`KopfBackoffs` (:attr:`reachable`). Thread-safe. ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        server: str,
        log: logging.Logger | logging.LoggerAdapter[Any] = logger,
        clock: Callable[[], float] = time.monotonic,
        repeat: float = REPEAT_SECONDS,
    ) -> None:
        self.server = server
        self.log, self.clock, self.repeat = log, clock, repeat
        self._lock = threading.Lock()
        self._reachable: bool | None = None  # None: no probe has ended yet
        self._since = clock()  # of the last answer, or of the start
        self._problem = ""
        self._warned_at: float | None = None  # of the last warning of this outage
        self._listeners: list[Callable[[bool], None]] = []
        metrics.set_kube_api_reachable(False)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(answers)`` when the API server stops answering, and when it answers
        again (from the monitor's thread; not at the first answer)."""
        self._listeners.append(listener)

    @property
    def reachable(self) -> bool | None:
        """True once the API server answered the last probe; False when it did not; None before
        any probe ended."""
        return self._reachable

    def record(self, answered: bool, problem: str = "") -> None:
        """The outcome of one probe: the API server answered, or not (``problem`` says how)."""
        with self._lock:
            was = self._reachable
            self._record(answered, problem)
        if was is not None and was != answered:
            for listener in self._listeners:
                listener(answered)

    def _record(self, answered: bool, problem: str) -> None:
        """:meth:`record`'s state and log, under the lock."""
        now = self.clock()
        was = self._reachable
        self._reachable = answered
        if answered:
            outage = now - self._since
            self._since, self._problem, warned = now, "", self._warned_at
            self._warned_at = None
            if was is not True:
                metrics.set_kube_api_reachable(True)
            if warned is not None:
                self.log.info(
                    f"The Kubernetes API server {self.server} answers again, after {_duration(outage)}."
                )
            elif was is None:
                self.log.info(f"The Kubernetes API server {self.server} answers.")
            return
        self._problem = problem
        if was is True:
            metrics.set_kube_api_reachable(False)
        if self._warned_at is not None and now - self._warned_at < self.repeat:
            return
        self._warned_at = now
        self.log.warning(
            f"The Kubernetes API server {self.server} cannot be reached: no answer for "
            f"{_duration(now - self._since)} (last try: {problem}); watches and steps resume when "
            "it answers."
        )

    def readiness(self) -> tuple[bool, str]:
        """The ``kube-api`` check of ``/readyz``: (ready, a one-line reason when not)."""
        with self._lock:
            if self._reachable:
                return True, ""
            if self._reachable is None:
                return False, f"the Kubernetes API server {self.server} has not answered yet"
            return False, (
                f"the Kubernetes API server {self.server} cannot be reached: no answer for "
                f"{_duration(self.clock() - self._since)} (last try: {self._problem})"
            )


def describe(error: BaseException) -> str:
    """A probe's failure in a few words (no credentials: urllib3's messages name the host)."""
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        error = error.reason
    if isinstance(error, urllib3.exceptions.NewConnectionError):  # refused, no route, no name
        return f"no connection: {str(error).rpartition('new connection: ')[2] or type(error).__name__}"
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {PROBE_TIMEOUT:g}s"
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {PROBE_TIMEOUT:g}s"
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason or ''}".strip()
    text = re.sub(r"<[^>]*>: ", "", str(error)).splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def is_unreachable_error(error: BaseException) -> bool:
    """Whether a failed Kubernetes call failed for want of an answer (connect, TLS, timeout,
    a dropped connection) rather than with one: the monitor reports those once a minute, so a
    step that failed this way needs no traceback of its own."""
    return isinstance(error, (urllib3.exceptions.HTTPError, OSError, TimeoutError))


class ApiServerMonitor:
    """One daemon thread that probes the API server and feeds a :class:`Reachability`."""

    def __init__(
        self, probe: Callable[[], None], reachability: Reachability, interval: float = PROBE_INTERVAL
    ) -> None:
        self.probe, self.reachability, self.interval = probe, reachability, interval
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ApiServerMonitor:
        self._thread = threading.Thread(target=self._run, name="backendauth-kube-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            started = time.monotonic()
            try:
                self.probe()
            except Exception as error:
                self.reachability.record(False, describe(error))
            else:
                self.reachability.record(True)
            self._stopped.wait(max(0.0, self.interval - (time.monotonic() - started)))


def version_probe(api_client: Any) -> Callable[[], None]:
    """``GET /version`` through ``api_client`` on a connection of its own (closed after the
    answer): raises unless the API server answered below 500 within the probe's timeouts."""
    from backendauth_operator.kube.client import request

    def probe() -> None:
        try:
            request(
                api_client, "GET", "/version", timeout=(PROBE_TIMEOUT, PROBE_TIMEOUT),
                headers={"Connection": "close"}, decode=False,
            )  # fmt: skip
        except ApiException as error:
            if error.status is None or error.status >= 500:
                raise

    return probe


class KopfBackoffs:
    """``settings.networking.error_backoffs``: :data:`KOPF_BACKOFFS`, then more retries for as
    long as the API server is not known to answer. Kopf takes a fresh iterator per request, so
    each request follows its own schedule; errors with an answer (a 403, a 500 from a reachable
    server) still give up after the fixed schedule."""

    def __init__(self, reachability: Reachability | None) -> None:
        self.reachability = reachability

    def __iter__(self) -> Iterator[float]:
        yield from KOPF_BACKOFFS
        while self.reachability is not None and self.reachability.reachable is not True:
            yield KOPF_BACKOFF_WHILE_UNREACHABLE


# Kopf logs every retry of its requests at ERROR, urllib3 each of its own at WARNING. A retry
# for want of an answer says what the monitor already says once a minute, so those lines are
# kept for --verbose only.
_UNANSWERED_RETRY = re.compile(
    KOPF_RETRY_WITHOUT_ANSWER
    + r"|^Retrying \(.*\) after connection broken by '(?:ConnectTimeoutError|ReadTimeoutError|"
    r"NewConnectionError|ProtocolError|RemoteDisconnected|SSLError)\("
)


class QuietUnreachableRetries(logging.Filter):
    """A handler filter: Kopf's "Request attempt ... failed; will retry" lines and urllib3's
    "Retrying ..." lines for connection errors and timeouts show only with ``--verbose`` (at
    DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not _UNANSWERED_RETRY.search(record.getMessage()):
            return True
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def install_log_filter() -> None:
    """Put :class:`QuietUnreachableRetries` on every handler of the root logger."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QuietUnreachableRetries) for f in handler.filters):
            handler.addFilter(QuietUnreachableRetries())
