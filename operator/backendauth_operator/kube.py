"""The Kubernetes calls the operator makes itself, outside Kopf's own patching.

A step reads its BackendAuth as it is *now* and writes what it decided at once, under the
object's lock, rather than through Kopf's ``patch`` (applied only after the handler returns):
the pending marker must be stored *before* the AWS call, and a second step on the same object
(a timer tick, an annotation) must see the first one's outcome.

:class:`Leases` serialize mutating work per (region, app, environment) across restarts and
across operators: see the README's "Exactly once" section.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from backendauth_operator import GROUP, KIND, PLURAL, VERSION
from backendauth_operator.models import SecretKeyRef


class SecretMissing(Exception):
    """A referenced Secret value cannot be used (yet): ``reason`` is the condition's reason.
    The message never holds a value."""

    def __init__(self, message: str, reason: str = "SecretNotFound") -> None:
        super().__init__(message)
        self.reason = reason


class KubeClient:
    """Synchronous Kubernetes calls, made from Kopf's handler threads."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._core: Any = kubernetes.client.CoreV1Api(api_client)  # dict bodies, not models

    @classmethod
    def from_environment(cls) -> KubeClient:
        """In-cluster config when in a pod, else the current kubeconfig (as Kopf does)."""
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(kubernetes.client.ApiClient(configuration))

    def get_backendauth(self, namespace: str, name: str) -> dict[str, Any]:
        """The object as the API server has it now."""
        obj = self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return cast(dict[str, Any], obj)

    def set_annotations(self, namespace: str, name: str, annotations: dict[str, str | None]) -> None:
        """Merge-patch annotations (``None`` removes one) and wait for the API server to accept it."""
        self._custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": annotations}},
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource."""
        self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status},
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def write_config_map(
        self, namespace: str, name: str, data: dict[str, str], owner: Mapping[str, Any]
    ) -> None:
        """Create or update a ConfigMap owned by ``owner`` (garbage-collected with it)."""
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
        try:
            self._core.create_namespaced_config_map(namespace, body)
        except ApiException as error:
            if error.status != 409:
                raise
            self._core.patch_namespaced_config_map(name, namespace, body)

    def post_event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        """A core v1 Event about ``obj`` (what ``kubectl describe`` shows). Posted directly, so
        that steps outside Kopf's handlers (the resync loop, Secret changes) can post too."""
        meta = obj.get("metadata", {})
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
            "eventTime": _micro_time(now),
            "action": reason,
            "count": 1,
        }  # fmt: skip
        self._core.create_namespaced_event(meta.get("namespace"), body)

    def read_secret_key(self, namespace: str, ref: SecretKeyRef, max_length: int = 4096) -> str:
        """The decoded value of ``ref`` in ``namespace``. :class:`SecretMissing` (reason
        ``SecretNotFound``) if the Secret or key is absent; reason ``SecretUnreadable`` if the
        operator may not read it, or the value is empty, too long or not text. Messages name the
        Secret and key, never the value."""
        where = f"Secret {namespace}/{ref.name}"
        try:
            secret = self._core.read_namespaced_secret(ref.name, namespace)
        except ApiException as error:
            if error.status == 404:
                raise SecretMissing(f"{where} not found") from None
            if error.status in (401, 403):
                raise SecretMissing(
                    f"{where}: the operator is not allowed to read it (RBAC: get secrets)", "SecretUnreadable"
                ) from None
            raise
        data = secret.data or {}
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


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Leases:
    """One turn per (region, appId, environment): a ``coordination.k8s.io`` Lease names the
    BackendAuth whose mutating call or job is in flight there.

    AWS refuses a second pending job on an app and environment, and its job list does not say
    which auth resource a job is for. Holding the Lease from before the call until the job has
    ended means that an unfinished job on that app/env is the holder's, even after a crash.
    A holder that never gives it back (its object forcibly removed) loses it after
    ``duration_seconds``.
    """

    def __init__(self, api_client: Any, namespace: str, duration_seconds: int) -> None:
        self._api = kubernetes.client.CoordinationV1Api(api_client)
        self.namespace = namespace
        self.duration = duration_seconds

    @staticmethod
    def name(key: tuple[str, str, str]) -> str:
        """The Lease's name: a digest, since app ids and environments need not be DNS names."""
        return "backendauth-" + hashlib.sha256("/".join(key).encode()).hexdigest()[:24]

    def _read(self, key: tuple[str, str, str]) -> Any:
        try:
            return self._api.read_namespaced_lease(self.name(key), self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _body(self, key: tuple[str, str, str], holder: str | None, version: str | None, now: datetime) -> Any:
        metadata: dict[str, Any] = {
            "name": self.name(key),
            "annotations": {f"{GROUP}/app": "/".join(key)},
            "labels": {"app.kubernetes.io/managed-by": "backendauth-operator"},
        }
        if version is not None:
            metadata["resourceVersion"] = version
        spec: dict[str, Any] = {"holderIdentity": holder, "leaseDurationSeconds": self.duration}
        if holder is not None:
            spec.update(acquireTime=_micro_time(now), renewTime=_micro_time(now))
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def holder(self, key: tuple[str, str, str]) -> str | None:
        """Who holds the turn now (None: nobody, or the holder's time ran out)."""
        lease = self._read(key)
        if lease is None or not lease.spec or not lease.spec.holder_identity:
            return None
        renewed = lease.spec.renew_time or lease.spec.acquire_time
        duration = lease.spec.lease_duration_seconds or self.duration
        if renewed is not None and (datetime.now(UTC) - renewed).total_seconds() > duration:
            return None
        return str(lease.spec.holder_identity)

    def acquire(self, key: tuple[str, str, str], me: str) -> str | None:
        """Take the turn (or renew it if ``me`` has it); None on success, else the holder."""
        now = datetime.now(UTC)
        lease = self._read(key)
        try:
            if lease is None:
                self._api.create_namespaced_lease(self.namespace, self._body(key, me, None, now))
                return None
            current = self.holder(key) if lease.spec and lease.spec.holder_identity else None
            if current is not None and current != me:
                return current
            version = lease.metadata.resource_version
            self._api.replace_namespaced_lease(
                self.name(key), self.namespace, self._body(key, me, version, now)
            )
        except ApiException as error:
            if error.status == 409:  # someone else took it between our read and our write
                return self.holder(key) or "another BackendAuth"
            raise
        return None

    def release(self, key: tuple[str, str, str], me: str) -> None:
        """Give the turn back if ``me`` holds it."""
        for _ in range(3):
            lease = self._read(key)
            if lease is None or not lease.spec or lease.spec.holder_identity != me:
                return
            body = self._body(key, None, lease.metadata.resource_version, datetime.now(UTC))
            try:
                self._api.replace_namespaced_lease(self.name(key), self.namespace, body)
                return
            except ApiException as error:
                if error.status != 409:
                    raise
