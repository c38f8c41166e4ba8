"""Prometheus metrics of the operator, in a registry of its own (not the process-global one).

Names and labels (README, deploy/README.md):

- ``backendauth_aws_calls_total{operation, outcome, account}``: AmplifyBackend calls; ``outcome``
  is ``ok`` or the failure reason (``Throttled``, ``AWSUnavailable``, ``BadRequest``, ...).
- ``backendauth_retries_total{reason, account}``: retries scheduled after a retryable failure.
- ``backendauth_job_duration_seconds{operation, result, account}``: how long AWS jobs ran until
  they ended ``COMPLETED`` or ``FAILED``; buckets from a second to hours.

``account`` is the AWS account acted in (12 digits), empty for the operator's own account when
it is not known.
- ``backendauth_resources{condition, reason}``: how many BackendAuths show each condition (the one
  that is True: ``Ready``, ``Reconciling`` or ``Stalled``) with each reason. Objects are counted,
  never labelled: the series stay bounded by the (small, fixed) set of reasons.
- ``backendauth_kube_api_reachable``: 1 while the Kubernetes API server answers the operator's
  probes, 0 while it cannot be reached (and before the first answer).
- ``backendauth_leader``: 1 while this process leads (or runs without leader election), else 0.
- ``backendauth_leader_transitions_total``: how often this process started or stopped leading.
- ``backendauth_resync_round_seconds``: how long a full round of resyncs takes now, given the
  objects and the budget (the period when the budget suffices, longer when it does not).
- ``backendauth_resync_period_seconds``: ``BACKENDAUTH_RESYNC_SECONDS``, what the round is
  compared with (alert ``BackendAuthResyncBehind``).
- ``backendauth_observation_age_seconds``: the longest time since a settled BackendAuth was last
  read in AWS (since this process started acting, for one it has not read yet).

Every function is safe to call from Kopf's handler threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

# Jobs take seconds on the simulator and minutes (sometimes hours) on AWS.
JOB_BUCKETS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, float("inf"),
)  # fmt: skip

# The condition that is True for each phase of ``decide.State`` (kstatus: exactly one is).
_CONDITIONS = {"ready": "Ready", "reconciling": "Reconciling", "stalled": "Stalled"}


def condition_label(phase: str) -> str:
    """``ready``/``Ready`` → ``Ready`` (and so on); anything else is a programming error."""
    try:
        return _CONDITIONS[phase.lower()]
    except KeyError:
        raise ValueError(f"unknown phase {phase!r}; expected one of {sorted(_CONDITIONS)}") from None


class OperatorMetrics:
    """One set of the operator's metrics in its own registry; the module keeps the process's one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.aws_calls = Counter(
            "backendauth_aws_calls",
            "AmplifyBackend API calls, by operation, outcome (ok, or the failure reason) and AWS account.",
            ["operation", "outcome", "account"],
            registry=self.registry,
        )
        self.retries = Counter(
            "backendauth_retries",
            "Retries scheduled after a retryable failure, by reason and AWS account.",
            ["reason", "account"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "backendauth_job_duration_seconds",
            "Duration of AmplifyBackend jobs until they ended, by operation, result and AWS account.",
            ["operation", "result", "account"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.resources = Gauge(
            "backendauth_resources",
            "BackendAuth objects by the condition that is True and its reason.",
            ["condition", "reason"],
            registry=self.registry,
        )
        self.kube_api_reachable = Gauge(
            "backendauth_kube_api_reachable",
            "1 while the Kubernetes API server answers the operator's probes, else 0.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "backendauth_leader",
            "1 while this operator acts (the elected leader, or leader election is off), else 0.",
            registry=self.registry,
        )
        self.leader_transitions = Counter(
            "backendauth_leader_transitions",
            "How often this operator started or stopped leading.",
            registry=self.registry,
        )
        self.resync_round = Gauge(
            "backendauth_resync_round_seconds",
            "How long a full round of resyncs takes now, given the objects and the budget.",
            registry=self.registry,
        )
        self.resync_period = Gauge(
            "backendauth_resync_period_seconds",
            "How often a settled BackendAuth is to be read in AWS (BACKENDAUTH_RESYNC_SECONDS).",
            registry=self.registry,
        )
        self.observation_age = Gauge(
            "backendauth_observation_age_seconds",
            "The longest time since a settled BackendAuth was last read in AWS.",
            registry=self.registry,
        )
        self._states: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._servers: list[WSGIServer] = []

    def record_aws_call(self, operation: str, outcome: str, account: str = "") -> None:
        """Count one AmplifyBackend call; ``outcome`` is ``ok`` or the failure reason."""
        self.aws_calls.labels(operation=operation, outcome=outcome, account=account).inc()

    def record_retry(self, reason: str, account: str = "") -> None:
        """Count one retry scheduled after a retryable failure with this reason."""
        self.retries.labels(reason=reason, account=account).inc()

    def observe_job(self, operation: str, result: str, seconds: float, account: str = "") -> None:
        """Record how long a job ran until it ended with ``result`` (COMPLETED or FAILED)."""
        self.job_duration.labels(operation=operation, result=result, account=account).observe(
            max(0.0, seconds)
        )

    def set_object_state(self, uid: str, phase: str | None, reason: str | None) -> None:
        """Move object ``uid`` to (``phase``, ``reason``); ``phase=None`` forgets the object.

        O(1): one decrement of the old series and one increment of the new one. Series that drop
        to zero stay at zero (a state the dashboards can show), so their number is bounded by the
        (phase, reason) pairs the operator uses, whatever the number of objects.
        """
        new = None if phase is None else (condition_label(phase), reason or "")
        with self._lock:
            old = self._states.pop(uid, None)
            if new is not None:
                self._states[uid] = new
            if old == new:
                return
            if old is not None:
                self.resources.labels(condition=old[0], reason=old[1]).dec()
            if new is not None:
                self.resources.labels(condition=new[0], reason=new[1]).inc()

    def set_kube_api_reachable(self, reachable: bool) -> None:
        """Whether the Kubernetes API server answers now."""
        self.kube_api_reachable.set(1 if reachable else 0)

    def tracked_objects(self) -> int:
        """How many objects are counted in ``backendauth_resources`` now."""
        with self._lock:
            return len(self._states)

    def start_server(self, port: int, addr: str = "0.0.0.0") -> None:
        """Serve ``/metrics`` of this registry on ``addr:port`` from a daemon thread."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        with self._lock:
            self._servers.append(server)

    def server_ports(self) -> list[int]:
        """The ports the metrics servers listen on (useful when started on port 0)."""
        with self._lock:
            return [server.server_port for server in self._servers]

    def stop_servers(self) -> None:
        """Stop every metrics server this instance started."""
        with self._lock:
            servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


METRICS = OperatorMetrics()
"""The process's metrics: what the module-level functions record and serve."""


def record_aws_call(operation: str, outcome: str, account: str = "") -> None:
    """Count one AmplifyBackend call; ``outcome`` is ``ok`` or the failure reason."""
    METRICS.record_aws_call(operation, outcome, account)


def record_retry(reason: str, account: str = "") -> None:
    """Count one retry scheduled after a retryable failure with this reason."""
    METRICS.record_retry(reason, account)


def observe_job(operation: str, result: str, seconds: float, account: str = "") -> None:
    """Record how long a job ran until it ended with ``result`` (COMPLETED or FAILED)."""
    METRICS.observe_job(operation, result, seconds, account)


def set_object_state(uid: str, phase: str | None, reason: str | None) -> None:
    """Count object ``uid`` under (``phase``, ``reason``); ``phase=None`` removes it."""
    METRICS.set_object_state(uid, phase, reason)


def set_kube_api_reachable(reachable: bool) -> None:
    """Whether the Kubernetes API server answers now (``backendauth_kube_api_reachable``)."""
    METRICS.set_kube_api_reachable(reachable)


def watch_leadership(acting: Callable[[], bool]) -> None:
    """``backendauth_leader`` reads ``acting()`` at every scrape, so it is right even while the
    election's loop is stuck in a request."""
    METRICS.leader.set_function(lambda: 1.0 if acting() else 0.0)


def record_leader_transition() -> None:
    """Count one start or end of leading."""
    METRICS.leader_transitions.inc()


def set_resync_period(seconds: float) -> None:
    """The configured resync period."""
    METRICS.resync_period.set(seconds)


def set_resync_round(round_seconds: float, oldest_read_age: float) -> None:
    """The resync loop's view: the round as it now is, and the age of the oldest read."""
    METRICS.resync_round.set(round_seconds)
    METRICS.observation_age.set(max(0.0, oldest_read_age))


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> None:
    """Serve the process's metrics on ``http://addr:port/metrics`` (daemon thread)."""
    METRICS.start_server(port, addr)


def stop_metrics_server() -> None:
    """Stop the servers started by :func:`start_metrics_server` (tests, clean shutdown)."""
    METRICS.stop_servers()


def render() -> bytes:
    """The process's metrics in the Prometheus text format."""
    return METRICS.render()
