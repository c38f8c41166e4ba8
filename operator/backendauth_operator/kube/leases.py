"""The ``coordination.k8s.io/v1`` Leases the operator writes: turns and the leader election.

Both kinds share the record code here: :func:`lease_body` (the object as written),
:func:`parse_micro_time` (its times as read) and :class:`LeaseApi` (read, create, replace one
Lease; every write conditional on the ``resourceVersion`` it carries).

* **Turns** (:class:`Leases`): one Lease per (region, app, environment) names the BackendAuth
  whose mutating call or job is in flight there, and the operator process acting for it (the
  holder, ``core.holder``). They serialize mutating work across restarts and across operators:
  see the README's "Exactly once" section.
* **The election** (``runtime/leader.py``): one Lease names the operator process that acts; its
  :class:`KubeLeaseStore`, :func:`election_body` and :func:`released_body` are here, its rules
  (client-go's) in ``runtime/leader.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from backendauth_operator import GROUP
from backendauth_operator.core.holder import holder_of, object_of, process_of
from backendauth_operator.kube.client import micro_time, request

# ---- the record, shared ------------------------------------------------------------------------


def lease_body(
    name: str,
    spec: Mapping[str, Any],
    version: str | None = None,
    annotations: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Lease named ``name`` with ``spec``, based on ``version`` (None: to be created)."""
    metadata: dict[str, Any] = {"name": name}
    if annotations is not None:
        metadata["annotations"] = dict(annotations)
    if labels is not None:
        metadata["labels"] = dict(labels)
    if version is not None:
        metadata["resourceVersion"] = version
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": dict(spec)}


def parse_micro_time(value: Any) -> datetime | None:
    """A Lease's MicroTime (``2026-01-02T03:04:05.123456Z``), or None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class LeaseApi:
    """The Leases of one namespace through the operator's plain-JSON Kubernetes client. A write
    of a version that moved on fails with a 409 ``ApiException``. ``timeout``: (connect, read)
    seconds of each request, the client's default unless given."""

    def __init__(self, api_client: Any, namespace: str, timeout: tuple[float, float] | None = None) -> None:
        self.api_client, self.namespace, self.timeout = api_client, namespace, timeout
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace)}/leases"

    def get(self, name: str) -> dict[str, Any] | None:
        """The Lease ``name``, or None if there is none."""
        try:
            return request(self.api_client, "GET", f"{self.collection}/{quote(name)}", timeout=self.timeout)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return request(self.api_client, "POST", self.collection, body, timeout=self.timeout)

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        """Write ``body`` over the version its ``metadata.resourceVersion`` names."""
        name = body["metadata"]["name"]
        return request(self.api_client, "PUT", f"{self.collection}/{quote(name)}", body, timeout=self.timeout)


# ---- turns -------------------------------------------------------------------------------------

HOLD_GRACE_SECONDS = 150.0
"""A turn taken by another process for the same object is its own for this long: a mutating call
is sent within ``SEND_WINDOW_SECONDS`` of taking the turn (or not at all) and answered or timed
out within 70 s (aws.MUTATING_CONFIG), with room to spare."""

SEND_WINDOW_SECONDS = 30.0
"""A mutating call not sent this long after its turn was taken (pacing held it) is not sent."""


TurnKey = tuple[str, ...]
"""What a turn is for: (region, appId, environment), and the AWS account first when it is
reached through an assumed role (a namespace's account)."""


