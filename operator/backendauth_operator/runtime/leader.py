"""Leader election on a ``coordination.k8s.io/v1`` Lease, with controller-runtime's semantics.

Two replicas run; one leads. Only the leader runs steps, polls and resyncs; a standby keeps
Kopf's watches (and so the registry of objects and the poller's list of waiting ones) warm, so
that taking over costs no relist, only the steps that are due.

The rules are client-go's ``leaderelection``:

* A candidate takes the Lease when it is free (no holder) or when its record has not changed
  for ``leaseDurationSeconds`` *as this process measured it* (its own monotonic clock from the
  moment it saw the record change, never the other pod's wall clock).
* The leader renews every ``retry_period``. :meth:`LeaderElector.acting` is true only until
  ``renew_deadline`` after the start of its last successful renewal: a leader that cannot renew
  (the API server stopped answering, the request hangs) stops acting by itself, without being
  told, ``lease_duration - renew_deadline`` seconds before anyone else may take the Lease.
* On shutdown the leader stops acting, lets the steps in flight finish (a bounded wait), and
  releases the Lease (no holder, ``leaseDurationSeconds: 1``, like client-go's
  ``ReleaseOnCancel``), so that a rolling update hands over within about a retry period.

Every write is conditional on the ``resourceVersion`` read, so two candidates never both win.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from backendauth_operator import metrics
from backendauth_operator.kube.client import micro_time
from backendauth_operator.kube.leases import (
    Conflict,
    KubeLeaseStore,
    LeaseStore,
    election_body,
    released_body,
)

logger = logging.getLogger("backendauth_operator.runtime.leader")

JITTER = 1.2  # a candidate waits retry_period times up to this factor between attempts (client-go's)


def _record(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies one version of a Lease's record: a change means its holder is alive."""
    keys = ("holderIdentity", "renewTime", "acquireTime", "leaseDurationSeconds", "leaseTransitions")
    return tuple(spec.get(key) for key in keys)


