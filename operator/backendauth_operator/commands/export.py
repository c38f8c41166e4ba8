"""``backendauth-operator export``: auth resources that AWS already has, as manifests.

* ``--to backendauth`` (the default): BackendAuth manifests, the way in for teams that built
  their auth in Amplify Studio: the manifest says ``adoptionPolicy: AdoptOrCreate``, so applying
  it takes the resource over without creating anything. Secret values are never read into the
  manifest: each becomes a ``clientSecretRef`` / ``privateKeyRef`` to a Secret the user creates.
* ``--to crossplane|ack|gen2``: the way off Amplify Gen 1. The Cognito resources behind each
  auth resource (read-only calls, :mod:`cognito`), rendered by :mod:`handoff` for whatever
  manages them next. With ``--from-cluster``, every BackendAuth the kubeconfig sees, each read in
  the account its namespace maps to (:class:`~accounts.AccountDirectory`, as the operator does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import yaml

from backendauth_operator import GROUP, KIND, PLURAL, VERSION
from backendauth_operator.aws import cognito
from backendauth_operator.aws.amplify import AmplifyBackend
from backendauth_operator.aws.clients import ClientFactory, FailureError
from backendauth_operator.aws.cognito import AuthView, Cognito, PoolIds
from backendauth_operator.commands import handoff
from backendauth_operator.commands.handoff import CrossplaneOptions, Gen2Unsupported, Source, dns_name
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.import_types import ImportIds
from backendauth_operator.core.models import SECRET_FIELDS, InvalidSpecError, parse_spec, spec_key
from backendauth_operator.core.role import Role
from backendauth_operator.kube.accounts import AccountDirectory

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
    backend = AmplifyBackend(clients, region)
    shown = backend.auth_resources(app, env)
    if isinstance(shown, Failure):
        raise FailureError(shown)
    names = [resource] if resource else sorted(shown)
    out, notes = [], []
    for name in names:
        secrets: list[str] = []
        spec: dict[str, Any] = {"appId": app, "backendEnvironmentName": env}
        meta = shown.get(name)
        if meta is not None and meta.service_type == "imported":
            # Pools linked by an import: the manifest imports the same ids, which the operator
            # adopts with no call (AWS names the link; resourceName is not given).
            spec.update(region=region, **{"import": import_spec(meta.outputs)})
        else:
            config = backend.config(app, env, name)
            if isinstance(config, Failure):
                raise FailureError(config)
            spec.update(
                resourceName=name, region=region, adoptionPolicy="AdoptOrCreate",
                resourceConfig=to_spec_config(config, name, secrets),
            )  # fmt: skip
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


def import_spec(outputs: Mapping[str, str]) -> dict[str, str]:
    """``spec.import`` for the ids an imported auth resource shows (its amplify-meta outputs)."""
    return ImportIds.from_outputs(outputs).as_dict()


def _auth_resources(backend: AmplifyBackend, app: str, env: str) -> list[str]:
    """The names of the app/env's auth resources; :class:`~aws.FailureError` when AWS cannot say."""
    found = backend.auth_resources(app, env)
    if isinstance(found, Failure):
        raise FailureError(found)
    return list(found)


def render(docs: list[dict[str, Any]], notes: list[str]) -> str:
    """YAML for ``kubectl apply -f -``; the notes as comments at the top."""
    head = "".join(f"# {note}\n" for note in notes)
    return head + yaml.safe_dump_all(docs, sort_keys=False)


# ---- the hand-off: crossplane, ack, gen2 ---------------------------------------------------------------

HANDOFF_TARGETS = ("crossplane", "ack", "gen2")

# Every IAM action ``export --to crossplane|ack|gen2`` needs in the account it reads (in the
# operator's own account as well, for a mapped one: sts:AssumeRole of the account's role).
HANDOFF_ACTIONS = ("amplifybackend:GetBackend", "amplifybackend:GetBackendAuth", *cognito.ACTIONS)


@dataclass(frozen=True)
class Selection:
    """What to export: one app/env (``resource`` None: every auth resource of it), or every
    BackendAuth of the cluster (``from_cluster``; ``from_namespace``: of one namespace)."""

    app: str | None = None
    env: str | None = None
    resource: str | None = None
    region: str | None = None
    namespace: str | None = None  # metadata.namespace written into the manifests
    from_cluster: bool = False
    from_namespace: str | None = None


@dataclass(frozen=True)
class Found:
    """One auth resource to read: where it is, in which account, under which role."""

    source: Source
    region: str
    role: Role | None = None
    account: str = ""


@dataclass(frozen=True)
class Output:
    """One exported auth resource: its text and the file it goes to under ``--output-dir``."""

    source: Source
    text: str
    path: PurePosixPath


def relative_path(target: str, source: Source, namespace: str | None) -> PurePosixPath:
    """``<namespace>/<name>.yaml`` (gen2: ``<namespace>/<name>/amplify/auth/resource.ts``)."""
    folder = source.namespace or namespace or "default"
    name = source.name or dns_name(source.resource)
    if target == "gen2":
        return PurePosixPath(folder, name, "amplify", "auth", "resource.ts")
    return PurePosixPath(folder, f"{name}.yaml")


