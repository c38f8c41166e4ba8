"""Kopf handlers: the wiring. Every trigger runs one step, one way:
event → snapshot → decide → act → write.

A step reads the BackendAuth once into a :class:`~decide.Snapshot` (:func:`reading.read`);
:func:`executor.execute` asks :func:`~decide.decide` for the next plan and carries it out
(:class:`effects.StepEffects`: AWS through :mod:`amplify`, the Lease, the Secrets), each result
coming back as a field of the next snapshot, until the plan settles. Carrying the outcome out is
part of the same loop, under the object's lock: the turn given back, the auth outputs read, the
conditional writes of :mod:`writer`, a fenced release. Deletion is the same path.

What runs a step:

* a watch event that shows a generation no step has shown yet (a new BackendAuth, a changed
  spec: ``metadata.generation`` against ``status.observedGeneration``, as controller-runtime's
  generation predicate does), or a change of the ``paused`` or ``reconcile-requested-at``
  annotations. One filter of Kopf's event handler serves them all: it hands the object to the
  poller, whose step sees what is asked (Kopf runs no handler for it). Kopf's own change
  handlers (and the annotations and patches they cost per object) are not used;
* the poller, only while the BackendAuth shows ``Reconciling`` (a job runs, a retry is due,
  another BackendAuth has the turn): waiting is a poll, not an error. Settled objects (Ready,
  Stalled, Paused) are not polled and cost no AWS call;
* the resync loop and Secret changes (see ``runtime/workqueue.py``).

Deletion is a step like any other. With ``deletionPolicy: Delete``, our finalizer goes on in
the step's own conditional write (with the pending marker, before anything is created in AWS);
when the object is deleted, the watch event that first shows it being deleted asks for a step,
which deletes in AWS, and the poller steps it until AWS's delete job has ended; then a
conditional patch takes the finalizer off. A Retained object carries no finalizer and goes at
once; the step of its DELETED event gives back a turn it may hold, and says what was left.

With leader election, only the leader steps (the gate): a standby keeps every object it is
asked about in the poller, which holds them until this process leads. Whether this process
leads is a field of the snapshot (read when the step starts, and again before its writes), and
every write is conditional on the version read: both are rows of the decision table
(:class:`~decide.ReadAgain`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from backendauth_operator import GROUP, PLURAL, VERSION, metrics
from backendauth_operator.aws.clients import ClientFactory
from backendauth_operator.config import Settings
from backendauth_operator.core.decide import (
    Finish,
    ReadAgain,
    Settle,
    Snapshot,
    Wait,
    asks_for_step,
    attention,
    left_waiting,
)
from backendauth_operator.kube.accounts import OWN, AccountDirectory, Target
from backendauth_operator.kube.client import KubeClient, version_of
from backendauth_operator.kube.leases import Leases
from backendauth_operator.kube.writer import Written, lean
from backendauth_operator.runtime.effects import LiveEffects, StepEffects
from backendauth_operator.runtime.executor import execute
from backendauth_operator.runtime.leader import Gate, SoleOperator
from backendauth_operator.runtime.reading import read
from backendauth_operator.runtime.workqueue import EMPTY, Poller, Watched


class ObjectLocks:
    """One step at a time per object: a poll, an event and a resync may arrive together."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` (namespace/name) for the block."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def forget(self, key: str) -> None:
        with self._guard:
            self._locks.pop(key, None)


Key = tuple[str, str]  # namespace, name


@dataclass(frozen=True, slots=True)
class _Kept:
    """A body kept between steps, as compact JSON: thousands of objects may wait at once (for
    AWS's pace, for their jobs), and a parsed body takes several times the memory."""

    payload: bytes
    version: str | None
    uid: str | None
    versions: frozenset[str]  # the versions the step that left it read and wrote (events: none)

    @classmethod
    def of(cls, body: Mapping[str, Any], versions: frozenset[str]) -> _Kept:
        uid = body.get("metadata", {}).get("uid")
        payload = json.dumps(body, separators=(",", ":")).encode()
        return cls(payload, version_of(body), str(uid) if uid is not None else None, versions)

    def body(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.payload)
        return found