class Gate(Protocol):
    """What steps, polls and resyncs consult before they act."""

    def acting(self) -> bool:
        """Whether this process may act now (call AWS, write objects)."""
        ...

    def takes_over(self) -> bool:
        """Whether every other process is known not to act: their turns may be taken at once."""
        ...

    def working(self) -> contextlib.AbstractContextManager[None]:
        """Held around a step, so that a shutdown lets it finish before handing over."""
        ...

    def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop acting at once and let the steps in flight finish (at most ``drain_seconds``)."""
        ...


class _Steps:
    """Counts the steps in flight, so that a shutdown can wait for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._stopping = False

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    def _drain(self, drain_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        with self._lock:
            self._stopping = True
            deadline = clock() + drain_seconds
            while self._in_flight and clock() < deadline:
                self._idle.wait(min(0.1, max(0.0, deadline - clock())))


class SoleOperator(_Steps):
    """The gate without an election (``BACKENDAUTH_LEADER_ELECTION=false``): this process acts
    until it stops. Another process's turns are not taken over at once, since nothing says that
    no other operator runs; the fencing of every write still holds."""

    def acting(self) -> bool:
        with self._lock:
            return not self._stopping

    def takes_over(self) -> bool:
        return False

    def stop(self, drain_seconds: float = 10.0) -> None:
        self._drain(drain_seconds)


class Candidate(_Steps):
    """One candidate of the election: what it has seen of the Lease, one attempt to take or
    renew it, and its release. Thread-safe; :class:`LeaderElector` runs the attempts."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.identity = store, identity
        self.lease_duration, self.renew_deadline, self.retry_period = (
            lease_duration,
            renew_deadline,
            retry_period,
        )
        self.clock, self.wall = clock, wall
        super().__init__()
        self._renewed_at: float | None = None  # clock() at the start of our last successful write
        self._observed: tuple[Any, ...] | None = None  # the record last read
        self._observed_at = 0.0  # clock() when the record was last seen to change
        self._leading = False  # what the loop last reported (for logs and transitions)
        self._holder: str | None = None  # the holder last reported in the log
        self._expires_at: float | None = None  # clock() when another's Lease runs out, as seen
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the gate --------------------------------------------------------------------------

    def acting(self) -> bool:
        """True only while this process holds the Lease and renewed it less than
        ``renew_deadline`` ago (measured from the start of that renewal), and is not stopping."""
        with self._lock:
            renewed = self._renewed_at
            stopping = self._stopping
        return renewed is not None and not stopping and self.clock() - renewed < self.renew_deadline

    def takes_over(self) -> bool:
        """The leader knows that no other process acts: it takes over their turns at once."""
        return self.acting()

    # ---- one round -------------------------------------------------------------------------

    def try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the Lease (client-go's ``tryAcquireOrRenew``); True if
        this process holds it afterwards. Never raises for an API error: a failed attempt is
        only a failed attempt (the deadline decides when leading stops)."""
        started = self.clock()
        try:
            lease = self.store.get()
            if lease is None:
                written = self.store.create(self._body(None, transitions=0, acquired=None))
                self._won(started, written)
                return True
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity") or None
            record = _record(spec)
            with self._lock:
                if record != self._observed:
                    self._observed, self._observed_at = record, started
                observed_at = self._observed_at
            self._report_holder(holder)
            if holder is not None and holder != self.identity:
                duration = spec.get("leaseDurationSeconds") or self.lease_duration
                if observed_at + float(duration) > started:
                    self._expires_at = observed_at + float(duration)
                    return False  # another's, and still valid as far as this process has seen
            ours = holder == self.identity
            transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
            acquired = spec.get("acquireTime") if ours else None
            body = self._body(lease["metadata"]["resourceVersion"], transitions, acquired)
            self._won(started, self.store.replace(body))
            return True
        except Conflict:
            return False  # someone else wrote first; the next round reads again
        except Exception as error:
            logger.warning(f"Could not take or renew the leader Lease: {_short(error)}")
            return False

    def _body(self, version: str | None, transitions: int, acquired: Any) -> dict[str, Any]:
        return election_body(
            getattr(self.store, "name", "leader"),
            self.identity,
            max(1, math.ceil(self.lease_duration)),
            micro_time(self.wall()),
            version,
            transitions,
            acquired,
        )

    def _won(self, started: float, written: Mapping[str, Any]) -> None:
        record = _record(written.get("spec") or {})
        with self._lock:
            self._renewed_at = started
            self._observed, self._observed_at = record, started
        self._report_holder(self.identity)

    def _report_holder(self, holder: str | None) -> None:
        if holder == self._holder:
            return
        self._holder = holder
        if holder is not None and holder != self.identity:
            logger.info(f"The leader is {holder}; this operator ({self.identity}) stands by.")

    def release(self) -> None:
        """Hand the Lease over: no holder, a duration of one second (client-go's release)."""
        with self._lock:
            held = self._renewed_at is not None
            self._renewed_at = None
        if not held:
            return
        try:
            lease = self.store.get()
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != self.identity:
                return
            body = released_body(lease, micro_time(self.wall()))
            self.store.replace(body)
            logger.info(f"This operator ({self.identity}) released the leader Lease.")
        except Exception as error:  # the Lease runs out by itself
            logger.warning(f"Could not release the leader Lease: {_short(error)}")


class LeaderElector(Candidate):
    """A candidate that keeps trying: :meth:`start` runs the loop in a thread, :meth:`stop` ends
    it and hands the Lease over."""

    # ---- the loop --------------------------------------------------------------------------

    def start(self) -> None:
        """Run the election in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="backendauth-leader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._expires_at = None
            self.tick()
            period = self.retry_period if self._leading else self.retry_period * random.uniform(1.0, JITTER)
            if self._expires_at is not None:  # try again as soon as the leader's Lease runs out
                period = min(period, max(0.01, self._expires_at - self.clock()))
            self._stop.wait(period)

    def tick(self) -> None:
        """One round of the loop: try, then report a change of leadership."""
        with self._lock:
            stopping = self._stopping
        if not stopping:
            self.try_acquire_or_renew()
        self._report()

    def _report(self) -> None:
        leading = self.acting()
        if leading == self._leading:
            return
        self._leading = leading
        metrics.record_leader_transition()
        if leading:
            logger.info(f"This operator ({self.identity}) is now the leader.")
        else:
            with self._lock:
                stopping = self._stopping
            if stopping:
                logger.info(f"This operator ({self.identity}) stops leading: it is shutting down.")
            else:
                logger.warning(
                    f"This operator ({self.identity}) stopped leading: the leader Lease was not "
                    f"renewed within {self.renew_deadline:g}s."
                )

    def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop acting at once, let the steps in flight finish (at most ``drain_seconds``), stop
        the loop, and release the Lease if this process holds it."""
        self._drain(drain_seconds, self.clock)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.retry_period, 1.0) + 1.0)
        self._report()
        self.release()


def _short(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"


def build_gate(api_client: Any, settings: Any, namespace: str, identity: str) -> SoleOperator | LeaderElector:
    """The gate the settings ask for: an elector on ``settings.leader_lease`` in ``namespace``,
    or :class:`SoleOperator` when leader election is off."""
    if not settings.leader_election:
        return SoleOperator()
    timeout = max(1.0, settings.renew_deadline_seconds / 2)
    store = KubeLeaseStore(api_client, namespace, settings.leader_lease, timeout)
    return LeaderElector(
        store,
        identity,
        settings.lease_duration_seconds,
        settings.renew_deadline_seconds,
        settings.retry_period_seconds,
    )
