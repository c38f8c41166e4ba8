"""What the operator knows of every BackendAuth from its watch events, the resync loop, and
the poller.

Periodic observation (drift) must not cost a thread or a timer per object, nor come in bursts:
one loop serves every BackendAuth, at a pace that spreads a full round over the resync period,
also right after a restart or a failover, when this process has read none of them yet. The
registry is fed by watch events (no API call) and also tells which BackendAuths a Secret change
concerns.

Resyncs live on a budget: per pacer key (the account and region every call is paced by, see
``aws.pace_key``), they use at most ``BACKENDAUTH_RESYNC_MAX_SHARE`` of the pace, and only
slots that nothing else waits for. When the objects need more, the round stretches, and the
operator says so (a warning, the gauges).

Objects that wait (a job runs, a retry is due, another BackendAuth has the turn) are stepped
again by the :class:`Poller`: two heaps and one thread for all of them.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from backendauth_operator import metrics
from backendauth_operator.core.decide import resynced
from backendauth_operator.core.models import SECRET_REF_KEYS
from backendauth_operator.runtime.reachability import is_unreachable_error

logger = logging.getLogger("backendauth_operator.resync")
poll_logger = logging.getLogger("backendauth_operator.poll")


# One empty set for every Entry and kept body that holds none: an empty frozenset each is 216 bytes.
EMPTY: frozenset[str] = frozenset()


@dataclass(slots=True)
class Entry:
    namespace: str
    name: str
    uid: str
    resync: bool  # settled in a state that observing may change (decide.resynced)
    last_read: float | None = None  # epoch seconds this process last read it in AWS; None: not yet
    secrets: frozenset[str] = EMPTY  # referenced Secret names
    import_secrets: frozenset[str] = EMPTY  # Secrets spec.import reads ids from
    shown: int | None = None  # the last generation a step of this process wrote a status for
    region: str = ""  # spec.region ("" : the operator's default region)


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
    return frozenset(names) if names else EMPTY


def _import_secret_names(spec: Mapping[str, Any]) -> frozenset[str]:
    """The Secrets that ``spec.import`` reads an id from (``...From.secretKeyRef``)."""
    ids = spec.get("import")
    if not isinstance(ids, Mapping):
        return EMPTY
    refs = [value.get("secretKeyRef") for value in ids.values() if isinstance(value, Mapping)]
    return frozenset(str(ref.get("name")) for ref in refs if isinstance(ref, Mapping)) or EMPTY


def _fraction(uid: str, salt: str) -> float:
    """A stable number in [0, 1) per object."""
    return int(hashlib.sha256(f"{salt}{uid}".encode()).hexdigest()[:8], 16) / 2**32


def spread(uid: str) -> float:
    """A stable factor in [0.8, 1.2) per object: resyncs of objects created together drift apart."""
    return 0.8 + 0.4 * _fraction(uid, "")


FIRST_ROUND_DELAY = 0.1  # of a period: the first round starts this late, then is spread as any other


def first_due(uid: str, since: float, period: float) -> float:
    """When an object this process has not read yet is first due: its place in a round that
    starts a tenth of a period after ``since`` (this process started acting) and is spread over
    one period, as every later round is. No timestamp in the object is needed for that, and a
    restart or a failover brings no burst."""
    return since + period * (FIRST_ROUND_DELAY + _fraction(uid, "first-round:"))


def due_at(entry: Entry, since: float, period: float) -> float:
    """When ``entry``'s next resync is due (epoch seconds)."""
    if entry.last_read is None:
        return first_due(entry.uid, since, period)
    return entry.last_read + period * spread(entry.uid)