class Bodies:
    """The freshest body known of each object the poller has: the watch event's that asked for
    its step, or what its last step's last write returned. Its next step starts from it instead
    of a GET; if it is stale after all, that step's conditional write is refused (409) and the
    object is read again. Thread-safe (events come on Kopf's loop, steps on its threads).

    A body is only ever replaced by a newer one: an event's by a later event's (the watch
    delivers them in order), and what a step left by an event's, unless that event is of the
    step's own writes (a version it wrote); what a step left replaces an event's body only
    when that event was of a version the step read or wrote."""

    def __init__(self) -> None:
        self._known: dict[Key, _Kept] = {}
        self._lock = threading.Lock()

    def seen(self, key: Key, body: Mapping[str, Any]) -> None:
        """A watch event's body."""
        with self._lock:
            kept = self._known.get(key)
            if kept is not None and version_of(body) in kept.versions:
                return  # of a write of the step that left the kept body: not newer than it
            self._known[key] = _Kept.of(body, EMPTY)

    def left(self, key: Key, body: Mapping[str, Any] | None, versions: set[str], keep: bool = True) -> None:
        """What a step that read and wrote ``versions`` left (None: nothing to go by, it is to
        be read again). ``keep``: the poller steps it again, so it is kept even when no event
        body is; otherwise it only replaces the body of an event of the step's own writes,
        whose step, already scheduled, then finds nothing asked without a read."""
        with self._lock:
            kept = self._known.get(key)
            if kept is not None and kept.version not in versions:
                return  # anyone else's change, newer than what the step knew
            if body is None or (kept is None and not keep):
                self._known.pop(key, None)
            else:
                self._known[key] = _Kept.of(body, frozenset(versions))

    def take(self, key: Key) -> Mapping[str, Any] | None:
        with self._lock:
            kept = self._known.pop(key, None)
        return None if kept is None else kept.body()

    def drop(self, key: Key, uid: str | None = None) -> None:
        """Forget the body kept under ``key`` (with ``uid``: only if it is that object's, not a
        re-created one's of the same name)."""
        with self._lock:
            kept = self._known.get(key)
            if kept is not None and (uid is None or kept.uid == uid):
                del self._known[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._known)


@dataclass
class OperatorContext:
    """Shared by every handler call (Kopf's ``memo``); shallow-copied per object by Kopf."""

    settings: Settings
    clients: ClientFactory
    kube: KubeClient
    leases: Leases
    poller: Poller  # steps new generations and waiting objects (started by the runner)
    locks: ObjectLocks = field(default_factory=ObjectLocks)
    watched: Watched = field(default_factory=Watched)
    gate: Gate = field(default_factory=SoleOperator)  # whether this process acts (leader election)
    accounts: AccountDirectory | None = None  # the namespaces' accounts and the account map
    deletions: set[str] = field(default_factory=set)  # uids whose deletion an event has shown
    bodies: Bodies = field(default_factory=lambda: Bodies())  # where the next step of each starts

    def effects(self, logger: Any) -> LiveEffects:
        return LiveEffects(self.clients, self.kube, self.leases, logger, self.gate)

    def step_effects(self, obj: Mapping[str, Any], logger: Any) -> StepEffects:
        """The effects of one step of ``obj`` as read, its writes included."""
        return StepEffects(self.clients, self.kube, self.leases, logger, self.gate, obj, self.watched)

    def target(self, namespace: str) -> Target:
        """Where the BackendAuths of ``namespace`` act (the operator's own account when no
        directory is kept)."""
        if self.accounts is None:
            return OWN
        return self.accounts.target(namespace)


