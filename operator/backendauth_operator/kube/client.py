"""The Kubernetes calls the operator makes itself, outside Kopf's own patching.

A step reads its BackendAuth as it is *now* and writes what it decided at once, under the
object's lock, rather than through Kopf's ``patch`` (applied only after the handler returns):
the pending marker must be stored *before* the AWS call, and a second step on the same object
(a poll, an annotation, a resync) must see the first one's outcome.

The turn Leases that serialize mutating work per (region, app, environment), across restarts
and across operators, are in ``kube/leases.py``: see docs/explanation/exactly-once.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import kubernetes
from kubernetes.client.exceptions import ApiException

from backendauth_operator import GROUP, KIND, PLURAL, VERSION
from backendauth_operator.core.models import SecretKeyRef


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
        throttle_refresh(configuration)
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
        finalizers: list[str] | None = None,
    ) -> str | None:
        """Merge-patch annotations (``None`` removes one), and ``finalizers`` when given (the
        whole list, as a merge patch replaces lists), and wait for the API server to accept it.

        With ``resource_version`` the patch applies only to that version of the object (409 if
        it has changed since) and the new version is returned: a write that guards an AWS call
        is never made from a stale read, and a list of finalizers is never written over one
        that changed."""
        return version_of(
            self.patch(namespace, name, metadata_patch(annotations, finalizers), resource_version)
        )

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None = None
    ) -> str | None:
        """Merge-patch the status subresource; ``resource_version`` as for :meth:`set_annotations`."""
        return version_of(self.patch(namespace, name, {"status": status}, resource_version, "/status"))

    def patch(
        self, namespace: str, name: str, body: dict[str, Any], resource_version: str | None, sub: str = ""
    ) -> dict[str, Any]:
        """Merge-patch the object (``sub``: ``/status`` for its status), with ``resource_version``
        only that version of it; the object as the API server has it after the patch (empty
        without a version)."""
        path = _custom_path(namespace, name) + sub
        if resource_version is None:
            self.request("PATCH", path, body, MERGE_PATCH, decode=False)
            return {}
        # A merge patch that carries metadata.resourceVersion is refused with 409 Conflict when
        # the object has another version: optimistic concurrency, as an update has.
        metadata = {**body.get("metadata", {}), "resourceVersion": resource_version}
        return self.request("PATCH", path, {**body, "metadata": metadata}, MERGE_PATCH)

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


REFRESH_SECONDS = 1.0


def throttle_refresh(
    configuration: Any, seconds: float = REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic
) -> None:
    """Let the credentials hook of ``configuration`` run at most once every ``seconds``.

    The kubernetes client calls the hook its config loader installs before every request, and
    that hook sets the whole configuration again (host, TLS files, token), scanning the
    environment for proxies each time: about a tenth of what a request costs the operator's
    CPU. The token it would pick up changes far less often (the in-cluster loader re-reads the
    token file once a minute; a kubeconfig's expiring credentials live for minutes), so a
    request may use credentials at most ``seconds`` old."""
    hook = configuration.refresh_api_key_hook
    if hook is None:
        return
    lock = threading.Lock()
    last = [-math.inf]

    def refresh(config: Any) -> None:
        now = clock()
        with lock:
            if now - last[0] < seconds:
                return
            last[0] = now
        hook(config)
        # The loader's hook installs itself again each time it runs: keep this one in front.
        config.refresh_api_key_hook = refresh

    configuration.refresh_api_key_hook = refresh


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


def metadata_patch(annotations: dict[str, str | None], finalizers: list[str] | None = None) -> dict[str, Any]:
    """The merge patch of annotations (``None`` removes one) and, when given, the finalizers."""
    metadata: dict[str, Any] = {"annotations": annotations}
    if finalizers is not None:
        metadata["finalizers"] = finalizers
    return {"metadata": metadata}


def version_of(obj: Mapping[str, Any]) -> str | None:
    """The ``resourceVersion`` of an object as the API server answered it (None: not known)."""
    version = obj.get("metadata", {}).get("resourceVersion")
    return str(version) if version else None


def _custom_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{PLURAL}/{quote(name)}"


def micro_time(moment: datetime) -> str:
    """``moment`` as Kubernetes writes a MicroTime (a Lease's times, an Event's ``eventTime``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
