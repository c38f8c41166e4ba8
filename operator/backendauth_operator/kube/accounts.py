"""Which AWS account a BackendAuth acts in, and under which role: administrators decide, tenants
cannot.

* A Namespace annotation, :data:`OWNER_ACCOUNT` (``"<12 digits>"``), names the account of every
  BackendAuth in it. A namespace without it uses the operator's own credentials.
* A ConfigMap in the operator's namespace (``BACKENDAUTH_ACCOUNT_MAP``) maps each account id to
  the role the operator assumes there: a role ARN, or a YAML mapping ``{roleArn, externalId?,
  sessionName?}``.

Nothing in a BackendAuth's spec names a role or an account. The parsing and the resolution are
pure (:func:`parse_account_map`, :func:`resolve`); :class:`AccountDirectory` keeps what the
watches of Namespaces and of the one ConfigMap show, reading through to the API server for a
namespace or a map not seen yet, so that a step never guesses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import yaml
from kubernetes.client.exceptions import ApiException

from backendauth_operator.core.role import DEFAULT_SESSION_NAME, OWNER_ACCOUNT, Role
from backendauth_operator.kube.client import request

_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
_ROLE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:iam::([0-9]{12}):role/[\w+=,.@/-]{1,512}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")

logger = logging.getLogger("backendauth_operator.kube.accounts")


@dataclass(frozen=True)
class AccountMap:
    """The ConfigMap's entries: a role per account, and the entries that cannot be used (account
    → a message naming the key). ``where`` is ``namespace/name`` of the ConfigMap."""

    where: str
    roles: Mapping[str, Role] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)
    exists: bool = True

    def entry(self, account: str) -> Role | str | None:
        """The role of ``account``, the message of its unusable entry, or None (not mapped)."""
        return self.roles.get(account) or self.problems.get(account)


def parse_role(where: str, key: str, value: Any) -> Role:
    """One entry of the map; ValueError with a message naming ``where`` and ``key``."""
    at = f"ConfigMap {where} key {key!r}"
    if not _ACCOUNT_ID.match(key):
        raise ValueError(f"{at}: the key must be a 12-digit AWS account id")
    try:
        parsed = yaml.safe_load(value) if isinstance(value, str) else value
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"{at}: not a role ARN nor a YAML mapping{line}") from None
    if isinstance(parsed, str):
        parsed = {"roleArn": parsed}
    if not isinstance(parsed, Mapping):
        raise ValueError(f"{at}: expected a role ARN or a mapping with roleArn, externalId, sessionName")
    unknown = sorted(set(map(str, parsed)) - {"roleArn", "externalId", "sessionName"})
    if unknown:
        raise ValueError(
            f"{at}: unknown field(s) {', '.join(unknown)}; expected roleArn, externalId, sessionName"
        )
    arn = parsed.get("roleArn")
    match = _ROLE_ARN.match(arn) if isinstance(arn, str) else None
    if match is None:
        raise ValueError(f"{at}: roleArn must be an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)")
    if match.group(1) != key:
        raise ValueError(f"{at}: roleArn is a role of account {match.group(1)}, not of {key}")
    external_id = parsed.get("externalId")
    if external_id is not None and not (isinstance(external_id, str) and _EXTERNAL_ID.match(external_id)):
        # The value itself is never echoed: an external id is a shared secret of sorts.
        raise ValueError(f"{at}: externalId must be 2 to 1224 characters of [A-Za-z0-9+=,.@:/_-]")
    session = parsed.get("sessionName", DEFAULT_SESSION_NAME)
    if not (isinstance(session, str) and _SESSION_NAME.match(session)):
        raise ValueError(f"{at}: sessionName must be 2 to 64 characters of [A-Za-z0-9+=,.@_-]")
    return Role(str(arn), key, external_id, session)


def parse_account_map(where: str, data: Mapping[str, Any] | None, exists: bool = True) -> AccountMap:
    """The map of a ConfigMap's ``data``; each unusable entry becomes a problem of its key,
    never an exception."""
    roles: dict[str, Role] = {}
    problems: dict[str, str] = {}
    for key, value in (data or {}).items():
        try:
            roles[str(key)] = parse_role(where, str(key), value)
        except ValueError as error:
            problems[str(key)] = str(error)
    return AccountMap(where, roles, problems, exists)


@dataclass(frozen=True)
class Target:
    """Where the BackendAuths of a namespace act: ``account`` (12 digits; for a namespace without
    the annotation the operator's own, empty when unknown) under ``role`` (None: the operator's
    own credentials). ``problem`` (reason, message): the account cannot be acted in, until an
    administrator fixes the annotation or the map. ``unreadable``: the namespace or the map
    could not be read (retried)."""

    account: str = ""
    role: Role | None = None
    annotated: bool = False
    problem: tuple[str, str] | None = None
    unreadable: str | None = None


OWN = Target()


def resolve(namespace: str, annotation: str | None, account_map: AccountMap | None, own: str) -> Target:
    """The target of a namespace with ``annotation`` (None: not annotated), given the map."""
    if annotation is None:
        return Target(account=own)
    value = annotation.strip()
    if not _ACCOUNT_ID.match(value):
        message = (
            f"Namespace {namespace}: annotation {OWNER_ACCOUNT} must be a 12-digit AWS account id, "
            f"not {annotation[:40]!r}"
        )
        return Target(annotated=True, problem=("BadAnnotation", message))
    where = account_map.where if account_map is not None else "the account map"
    entry = account_map.entry(value) if account_map is not None else None
    if isinstance(entry, Role):
        return Target(account=value, role=entry, annotated=True)
    if isinstance(entry, str):
        return Target(account=value, annotated=True, problem=("AccountNotMapped", entry))
    missing = "" if account_map is None or account_map.exists else " (it does not exist)"
    message = (
        f"Namespace {namespace} names AWS account {value}, which has no role in ConfigMap "
        f"{where}{missing}; add the key {value!r} with the role's ARN "
        f"(arn:aws:iam::{value}:role/NAME) for the operator to assume"
    )
    return Target(account=value, annotated=True, problem=("AccountNotMapped", message))


# ---- what the watches show --------------------------------------------------------------------


class AccountDirectory:
    """The annotation of every namespace and the account map, as the watches last showed them;
    a namespace or a map not seen yet is read from the API server (and remembered). Thread-safe.

    ``kube``: a :class:`~kube.KubeClient`; ``own_account``: the operator's own account id if
    known already, without asking AWS (empty otherwise: the step asks when it must)."""

    def __init__(
        self, kube: Any, map_namespace: str, map_name: str, own_account: Callable[[], str] = lambda: ""
    ) -> None:
        self.kube = kube
        self.map_namespace, self.map_name = map_namespace, map_name
        self.where = f"{map_namespace}/{map_name}"
        self.own_account = own_account
        self._namespaces: dict[str, str | None] = {}
        self._map: AccountMap | None = None
        self._lock = threading.Lock()

    # -- a step's question
    def target(self, namespace: str) -> Target:
        """Where the BackendAuths of ``namespace`` act now."""
        try:
            annotation = self._annotation(namespace)
        except ApiException as error:
            return Target(unreadable=f"cannot read Namespace {namespace}: {error.status} {error.reason}")
        if annotation is None:
            return Target(account=self.own_account())
        try:
            account_map = self._account_map()
        except ApiException as error:
            return Target(
                annotated=True,
                unreadable=f"cannot read ConfigMap {self.where}: {error.status} {error.reason}",
            )
        return resolve(namespace, annotation, account_map, "")

    def known_account(self, namespace: str) -> str:
        """The account ``namespace``'s BackendAuths act in as far as the watches have shown it,
        without a request: its annotation, else the operator's own account if known (empty
        otherwise). What the resync budget is keyed by, as calls are paced."""
        with self._lock:
            annotation = self._namespaces.get(namespace)
        if annotation is not None and _ACCOUNT_ID.match(annotation):
            return annotation
        return "" if annotation is not None else self.own_account()

    def _annotation(self, namespace: str) -> str | None:
        with self._lock:
            if namespace in self._namespaces:
                return self._namespaces[namespace]
        obj = self.kube.request("GET", f"/api/v1/namespaces/{quote(namespace)}")
        value = ((obj.get("metadata") or {}).get("annotations") or {}).get(OWNER_ACCOUNT)
        with self._lock:
            return self._namespaces.setdefault(namespace, value)

    def _account_map(self) -> AccountMap:
        with self._lock:
            if self._map is not None:
                return self._map
        path = f"/api/v1/namespaces/{quote(self.map_namespace)}/configmaps/{quote(self.map_name)}"
        try:
            obj: Mapping[str, Any] | None = self.kube.request("GET", path)
        except ApiException as error:
            if error.status != 404:
                raise
            obj = None
        parsed = self.parsed(obj)
        with self._lock:
            if self._map is None:
                self._map = parsed
            return self._map

    def parsed(self, obj: Mapping[str, Any] | None) -> AccountMap:
        if obj is None:
            return AccountMap(self.where, exists=False)
        return parse_account_map(self.where, obj.get("data") or {})

    # -- what the watches show
    def namespace_seen(
        self, namespace: str, annotations: Mapping[str, str] | None, gone: bool = False
    ) -> bool:
        """A Namespace's watch event; True when its annotation changed from what was known."""
        value = None if gone else (annotations or {}).get(OWNER_ACCOUNT)
        with self._lock:
            known = namespace in self._namespaces
            before = self._namespaces.get(namespace)
            if gone:
                self._namespaces.pop(namespace, None)
            else:
                self._namespaces[namespace] = value
        return known and before != value

    def map_seen(self, obj: Mapping[str, Any] | None) -> set[str]:
        """The ConfigMap as a watch shows it (None: deleted); the accounts whose entry changed."""
        parsed = self.parsed(obj)
        with self._lock:
            before, self._map = self._map, parsed
        if before is None:
            return set()
        for account, problem in parsed.problems.items():
            if before.problems.get(account) != problem:
                logger.warning(problem)
        accounts = set(before.roles) | set(before.problems) | set(parsed.roles) | set(parsed.problems)
        return {a for a in accounts if before.entry(a) != parsed.entry(a)}

    def namespaces_of(self, accounts: set[str]) -> set[str]:
        """The namespaces known to name one of ``accounts``."""
        with self._lock:
            return {
                ns
                for ns, value in self._namespaces.items()
                if value is not None and value.strip() in accounts
            }