@dataclass(frozen=True)
class Stepped:
    """How a step ended: its last snapshot, its outcome, and what its writes came to."""

    snapshot: Snapshot
    outcome: Settle | Wait | ReadAgain | Finish
    written: Written = field(default_factory=Written)

    @property
    def conflicted(self) -> bool:
        """Read and decide again (the object changed since it was read, or this process does
        not lead): nothing of the step's decision was written."""
        return isinstance(self.outcome, ReadAgain)

    @property
    def again(self) -> bool:
        return self.conflicted or (isinstance(self.outcome, Settle) and self.outcome.again)


def step(
    ctx: OperatorContext,
    namespace: str,
    name: str,
    logger: Any,
    look: bool = False,
    check_secrets: bool = False,
    cause: str | None = None,
    from_event: bool = False,
) -> None:
    """Run one step for the object as the API server has it now, read under the object's lock
    (nothing if it is gone); if it is left waiting, the poller steps it again. A
    ``reconcile-requested-at`` not yet handled is handled by whichever step sees it.

    ``from_event``: nothing either if the object no longer asks for a step (the event that
    asked predates a step's writes): a refused create must not be sent again.

    Only while this process acts (leads, or runs without leader election): a standby keeps
    the object in the poller, which holds it until this process leads."""
    key = (namespace, name)
    if not ctx.gate.acting():
        ctx.bodies.drop(key)
        ctx.poller.schedule(namespace, name, delay=0, from_event=from_event)
        return
    with ctx.gate.working(), ctx.locks.hold(f"{namespace}/{name}"):
        obj = ctx.bodies.take(key)
        if obj is None:
            try:
                obj = ctx.kube.get_backendauth(namespace, name)
            except ApiException as error:
                if error.status == 404:
                    return
                raise
        if from_event and not asks_for_step(obj):
            # Still what is known; kept only for a step the poller has scheduled (a settled
            # object's next step comes from an event, which brings its body, or a resync).
            ctx.bodies.left(key, obj, {version_of(obj) or ""}, keep=ctx.poller.scheduled(namespace, name))
            return
        effects = ctx.step_effects(obj, logger)
        done = run_step(
            ctx, obj, logger, look=look, check_secrets=check_secrets, cause=cause, effects=effects
        )
        waiting = left_waiting(done.snapshot, done.outcome)
        left = None if done.again else effects.written or obj
        ctx.bodies.left(key, left, effects.versions, keep=waiting)
    if done.again:
        # Fencing or the gate: read and decide again, a little later than a competing writer.
        ctx.poller.schedule(namespace, name, delay=random.uniform(0.05, 0.5))
        return
    if done.snapshot.request is not None:
        logger.info("Reconcile request handled.")
    if waiting:
        ctx.poller.schedule(namespace, name)


def run_step(
    ctx: OperatorContext,
    obj: Mapping[str, Any],
    logger: Any,
    look: bool = False,
    check_secrets: bool = False,
    cause: str | None = None,
    effects: StepEffects | None = None,
) -> Stepped:
    """One step of ``obj`` as read: the snapshot, then the executor, which carries out every
    plan :func:`~decide.decide` makes, the writes (conditional on the version read) among
    them."""
    target = ctx.target(str(obj.get("metadata", {}).get("namespace")))
    s = read(
        obj, ctx.settings, time.time(), look=look, check_secrets=check_secrets, cause=cause, target=target
    )
    s = replace(s, leading=ctx.gate.acting(), carry_out=True)
    s, outcome = execute(s, effects or ctx.step_effects(obj, logger))
    return Stepped(s, outcome, Written(wrote=s.wrote, conflicted=s.stale))


