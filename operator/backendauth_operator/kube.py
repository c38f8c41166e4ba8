"""The few Kubernetes calls the handlers make themselves, outside Kopf's own patching.

Kopf applies a handler's ``patch`` only after the handler returns. Two things cannot wait that
long: reading the object as it is *now* (an earlier attempt may have left a pending marker that
the event Kopf hands us predates), and writing the pending marker *before* the AWS call, so that
a crash between the call and Kopf's patch is detected on restart.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from backendauth_operator import GROUP, PLURAL, VERSION
from backendauth_operator.models import SecretKeyRef


class SecretMissing(Exception):
    """A referenced Secret or key does not exist (yet). The message never holds a value."""


class KubeClient:
    """Synchronous Kubernetes calls, made from Kopf's handler threads."""

    def __init__(self, api_client: Any) -> None:
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._core = kubernetes.client.CoreV1Api(api_client)

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
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"metadata": {"annotations": annotations}},
            _content_type="application/merge-patch+json",
        )

    def read_secret_key(self, namespace: str, ref: SecretKeyRef) -> str:
        """The decoded value of ``ref`` in ``namespace``; :class:`SecretMissing` if absent."""
        try:
            secret = self._core.read_namespaced_secret(ref.name, namespace)
        except ApiException as error:
            if error.status == 404:
                raise SecretMissing(f"Secret {namespace}/{ref.name} not found") from None
            raise
        data = secret.data or {}
        if ref.key not in data:
            raise SecretMissing(f"Secret {namespace}/{ref.name} has no key {ref.key!r}") from None
        try:
            return base64.b64decode(data[ref.key]).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SecretMissing(f"Secret {namespace}/{ref.name} key {ref.key!r} is not UTF-8 text") from None