class NamedWatch:
    """Watches one object by name (``fieldSelector=metadata.name=``, which a rule limited to
    that name by ``resourceNames`` allows) on a thread of its own, and reports every version of
    it to ``report`` (None: it is gone, or does not exist). ``collection`` is the path of its
    kind (``/api/v1/namespaces`` or ``/api/v1/namespaces/NS/configmaps``); ``what`` names it in
    log lines. Plain JSON requests, as the operator's other calls: the generated API classes
    would cost about 20 MiB for two small watches."""

    def __init__(
        self, api_client: Any, collection: str, name: str, what: str,
        report: Callable[[Mapping[str, Any] | None], None], timeout: int = 300,
    ) -> None:  # fmt: skip
        self.api_client, self.collection, self.name = api_client, collection, name
        self.what, self.report, self.timeout = what, report, timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None

    def start(self) -> NamedWatch:
        self._thread = threading.Thread(target=self._run, name=f"watch {self.what}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()  # unblocks a read in progress
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._list_and_watch()
                failures = 0
            except Exception as error:
                if self._stop.is_set():
                    return
                failures += 1
                status = getattr(error, "status", None)
                text = f"{status} {getattr(error, 'reason', '')}".strip() if status else str(error)
                if failures == 1 or failures % 30 == 0:
                    logger.warning(f"Cannot watch {self.what}: {text}")
                self._stop.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))

    def _list_and_watch(self) -> None:
        selector = "fieldSelector=" + quote(f"metadata.name={self.name}", safe="")
        listed = request(self.api_client, "GET", f"{self.collection}?{selector}")
        items = listed.get("items") or []
        self.report(items[0] if items else None)
        version = (listed.get("metadata") or {}).get("resourceVersion")
        while not self._stop.is_set():
            query = f"{selector}&watch=true&allowWatchBookmarks=true&timeoutSeconds={self.timeout}"
            if version:
                query += f"&resourceVersion={quote(str(version), safe='')}"
            self._response = response = open_stream(
                self.api_client, f"{self.collection}?{query}", (5, self.timeout + 10)
            )
            try:
                for line in response:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, raw = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":  # e.g. 410 Gone: list again
                        return
                    version = (raw.get("metadata") or {}).get("resourceVersion") or version
                    if kind in ("ADDED", "MODIFIED"):
                        self.report(raw)
                    elif kind == "DELETED":
                        self.report(None)
                    if self._stop.is_set():
                        return
            finally:
                self._response = None
                response.release_conn()