def noteworthy(
    memo: Any, body: kopf.Body, event: kopf.RawEvent | None = None, type: str | None = None,
    logger: Any = None, **_: Any,
) -> bool:  # fmt: skip
    """The filter of the BackendAuth watch, called by Kopf for every watch event: it does the
    work itself and answers False, so Kopf runs no handler (a handler costs Kopf a task and a
    log line per event, a thousand times over). It costs no API call.

    What a watch event asks for (:func:`~decide.attention`): a new BackendAuth or a changed
    spec is stepped; a reconcile request observes AWS now and is echoed in
    ``status.lastHandledReconcileAt``; paused or unpaused, one step (no AWS call while paused);
    a deletion our finalizer holds, one step (the poller takes it from there); a waiting one is
    polled; a deleted BackendAuth is forgotten. It feeds the registry that the resync loop and
    Secret changes use.

    It only schedules: the poller runs the step on a handler thread as soon as one of its slots
    is free, and the step starts from the event's body (no GET; a stale one costs a refused
    write and a read). A step that fails is tried again by the poller."""
    ctx: OperatorContext = memo.ctx
    meta = body.get("metadata", {})
    ns, n, uid = str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid"))
    if type == "DELETED":
        done = ctx.poller.executor.submit(forget, ctx, body, uid, ns, n, logger)
        done.add_done_callback(lambda future: _log_failure(future, logger, "to forget it"))
        return False
    ctx.watched.update(body)
    shown = ctx.watched.has_shown(uid, meta.get("generation"))
    deleting = bool(meta.get("deletionTimestamp"))
    asks = attention(body, type, acting=ctx.gate.acting(), shown=shown, deletion_seen=uid in ctx.deletions)
    if deleting and asks.handle:
        ctx.deletions.add(uid)
    if asks.poll:
        ctx.poller.ensure(ns, n)
    if asks.handle:
        raw = event.get("object") if event is not None else None
        if ctx.gate.acting() and isinstance(raw, Mapping):  # a standby keeps no bodies
            ctx.bodies.seen((ns, n), lean(raw))
        ctx.poller.schedule(ns, n, delay=0, from_event=True)
    return False


def _log_failure(future: Future[None], logger: Any, what: str) -> None:
    """Work that :func:`noteworthy` handed to the poller's threads failed: say so, as nothing
    awaits it."""
    error = future.exception()
    if error is not None:
        (logger or logging.getLogger("backendauth_operator.objects")).error(
            f"Failed {what}: {error!r}", exc_info=error
        )


def event_noop(**_: Any) -> None:
    """Never called: :func:`noteworthy` answers False."""


def forget(ctx: OperatorContext, body: kopf.Body, uid: str, namespace: str, name: str, logger: Any) -> None:
    """A deleted BackendAuth: its last step (only while this process acts: a standby holds no
    turn, and one operator speaks) gives back a turn it may still hold (an object without our
    finalizer goes at once, even mid-job) and says what was left in AWS; then its lock,
    registry entry and metrics go. Under the object's lock, so a step that is writing its
    outcome finishes first."""
    key = f"{namespace}/{name}"
    with ctx.locks.hold(key):
        if ctx.gate.acting():
            s = read(body, ctx.settings, time.time(), target=ctx.target(namespace), gone=True)
            execute(replace(s, leading=True, carry_out=True), ctx.step_effects(body, logger))
    # A step still scheduled for this name is left to run: it may be a re-created object's of
    # the same name (its ADDED can come before this DELETED); for the deleted one it finds the
    # object gone (one GET). For the same reason the body kept under the name goes only when
    # it is this object's.
    ctx.bodies.drop((namespace, name), uid=uid)
    ctx.locks.forget(key)
    ctx.watched.forget(uid)
    ctx.deletions.discard(uid)
    metrics.set_object_state(uid, None, None)


def namespace_seen(
    memo: Any, body: kopf.Body, type: str | None = None, name: str | None = None, **_: Any
) -> bool:
    """The filter of the Namespace watch, which does the work itself (a handler would only log
    its every success): a changed account annotation steps every BackendAuth of the namespace
    at once, which then acts in the new account, stalls, or is no longer stalled."""
    ctx: OperatorContext = memo.ctx
    if ctx.accounts is None or name is None:
        return False
    annotations = body.get("metadata", {}).get("annotations") or {}
    if ctx.accounts.namespace_seen(str(name), annotations, gone=type == "DELETED"):
        requeue(ctx, {str(name)})
    return False


