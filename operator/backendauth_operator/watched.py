"""What the operator knows of every BackendAuth from its watch events, the resync loop, and
the poller.

Periodic observation (drift) must not cost a thread or a timer per object, nor come in bursts:
one loop serves every BackendAuth, at a pace that spreads a full round over the resync period,
also right after a restart when every object is due at once. The registry is fed by watch
events (no API call) and also tells which BackendAuths a Secret change concerns.

Objects that wait (a job runs, a retry is due, another BackendAuth has the turn) are stepped
again by the :class:`Poller`: one heap and one thread for all of them.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backendauth_operator.models import SECRET_REF_KEYS
from backendauth_operator.reachability import is_unreachable_error

logger = logging.getLogger("backendauth_operator.resync")
poll_logger = logging.getLogger("backendauth_operator.poll")

# Settled objects whose observation can change something: Ready ones (drift) and those that
# only report drift. Other settled states (InvalidSpec, JobFailed, ...) wait for a new spec.
_RESYNCED_REASONS = frozenset({"JobCompleted", "InSync", "Adopted", "Drifted"})


@dataclass
class Entry:
    namespace: str
    name: str
    uid: str
    resync: bool  # settled in a state that observing may change
    last_observed: float  # epoch seconds; 0 when never
    secrets: frozenset[str] = field(default_factory=frozenset)  # referenced Secret names
    shown: int | None = None  # the last generation a step of this process wrote a status for


def _epoch(text: Any) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _secret_names(spec: Mapping[str, Any]) -> frozenset[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in SECRET_REF_KEYS and isinstance(value, Mapping):
                    names.add(str(value.get("name")))
                else:
                    walk(value)

    walk(spec)
    return frozenset(names)


def spread(uid: str) -> float:
    """A stable factor in [0.8, 1.2) per object: resyncs of objects created together drift apart."""
    return 0.8 + 0.4 * int(hashlib.sha256(uid.encode()).hexdigest()[:8], 16) / 2**32


class Watched:
    """Every BackendAuth the operator sees, by uid. Thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def update(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        uid = str(meta.get("uid"))
        status = body.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        ready = conditions.get("Ready", {})
        paused = str((meta.get("annotations") or {}).get("amplifybackend.gitops.dev/paused", "")).lower()
        settled = any(conditions.get(t, {}).get("status") == "True" for t in ("Ready", "Stalled"))
        entry = Entry(
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            uid=uid,
            resync=settled and ready.get("reason") in _RESYNCED_REASONS and paused != "true",
            last_observed=_epoch(status.get("lastObservedAt")),
            secrets=_secret_names(body.get("spec") or {}),
        )
        with self._lock:
            old = self._entries.get(uid)
            if old is not None:  # what this process did may be newer than the event
                entry.last_observed = max(entry.last_observed, old.last_observed)
                entry.shown = old.shown
            self._entries[uid] = entry

    def forget(self, uid: str) -> None:
        with self._lock:
            self._entries.pop(uid, None)

    def observed(self, uid: str, when: float) -> None:
        with self._lock:
            if uid in self._entries:
                self._entries[uid].last_observed = when

    def shown(self, uid: str, generation: int | None) -> None:
        """A step has written the status of ``generation``."""
        with self._lock:
            if uid in self._entries:
                self._entries[uid].shown = generation

    def has_shown(self, uid: str, generation: int | None) -> bool:
        """Whether a step of this process has written the status of ``generation``: a watch
        event from before that write still shows the previous status."""
        with self._lock:
            entry = self._entries.get(uid)
            return entry is not None and entry.shown is not None and entry.shown == generation

    def due(self, now: float, period: float) -> list[Entry]:
        """The objects whose resync is due, longest waiting first."""
        with self._lock:
            found = [
                e
                for e in self._entries.values()
                if e.resync and now - e.last_observed >= period * spread(e.uid)
            ]
        return sorted(found, key=lambda e: e.last_observed)

    def in_namespaces(self, namespaces: set[str]) -> list[Entry]:
        """The BackendAuths of ``namespaces``."""
        with self._lock:
            return [e for e in self._entries.values() if e.namespace in namespaces]

    def referencing(self, namespace: str, secret: str) -> list[Entry]:
        """The BackendAuths in ``namespace`` whose spec names the Secret ``secret``."""
        with self._lock:
            return [e for e in self._entries.values() if e.namespace == namespace and secret in e.secrets]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class Resyncer:
    """One thread that observes due BackendAuths one at a time, at most ``len(watched)/period``
    per second on average: a full round takes about one period, whatever the number of objects."""

    def __init__(
        self, watched: Watched, period: float, resync: Callable[[Entry], None],
        acting: Callable[[], bool] = lambda: True,
    ) -> None:  # fmt: skip
        self.watched, self.period, self.resync = watched, period, resync
        self.acting = acting  # a standby resyncs nothing
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backendauth-resync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        tick = min(1.0, self.period / 10)
        tokens, last = 1.0, time.monotonic()
        while not self._stop.wait(tick):
            now = time.monotonic()
            rate = max(len(self.watched), 1) / self.period
            tokens = min(max(1.0, rate * tick), tokens + rate * (now - last))
            last = now
            if not self.acting():
                continue
            for entry in self.watched.due(time.time(), self.period):
                if tokens < 1 or self._stop.is_set():
                    break
                tokens -= 1
                self.watched.observed(entry.uid, time.time())
                try:
                    self.resync(entry)
                except Exception as error:  # one object's trouble must not stop the others' resyncs
                    if is_unreachable_error(error):  # said by the reachability monitor
                        logger.debug(f"[{entry.namespace}/{entry.name}] Resync failed: {error}")
                        continue
                    logger.exception(
                        f"[{entry.namespace}/{entry.name}] Resync failed; it is tried again later."
                    )


Key = tuple[str, str]  # namespace, name
STANDBY_TICK = 0.25  # how often a standby's poller looks whether it leads now


class Poller:
    """Steps every waiting BackendAuth again after ``interval`` seconds, and new generations as
    soon as a slot is free.

    One heap of due times and one thread for all objects; the steps themselves run on
    ``executor`` (Kopf's handler threads), so waiting objects cost no thread, no task and no
    timer each, and a settled object costs nothing at all. At most ``max_in_flight`` steps run
    at once, so that a thousand new objects wait as keys in the heap rather than as queued work
    holding their bodies, and Kopf's own handlers keep threads free. An object is scheduled by the step
    that left it waiting, or, after a restart, when its watch event first shows it waiting (at a
    random point of the first interval, so that a restart brings no burst of polls).
    """

    def __init__(self, interval: float, max_in_flight: int = 12) -> None:
        self.interval = interval
        self.step: Callable[[str, str, bool], None] | None = None  # given by start()
        # Steps in flight at once: the others wait in the heap (a key each), not as queued work.
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._due: dict[Key, float] = {}
        self._from_event: set[Key] = set()  # due only because a watch event asked
        self._heap: list[tuple[float, Key]] = []
        self._wake = threading.Condition()
        self._stopped = False
        self._executor: Executor | None = None
        # Whether this process acts (leads): while not, due objects wait in the heap, and run
        # as soon as it does.
        self.acting: Callable[[], bool] = lambda: True

    def schedule(
        self, namespace: str, name: str, delay: float | None = None, from_event: bool = False
    ) -> None:
        """Step the object after ``delay`` (default: the interval), unless it is due sooner.

        ``from_event``: a watch event asked for the step (a new generation, a reconcile
        request, a pause flip); the step does nothing if the object no longer asks by then (the
        event predates a step's writes). A poll that is due as well makes it a full step."""
        key = (namespace, name)
        due = time.monotonic() + (self.interval if delay is None else delay)
        with self._wake:
            if from_event and key not in self._due:
                self._from_event.add(key)
            elif not from_event:
                self._from_event.discard(key)
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, key))
            self._wake.notify()

    def ensure(self, namespace: str, name: str) -> None:
        """Poll the object: its first step comes within one interval, or when it is due already.

        A step due only because a watch event asked becomes a full step: the object waits,
        and a step for the event alone would find nothing asked and leave it unpolled (a
        standby sees a new object, then the job its leader started)."""
        with self._wake:
            if (namespace, name) in self._due:
                self._from_event.discard((namespace, name))
                return
        self.schedule(namespace, name, random.uniform(0.1, 1.0) * self.interval)

    def cancel(self, namespace: str, name: str) -> None:
        with self._wake:
            self._due.pop((namespace, name), None)  # its heap entry is skipped when it comes up
            self._from_event.discard((namespace, name))

    def scheduled(self, namespace: str, name: str) -> bool:
        with self._wake:
            return (namespace, name) in self._due

    def __len__(self) -> int:
        with self._wake:
            return len(self._due)

    def start(self, executor: Executor, step: Callable[[str, str, bool], None]) -> None:
        """Run ``step(namespace, name, from_event)`` on ``executor`` for each due object."""
        self._executor, self.step = executor, step
        threading.Thread(target=self._run, name="backendauth-poll", daemon=True).start()

    @property
    def executor(self) -> Executor:
        """Where steps run (Kopf's handler threads); other blocking work of handlers runs there too."""
        assert self._executor is not None, "the poller has not started"
        return self._executor

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (
                    not self._heap or self._heap[0][0] > time.monotonic() or not self.acting()
                ):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    if self._heap and not self.acting():
                        timeout = STANDBY_TICK
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                due, key = heapq.heappop(self._heap)
                if self._due.get(key) != due:
                    continue  # cancelled, or scheduled again for another time
                del self._due[key]
                from_event = key in self._from_event
                self._from_event.discard(key)
            assert self._executor is not None
            self._slots.acquire()
            try:
                self._executor.submit(self._step, key, from_event)
            except RuntimeError:  # the executor is shutting down: so is the operator
                return

    def _step(self, key: Key, from_event: bool) -> None:
        assert self.step is not None
        try:
            self.step(*key, from_event)
        except Exception as error:  # one object's trouble must not end its polling
            if is_unreachable_error(error):  # the reachability monitor says so, once a minute
                poll_logger.debug(f"[{key[0]}/{key[1]}] Step failed, no answer from the API server: {error}")
            else:
                poll_logger.exception(f"[{key[0]}/{key[1]}] Step failed; it is tried again later.")
            self.schedule(*key)
        finally:
            self._slots.release()