def read_view(clients: ClientFactory, found: Found) -> tuple[AuthView, dict[str, Any]] | str:
    """The Cognito view of one auth resource and its ``spec.resourceConfig`` as AWS has it;
    or one line saying why it cannot be had."""
    src = found.source
    backend = AmplifyBackend(clients, found.region, found.role, found.account)
    outputs = backend.outputs(src.app, src.env, src.resource)
    if isinstance(outputs, Failure):
        return f"{src}: {outputs.reason}: {outputs.message}"
    ids = PoolIds.from_outputs(outputs)
    if ids is None:
        return (
            f"{src}: GetBackend shows no user pool for it (the auth resource does not exist in AWS, "
            "or it is not created yet)"
        )
    resource = backend.resource(src.app, src.env, src.resource)
    if isinstance(resource, Failure):
        return f"{src}: {resource.reason}: {resource.message}"
    config = to_spec_config(resource.config or {}, src.resource, [])
    oauth = (config.get("userPoolConfigs") or {}).get("oAuth") or {}
    account = found.account or clients.own_account()
    view = Cognito(clients, found.region, found.role, account).view(ids, oauth.get("domainPrefix"))
    if isinstance(view, Failure):
        return f"{src}: {view.reason}: {view.message}"
    return view, config


def render_one(target: str, view: AuthView, config: dict[str, Any], source: Source,
               namespace: str | None, options: CrossplaneOptions) -> str:  # fmt: skip
    """The text of one auth resource for ``target``; :class:`Gen2Unsupported` when Gen 2
    cannot reference it."""
    if target == "crossplane":
        return handoff.crossplane(view, source, config, options)
    if target == "ack":
        return handoff.ack(view, source, config, source.namespace or namespace or "")
    return handoff.gen2(view, source)


def handoff_outputs(
    clients: ClientFactory, target: str, found: list[Found], namespace: str | None,
    options: CrossplaneOptions,
) -> tuple[list[Output], list[str]]:  # fmt: skip
    """The exported text of each auth resource, and one line per one that could not be."""
    outputs, problems = [], []
    for item in found:
        read = read_view(clients, item)
        if isinstance(read, str):
            problems.append(read)
            continue
        view, config = read
        try:
            text = render_one(target, view, config, item.source, namespace, options)
        except Gen2Unsupported as error:
            problems.append(f"{item.source}: {error}")
            continue
        outputs.append(Output(item.source, text, relative_path(target, item.source, namespace)))
    return outputs, problems


def from_app(clients: ClientFactory, selection: Selection, region: str) -> tuple[list[Found], list[str]]:
    """The auth resources of one app/env (the operator's own credentials)."""
    app, env = str(selection.app), str(selection.env)
    if selection.resource:
        names = [selection.resource]
    else:
        names = sorted(_auth_resources(AmplifyBackend(clients, region), app, env))
    if not names:
        return [], [f"no auth resource in {app}/{env}"]
    return [Found(Source(app, env, name), region) for name in names], []


def from_cluster(
    kube: Any, directory: AccountDirectory, selection: Selection, default_region: str | None
) -> tuple[list[Found], list[str]]:
    """Every BackendAuth the kubeconfig sees (or those of ``selection.from_namespace``), each
    with the account and role its namespace maps to, as the operator resolves them."""
    found, problems = [], []
    for obj in list_backendauths(kube, selection.from_namespace):
        meta = obj.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        where = f"BackendAuth {ns}/{name}"
        try:
            spec = parse_spec(obj.get("spec") or {})
        except InvalidSpecError as error:
            problems.append(f"{where}: its spec is not valid: {error}")
            continue
        target = directory.target(ns)
        if target.unreadable:
            problems.append(f"{where}: {target.unreadable}")
            continue
        if target.problem is not None:
            problems.append(f"{where}: {target.problem[1]}")
            continue
        region = spec.region or selection.region or default_region
        if not region:
            problems.append(f"{where}: no region (spec.region is empty): give --region or set AWS_REGION")
            continue
        # An import goes by the name AWS gave its link, as the status shows it.
        resource = spec.resource_name or str((obj.get("status") or {}).get("resourceName") or "")
        if not resource:
            problems.append(f"{where}: its import is not linked yet (no status.resourceName)")
            continue
        source = Source(spec.app_id, spec.backend_environment_name, resource, ns, name)
        found.append(Found(source, region, target.role, target.account))
    if not found and not problems:
        where = f"namespace {selection.from_namespace}" if selection.from_namespace else "the cluster"
        problems.append(f"no BackendAuth in {where}")
    return found, problems


def list_backendauths(kube: Any, namespace: str | None) -> list[dict[str, Any]]:
    """Every BackendAuth (of ``namespace``, if given), page by page, in a stable order."""
    base = f"/apis/{GROUP}/{VERSION}"
    path = f"{base}/namespaces/{quote(namespace)}/{PLURAL}" if namespace else f"{base}/{PLURAL}"
    items: list[dict[str, Any]] = []
    token = ""
    while True:
        query = "?limit=500" + (f"&continue={quote(token)}" if token else "")
        page = kube.request("GET", path + query)
        items += page.get("items") or []
        token = str((page.get("metadata") or {}).get("continue") or "")
        if not token:
            break
    return sorted(
        items, key=lambda o: ((o.get("metadata") or {}).get("namespace", ""), o["metadata"]["name"])
    )


def write_outputs(outputs: list[Output], directory: Path) -> list[Path]:
    """Each output to its file under ``directory``; the files written."""
    written = []
    for output in outputs:
        path = directory.joinpath(*output.path.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(output.text)
        written.append(path)
    return written