class LeaseVersions:
    """The turns' Leases in one namespace, and the last version of each that this process wrote
    or read: taking a free turn and giving it back are one request each (a create, or an update
    of the remembered version), and a read is made only when that write conflicts or someone
    else held the turn. Every write is conditional on the ``resourceVersion`` it was based on,
    so a stale view can only cost a retry, never a second holder. :meth:`holder` always reads."""

    def __init__(
        self, api_client: Any, namespace: str, duration_seconds: int, identity: str = "",
        takes_over: Callable[[], bool] = lambda: False, grace: float = HOLD_GRACE_SECONDS,
    ) -> None:  # fmt: skip
        self.api_client = api_client
        self.api = LeaseApi(api_client, namespace)
        self.namespace = namespace
        self.duration = duration_seconds
        self.identity = identity
        self.takes_over = takes_over
        self.grace = grace
        self._known: dict[str, tuple[str, str | None]] = {}  # name → (resourceVersion, holder)
        self._keys: dict[str, TurnKey] = {}  # name → key, for disown()

    @staticmethod
    def name(key: TurnKey) -> str:
        """The Lease's name: a digest, since app ids and environments need not be DNS names."""
        return "backendauth-" + hashlib.sha256("/".join(key).encode()).hexdigest()[:24]

    def _remember(self, name: str, lease: Mapping[str, Any]) -> None:
        version = lease.get("metadata", {}).get("resourceVersion")
        if version:
            self._known[name] = (str(version), lease.get("spec", {}).get("holderIdentity"))

    def _read(self, key: TurnKey) -> dict[str, Any] | None:
        name = self.name(key)
        lease = self.api.get(name)
        if lease is None:
            self._known.pop(name, None)
            return None
        self._remember(name, lease)
        return lease

    def _write(self, key: TurnKey, holder: str | None, version: str | None) -> None:
        """Create the Lease (``version`` None) or update that version of it; 409 if it moved on."""
        name = self.name(key)
        self._keys[name] = key
        body = _lease(name, key, holder, version, self.duration)
        written = self.api.create(body) if version is None else self.api.replace(body)
        self._remember(name, written)

    def _current(self, lease: Mapping[str, Any] | None) -> str | None:
        """The holder of a Lease as read, unless its time has run out."""
        return _current_holder(lease, self.duration)

    def holder(self, key: TurnKey) -> str | None:
        """Who holds the turn now (None: nobody, or the holder's time ran out)."""
        return self._current(self._read(key))


class Leases(LeaseVersions):
    """One turn per (region, appId, environment): a ``coordination.k8s.io`` Lease names the
    BackendAuth whose mutating call or job is in flight there.

    AWS refuses a second pending job on an app and environment, and its job list does not say
    which auth resource a job is for. Holding the Lease from before the call until the job has
    ended means that an unfinished job on that app/env is the holder's, even after a crash.
    A holder that never gives it back (its object forcibly removed) loses it after
    ``duration_seconds``.

    A holder is the BackendAuth *and* the operator process that acts for it
    (``namespace/name/uid@identity``): two operators stepping one object never both hold its
    turn. Another process's hold on the same object is taken over only when that process is
    known not to act (``takes_over()``: this process is the elected leader), or when the hold is
    older than ``grace`` seconds, longer than any call made under it can take to be sent and
    answered.

    Giving back a turn this process knows it does not hold costs nothing.
    """

    def disown(self) -> None:
        """At a clean shutdown, once no call of this process can be in flight: every turn it
        holds is rewritten without its identity, so that a step of the same object in another
        operator takes it at once (other objects still wait for the job it guards)."""
        for name, (version, holder) in list(self._known.items()):
            key = self._keys.get(name)
            if key is None or not self.identity or holder is None or process_of(holder) != self.identity:
                continue
            try:
                self._write(key, object_of(holder), version)
            except Exception:  # changed meanwhile, or unreachable: the hold runs out by itself
                continue

    def _may_take(self, lease: Mapping[str, Any] | None) -> bool:
        """Whether another process's hold (on the same object) may be taken now."""
        if self.takes_over():
            return True
        spec = (lease or {}).get("spec") or {}
        if not process_of(str(spec.get("holderIdentity") or "")):
            return True  # disowned at a clean shutdown, or written before holders named processes
        renewed = parse_micro_time(spec.get("renewTime") or spec.get("acquireTime"))
        return renewed is None or (datetime.now(UTC) - renewed).total_seconds() > self.grace

    def held_elsewhere(self, key: TurnKey, me: str) -> str | None:
        """The identity of another operator process that holds object ``me``'s turn and may
        still be calling AWS for it (None if none): its pending call must not be looked for, nor
        made again, until it is done."""
        lease = self._read(key)
        current = self._current(lease)
        if current is None or current == holder_of(me, self.identity) or object_of(current) != me:
            return None
        return None if self._may_take(lease) else process_of(current)

    def acquire(self, key: TurnKey, me: str) -> str | None:
        """Take the turn for object ``me`` (or renew it if this process has it); None on success,
        else the holder."""
        known = self._known.get(self.name(key))
        mine, me = me, holder_of(me, self.identity)
        try:
            if known is None or known[1] in (None, me):
                # Free (or ours) as far as this process knows: one conditional write.
                try:
                    self._write(key, me, known[0] if known else None)
                    return None
                except ApiException as error:
                    if error.status not in (404, 409):
                        raise
            lease = self._read(key)
            current = self._current(lease)
            if (
                current is not None
                and current != me
                and (object_of(current) != mine or not self._may_take(lease))
            ):
                return current
            self._write(key, me, lease["metadata"]["resourceVersion"] if lease else None)
        except ApiException as error:
            if error.status == 409:  # someone else took it between our read and our write
                return self.holder(key) or "another BackendAuth"
            raise
        return None

    def release(self, key: TurnKey, me: str, fenced: bool = False) -> bool:
        """Give the turn back if object ``me`` holds it through this process, or through another
        whose hold may be taken over. ``fenced``: the caller's write to the object was accepted
        on the version it read, so any hold of the same object is stale (a process calling AWS
        under it would have written the object since).

        True when a hold of this object by another process was left in place: the caller may
        release it with ``fenced`` once its own write is through."""
        known = self._known.get(self.name(key))
        mine, me = me, holder_of(me, self.identity)
        if known is not None and known[1] == me:
            try:
                self._write(key, None, known[0])
                return False
            except ApiException as error:
                if error.status == 404:
                    return False
                if error.status != 409:
                    raise
        elif not fenced and known is not None and (known[1] is None or object_of(known[1]) != mine):
            # This process remembers each turn it took: one it last saw free or held by another
            # object cannot have become this object's through it.
            return False
        for _ in range(3):
            lease = self._read(key)
            held = (lease or {}).get("spec", {}).get("holderIdentity")
            if lease is None or not held or object_of(held) != mine:
                return False
            if held != me and not fenced and not self._may_take(lease):
                return True
            try:
                self._write(key, None, lease["metadata"]["resourceVersion"])
                return False
            except ApiException as error:
                if error.status != 409:
                    raise
        return False


