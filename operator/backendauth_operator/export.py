"""``backendauth-operator export``: BackendAuth manifests for auth resources that AWS already has.

The way in for teams that built their auth in Amplify Studio: the manifest says
``adoptionPolicy: AdoptOrCreate``, so applying it takes the resource over without creating
anything. Secret values are never read into the manifest: each becomes a ``clientSecretRef`` /
``privateKeyRef`` to a Secret the user creates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from backendauth_operator import GROUP, KIND, VERSION
from backendauth_operator.aws import ClientFactory, call
from backendauth_operator.models import SECRET_FIELDS, InvalidSpecError, parse_spec, spec_key

_SECRETS = {f.boto: f for f in SECRET_FIELDS}


def _dns_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].strip("-") or "backendauth"


def to_spec_config(
    config: Mapping[str, Any], resource: str, secrets: list[str], at: str = ""
) -> dict[str, Any]:
    """AWS's ``ResourceConfig`` (boto3 keys) as ``spec.resourceConfig``; secrets become refs."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in _SECRETS:
            ref, secret_key = _SECRETS[key].ref, _SECRETS[key].inline
            name = _dns_name(f"{resource}-{at}")
            out[ref] = {"name": name, "key": secret_key}
            secrets.append(f"{name} (key {secret_key})")
        elif isinstance(value, Mapping):
            out[spec_key(key)] = to_spec_config(value, resource, secrets, spec_key(key))
        elif key == "MinimumLength" and isinstance(value, float) and value.is_integer():
            out[spec_key(key)] = int(value)
        else:
            out[spec_key(key)] = value
    return out


def manifests(
    clients: ClientFactory,
    region: str,
    app: str,
    env: str,
    resource: str | None = None,
    namespace: str | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The manifests, and notes for the user (Secrets to create, rules the spec breaks)."""
    client = clients.reading(region)
    names = [resource] if resource else sorted(_auth_resources(client, app, env))
    out, notes = [], []
    for name in names:
        answer = call(client, "get_backend_auth", AppId=app, BackendEnvironmentName=env, ResourceName=name)
        secrets: list[str] = []
        spec: dict[str, Any] = {
            "appId": app,
            "backendEnvironmentName": env,
            "resourceName": name,
            "region": region,
            "adoptionPolicy": "AdoptOrCreate",
            "resourceConfig": to_spec_config(answer.get("ResourceConfig") or {}, name, secrets),
        }
        metadata: dict[str, Any] = {"name": _dns_name(name)}
        if namespace:
            metadata["namespace"] = namespace
        out.append({"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": metadata, "spec": spec})
        notes += [f"{name}: create the Secret {s} before applying" for s in secrets]
        try:
            parse_spec(spec)
        except InvalidSpecError as error:
            notes.append(
                f"{name}: AWS's configuration breaks a rule of the CRD, fix before applying: {error}"
            )
    return out, notes


def _auth_resources(client: Any, app: str, env: str) -> list[str]:
    answer = call(client, "get_backend", AppId=app, BackendEnvironmentName=env)
    try:
        meta = json.loads(answer.get("AmplifyMetaConfig") or "{}")
        return list((meta.get("auth") or {}).keys())
    except (ValueError, AttributeError):
        return []


def render(docs: list[dict[str, Any]], notes: list[str]) -> str:
    """YAML for ``kubectl apply -f -``; the notes as comments at the top."""
    head = "".join(f"# {note}\n" for note in notes)
    return head + yaml.safe_dump_all(docs, sort_keys=False)
