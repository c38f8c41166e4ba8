"""``backendauth-operator plan``: what the operator would do for BackendAuth manifests, without
doing it.

For each BackendAuth it reads AWS with read-only calls (GetBackendAuth) and asks the operator's
own :func:`~decide.decide`, then prints the verdict field by field: create, update (with the
fields AWS has otherwise), adopt, stall on a change AWS cannot make, or nothing. Secret values
are never read nor shown: a secret field is only said to be sent ("would change") or not
("unchanged"); AWS never shows them, so they cannot be compared.

Without access to the cluster, the plan cannot see the operator's record of what it sent: it
takes the manifest's word. An auth resource that AWS has belongs to the BackendAuth that names
it, unless ``adoptionPolicy: AdoptOrCreate`` says it is to be taken over; and the Secret values
are taken to be the ones AWS has.

Exit codes, as ``terraform plan -detailed-exitcode``: 0 nothing to change, 2 changes (or a
stall), 1 an error.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import yaml

from backendauth_operator import GROUP, KIND
from backendauth_operator.aws.amplify import AmplifyBackend
from backendauth_operator.aws.clients import ClientFactory
from backendauth_operator.config import Settings
from backendauth_operator.core.bookkeeping import COMPLETED, CREATE, CREATED, PAUSED, Job
from backendauth_operator.core.decide import Observation, Settle, Snapshot, Submit, decide
from backendauth_operator.core.failure import Failure
from backendauth_operator.core.import_types import ImportCheck, ImportIds
from backendauth_operator.core.models import IMPORT_IDS, SECRET_BOTO_KEYS, IdSource, spec_path
from backendauth_operator.runtime.import_reads import links
from backendauth_operator.runtime.reading import NO_REGION, read

PLAN_NO_REGION = (
    "spec.region: required, as AWS_REGION is not set; give spec.region in the manifest, "
    "or set AWS_REGION (e.g. export AWS_REGION=us-east-1)"
)


@dataclass(frozen=True)
class Change:
    """One field: what AWS has (``before``), what the spec asks (``after``)."""

    path: str
    before: Any = None
    after: Any = None


@dataclass
class Verdict:
    """What the operator would do for one BackendAuth."""

    namespace: str
    name: str
    action: str  # create, import, update, adopt, stall, nothing, unknown, error
    reason: str = ""
    message: str = ""
    calls: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # path -> "would change" | "unchanged"

    @property
    def changes_aws(self) -> bool:
        return bool(self.calls) or self.action in ("stall", "unknown")


def manifests(paths: Sequence[str], stdin: TextIO) -> Iterator[dict[str, Any]]:
    """The BackendAuths of the files (``-``: stdin; a directory: its YAML and JSON files), Lists
    unpacked; other kinds are skipped."""
    for path in paths:
        if path != "-" and Path(path).is_dir():
            files = sorted(p for p in Path(path).iterdir() if p.suffix in (".yaml", ".yml", ".json"))
            yield from manifests([str(p) for p in files], stdin)
            continue
        text = stdin.read() if path == "-" else Path(path).read_text()
        for doc in yaml.safe_load_all(text):
            yield from _backendauths(doc)


def _backendauths(doc: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(doc, dict):
        return
    if doc.get("kind") == "List" or (str(doc.get("kind", "")).endswith("List") and "items" in doc):
        for item in doc.get("items") or []:
            yield from _backendauths(item)
    elif doc.get("kind") == KIND and str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"):
        yield doc


def plan_one(doc: Mapping[str, Any], settings: Settings, clients: ClientFactory, namespace: str) -> Verdict:
    """The verdict for one manifest: one GetBackendAuth, then :func:`decide`."""
    meta = dict(doc.get("metadata") or {})
    meta.setdefault("namespace", namespace)
    paused = (meta.get("annotations") or {}).get(PAUSED)
    meta.update(uid="plan", generation=1, annotations={PAUSED: paused} if paused else {})
    verdict = Verdict(str(meta["namespace"]), str(meta.get("name")), "error")
    # The operator's own credentials, whatever account the namespace may name (no cluster read).
    s = replace(
        read({"metadata": meta, "spec": doc.get("spec") or {}}, settings, time.time()), ask_own_account=False
    )
    if s.spec_error is None and s.spec is not None and s.spec.import_ is not None:
        return _plan_import(verdict, s, clients)
    if s.spec_error is not None or s.desired is None:
        verdict.message = (PLAN_NO_REGION if s.spec_error == NO_REGION else s.spec_error) or "no spec"
        return verdict
    found = AmplifyBackend(clients, s.region).resource(s.app, s.env, s.resource_name)
    if isinstance(found, Failure):
        verdict.reason, verdict.message = found.reason, found.message
        return verdict
    s = replace(s, observed=Observation(resource=found.config))
    if found.config is not None and not s.adopt:
        # Ours, and as far as the manifest says, last sent as it is now.
        sent = Job("", "", COMPLETED, s.app, s.env, generation=1, fingerprint=s.fingerprint, verified=True)
        s = replace(s, owned=True, job=sent)
    return _verdict(verdict, s, decide(s))


def _plan_import(verdict: Verdict, s: Snapshot, clients: ClientFactory) -> Verdict:
    """An import: one GetBackend, then :func:`decide` (no Cognito read: the operator checks the
    pools before its job). Ids read from a ConfigMap or Secret cannot be read without the
    cluster: they are shown as where they come from, and compared with nothing."""
    config = s.spec.import_ if s.spec is not None else None
    assert config is not None
    literal = {id_.key: config.literal(id_.key) for id_ in IMPORT_IDS}
    sources = {id_.key: config.source(id_.key) for id_ in IMPORT_IDS if config.source(id_.key) is not None}
    shown = links(AmplifyBackend(clients, s.region), s.app, s.env)
    if isinstance(shown, Failure):
        verdict.reason, verdict.message = shown.reason, shown.message
        return verdict
    given = [key for key in literal if literal[key] or key in sources]
    wanted = {key: literal[key] or _from(sources.get(key)) for key in given}
    if sources and shown:
        verdict.action, verdict.reason = "unknown", "ImportFromCluster"
        names = ", ".join(link.name for link in shown)
        read = ", ".join(f"spec.import.{key}From" for key in sources)
        verdict.message = (
            f"AWS shows {names} on {s.app}/{s.env}; whether it links the ids of {read} is known only "
            "once they are read in the cluster"
        )
        verdict.changes = [Change(f"import.{key}", None, value) for key, value in wanted.items()]
        return verdict
    ids = ImportIds.of({key: literal[key] or "" for key in literal})
    checked = ImportCheck(None)  # not read here (see above): taken as nothing found wrong
    s = replace(s, import_ids=ids, import_check=checked, observed=Observation(resource=None, links=shown))
    if shown:
        # Ours, and as far as the manifest says, last linked as it is now.
        seen = Job("", "", COMPLETED, s.app, s.env, generation=1, fingerprint=s.fingerprint, verified=True)
        s = replace(s, owned=True, job=seen)
    plan = decide(s)
    if isinstance(plan, Submit):
        verdict.action, verdict.reason, verdict.calls = "import", "NotFound", [plan.operation]
        verdict.changes = [Change(f"import.{key}", None, value) for key, value in wanted.items()]
        return verdict
    assert isinstance(plan, Settle) and plan.state is not None, plan
    verdict.reason, verdict.message = plan.state.reason, plan.state.message
    if plan.state.phase == "ready" or plan.state.reason == "Paused":
        verdict.action = "nothing"
    else:
        verdict.action = "stall" if plan.state.phase == "stalled" else "error"
        have = dict(shown[0].ids.items()) if shown else {}
        verdict.changes = [
            Change(f"import.{key}", have.get(key), value)
            for key, value in wanted.items()
            if have.get(key) != value
        ]
    return verdict


def _from(source: IdSource | None) -> str:
    if source is None:
        return ""
    if source.secret_key_ref is not None:
        return f"(Secret {source.secret_key_ref.name} key {source.secret_key_ref.key})"
    ref = source.config_map_key_ref
    assert ref is not None
    return f"(ConfigMap {ref.name} key {ref.key})"


def _verdict(verdict: Verdict, s: Snapshot, plan: Any) -> Verdict:
    desired = s.desired or {}
    have = (s.observed.resource if s.observed else None) or {}
    secrets = _secret_paths(desired)
    if isinstance(plan, Submit):
        adopting = plan.books.annotations.get(CREATED) == "true"
        verdict.calls = [plan.operation]
        if plan.operation == CREATE:
            verdict.action, verdict.reason = "create", "NotFound"
            verdict.changes = [Change(path, None, value) for path, value in _leaves(desired)]
        else:
            verdict.action = "adopt" if adopting else "update"
            verdict.reason = "Adopted" if adopting else "Drifted"
            verdict.changes = _changes(desired, have, plan.books.drift or ())
        verdict.secrets = {path: "would change" for path in secrets}
        return verdict
    assert isinstance(plan, Settle) and plan.state is not None, plan
    verdict.reason, verdict.message = plan.state.reason, plan.state.message
    if plan.state.phase == "ready" or plan.state.reason == "Paused":
        verdict.action = "adopt" if plan.state.reason == "Adopted" else "nothing"
    else:
        verdict.action = "stall" if plan.state.phase == "stalled" else "error"
        verdict.changes = _changes(desired, have, plan.drift or ())
    verdict.secrets = {path: "unchanged" for path in secrets}
    return verdict


def _leaves(config: Mapping[str, Any], at: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(spec path, value) of every non-secret value of a boto3 ``ResourceConfig``."""
    for key, value in config.items():
        if key in SECRET_BOTO_KEYS:
            continue
        if isinstance(value, Mapping):
            yield from _leaves(value, (*at, key))
        else:
            yield spec_path((*at, key)), value


