"""An emulated Kubernetes API server, built on kmock's ``KubernetesEmulator``, for the sandbox and tests.

kmock provides the discovery endpoints (``/api``, ``/apis``, ``/apis/G/V`` ...), the resource
registry they are built from, and the object store with every object's history
(``api.objects[resource, namespace, name]``). Everything under a resource path is served here
instead, because kmock's own CRUD lacks what Kopf and kubectl rely on:

- metadata the server owns: ``uid``, ``creationTimestamp``, a global monotonic
  ``resourceVersion`` bumped on every write (and only on real changes), ``generation`` that
  starts at 1 and grows when anything but ``metadata``/``status`` changes;
- watches that resume at ``?resourceVersion=`` from an event log without replaying older state
  (410 Gone once the log has moved past it), initial ``ADDED`` events otherwise, bookmarks,
  ``timeoutSeconds``, ``sendInitialEvents``;
- ``kind: <Kind>List`` lists with a real ``metadata.resourceVersion``; label and field selectors;
- the ``status`` subresource: writes to ``/status`` change only ``status``, writes to the object
  never change it; create drops it;
- merge-patch, JSON-patch (with ``test``, answering 422 when it fails), PUT with
  ``resourceVersion`` preconditions (409 Conflict), strategic-merge-patch approximated as a
  merge-patch for built-in kinds;
- finalizers: delete sets ``deletionTimestamp`` (and bumps ``generation``), the object goes once
  its finalizers are empty; namespaces are emptied when deleted;
- admission of CRD-defined kinds (see ``admission.py``): pruning, defaults, OpenAPI schema and
  CEL rules with ``oldSelf``, answered with the server's 422 ``Status``;
- CustomResourceDefinitions as objects: POST/PUT/PATCH/DELETE of a CRD registers or removes its
  resources in discovery;
- Table answers for ``kubectl get`` (see ``tables.py``).

Known gaps against a real API server:

- No authentication, authorization, TLS, admission webhooks, API priority and fairness.
- No server-side apply (``application/apply-patch+yaml`` answers 415), no ``managedFields``.
  Strategic-merge-patch is a plain merge-patch: lists are replaced, ``$patch``-style directives
  are dropped.
- OpenAPI: ``/openapi/v3`` holds only what kubectl needs (each kind's PATCH operation with the
  ``fieldValidation`` parameter, so kubectl asks for strict server-side field validation, and
  CRD schemas for ``kubectl explain``); ``/openapi/v2`` is an empty protobuf document (kubectl
  reads it to validate a ``kind: List`` on the client, e.g. ``kubectl apply -f backup.yaml`` of
  ``kubectl get -o yaml``: no definitions, so only the server validates). Unknown fields are
  refused with ``fieldValidation=Strict``, otherwise pruned with a ``Warning`` header.
- Subresources other than ``status`` (``scale``, ``finalize``, ...) are not served.
- CRDs: one schema per served version and no conversion (each version stores its own objects);
  no validation ratcheting; CEL has celpy's standard library only (no Kubernetes extension
  libraries such as ``lowerAscii``, ``url``, ``quantity``; no ``optionalOldSelf``); no CEL cost
  limits; ``x-kubernetes-list-type`` uniqueness is not checked; deleting a CRD removes its
  objects at once, ignoring their finalizers.
- Protobuf request bodies are decoded only for namespaces, secrets and configmaps (what
  ``kubectl create namespace|secret|configmap`` send); other protobuf bodies are answered 415.
  Answers are always JSON.
- Built-in kinds are stored as given: no defaulting or validation beyond ``metadata.name``; only
  namespaces, secrets, configmaps, events (core/v1 and events.k8s.io/v1, stored separately, not
  converted into each other), leases and CRDs are served. No garbage collection by
  ``ownerReferences``; no controllers (nothing runs pods, nothing expires leases or events;
  events are kept until deleted). Deleting a namespace deletes its objects at once (those with
  finalizers are marked), and the namespace goes when it is empty.
- Field selectors accept any dotted path (the real server allows only a few per kind); a watch
  with a label selector does not send ``DELETED`` when an object stops matching.
- ``limit``/``continue`` are ignored: lists come whole. List ``resourceVersion`` parameters are
  ignored: lists are always the latest state.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import datetime
import functools
import json
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from typing_extensions import override

from backendauth_testbed.sandbox import admission, protobuf, tables

BOOKMARK_SECONDS = 20.0  # Kopf reconnects a watch after 70 s of silence; real servers bookmark ~1/min
WATCH_SECONDS = 1800.0  # the longest watch when the client sets no timeoutSeconds
LOG_SIZE = 20_000  # watch events kept for resumption; older resourceVersions get 410 Gone
HISTORY = 16  # versions of each object kept in ``objects[...].history`` (bounded for long dev runs)
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what the server uses for generateName suffixes


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` object."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, dict(details or {})

    def status(self) -> dict[str, Any]:
        """The ``Status`` body."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