def _lease(name: str, key: TurnKey, holder: str | None, version: str | None, duration: int) -> dict[str, Any]:
    """A Lease of the turn ``key`` held by ``holder`` (None: free), based on ``version``."""
    now = micro_time(datetime.now(UTC))
    spec: dict[str, Any] = {"holderIdentity": holder, "leaseDurationSeconds": duration}
    if holder is not None:
        spec.update(acquireTime=now, renewTime=now)
    return lease_body(
        name, spec, version,
        annotations={f"{GROUP}/app": "/".join(key)},
        labels={"app.kubernetes.io/managed-by": "backendauth-operator"},
    )  # fmt: skip


def _current_holder(lease: Mapping[str, Any] | None, default_duration: int) -> str | None:
    """The holder of a Lease as read, unless its time has run out."""
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return None
    renewed = parse_micro_time(spec.get("renewTime") or spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or default_duration
    if renewed is not None and (datetime.now(UTC) - renewed).total_seconds() > duration:
        return None
    return str(holder)


# ---- the election's Lease ----------------------------------------------------------------------


class Conflict(Exception):
    """The Lease changed since it was read (or was created meanwhile): read it again."""


class LeaseStore(Protocol):
    """The one Lease of the election: read, create, and replace a version of it."""

    def get(self) -> dict[str, Any] | None: ...

    def create(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, body: dict[str, Any]) -> dict[str, Any]: ...


class KubeLeaseStore:
    """:class:`LeaseStore` through :class:`LeaseApi`; a 409 is a :class:`Conflict`.

    Each request times out after ``timeout`` seconds (connect and read): the renewal loop must
    never hang longer than the leader may go without renewing."""

    def __init__(self, api_client: Any, namespace: str, name: str, timeout: float) -> None:
        self.namespace, self.name, self.timeout = namespace, name, timeout
        self.api = LeaseApi(api_client, namespace, (timeout, timeout))

    def get(self) -> dict[str, Any] | None:
        return self.api.get(self.name)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._conflicting(self.api.create, body)

    def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._conflicting(self.api.replace, body)

    @staticmethod
    def _conflicting(
        write: Callable[[dict[str, Any]], dict[str, Any]], body: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            return write(body)
        except ApiException as error:
            if error.status == 409:
                raise Conflict(str(error.reason)) from None
            raise


def election_body(
    name: str, identity: str, duration: int, now: str, version: str | None, transitions: int, acquired: Any
) -> dict[str, Any]:
    """The Lease as ``identity`` writes it when it takes or renews it (``version`` None: create)."""
    spec = {
        "holderIdentity": identity,
        "leaseDurationSeconds": duration,
        "acquireTime": acquired or now,
        "renewTime": now,
        "leaseTransitions": transitions,
    }
    return lease_body(name, spec, version)


def released_body(lease: Mapping[str, Any], now: str) -> dict[str, Any]:
    """``lease`` handed over: no holder, a duration of one second (client-go's release)."""
    spec = {
        "leaseDurationSeconds": 1,
        "acquireTime": now,
        "renewTime": now,
        "leaseTransitions": (lease.get("spec") or {}).get("leaseTransitions") or 0,
    }
    return lease_body(lease["metadata"]["name"], spec, lease["metadata"]["resourceVersion"])