def namespace_noop(**_: Any) -> None:
    """Never called: :func:`namespace_seen` answers False."""


def account_map_changed(ctx: OperatorContext, accounts: set[str]) -> None:
    """The account map changed for ``accounts``: step every BackendAuth of their namespaces."""
    if ctx.accounts is not None:
        requeue(ctx, ctx.accounts.namespaces_of(accounts))


def requeue(ctx: OperatorContext, namespaces: set[str]) -> None:
    """Step every BackendAuth of ``namespaces`` now (no AWS call for one that stays as it was)."""
    for entry in ctx.watched.in_namespaces(namespaces):
        ctx.poller.schedule(entry.namespace, entry.name, delay=0)


def referenced_secret(
    memo: Any, namespace: str | None, name: str | None, type: str | None = None, **_: Any
) -> bool:
    """A Secret that some BackendAuth's clientSecretRef/privateKeyRef, or its spec.import, names
    has been created or changed."""
    return type in ("ADDED", "MODIFIED") and bool(memo.ctx.watched.referencing(str(namespace), str(name)))


def secret_changed(memo: Any, namespace: str | None, name: str | None, logger: Any, **_: Any) -> None:
    """Each BackendAuth that uses the Secret compares the salted digest of the values it last sent
    with the current one (Kubernetes reads only); a rotation makes one UpdateBackendAuth. One that
    imports an id from it looks at AWS again (one GetBackend): other ids are an ImportConflict at
    once, not at the next resync."""
    ctx: OperatorContext = memo.ctx
    for entry in ctx.watched.referencing(str(namespace), str(name)):
        step(ctx, entry.namespace, entry.name, ObjectLogger(entry.namespace, entry.name),
             check_secrets=name in entry.secrets, look=name in entry.import_secrets,
             cause=f"Secret {namespace}/{name} changed")  # fmt: skip


class ObjectLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Log lines about one BackendAuth outside Kopf's handlers, prefixed as Kopf prefixes them."""

    def __init__(self, namespace: str, name: str) -> None:
        super().__init__(logging.getLogger("backendauth_operator.objects"), {})
        self.prefix = f"[{namespace}/{name}] "

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"{self.prefix}{msg}", kwargs


def poll(ctx: OperatorContext, namespace: str, name: str, from_event: bool = False) -> None:
    """A BackendAuth's turn with the poller: what an event asked for, or a waiting object
    (poll its job, retry when due, wait for a turn)."""
    step(ctx, namespace, name, ObjectLogger(namespace, name), from_event=from_event)


def resync(ctx: OperatorContext, entry: Any) -> None:
    """Observe a settled BackendAuth in AWS again (drift); called by the resync loop."""
    step(
        ctx, entry.namespace, entry.name, ObjectLogger(entry.namespace, entry.name), look=True, cause="resync"
    )


def register(registry: kopf.OperatorRegistry | None = None, watch_namespaces: bool = True) -> None:
    """Attach the handlers to Kopf's registry (the default one unless given). ``watch_namespaces``:
    Kopf watches every Namespace for its account annotation (an operator of named namespaces
    watches each of them by name instead, see ``accounts.namespace_watch``)."""
    resource = (GROUP, VERSION, PLURAL)
    kw: dict[str, Any] = {"registry": registry} if registry is not None else {}
    kopf.on.event(*resource, id="event", when=noteworthy, **kw)(event_noop)
    kopf.on.event("", "v1", "secrets", id="secret-changed", when=referenced_secret, **kw)(secret_changed)
    if watch_namespaces:
        kopf.on.event("", "v1", "namespaces", id="namespace-account", when=namespace_seen, **kw)(
            namespace_noop
        )
