"""The Kubernetes calls the operator makes itself, outside Kopf's own patching.

A step reads its BackendAuth as it is *now* and writes what it decided at once, under the
object's lock, rather than through Kopf's ``patch`` (applied only after the handler returns):
the pending marker must be stored *before* the AWS call, and a second step on the same object
(a poll, an annotation, a resync) must see the first one's outcome.

:class:`Leases` serialize mutating work per (region, app, environment) across restarts and
across operators: see the README's "Exactly once" section.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import kubernetes
from kubernetes.client.exceptions import ApiException

from backendauth_operator import GROUP, KIND, PLURAL, VERSION
from backendauth_operator.core.holder import holder_of, object_of, process_of
from backendauth_operator.models import SecretKeyRef


class SecretMissing(Exception):
    """A referenced Secret value cannot be used (yet): ``reason`` is the condition's reason.
    The message never holds a value."""

    def __init__(self, message: str, reason: str = "SecretNotFound") -> None:
        super().__init__(message)
        self.reason = reason


class KubeClient:
    """Synchronous Kubernetes calls, made from Kopf's handler threads.

    Requests go through the ``kubernetes`` package's configured client (kubeconfig or in-cluster
    credentials, token refresh, TLS), but bodies stay plain JSON dicts: the generated API classes
    validate every argument and build model objects for every answer, which cost more CPU than
    the request itself at a thousand objects.
    """

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    @classmethod
    def from_environment(cls, max_connections: int | None = None, retries: int = 1) -> KubeClient:
        """In-cluster config when in a pod, else the current kubeconfig (as Kopf does).
        ``max_connections``: connections kept open, one per thread that may call at once (the
        client's default follows the host's CPU count, not the threads that share it).
        ``retries``: how often a request that failed to connect (or, if idempotent, lost its
        answer) is sent again at once; with the timeouts of :data:`REQUEST_TIMEOUT`, they bound
        how long a call can hang on an API server that does not answer (urllib3's default of
        three would make a GET wait four read timeouts)."""
        configuration = kubernetes.client.Configuration()
        if max_connections is not None:
            configuration.connection_pool_maxsize = max_connections
        configuration.retries = retries
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(configuration))

    def drop_connections(self) -> None:
        """Close the idle keep-alive connections: after the API server stopped answering (or
        answers again), a connection from before may lead nowhere, and a request sent on it
        would only fail after its read timeout; new ones are opened as needed."""
        self.api_client.rest_client.pool_manager.clear()

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json",
        decode: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """One request; the answer as a dict (empty if ``decode`` is false). A status outside
        2xx raises :class:`ApiException`, as the generated clients do."""
        return request(self.api_client, method, path, body, content_type, decode)

    def get_backendauth(self, namespace: str, name: str) -> dict[str, Any]:
        """The object as the API server has it now."""
        return self.request("GET", _custom_path(namespace, name))

    def set_annotations(
        self,
        namespace: str,
        name: str,
        annotations: dict[str, str | None],
        resource_version: str | None = None,
    ) -> str | None:
        """Merge-patch annotations (``None`` removes one) and wait for the API server to accept it.

        With ``resource_version`` the patch applies only to that version of the object (409 if
        it has changed since) and the new version is returned: a write that guards an AWS call
        is never made from a stale read."""
        return self._patch(namespace, name, "", {"metadata": {"annotations": annotations}}, resource_version)

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> str | None:
        """Merge-patch the status subresource; ``resource_version`` as for :meth:`set_annotations`."""
        return self._patch(namespace, name, "/status", {"status": status}, resource_version)

    def _patch(
        self, namespace: str, name: str, sub: str, body: dict[str, Any], resource_version: str | None
    ) -> str | None:
        path = _custom_path(namespace, name) + sub
        if resource_version is None:
            self.request("PATCH", path, body, MERGE_PATCH, decode=False)
            return None
        # A merge patch that carries metadata.resourceVersion is refused with 409 Conflict when
        # the object has another version: optimistic concurrency, as an update has.
        metadata = {**body.get("metadata", {}), "resourceVersion": resource_version}
        written = self.request("PATCH", path, {**body, "metadata": metadata}, MERGE_PATCH)
        version = written.get("metadata", {}).get("resourceVersion")
        return str(version) if version else None

    def write_config_map(
        self, namespace: str, name: str, data: dict[str, str], owner: Mapping[str, Any]
    ) -> None:
        """Create or update a ConfigMap owned by ``owner`` (garbage-collected with it)."""
        body = _config_map(namespace, name, data, owner)
        collection = f"/api/v1/namespaces/{quote(namespace)}/configmaps"
        try:
            self.request("POST", collection, body, decode=False)
        except ApiException as error:
            if error.status != 409:
                raise
            self.request("PATCH", f"{collection}/{quote(name)}", body, STRATEGIC_MERGE_PATCH, decode=False)

    def post_event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        """A core v1 Event about ``obj`` (what ``kubectl describe`` shows). Posted directly, so
        that steps outside Kopf's handlers (the resync loop, Secret changes) can post too."""
        meta = obj.get("metadata", {})
        body = _event(meta, type, reason, message)
        self.request("POST", f"/api/v1/namespaces/{quote(str(meta.get('namespace')))}/events", body,
                     decode=False)  # fmt: skip

    def read_secret_key(self, namespace: str, ref: SecretKeyRef, max_length: int = 4096) -> str:
        """The decoded value of ``ref`` in ``namespace``. :class:`SecretMissing` (reason
        ``SecretNotFound``) if the Secret or key is absent; reason ``SecretUnreadable`` if the
        operator may not read it, or the value is empty, too long or not text. Messages name the
        Secret and key, never the value."""
        where = f"Secret {namespace}/{ref.name}"
        try:
            secret = self.request("GET", f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(ref.name)}")
        except ApiException as error:
            if error.status == 404:
                raise SecretMissing(f"{where} not found") from None
            if error.status in (401, 403):
                raise SecretMissing(
                    f"{where}: the operator is not allowed to read it (RBAC: get secrets)", "SecretUnreadable"
                ) from None
            raise
        return _secret_value(secret, ref, where, max_length)