@dataclass
class Kind:
    """What the server knows about one served resource (one group/version/plural)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_subresource: bool = False
    custom: bool = False  # defined by a CRD: admission, generation, resourceVersion required on PUT
    admission: admission.Admission | None = None
    table: tables.TableBuilder = field(default_factory=tables.TableBuilder)
    crd_name: str | None = None

    @functools.cached_property
    def resource(self) -> kmock.resource:
        """kmock's key of this resource (made once: every watch compares it with every event)."""
        return kmock.resource(self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        """``apiVersion`` of its objects."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """As in ``backendauths.amplifybackend.gitops.dev "x" not found``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        """As in ``BackendAuth.amplifybackend.gitops.dev "x" is invalid``."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_generation(self) -> bool:
        """Whether the server keeps ``metadata.generation`` for these objects."""
        return self.custom or self.plural == "customresourcedefinitions"

    def info(self) -> kmock.ResourceInfo:
        """The discovery entry kmock serves."""
        return kmock.ResourceInfo(
            kind=self.kind,
            singular=self.singular or self.kind.lower(),
            namespaced=self.namespaced,
            shortnames=set(self.short_names),
            categories=set(self.categories),
            verbs=set(VERBS),
            subresources={"status"} if self.status_subresource else set(),
        )


_CORE_KINDS = [
    Kind("", "v1", "namespaces", "Namespace", False, short_names=["ns"], status_subresource=True),
    Kind("", "v1", "secrets", "Secret", True),
    Kind("", "v1", "configmaps", "ConfigMap", True, short_names=["cm"]),
    Kind("", "v1", "events", "Event", True, short_names=["ev"]),
    Kind("events.k8s.io", "v1", "events", "Event", True, short_names=["ev"]),
    Kind("coordination.k8s.io", "v1", "leases", "Lease", True),
    Kind(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=["crd", "crds"],
        status_subresource=True,
    ),
]


@dataclass
class _Event:
    rv: int
    resource: kmock.resource
    type: str
    object: dict[str, Any]
    encoded: bytes | None = None  # the JSON watch line, made once for every watch that sends it

    def line(self) -> bytes:
        if self.encoded is None:
            self.encoded = json.dumps({"type": self.type, "object": self.object}).encode() + b"\n"
        return self.encoded


@dataclass(frozen=True)
class Route:
    """A parsed resource URL: ``/api(s)/[G/]V/[namespaces/NS/]PLURAL[/NAME[/SUB]]``."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_route(path: str) -> Route | None:
    """Parse a resource URL; None for discovery and other non-resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    # "namespaces/NS/PLURAL/..." is a namespaced path; "namespaces[/NAME[/SUB]]" is the Namespace kind.
    if (
        rest[0] == "namespaces"
        and len(rest) >= 3
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    return Route(
        group,
        version,
        rest[0],
        namespace,
        rest[1] if len(rest) > 1 else None,
        rest[2] if len(rest) > 2 else None,
    )


def now_rfc3339() -> str:
    """The current time as the server writes timestamps (seconds, UTC, ``Z``)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge-patch (``null`` deletes; lists and scalars replace)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _drop_directives(patch: Any) -> Any:
    """Strategic-merge-patch directives (``$patch``, ``$setElementOrder/...``) are not emulated."""
    if isinstance(patch, dict):
        return {k: _drop_directives(v) for k, v in patch.items() if not k.startswith("$")}
    return patch


# --------------------------------------------------------------------------------------------------
# Selectors


Matcher = Callable[[Mapping[str, Any]], bool]
_LABEL_SET = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_LABEL_CMP = re.compile(r"^\s*([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)\s*$")
_LABEL_HAS = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def _label_check(term: str) -> Callable[[Mapping[str, str]], bool]:
    if m := _LABEL_SET.match(term):
        key, values, inside = m[1], {v.strip() for v in m[3].split(",")}, m[2] == "in"
        return lambda labels: (labels.get(key) in values) == inside
    if m := _LABEL_CMP.match(term):
        key, value, equal = m[1], m[3], m[2] != "!="
        return lambda labels: (labels.get(key) == value) == equal
    if m := _LABEL_HAS.match(term):
        key, present = m[2], not m[1]
        return lambda labels: (key in labels) == present
    raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")


def label_matcher(selector: str) -> Matcher:
    """A label selector (``a=b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``, ``a notin (x)``)."""
    checks = [_label_check(term) for term in re.split(r",(?![^()]*\))", selector) if term.strip()]
    return lambda obj: all(check(obj.get("metadata", {}).get("labels") or {}) for check in checks)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """A field as field selectors see it: a string, empty when absent."""
    value: Any = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _field_check(term: str) -> Matcher:
    m = re.match(r"^\s*([\w.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
    if m is None:
        raise ApiError(400, "BadRequest", f"invalid field selector: {term!r}")
    path, value, equal = m[1], m[3].replace("\\", ""), m[2] != "!="
    return lambda obj: (field_value(obj, path) == value) == equal


def field_matcher(selector: str) -> Matcher:
    """A field selector (``metadata.name=x``, ``involvedObject.uid==y``, ``type!=Normal``)."""
    checks = [_field_check(term) for term in selector.split(",") if term.strip()]
    return lambda obj: all(check(obj) for check in checks)


def _wants_table(request: aiohttp.web.BaseRequest) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _is_true(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def _json(payload: Any, status: int = 200, warnings: Iterable[str] = ()) -> aiohttp.web.Response:
    response = aiohttp.web.Response(text=json.dumps(payload), status=status, content_type="application/json")
    for warning in warnings:
        response.headers.add("Warning", f'299 - "{warning}"')
    return response


# --------------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class KubernetesAPI(kmock.KubernetesEmulator):
    """The emulated API server: a kmock ``KubernetesEmulator`` with real-server semantics.

    Use it as an aiohttp handler (``aiohttp.web.Server(api)``); :class:`EmulatedCluster` does the
    serving. All state changes happen synchronously on the event loop, so no lock is needed.
    """

    _kinds: dict[kmock.resource, Kind] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1, init=False)
    _log: list[_Event] = attrs.field(factory=list, init=False)
    _log_base: int = attrs.field(default=0, init=False)  # absolute index of _log[0]
    _wakeup: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _closing: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for kind in _CORE_KINDS:
            self.register(copy.deepcopy(kind))
        self.create_object("v1", "Namespace", {"metadata": {"name": "default"}})

    # ---------------------------------------------------------------------------- registry

    def register(self, kind: Kind) -> None:
        """Serve a resource (and list it in discovery)."""
        kind.table = kind.table if kind.custom else tables.builder_for(kind.plural, None)
        self._kinds[kind.resource] = kind
        self.resources[kind.resource] = kind.info()

    def unregister(self, resource: kmock.resource) -> None:
        """Stop serving a resource (its objects stay in ``objects``; see ``_unregister_crd``)."""
        self._kinds.pop(resource, None)
        if resource in self.resources:
            del self.resources[resource]

    def kind_of(self, api_version: str, kind: str) -> Kind:
        """The served resource of an ``apiVersion``/``kind`` pair (for manifests)."""
        group, _, version = api_version.rpartition("/")
        for known in self._kinds.values():
            if (known.group, known.version, known.kind) == (group, version, kind):
                return known
        raise ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')

    @override
    def _get_resources(self) -> list[kmock.resource]:
        # Discovery lists what is served now, not kmock's guesses from stored objects.
        return [kind.resource for kind in self._kinds.values()]

    @override
    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        # kmock lists subresources with the parent's short names, which makes kubectl warn about
        # ambiguous short names; the real server lists them bare, with their own verbs.
        assert request.resource is not None  # the URL pattern guarantees it
        group, version = request.resource.group, request.resource.version
        kinds = [k for k in self._kinds.values() if (k.group, k.version) == (group, version)]
        if not kinds and group != "":
            raise kmock.KubernetesResourceNotFoundError()
        resources: list[dict[str, Any]] = []
        for kind in kinds:
            entry = {
                "name": kind.plural,
                "singularName": kind.singular or kind.kind.lower(),
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": VERBS,
            }
            entry |= {"shortNames": kind.short_names} if kind.short_names else {}
            entry |= {"categories": kind.categories} if kind.categories else {}
            resources.append(entry)
            if kind.status_subresource:
                resources.append(
                    {
                        "name": f"{kind.plural}/status",
                        "singularName": "",
                        "namespaced": kind.namespaced,
                        "kind": kind.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}".lstrip("/"),
            "resources": resources,
        }

    @override
    async def _serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        return {
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0-backendauth-sandbox",
            "platform": "linux/amd64",
            "goVersion": "go1.23",
            "compiler": "gc",
        }

    # ---------------------------------------------------------------------------- store

    def _key(self, kind: Kind, namespace: str | None, name: str) -> tuple[kmock.resource, str | None, str]:
        return kind.resource, namespace if kind.namespaced else None, name

    def get_object(self, kind: Kind, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object, or None (do not mutate it: deep-copy first)."""
        key = self._key(kind, namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            raw: dict[str, Any] = self.objects[key].raw
            return raw
        return None

    def list_objects(self, kind: Kind, namespace: str | None = None) -> list[dict[str, Any]]:
        """The live objects of a kind, optionally of one namespace."""
        return [
            obj.raw
            for (res, ns, _), obj in self.objects.items()
            if res == kind.resource and not obj.deleted and (namespace is None or ns == namespace)
        ]

    def _commit(self, kind: Kind, obj: dict[str, Any], event: str) -> dict[str, Any]:
        """Store a new version of an object, with a new resourceVersion and a watch event."""
        is_crd = kind.group == "apiextensions.k8s.io" and kind.plural == "customresourcedefinitions"
        if is_crd and event == "DELETED":
            self._unregister_crd(obj)  # its objects go first, as the server deletes them before the CRD
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        key = self._key(kind, meta.get("namespace"), meta["name"])
        if event == "ADDED":
            if key in self.objects:
                self.objects[key].create(obj)
            else:
                self.objects[key] = obj
        else:
            self.objects[key].history.append(obj)
            if event == "DELETED":
                self.objects[key].delete()
        history = self.objects[key].history
        if len(history) > HISTORY:
            del history[: len(history) - HISTORY]
        self._log.append(_Event(self._rv, kind.resource, event, obj))
        if len(self._log) > LOG_SIZE:
            dropped = len(self._log) // 2
            del self._log[:dropped]
            self._log_base += dropped
        self._wakeup.set()
        self._wakeup = asyncio.Event()
        if is_crd and event != "DELETED":
            self._register_crd(obj)
        if event == "DELETED" and kind.namespaced:
            self._reap_namespace(meta["namespace"])
        return obj

    # ---------------------------------------------------------------------------- writes

    def create_object(
        self, api_version: str, kind_name: str, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        """Create an object programmatically, with the same semantics as a POST."""
        kind = self.kind_of(api_version, kind_name)
        ns = (
            namespace or body.get("metadata", {}).get("namespace") or ("default" if kind.namespaced else None)
        )
        return self._create(kind, ns, body, {})[0]

    def apply_object(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object or merge it into the existing one (a simple ``kubectl apply``)."""
        kind = self.kind_of(body.get("apiVersion", ""), body.get("kind", ""))
        meta = body.get("metadata", {})
        ns = meta.get("namespace") or ("default" if kind.namespaced else None)
        old = self.get_object(kind, ns, meta.get("name", ""))
        if old is None:
            return self._create(kind, ns, body, {})[0]
        return self._update(kind, old, merge_patch(copy.deepcopy(old), body), None, {})[0]

    def _invalid(self, kind: Kind, name: str, errors: list[admission.FieldError]) -> ApiError:
        text = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
        causes = [{"reason": e.reason, "message": e.message, "field": e.field} for e in errors]
        return ApiError(
            422,
            "Invalid",
            f'{kind.group_kind} "{name}" is invalid: {text}',
            {"name": name, "group": kind.group, "kind": kind.kind, "causes": causes},
        )

    def _not_found(self, kind: Kind, name: str) -> ApiError:
        return ApiError(
            404,
            "NotFound",
            f'{kind.group_resource} "{name}" not found',
            {"name": name, "group": kind.group, "kind": kind.plural},
        )

    def _conflict(self, kind: Kind, name: str) -> ApiError:
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {kind.group_resource} "{name}": the '
            "object has been modified; please apply your changes to the latest version and try again",
            {"name": name, "group": kind.group, "kind": kind.plural},
        )

    def _admit(
        self, kind: Kind, obj: dict[str, Any], old: Mapping[str, Any] | None, params: Mapping[str, str]
    ) -> list[str]:
        name = obj["metadata"]["name"]
        warnings: list[str] = []
        if kind.admission is not None:
            # As the server: unknown fields are found (and refused if Strict) before validation.
            pruned = kind.admission.prune(obj)
            warnings = [f'unknown field \\"{path}\\"' for path in pruned]
            if pruned and params.get("fieldValidation") == "Strict":
                unknown = ", ".join(f'unknown field "{path}"' for path in pruned)
                raise ApiError(
                    400,
                    "BadRequest",
                    f'{kind.kind} in version "{kind.version}" cannot be handled '
                    f"as a {kind.kind}: strict decoding error: {unknown}",
                )
            try:
                kind.admission.validate(obj, old)
            except admission.AdmissionError as exc:
                raise self._invalid(kind, name, exc.errors) from exc
        if kind.plural == "customresourcedefinitions":
            self._check_crd(obj)
        return warnings if params.get("fieldValidation") != "Ignore" else []

    def _create(
        self, kind: Kind, namespace: str | None, body: Any, params: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object with metadata")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or meta.get("namespace")
            if not namespace:
                raise ApiError(400, "BadRequest", "a namespace is required for namespaced objects")
            ns_obj = self.get_object(self._kinds[kmock.resource("", "v1", "namespaces")], None, namespace)
            if ns_obj is None:
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            if ns_obj["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    "Forbidden",
                    f"unable to create new content in namespace {namespace} because it is being terminated",
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        name = meta.get("name") or ""
        if not name:
            raise self._invalid(
                kind,
                name,
                [
                    admission.FieldError(
                        "metadata.name",
                        "FieldValueRequired",
                        "Required value: name or generateName is required",
                    )
                ],
            )
        if (error := admission.validate_name(name)) is not None:
            raise self._invalid(kind, name, [error])
        if self.get_object(kind, namespace, name) is not None:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{kind.group_resource} "{name}" already exists',
                {"name": name, "group": kind.group, "kind": kind.plural},
            )
        for server_owned in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            meta.pop(server_owned, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if kind.has_generation:
            meta["generation"] = 1
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if kind.status_subresource:
            obj.pop("status", None)  # the server ignores status on create when it is a subresource
        warnings = self._admit(kind, obj, None, params)
        self._server_fields(kind, obj)
        if params.get("dryRun"):
            return obj, warnings
        return self._commit(kind, obj, "ADDED"), warnings

    def _update(
        self, kind: Kind, old: Mapping[str, Any], new: Any, subresource: str | None, params: Mapping[str, str]
    ) -> tuple[dict[str, Any], list[str]]:
        """Finish a PUT or PATCH: ``new`` is the whole proposed object."""
        if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "the object must be a JSON object with metadata")
        old_meta = old["metadata"]
        name = old_meta["name"]
        if subresource == "status":
            # Like the server's status strategy: only status is taken from the request.
            status = new.get("status")
            new = copy.deepcopy(dict(old))
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif kind.status_subresource:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        meta = new.setdefault("metadata", {})
        for owned in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if owned in old_meta:
                meta[owned] = old_meta[owned]
            else:
                meta.pop(owned, None)
        for empty in ("finalizers", "labels", "annotations", "ownerReferences"):
            if empty in meta and not meta[empty]:
                del meta[empty]  # omitempty, as the server serializes them
        new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        if old_meta.get("deletionTimestamp"):
            added = sorted(set(meta.get("finalizers", [])) - set(old_meta.get("finalizers", [])))
            if added:
                raise self._invalid(
                    kind,
                    name,
                    [
                        admission.FieldError(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            f"Forbidden: no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {json.dumps(added)}",
                        )
                    ],
                )
        warnings = self._admit(kind, new, old, params)
        self._server_fields(kind, new)
        if new == old:
            return dict(old), warnings  # a no-op write: no new resourceVersion, no watch event
        if kind.has_generation and self._desired(kind, new) != self._desired(kind, old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if params.get("dryRun"):
            return new, warnings
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._commit(kind, new, "DELETED"), warnings  # the last finalizer is gone
        return self._commit(kind, new, "MODIFIED"), warnings

    @staticmethod
    def _desired(kind: Kind, obj: Mapping[str, Any]) -> dict[str, Any]:
        """What ``generation`` tracks: all but metadata (and status if it is a subresource)."""
        ignored = {"metadata", "status"} if kind.status_subresource else {"metadata"}
        return {k: v for k, v in obj.items() if k not in ignored}

    def _delete(
        self, kind: Kind, old: Mapping[str, Any], params: Mapping[str, str], options: Mapping[str, Any]
    ) -> dict[str, Any]:
        meta = old["metadata"]
        preconditions = options.get("preconditions") or {}
        for key in ("uid", "resourceVersion"):
            if preconditions.get(key) and preconditions[key] != meta.get(key):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: {key} in precondition: {preconditions[key]}, "
                    f"{key} in object meta: {meta.get(key)}",
                )
        if params.get("dryRun"):
            return dict(old)
        obj = copy.deepcopy(dict(old))
        is_namespace = kind.group == "" and kind.plural == "namespaces"
        if meta.get("finalizers") or is_namespace:
            if not meta.get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                if kind.has_generation:
                    obj["metadata"]["generation"] = int(meta.get("generation", 1)) + 1
                if is_namespace:
                    obj.setdefault("status", {})["phase"] = "Terminating"
                self._commit(kind, obj, "MODIFIED")
                if is_namespace:
                    self._empty_namespace(meta["name"])
            current = self.get_object(kind, meta.get("namespace"), meta["name"])
            return dict(current) if current is not None else obj
        return self._commit(kind, obj, "DELETED")

    def _empty_namespace(self, namespace: str) -> None:
        for kind in list(self._kinds.values()):
            if kind.namespaced:
                for obj in self.list_objects(kind, namespace):
                    self._delete(kind, obj, {}, {})
        self._reap_namespace(namespace)

    def _reap_namespace(self, namespace: str) -> None:
        """A terminating namespace goes once it holds no objects (their finalizers are done)."""
        ns_kind = self._kinds[kmock.resource("", "v1", "namespaces")]
        ns_obj = self.get_object(ns_kind, None, namespace)
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        if any(self.list_objects(k, namespace) for k in self._kinds.values() if k.namespaced):
            return
        self._commit(ns_kind, copy.deepcopy(dict(ns_obj)), "DELETED")

    # ---------------------------------------------------------------------------- kind-specific

    def _server_fields(self, kind: Kind, obj: dict[str, Any]) -> None:
        """Fields that controllers of a real cluster would fill in right away."""
        if kind.group == "" and kind.plural == "namespaces":
            phase = "Terminating" if obj["metadata"].get("deletionTimestamp") else "Active"
            obj["status"] = {**obj.get("status", {}), "phase": phase}
        if kind.group == "" and kind.plural == "secrets":
            # The server's Secret strategy: stringData is write-only, merged into base64 data.
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                encoded = {k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()}
                obj["data"] = {**(obj.get("data") or {}), **encoded}
            obj.setdefault("type", "Opaque")
        if kind.plural == "customresourcedefinitions":
            names = obj["spec"]["names"]
            accepted = {
                "plural": names["plural"],
                "kind": names["kind"],
                "singular": names.get("singular", names["kind"].lower()),
                "listKind": names.get("listKind", names["kind"] + "List"),
            }
            accepted |= {k: names[k] for k in ("shortNames", "categories") if k in names}
            old_status = obj.get("status") or {}
            times = {c["type"]: c.get("lastTransitionTime") for c in old_status.get("conditions", [])}
            obj["status"] = {
                "acceptedNames": accepted,
                "storedVersions": [v["name"] for v in obj["spec"]["versions"] if v.get("storage")],
                "conditions": [
                    {
                        "type": t,
                        "status": "True",
                        "reason": r,
                        "message": m,
                        "lastTransitionTime": times.get(t) or now_rfc3339(),
                    }
                    for t, r, m in [
                        ("NamesAccepted", "NoConflicts", "no conflicts found"),
                        ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                    ]
                ],
            }

    def _crd_kinds(self, crd: Mapping[str, Any]) -> list[Kind]:
        """The kinds a CRD serves; raises ApiError (422) when the CRD is malformed."""
        name = crd.get("metadata", {}).get("name", "")
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        errors = []
        for path, value in [
            ("spec.group", spec.get("group")),
            ("spec.names.plural", names.get("plural")),
            ("spec.names.kind", names.get("kind")),
            ("spec.versions", spec.get("versions")),
        ]:
            if not value:
                errors.append(admission.FieldError(path, "FieldValueRequired", "Required value"))
        if not errors and name != f"{names['plural']}.{spec['group']}":
            errors.append(
                admission.FieldError(
                    "metadata.name",
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                )
            )
        crd_kind = self._kinds[kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
        if errors:
            raise self._invalid(crd_kind, name, errors)
        kinds = []
        for index, version in enumerate(spec["versions"]):
            if not version.get("served", True):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema") or {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            }
            try:
                checker = admission.Admission(schema, f"spec.versions[{index}].schema.openAPIV3Schema")
                table = tables.builder_for(names["plural"], version.get("additionalPrinterColumns") or [])
            except admission.AdmissionError as exc:
                raise self._invalid(crd_kind, name, exc.errors) from exc
            except (ValueError, KeyError) as exc:
                raise self._invalid(
                    crd_kind,
                    name,
                    [
                        admission.FieldError(
                            f"spec.versions[{index}].additionalPrinterColumns",
                            "FieldValueInvalid",
                            f"Invalid value: {json.dumps(str(exc))}: unsupported printer column",
                        )
                    ],
                ) from exc
            kinds.append(
                Kind(
                    group=spec["group"],
                    version=version["name"],
                    plural=names["plural"],
                    kind=names["kind"],
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    singular=names.get("singular", names["kind"].lower()),
                    short_names=list(names.get("shortNames", [])),
                    categories=list(names.get("categories", [])),
                    status_subresource="status" in (version.get("subresources") or {}),
                    custom=True,
                    admission=checker,
                    table=table,
                    crd_name=name,
                )
            )
        return kinds

    def _check_crd(self, crd: Mapping[str, Any]) -> None:
        self._crd_kinds(crd)

    def _register_crd(self, crd: Mapping[str, Any]) -> None:
        name = crd["metadata"]["name"]
        for resource in [k.resource for k in self._kinds.values() if k.crd_name == name]:
            self.unregister(resource)  # versions may have been dropped by an update
        for kind in self._crd_kinds(crd):
            self.register(kind)

    def _unregister_crd(self, crd: Mapping[str, Any]) -> None:
        name = crd["metadata"]["name"]
        for kind in [k for k in self._kinds.values() if k.crd_name == name]:
            for obj in self.list_objects(kind):
                self._commit(kind, copy.deepcopy(obj), "DELETED")
            for key in [key for key in self.objects if key[0] == kind.resource]:
                del self.objects[key]  # hard-delete: the resource is gone with its history
            self.unregister(kind.resource)

    def load_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Install a CRD (create, or replace an existing one with the same name)."""
        kind = self._kinds[kmock.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")]
        old = self.get_object(kind, None, crd.get("metadata", {}).get("name", ""))
        if old is None:
            obj = self._create(kind, None, crd, {})[0]
        else:
            replacement = {
                **copy.deepcopy(dict(crd)),
                "metadata": {
                    **crd.get("metadata", {}),
                    "resourceVersion": old["metadata"]["resourceVersion"],
                },
            }
            obj = self._update(kind, old, replacement, None, {})[0]
        return obj

    # ---------------------------------------------------------------------------- HTTP

    @override
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        if raw_request.path == "/openapi/v2":
            body = protobuf.openapi_v2_document("Kubernetes", "v1.32.0")
            return aiohttp.web.Response(body=body, content_type=protobuf.OPENAPI_V2_MIME)
        if raw_request.path.startswith("/openapi/v3"):
            document = self._openapi_v3(raw_request.path)
            if document is None:
                return _json(
                    ApiError(404, "NotFound", "the server could not find the requested resource").status(),
                    404,
                )
            return _json(document)
        route = parse_route(raw_request.path)
        if route is None:
            return await super().__call__(raw_request)  # discovery, /version: kmock's scaffold
        try:
            return await self._serve(raw_request, route)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    def _openapi_v3(self, path: str) -> dict[str, Any] | None:
        """Minimal OpenAPI v3 documents: enough for kubectl to see that the server validates fields.

        kubectl refuses to apply without OpenAPI, and with it asks for ``fieldValidation=Strict``
        when a resource's PATCH operation declares that parameter. CRD schemas are included so
        that ``kubectl explain`` works for custom kinds.
        """

        def gv_path(kind: Kind) -> str:
            return f"apis/{kind.group}/{kind.version}" if kind.group else f"api/{kind.version}"

        groups: dict[str, list[Kind]] = {}
        for kind in self._kinds.values():
            groups.setdefault(gv_path(kind), []).append(kind)
        wanted = path.removeprefix("/openapi/v3").strip("/")
        if not wanted:
            return {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}"} for gv in groups}}
        if wanted not in groups:
            return None
        paths: dict[str, Any] = {}
        schemas: dict[str, Any] = {}
        for kind in groups[wanted]:
            gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
            prefix = f"/{wanted}/namespaces/{{namespace}}" if kind.namespaced else f"/{wanted}"
            paths[f"{prefix}/{kind.plural}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OK"}},
                }
            }
            if kind.admission is not None:
                reverse = ".".join(reversed(kind.group.split(".")))
                schemas[f"{reverse}.{kind.version}.{kind.kind}"] = {
                    **kind.admission.schema,
                    "x-kubernetes-group-version-kind": [gvk],
                }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths,
            "components": {"schemas": schemas},
        }

    async def _serve(self, request: aiohttp.web.BaseRequest, route: Route) -> aiohttp.web.StreamResponse:
        kind = self._kinds.get(kmock.resource(route.group, route.version, route.plural))
        if kind is None or (route.namespace is not None and not kind.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.subresource is not None and not (route.subresource == "status" and kind.status_subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        params = dict(request.query)
        method = request.method
        if method == "GET" and _is_true(params.get("watch")):
            if route.name is not None:
                params["fieldSelector"] = ",".join(
                    filter(None, [params.get("fieldSelector"), f"metadata.name={route.name}"])
                )
            return await self._watch(request, kind, route.namespace, params)
        if route.name is None:
            if method == "GET":
                return self._list(request, kind, route.namespace, params)
            if method == "POST":
                obj, warnings = self._create(kind, route.namespace, await self._body(request), params)
                return _json(obj, 201, warnings)
            if method == "DELETE":
                return self._delete_collection(kind, route.namespace, params)
            raise ApiError(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        old = self.get_object(kind, route.namespace, route.name)
        if old is None:
            raise self._not_found(kind, route.name)
        if method == "GET":
            if _wants_table(request):
                return _json(
                    kind.table.table(
                        [old],
                        old["metadata"]["resourceVersion"],
                        include_object=params.get("includeObject", "Metadata"),
                    )
                )
            return _json(old)
        if method == "PUT":
            body = await self._body(request)
            given = body.get("metadata", {}).get("resourceVersion") if isinstance(body, dict) else None
            if given and given != old["metadata"]["resourceVersion"]:
                raise self._conflict(kind, route.name)
            if not given and kind.custom:
                raise self._invalid(
                    kind,
                    route.name,
                    [
                        admission.FieldError(
                            "metadata.resourceVersion",
                            "FieldValueInvalid",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
            obj, warnings = self._update(kind, old, copy.deepcopy(body), route.subresource, params)
            return _json(obj, 200, warnings)
        if method == "PATCH":
            patched = self._patch(kind, old, request.content_type, await self._body(request))
            obj, warnings = self._update(kind, old, patched, route.subresource, params)
            return _json(obj, 200, warnings)
        if method == "DELETE":
            options = await self._body(request, optional=True)
            return _json(self._delete(kind, old, params, options if isinstance(options, dict) else {}))
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    @staticmethod
    async def _body(request: aiohttp.web.BaseRequest, optional: bool = False) -> Any:
        raw = await request.read()
        if "protobuf" in request.content_type:
            # kubectl's generator commands (create namespace/secret/configmap) send protobuf.
            try:
                return protobuf.decode(raw)
            except (ValueError, IndexError) as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the sandbox API cannot decode this protobuf "
                    f"body ({exc}); send JSON, e.g. with kubectl apply -f",
                ) from exc
        if not raw.strip():
            if optional:
                return {}
            raise ApiError(400, "BadRequest", "the request has no body")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"the body of the request is not JSON: {exc}") from exc

    def _patch(self, kind: Kind, old: Mapping[str, Any], content_type: str, patch: Any) -> Any:
        name = old["metadata"]["name"]
        if content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")
            try:
                return jsonpatch.apply_patch(copy.deepcopy(dict(old)), patch)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: {exc}",
                    {"name": name, "kind": kind.plural},
                ) from exc
        if content_type == "application/merge-patch+json" or (
            content_type == "application/strategic-merge-patch+json" and not kind.custom
        ):
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            given = (patch.get("metadata") or {}).get("resourceVersion")
            if given and given != old["metadata"]["resourceVersion"]:
                raise self._conflict(kind, name)  # the server honours it as a precondition
            return merge_patch(copy.deepcopy(dict(old)), _drop_directives(patch))
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format "
            f"({content_type}) - accepted media types include: application/json-patch+json, "
            "application/merge-patch+json"
            + ("" if kind.custom else ", application/strategic-merge-patch+json"),
        )

    def _selected(self, kind: Kind, namespace: str | None, params: Mapping[str, str]) -> list[dict[str, Any]]:
        match = self._matcher(params)
        return [obj for obj in self.list_objects(kind, namespace) if match(obj)]

    @staticmethod
    def _matcher(params: Mapping[str, str]) -> Matcher:
        labels = label_matcher(params.get("labelSelector", ""))
        fields = field_matcher(params.get("fieldSelector", ""))
        return lambda obj: labels(obj) and fields(obj)

    def _list(
        self, request: aiohttp.web.BaseRequest, kind: Kind, namespace: str | None, params: Mapping[str, str]
    ) -> aiohttp.web.Response:
        items = sorted(
            self._selected(kind, namespace, params),
            key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]),
        )
        if _wants_table(request):
            return _json(
                kind.table.table(items, str(self._rv), include_object=params.get("includeObject", "Metadata"))
            )
        return _json(
            {
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        )

    def _delete_collection(
        self, kind: Kind, namespace: str | None, params: Mapping[str, str]
    ) -> aiohttp.web.Response:
        items = [self._delete(kind, obj, params, {}) for obj in self._selected(kind, namespace, params)]
        return _json(
            {
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        )

    # ---------------------------------------------------------------------------- watch

    async def _watch(
        self, request: aiohttp.web.BaseRequest, kind: Kind, namespace: str | None, params: Mapping[str, str]
    ) -> aiohttp.web.StreamResponse:
        match = self._matcher(params)
        since = params.get("resourceVersion", "")
        try:
            since_rv = int(since) if since else 0
            timeout = float(params.get("timeoutSeconds") or WATCH_SECONDS)
        except ValueError as exc:
            raise ApiError(400, "BadRequest", f"invalid watch parameter: {exc}") from exc
        bookmarks = _is_true(params.get("allowWatchBookmarks"))
        initial = since_rv == 0 or _is_true(params.get("sendInitialEvents"))
        as_table = _wants_table(request)
        include = params.get("includeObject", "Metadata")
        first_table = True

        def render(event_type: str, obj: dict[str, Any]) -> bytes:
            nonlocal first_table
            if as_table and event_type != "BOOKMARK":
                obj = kind.table.table(
                    [obj],
                    obj["metadata"]["resourceVersion"],
                    include_object=include,
                    with_definitions=first_table,
                )
                first_table = False
            return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"

        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # Where in the event log this watch starts: after `since`, or after "now" for initial ADDEDs.
        position = self._log_base + (
            len(self._log) if initial else bisect.bisect_right(self._log, since_rv, key=lambda e: e.rv)
        )
        expired = not initial and since_rv < self._rv and (not self._log or self._log[0].rv > since_rv + 1)
        try:
            if expired:
                gone = ApiError(410, "Expired", f"too old resource version: {since_rv} ({self._rv})").status()
                await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                return response
            if initial:
                for obj in sorted(
                    self._selected(kind, namespace, params),
                    key=lambda o: int(o["metadata"]["resourceVersion"]),
                ):
                    await response.write(render("ADDED", obj))
                if bookmarks and _is_true(params.get("sendInitialEvents")):
                    await response.write(render("BOOKMARK", self._bookmark(kind, initial_end=True)))
            while not self._closing:
                wakeup = self._wakeup  # taken before draining, so no event can slip in unseen
                if position < self._log_base:
                    gone = ApiError(410, "Expired", "the watch fell behind the event log").status()
                    await response.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                    break
                while position < self._log_base + len(self._log):
                    event = self._log[position - self._log_base]
                    position += 1
                    ns = event.object["metadata"].get("namespace")
                    if event.resource == kind.resource and namespace in (None, ns) and match(event.object):
                        line = render(event.type, event.object) if as_table else event.line()
                        await response.write(line)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(wakeup.wait(), min(remaining, BOOKMARK_SECONDS))
                except TimeoutError:
                    if bookmarks and loop.time() < deadline:
                        await response.write(render("BOOKMARK", self._bookmark(kind)))
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away
        return response

    def _bookmark(self, kind: Kind, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}

    def close_watches(self) -> None:
        """End all open watches (before the server stops, so that it stops at once)."""
        self._closing = True
        self._wakeup.set()