class Watched:
    """Every BackendAuth the operator sees, by uid. Thread-safe."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def update(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata", {})
        uid = str(meta.get("uid"))
        spec = body.get("spec") or {}
        entry = Entry(
            namespace=str(meta.get("namespace")),
            name=str(meta.get("name")),
            uid=uid,
            resync=resynced(body),
            secrets=_secret_names(spec),
            import_secrets=_import_secret_names(spec),
            region=str(spec.get("region") or ""),
        )
        with self._lock:
            old = self._entries.get(uid)
            if old is not None:  # what this process did is not in the event
                entry.last_read = old.last_read
                entry.shown = old.shown
            self._entries[uid] = entry

    def forget(self, uid: str) -> None:
        with self._lock:
            self._entries.pop(uid, None)

    def observed(self, uid: str, when: float) -> None:
        """A step of this process has read the object in AWS at ``when`` (epoch seconds)."""
        with self._lock:
            if uid in self._entries:
                self._entries[uid].last_read = when

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

    def resyncable(self) -> list[Entry]:
        """The settled objects that resyncs read (copies' references; read-only)."""
        with self._lock:
            return [e for e in self._entries.values() if e.resync]

    def due(self, now: float, period: float, since: float = 0.0) -> list[Entry]:
        """The objects whose resync is due, longest due first; ``since``: when this process
        started acting (the first round is spread from there)."""
        found = [(due_at(e, since, period), e) for e in self.resyncable()]
        return [e for when, e in sorted(found, key=lambda pair: pair[0]) if when <= now]

    def in_namespaces(self, namespaces: set[str]) -> list[Entry]:
        """The BackendAuths of ``namespaces``."""
        with self._lock:
            return [e for e in self._entries.values() if e.namespace in namespaces]

    def referencing(self, namespace: str, secret: str) -> list[Entry]:
        """The BackendAuths in ``namespace`` whose spec names the Secret ``secret``."""
        with self._lock:
            return [
                e
                for e in self._entries.values()
                if e.namespace == namespace and (secret in e.secrets or secret in e.import_secrets)
            ]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# ---- the budget: pure arithmetic ---------------------------------------------------------------


def round_seconds(objects: int, period: float, pace: float, share: float) -> float:
    """How long a full round of resyncs of ``objects`` takes: the period when ``share`` of
    ``pace`` (calls a second) suffices for one read of each per period, else as long as that
    share needs for them all."""
    if objects <= 0:
        return period
    return max(period, objects / (pace * share))


class Budget:
    """The resync budget of one pacer key: a token bucket filled at ``share`` times the pacer's
    current rate (so it slows down with the pace when AWS throttles), holding at most one
    token: time that passed unused is not saved up for a burst. Each resync is charged the AWS
    calls it made (one when nothing changed; more when it found drift and corrected it), so
    the share holds in calls, not in resyncs. Not thread-safe: the resync loop alone uses it."""

    def __init__(self, share: float, now: float) -> None:
        self.share = share
        self.tokens = 1.0
        self.last = now

    def refill(self, rate: float, now: float) -> None:
        self.tokens = min(1.0, self.tokens + self.share * rate * max(0.0, now - self.last))
        self.last = now

    def ready_in(self, rate: float, now: float) -> float:
        """Seconds until a resync may go (0: now)."""
        self.refill(rate, now)
        if self.tokens >= 1.0 - 1e-9:  # a whole token, but for rounding
            return 0.0
        return (1.0 - self.tokens) / (self.share * rate)

    def spend(self, calls: int) -> None:
        self.tokens -= calls


class Pace(Protocol):
    """What the resync loop needs of a pacer (``aws.Pacer``)."""

    max_rps: float
    rate: float

    def free_in(self) -> float: ...


@dataclass(frozen=True)
class Behind:
    """A pacer key whose objects need more resyncs than its budget gives."""

    key: Hashable
    objects: int
    round: float
    pace: float


def say_behind(before: Behind | None, worst: Behind | None, period: float, share: float) -> Behind | None:
    """Log once when the round starts to stretch (``worst``: the key whose round is longest, or
    None when every round fits) and once when it fits again; what is known now."""
    if worst is not None and before is None:
        logger.warning(
            f"Resyncs fall behind: {worst.objects} settled BackendAuths ({worst.key}) "
            f"are to be read every {period:g}s, {worst.objects / period:.2f} reads/s, but "
            f"resyncs may use {share:g} of the pace of {worst.pace:g} calls/s "
            f"({share * worst.pace:.2f}/s): a full round now takes {worst.round:.0f}s. "
            "Raise BACKENDAUTH_AWS_MAX_RPS, BACKENDAUTH_RESYNC_MAX_SHARE or BACKENDAUTH_RESYNC_SECONDS."
        )
    elif worst is None and before is not None:
        logger.info(f"Resyncs fit their budget again: a full round takes {period:g}s.")
    return worst


class Resyncer:
    """One thread that reads due BackendAuths in AWS one at a time, within each pacer key's
    budget.

    Priority: a new generation, a Secret change, a reconcile request, a deletion and a job poll
    are steps of their own (the poller, Kopf's handlers) and call AWS through the same pacer.
    A resync goes only when (1) its key's :class:`Budget` has a token, and (2) the pacer has a
    free slot now (``free_in() == 0``): a slot reserved ahead means such work is waiting for
    the pace, and the resync waits behind it. So resyncs take at most their share, only from
    slots nothing else wants, and a resync that has begun delays other work by at most the one
    slot its call took. When resyncs want more than their budget, due objects queue (longest
    due first) and the round stretches; it never takes slots from the priority work.

    Every second the loop looks at every settled object (a list, no timer or thread each):
    which are due, and how long a full round takes per key (the gauges and the warning)."""

    SCAN_SECONDS = 1.0

    def __init__(
        self, watched: Watched, period: float, resync: Callable[[Entry], None],
        acting: Callable[[], bool] = lambda: True, share: float = 1.0,
        key_of: Callable[[Entry], Hashable] = lambda entry: entry.region,
        pacer_of: Callable[[Any], Pace] | None = None,
        calls: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.watched, self.period, self.resync = watched, period, resync
        self.acting = acting  # a standby resyncs nothing
        self.share, self.key_of, self.pacer_of, self.calls = share, key_of, pacer_of, calls
        self.clock, self.monotonic = clock, monotonic
        metrics.set_resync_period(period)
        self.budgets: dict[Hashable, Budget] = {}
        self.behind: Behind | None = None  # said once when it starts, once when it ends
        self.since: float | None = None  # when this process started acting
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backendauth-resync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def pace(self, key: Hashable) -> Pace | None:
        return self.pacer_of(key) if self.pacer_of is not None else None

    def scan(self, now: float) -> dict[Hashable, list[Entry]]:
        """The due objects by key (longest due first); sets the gauges, and says when the
        round starts or stops stretching."""
        since = self.since if self.since is not None else now
        entries = self.watched.resyncable()
        counts: dict[Hashable, int] = {}
        due: dict[Hashable, list[tuple[float, Entry]]] = {}
        oldest = now
        for entry in entries:
            key = self.key_of(entry)
            counts[key] = counts.get(key, 0) + 1
            when = due_at(entry, since, self.period)
            if when <= now:
                due.setdefault(key, []).append((when, entry))
            oldest = min(oldest, entry.last_read if entry.last_read is not None else since)
        worst: Behind | None = None
        longest = self.period
        for key, n in counts.items():
            pace = self.pace(key)
            rps = pace.max_rps if pace is not None else float("inf")
            took = round_seconds(n, self.period, rps, self.share)
            if took > longest:
                longest, worst = took, Behind(key, n, took, rps)
        metrics.set_resync_round(longest, now - oldest if entries else 0.0)
        if now >= since + FIRST_ROUND_DELAY * self.period:
            # Said once the first round begins: by then the start-up list has been seen whole,
            # so the warning names every object, not the part of them listed so far.
            self.behind = say_behind(self.behind, worst, self.period, self.share)
        return {key: [e for _, e in sorted(found, key=lambda pair: pair[0])] for key, found in due.items()}

    def _run(self) -> None:
        queues: dict[Hashable, list[Entry]] = {}
        next_scan = 0.0
        while not self._stop.is_set():
            if not self.acting():
                self.since, queues = None, {}
                self._stop.wait(self.SCAN_SECONDS)
                continue
            if self.since is None:
                self.since = self.clock()
            if self.monotonic() >= next_scan:
                queues = self.scan(self.clock())
                next_scan = self.monotonic() + self.SCAN_SECONDS
            wait = max(0.0, next_scan - self.monotonic())
            for key, queue in queues.items():
                if not queue or self._stop.is_set():
                    continue
                wait = min(wait, self.step(key, queue))
            if wait > 0:
                self._stop.wait(max(wait, 0.001))

    def step(self, key: Hashable, queue: list[Entry]) -> float:
        """Resync the first of ``queue`` if its key's budget and pace allow; return how long
        until it may try again (0: at once)."""
        pace = self.pace(key)
        now = self.monotonic()
        budget = self.budgets.setdefault(key, Budget(self.share, now))
        rate = pace.rate if pace is not None else float("inf")
        if pace is not None:
            ready = budget.ready_in(rate, now)
            if ready > 0:
                return ready
            busy = pace.free_in()
            if busy > 0:
                return busy  # other work waits for the pace: it goes first
        entry = queue.pop(0)
        self.watched.observed(entry.uid, self.clock())  # tried: not again before its next turn
        before = self.calls()
        try:
            self.resync(entry)
        except Exception as error:  # one object's trouble must not stop the others' resyncs
            if is_unreachable_error(error):  # said by the reachability monitor
                logger.debug(f"[{entry.namespace}/{entry.name}] Resync failed: {error}")
            else:
                logger.exception(f"[{entry.namespace}/{entry.name}] Resync failed; it is tried again later.")
        finally:
            budget.spend(self.calls() - before)
        return 0.0


Key = tuple[str, str]  # namespace, name
STANDBY_TICK = 0.25  # how often a standby's poller looks whether it leads now


class Poller:
    """Steps every waiting BackendAuth again after ``interval`` seconds, and new generations as
    soon as a slot is free.

    Two heaps of due times (polls, and steps that watch events ask for, which take turns) and
    one thread for all objects; the steps themselves run on ``executor`` (Kopf's handler
    threads), so waiting objects cost no thread, no task and no timer each, and a settled
    object costs nothing at all. At most ``max_in_flight`` steps run at once, so that a
    thousand new objects wait as keys in a heap rather than as queued work holding their
    bodies, and Kopf's own handlers keep threads free. An object is scheduled by the step that
    left it waiting, or, after a restart, when its watch event first shows it waiting (at a
    random point of the first interval, so that a restart brings no burst of polls).
    """

    def __init__(self, interval: float, max_in_flight: int = 12) -> None:
        self.interval = interval
        self.step: Callable[[str, str, bool], None] | None = None  # given by start()
        # Steps in flight at once: the others wait in the heaps (a key each), not as queued work.
        self._slots = threading.BoundedSemaphore(max_in_flight)
        # When each object is due: to be polled (a step left it waiting: a job runs, a retry or
        # its turn is due), and for a watch event that asked for a step (a new object, a new
        # generation). An object can be due for both: an event's step does not cancel its poll.
        self._polls: dict[Key, float] = {}
        self._asks: dict[Key, float] = {}
        # Their heaps of (due, key). Entries are not removed when rescheduled: one whose time
        # is no longer the key's in its table is skipped.
        self._waiting: list[tuple[float, Key]] = []
        self._asked: list[tuple[float, Key]] = []
        self._asked_next = False  # whose turn it is when both have objects due (see _pop)
        # Steps running, by object, and those objects that a watch event showed waiting
        # meanwhile (see ensure).
        self._running: Counter[Key] = Counter()
        self._ensure_after: set[Key] = set()
        self._wake = threading.Condition()
        self._stopped = False
        self._executor: Executor | None = None
        # Whether this process acts (leads): while not, due objects wait in the heaps, and run
        # as soon as it does.
        self.acting: Callable[[], bool] = lambda: True

    def schedule(
        self, namespace: str, name: str, delay: float | None = None, from_event: bool = False
    ) -> None:
        """Step the object after ``delay`` (default: the interval), unless it is due sooner.

        ``from_event``: a watch event asked for the step (a new generation, a reconcile
        request, a pause flip); the step does nothing if the object no longer asks by then (the
        event predates a step's writes), and a poll scheduled for later stays scheduled. A poll
        that is due as well makes it a full step."""
        key = (namespace, name)
        due = time.monotonic() + (self.interval if delay is None else delay)
        table, heap = (self._asks, self._asked) if from_event else (self._polls, self._waiting)
        with self._wake:
            if key in table and table[key] <= due:
                return
            table[key] = due
            heapq.heappush(heap, (due, key))
            self._wake.notify()

    def ensure(self, namespace: str, name: str) -> None:
        """Poll the object: its first step comes within one interval, or when it is due already.

        When a watch event has asked for a step, that step is a full one: the object waits,
        and a step for the event alone would find nothing asked (a standby sees a new object,
        then the job its leader started).

        While a step of the object runs, the event is most likely of that step's own write (the
        job it just started), and the step schedules the poll itself, one interval on: a poll
        scheduled now would come early and find the job still running. So it is only made sure
        of once the step has ended, in case that step did not schedule one."""
        key = (namespace, name)
        with self._wake:
            if self._running[key]:
                self._ensure_after.add(key)
                return
            if key in self._polls:
                return
            asked = self._asks.get(key)
        delay = random.uniform(0.1, 1.0) * self.interval
        if asked is not None:
            delay = min(delay, asked - time.monotonic())
        self.schedule(namespace, name, delay)

    def scheduled(self, namespace: str, name: str) -> bool:
        with self._wake:
            return (namespace, name) in self._polls or (namespace, name) in self._asks

    def __len__(self) -> int:
        with self._wake:
            return len(self._polls.keys() | self._asks.keys())

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

    @staticmethod
    def _head(heap: list[tuple[float, Key]], table: dict[Key, float]) -> float | None:
        """When the first object of ``heap`` is due (None: none is), outdated entries dropped."""
        while heap:
            due, key = heap[0]
            if table.get(key) == due:
                return due
            heapq.heappop(heap)
        return None

    def _pop(self, now: float) -> tuple[Key, bool] | None:
        """The next object to step, if one is due, and whether only for an event.

        Polls and asked-for steps take turns when both are due: the jobs already running are
        finished alongside the new objects started (each poll is due only once its interval
        has passed), rather than after every new object. AWS's pace is then spent on both (a
        thousand new objects are a thousand create steps, during which their jobs' polls would
        otherwise wait), and neither kind can hold the other back, however many there are."""
        poll = self._head(self._waiting, self._polls)
        ask = self._head(self._asked, self._asks)
        poll_due = poll is not None and poll <= now
        ask_due = ask is not None and ask <= now
        if not (poll_due or ask_due):
            return None
        take_ask = ask_due and (not poll_due or self._asked_next)
        if poll_due and ask_due:
            self._asked_next = not take_ask
        _, key = heapq.heappop(self._asked if take_ask else self._waiting)
        del (self._asks if take_ask else self._polls)[key]
        # A step covers whatever else is due for the object by now.
        if take_ask and self._polls.get(key, now + 1) <= now:
            del self._polls[key]
            return key, False
        if not take_ask and self._asks.get(key, now + 1) <= now:
            del self._asks[key]
        return key, take_ask

    def _next_due(self) -> float | None:
        heads = (self._head(self._waiting, self._polls), self._head(self._asked, self._asks))
        return min((t for t in heads if t is not None), default=None)

    def _run(self) -> None:
        while True:
            with self._wake:
                popped: tuple[Key, bool] | None = None
                while not self._stopped:
                    now = time.monotonic()
                    if self.acting():
                        popped = self._pop(now)
                        if popped is not None:
                            break
                    next_due = self._next_due()
                    timeout = None if next_due is None else max(0.0, next_due - now)
                    if next_due is not None and not self.acting():
                        timeout = STANDBY_TICK
                    self._wake.wait(timeout)
                if self._stopped or popped is None:
                    return
                key, from_event = popped
                self._running[key] += 1
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
            with self._wake:
                self._running[key] -= 1
                ensure = False
                if not self._running[key]:  # the object's last step running has ended
                    del self._running[key]
                    ensure = key in self._ensure_after
                    self._ensure_after.discard(key)
            if ensure:
                self.ensure(*key)
            self._slots.release()