def open_stream(api_client: Any, path: str, timeout: tuple[float, float]) -> Any:
    """A GET of ``path`` whose answer is read as it comes (a watch): the urllib3 response,
    iterated line by line. A status outside 2xx raises :class:`ApiException`."""
    method, url, headers, _, _ = api_client.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    answer = api_client.call_api(method, url, headers, None, None, _request_timeout=timeout)
    if not 200 <= answer.status <= 299:
        answer.read()
        raise ApiException(http_resp=answer)
    return answer.response


def map_watch(kube: Any, directory: AccountDirectory, changed: Callable[[set[str]], None]) -> NamedWatch:
    """The watch of the account map: ``changed`` gets the accounts whose entry changed."""

    def report(obj: Mapping[str, Any] | None) -> None:
        accounts = directory.map_seen(obj)
        if accounts:
            changed(accounts)

    what = f"ConfigMap {directory.where} (the account map)"
    collection = f"/api/v1/namespaces/{quote(directory.map_namespace)}/configmaps"
    return NamedWatch(kube.api_client, collection, directory.map_name, what, report)


def namespace_watch(
    kube: Any, directory: AccountDirectory, namespace: str, changed: Callable[[str], None]
) -> NamedWatch:
    """The watch of one Namespace (an operator that watches named namespaces needs no right to
    list every Namespace): ``changed`` gets its name when its account annotation changed."""

    def report(obj: Mapping[str, Any] | None) -> None:
        annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
        if directory.namespace_seen(namespace, annotations, gone=obj is None):
            changed(namespace)

    return NamedWatch(kube.api_client, "/api/v1/namespaces", namespace, f"Namespace {namespace}", report)
