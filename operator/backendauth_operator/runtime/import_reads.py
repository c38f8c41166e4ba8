"""What an import (``spec.import``) reads, for real: its ids (literals, ConfigMap or Secret keys in
the BackendAuth's namespace), the auth resources GetBackend shows, and the Cognito reads that
check the pools before any job. Every Cognito call here is a read; none changes anything."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from backendauth_operator.aws.amplify import AmplifyBackend
from backendauth_operator.aws.cognito import AppClient, Cognito
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.import_types import Checked, IdsRead, ImportIds, ImportProblem, Link
from backendauth_operator.core.models import IMPORT_IDS, ConfigMapKeyRef, IdSource, ImportConfig
from backendauth_operator.kube.client import KubeClient, SecretMissing

ID_LIMIT = 256  # no Cognito id is longer; a longer value is no id


def read_ids(kube: KubeClient, namespace: str, config: ImportConfig) -> IdsRead:
    """The ids of ``config``, each literal or read from its key. A ConfigMap, Secret or key that
    is not there is a retryable failure (``ConfigMapNotFound``, ``SecretNotFound``); a value that
    is no id of its kind is ``InvalidImport``, naming the key it came from (never the value of a
    Secret's key, which need not be an id)."""
    values: dict[str, str | None] = {}
    for id_ in IMPORT_IDS:
        literal, source = config.literal(id_.key), config.source(id_.key)
        if literal is not None:
            values[id_.key] = literal
            continue
        if source is None:
            values[id_.key] = None
            continue
        where = f"spec.import.{id_.source_key}"
        try:
            value, named = _read_source(kube, namespace, source)
        except SecretMissing as error:
            return Failure(error.reason, True, f"{where}: {error}")
        value = value.strip()
        if len(value) > ID_LIMIT or not re.search(id_.pattern, value):
            shown = f" ({value[:80]!r})" if source.config_map_key_ref is not None else ""
            message = f"{where}: {named} holds no {id_.key}{shown}; it must match {id_.pattern}"
            return Failure("InvalidImport", False, message)
        values[id_.key] = value
    return ImportIds.of(values)


def _read_source(kube: KubeClient, namespace: str, source: IdSource) -> tuple[str, str]:
    """The value a source names, and how to name it in a message."""
    if source.secret_key_ref is not None:
        ref = source.secret_key_ref
        named = f"Secret {namespace}/{ref.name} key {ref.key!r}"
        return kube.read_secret_key(namespace, ref, ID_LIMIT), named
    assert source.config_map_key_ref is not None  # exactly one of the two, by the spec's rule
    return read_config_map_key(kube, namespace, source.config_map_key_ref)


def read_config_map_key(kube: KubeClient, namespace: str, ref: ConfigMapKeyRef) -> tuple[str, str]:
    """A ConfigMap key's value; :class:`~kube.SecretMissing` (reason ``ConfigMapNotFound``, or
    ``ConfigMapUnreadable`` when RBAC refuses it) naming the ConfigMap and key."""
    where = f"ConfigMap {namespace}/{ref.name}"
    try:
        found = kube.request("GET", f"/api/v1/namespaces/{quote(namespace)}/configmaps/{quote(ref.name)}")
    except ApiException as error:
        if error.status == 404:
            raise SecretMissing(f"{where} not found", "ConfigMapNotFound") from None
        if error.status in (401, 403):
            message = f"{where}: the operator is not allowed to read it (RBAC: get configmaps)"
            raise SecretMissing(message, "ConfigMapUnreadable") from None
        raise
    data = found.get("data") or {}
    value = data.get(ref.key)
    if not isinstance(value, str) or not value:
        raise SecretMissing(f"{where} has no key {ref.key!r}", "ConfigMapNotFound")
    return value, f"{where} key {ref.key!r}"


def links(aws: AmplifyBackend, app: str, env: str) -> tuple[Link, ...] | Failure:
    """GetBackend: the auth resources on the app/env, each with its ids."""
    found = aws.auth_resources(app, env)
    if isinstance(found, Failure):
        return found
    return tuple(
        Link(name, meta.service_type, ImportIds.from_outputs(meta.outputs))
        for name, meta in sorted(found.items())
    )


def check(cognito: Cognito, ids: ImportIds) -> Checked:
    """The pools as ImportBackendAuth needs them, read before any job: the user pool exists, both
    app clients exist in it, the web client has no secret, and the identity pool (when given)
    lists both clients. A problem names the id; a read that fails (AccessDenied naming the action,
    a throttle) is returned as the failure, never as a problem."""
    pool = cognito.user_pool_exists(ids.user_pool_id)
    if isinstance(pool, Failure):
        return _problem(pool, f"user pool {ids.user_pool_id} does not exist in {cognito.region}")
    clients: dict[str, AppClient] = {}
    for key, client_id in (("webClientId", ids.web_client_id), ("nativeClientId", ids.native_client_id)):
        assert client_id is not None, "both clients are required by the spec"
        client = cognito.app_client(ids.user_pool_id, client_id)
        if isinstance(client, Failure):
            missing = f"app client {client_id} ({key}) does not exist in user pool {ids.user_pool_id}"
            return _problem(client, missing)
        clients[key] = client
    if clients["webClientId"].has_secret:
        return ImportProblem(
            f"web app client {ids.web_client_id} (webClientId) has a client secret; Amplify's web "
            "client must have none (the native client may)"
        )
    if ids.identity_pool_id:
        identity = cognito.identity_pool_description(ids.identity_pool_id)
        if isinstance(identity, Failure):
            missing = f"identity pool {ids.identity_pool_id} does not exist in {cognito.region}"
            return _problem(identity, missing)
        provider = f"cognito-idp.{cognito.region}.amazonaws.com/{ids.user_pool_id}"
        listed = {(p.provider_name, p.client_id) for p in identity.cognito_providers}
        for key, client_id in (("webClientId", ids.web_client_id), ("nativeClientId", ids.native_client_id)):
            if (provider, client_id) not in listed:
                return ImportProblem(
                    f"identity pool {ids.identity_pool_id} does not list app client {client_id} ({key}) "
                    f"of user pool {ids.user_pool_id} among its Cognito identity providers"
                )
    return None


def _problem(failure: Failure, missing: str) -> Checked:
    """A read's failure: NotFound (or Cognito's InvalidParameter for a malformed id) is the
    import's problem; anything else stays the failure it is."""
    if failure.reason in ("NotFound", "BadRequest"):
        return ImportProblem(missing)
    return failure


def outputs_of(links_seen: tuple[Link, ...] | None, ids: Any) -> dict[str, str] | None:
    """The outputs of the link with ``ids`` among those observed (no call: GetBackend was the
    observation); None when none was observed."""
    if links_seen is None or not isinstance(ids, ImportIds):
        return None
    for link in links_seen:
        if link.ids == ids:
            return link.outputs
    return {}


def linked_name(aws: AmplifyBackend, app: str, env: str, ids: IdsRead) -> str | Failure:
    """The name of the auth resource on the app/env linked to ``ids`` (GetBackend), for a
    deletion that has not seen it yet; NotFound when there is none."""
    if isinstance(ids, Failure):
        return ids
    found = links(aws, app, env)
    if isinstance(found, Failure):
        return found
    for link in found:
        if link.ids == ids:
            return link.name
    message = f"GetBackend shows no auth resource on {app}/{env} linked to {ids.describe()}"
    return Failure("NotFound", False, message)