def _secret_value(secret: Mapping[str, Any], ref: SecretKeyRef, where: str, max_length: int) -> str:
    """The decoded value of ``ref`` in a Secret as read (see :meth:`KubeClient.read_secret_key`)."""
    data = secret.get("data") or {}
    if ref.key not in data:
        raise SecretMissing(f"{where} has no key {ref.key!r}") from None
    try:
        value = base64.b64decode(data[ref.key]).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise SecretMissing(f"{where} key {ref.key!r} is not UTF-8 text", "SecretUnreadable") from None
    if not 1 <= len(value) <= max_length:
        raise SecretMissing(
            f"{where} key {ref.key!r} holds {len(value)} characters; it must hold 1 to {max_length}",
            "SecretUnreadable",
        )
    return value


def _config_map(namespace: str, name: str, data: dict[str, str], owner: Mapping[str, Any]) -> dict[str, Any]:
    """A ConfigMap owned by ``owner`` (garbage-collected with it)."""
    meta = owner.get("metadata", {})
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "backendauth-operator"},
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": KIND,
                    "name": meta.get("name"),
                    "uid": meta.get("uid"),
                    "controller": True,
                }
            ],
        },
        "data": data,
    }
    return body


def _event(meta: Mapping[str, Any], type: str, reason: str, message: str) -> dict[str, Any]:
    """A core v1 Event about the object of ``meta``."""
    now = datetime.now(UTC)
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta.get("name"),
            "namespace": meta.get("namespace"), "uid": meta.get("uid"),
        },
        "type": type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "backendauth-operator"},
        "reportingComponent": "backendauth-operator",
        "reportingInstance": "backendauth-operator",
        "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventTime": micro_time(now),
        "action": reason,
        "count": 1,
    }  # fmt: skip
    return body


MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def request(
    api_client: Any, method: str, path: str, body: Any = None, content_type: str = "application/json",
    decode: bool = True, timeout: tuple[float, float] | None = None, headers: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One request through ``api_client`` (its host, credentials and TLS), JSON in and out.
    ``timeout``: (connect, read) seconds, :data:`REQUEST_TIMEOUT` unless given."""
    headers = {"Accept": "application/json", **(headers or {})}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, body, _ = api_client.param_serialize(
        method, path, header_params=headers, body=body, auth_settings=["BearerToken"]
    )
    response = api_client.call_api(
        method, url, headers, body, None, _request_timeout=timeout or REQUEST_TIMEOUT
    )
    response.read()
    if not 200 <= response.status <= 299:
        raise ApiException(http_resp=response)
    if not decode or not response.data:
        return {}
    return cast(dict[str, Any], json.loads(response.data))


# Connect (TCP and TLS), then read: no step hangs on a silent API server. A connect that
# takes more than a few seconds is not coming (a dropped SYN is retried by TCP for two minutes);
# the API server answers these small requests in milliseconds when it answers at all.
REQUEST_TIMEOUT = (5, 30)


def _custom_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURAL}/{quote(name)}"


def micro_time(moment: datetime) -> str:
    """``moment`` as Kubernetes writes a MicroTime (a Lease's times, an Event's ``eventTime``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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

    def _path(self, name: str | None = None) -> str:
        collection = f"/apis/coordination.k8s.io/v1/namespaces/{quote(self.namespace)}/leases"
        return f"{collection}/{name}" if name else collection

    def _remember(self, name: str, lease: Mapping[str, Any]) -> None:
        version = lease.get("metadata", {}).get("resourceVersion")
        if version:
            self._known[name] = (str(version), lease.get("spec", {}).get("holderIdentity"))

    def _read(self, key: TurnKey) -> dict[str, Any] | None:
        name = self.name(key)
        try:
            lease = request(self.api_client, "GET", self._path(name))
        except ApiException as error:
            if error.status == 404:
                self._known.pop(name, None)
                return None
            raise
        self._remember(name, lease)
        return lease

    def _write(self, key: TurnKey, holder: str | None, version: str | None) -> None:
        """Create the Lease (``version`` None) or update that version of it; 409 if it moved on."""
        name = self.name(key)
        self._keys[name] = key
        body = _lease(name, key, holder, version, self.duration)
        if version is None:
            written = request(self.api_client, "POST", self._path(), body)
        else:
            written = request(self.api_client, "PUT", self._path(name), body)
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
        renewed = _parse_time(spec.get("renewTime") or spec.get("acquireTime"))
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
    now = datetime.now(UTC)
    metadata: dict[str, Any] = {
        "name": name,
        "annotations": {f"{GROUP}/app": "/".join(key)},
        "labels": {"app.kubernetes.io/managed-by": "backendauth-operator"},
    }
    if version is not None:
        metadata["resourceVersion"] = version
    spec: dict[str, Any] = {"holderIdentity": holder, "leaseDurationSeconds": duration}
    if holder is not None:
        spec.update(acquireTime=micro_time(now), renewTime=micro_time(now))
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}


def _current_holder(lease: Mapping[str, Any] | None, default_duration: int) -> str | None:
    """The holder of a Lease as read, unless its time has run out."""
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity")
    if not holder:
        return None
    renewed = _parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or default_duration
    if renewed is not None and (datetime.now(UTC) - renewed).total_seconds() > duration:
        return None
    return str(holder)


def _parse_time(value: Any) -> datetime | None:
    """A Lease's MicroTime (``2026-01-02T03:04:05.123456Z``), or None if absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