def _secret_paths(config: Mapping[str, Any], at: tuple[str, ...] = ()) -> list[str]:
    out: list[str] = []
    for key, value in config.items():
        if key in SECRET_BOTO_KEYS:
            out.append(spec_path((*at, key)))
        elif isinstance(value, Mapping):
            out += _secret_paths(value, (*at, key))
    return out


def _changes(desired: Mapping[str, Any], have: Mapping[str, Any], drift: Iterable[str]) -> list[Change]:
    """Each differing path with AWS's value and the spec's (a whole block when AWS lacks it)."""
    by_path = dict(_nodes(desired))
    seen = dict(_nodes(have))
    return [Change(path, seen.get(path), by_path.get(path)) for path in drift]


def _nodes(config: Mapping[str, Any], at: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    for key, value in config.items():
        if key in SECRET_BOTO_KEYS:
            continue
        yield spec_path((*at, key)), _public(value)
        if isinstance(value, Mapping):
            yield from _nodes(value, (*at, key))


def _public(value: Any) -> Any:
    """``value`` without its secrets, at any depth."""
    if isinstance(value, Mapping):
        return {k: _public(v) for k, v in value.items() if k not in SECRET_BOTO_KEYS}
    return value


def render_text(verdicts: Sequence[Verdict]) -> str:
    """One block per BackendAuth: the verdict, then one line per field."""
    lines: list[str] = []
    for v in verdicts:
        calls = f" ({', '.join(v.calls)})" if v.calls else ""
        why = f": {v.message}" if v.message and v.action in ("stall", "error", "unknown") else ""
        lines.append(f"BackendAuth {v.namespace}/{v.name}: {v.action}{calls}{why}")
        for change in v.changes:
            if v.action in ("create", "import") or (v.action == "unknown" and change.before is None):
                lines.append(f"  + {change.path} = {json.dumps(change.after)}")
            else:
                lines.append(f"  ~ {change.path}: {json.dumps(change.before)} -> {json.dumps(change.after)}")
        for path, state in v.secrets.items():
            lines.append(f"  {'~' if state == 'would change' else ' '} {path}: (secret) {state}")
    changed = sum(1 for v in verdicts if v.changes_aws)
    errors = sum(1 for v in verdicts if v.action == "error")
    failed = f"{errors} error{'s' if errors != 1 else ''}, " if errors else ""
    lines.append(f"{len(verdicts)} BackendAuth(s): {failed}{changed} to change.")
    return "\n".join(lines) + "\n"


def render_json(verdicts: Sequence[Verdict]) -> str:
    return json.dumps([asdict(v) for v in verdicts], indent=2, default=str) + "\n"


def exit_code(verdicts: Sequence[Verdict]) -> int:
    """0: nothing to change; 2: changes; 1: an error (a bad manifest, AWS unreadable)."""
    if any(v.action == "error" for v in verdicts):
        return 1
    return 2 if any(v.changes_aws for v in verdicts) else 0


def run(paths: Sequence[str], namespace: str, output: str, settings: Settings) -> int:
    """The ``plan`` command."""
    try:
        docs = list(manifests(paths, sys.stdin))
    except (OSError, yaml.YAMLError) as error:
        print(f"backendauth-operator plan: {error}", file=sys.stderr)
        return 1
    clients = ClientFactory(settings.aws_endpoint_url)
    verdicts = [plan_one(doc, settings, clients, namespace) for doc in docs]
    sys.stdout.write(render_json(verdicts) if output == "json" else render_text(verdicts))
    return exit_code(verdicts)
