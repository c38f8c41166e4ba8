"""The reference pages that must not drift, generated from the code at every ``mkdocs build``.

A page holds a marker such as ``<!-- generated: spec -->``; this hook (``hooks:`` in mkdocs.yml)
replaces it with what the code says now:

- ``spec`` and ``status``: every field of the CRD's openAPIV3Schema, built by
  ``backendauth_operator.commands.crd.build_crd()`` from the pydantic models (the same source as
  ``crds/``), with its type, whether it is required, its values, limits, immutability, CEL rules
  and description;
- ``configuration``: every setting of ``backendauth_operator.config.Settings``;
- ``metrics``: every metric ``backendauth_operator.metrics.OperatorMetrics`` declares;
- ``cli``: every sub-command and option of ``backendauth_operator.commands.cli.build_parser()``;
- ``states``: the reconciler's steps as a diagram, drawn by running ``decide.decide`` on every
  row of its decision tables (tests/test_decide.py).

An unknown marker, a setting without a description here, or a description of a setting that no
longer exists fails the build. The hook lives under docs/, outside the operator's package.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")


def _cell(text: Any) -> str:
    """Text fit for one Markdown table cell: one line, no column break, and ``<name>`` shown as
    written rather than taken for an HTML tag (the text holds no code spans)."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: Any) -> str:
    """A code span, fit for a table cell as it is (Python-Markdown splits no cell inside one)."""
    value = " ".join(str(text).split())
    fence = "``" if "`" in value else "`"
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


# ---- the CRD ------------------------------------------------------------------------------------


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type(schema['additionalProperties'])}"
    if schema.get("x-kubernetes-int-or-string"):
        return "integer or string"
    if schema.get("x-kubernetes-preserve-unknown-fields") and not kind:
        return "any"
    return str(kind or "any")


def _limits(schema: dict[str, Any]) -> list[str]:
    words = []
    if "enum" in schema:
        words.append("one of " + ", ".join(_code(v) for v in schema["enum"]))
    items = schema.get("items", {})
    if "enum" in items:
        words.append("each one of " + ", ".join(_code(v) for v in items["enum"]))
    for key, say in (
        ("minLength", "length ≥ {}"),
        ("maxLength", "length ≤ {}"),
        ("minimum", "≥ {}"),
        ("maximum", "≤ {}"),
        ("minItems", "at least {} items"),
        ("maxItems", "at most {} items"),
    ):
        if key in schema:
            words.append(say.format(schema[key]))
    if schema.get("x-kubernetes-list-type") == "set":
        words.append("no duplicates")
    if "pattern" in schema:
        words.append("matches " + _code(schema["pattern"]))
    if "default" in schema:
        words.append("default " + _code(schema["default"]))
    return words


def _immutable(schema: dict[str, Any]) -> bool:
    return any(rule.get("rule") == "self == oldSelf" for rule in schema.get("x-kubernetes-validations", []))


def _rules(schema: dict[str, Any]) -> list[str]:
    return [
        f"{_cell(rule.get('message', ''))} (CEL: {_code(rule['rule'])})"
        for rule in schema.get("x-kubernetes-validations", [])
        if rule.get("rule") != "self == oldSelf"
    ]


def _rows(schema: dict[str, Any], path: str, required: bool, rows: list[str]) -> None:
    notes = _limits(schema)
    if _immutable(schema):
        notes.insert(0, "**immutable**")
    notes += ["rule: " + rule for rule in _rules(schema)]
    description = _cell(schema.get("description", ""))
    if notes:
        description = (description + "<br>" if description else "") + "; ".join(notes)
    rows.append(f"| {_code(path)} | {_type(schema)} | {'yes' if required else ''} | {description} |")
    node = schema.get("items", schema) if schema.get("type") == "array" else schema
    suffix = "[]" if node is not schema else ""
    needed = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        _rows(child, f"{path}{suffix}.{name}", name in needed, rows)


def _schema() -> dict[str, Any]:
    from backendauth_operator.commands.crd import build_crd

    crd = build_crd()
    version = crd["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def crd_table(top: str) -> str:
    """Every field under ``spec`` or ``status`` of the CRD, one row each."""
    schema = _schema()
    rows = ["| field | type | required | description, values and rules |", "|---|---|---|---|"]
    _rows(schema["properties"][top], top, top in schema.get("required", []), rows)
    return "\n".join(rows)


def spec_reference() -> str:
    return crd_table("spec")


def status_reference() -> str:
    return crd_table("status")


# ---- configuration ------------------------------------------------------------------------------

# What each setting means; the type, default and limits come from config.Settings itself.
SETTING_TEXT = {
    "default_region": "the AWS region when `spec.region` is empty",
    "aws_endpoint_url": "send every AmplifyBackend call here (the simulator, a proxy); unset: real AWS",
    "job_poll_seconds": "interval between GetBackendJob polls of an unfinished job",
    "retry_base_seconds": "first retry delay after a retryable AWS error",
    "retry_max_seconds": "cap of the exponential retry delay (not below the base)",
    "aws_max_rps": (
        "AmplifyBackend calls per second per AWS account and region, at most; the pace halves when "
        "AWS throttles and creeps back on success (throttled answers count against the account's quota)"
    ),
    "resync_seconds": (
        "how often a settled BackendAuth is observed in AWS for drift (spread over the period; `0`: never)"
    ),
    "resync_max_share": (
        "the largest share of `BACKENDAUTH_AWS_MAX_RPS` that resyncs may use, per AWS account and region; "
        "a round that does not fit stretches"
    ),
    "job_timeout_seconds": "a job still running after this long stalls with reason `JobTimedOut`",
    "lease_namespace": (
        "where the per-app/env Leases, the leader Lease and the account map live; operators that may "
        "manage the same app/env must share it. Unset: `default` (deploy/ and the chart set it from "
        "the pod's namespace)"
    ),
    "account_map": "the ConfigMap, in the lease namespace, that maps AWS account ids to the roles to assume",
    "metrics_port": "the Prometheus `/metrics` port; `0` turns it off",
    "default_deletion_policy": "used when `spec.deletionPolicy` is empty",
    "pod_name": (
        "the operator's identity: the leader Lease's holder, in the per-app/env turns and in logs. "
        "Unset: the hostname plus a random suffix; deploy/ sets it from the pod's name"
    ),
    "leader_election": (
        "only the holder of the leader Lease acts; `false` runs as the only operator "
        "(the sandbox, local runs)"
    ),
    "leader_lease": "the leader Lease's name",
    "lease_duration_seconds": "how long a standby waits on an unchanged leader Lease before it takes it",
    "renew_deadline_seconds": "a leader that could not renew for this long stops acting (below the duration)",
    "retry_period_seconds": "how often the Lease is renewed or tried (below the renew deadline / 1.2)",
}


def _env_names(field: Any) -> list[str]:
    from pydantic import AliasChoices

    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [str(alias)]


def _constraints(field: Any) -> list[str]:
    words = []
    for item in field.metadata:
        for attr, say in (("gt", "> {}"), ("ge", "≥ {}"), ("lt", "< {}"), ("le", "≤ {}")):
            value = getattr(item, attr, None)
            if value is not None:
                words.append(say.format(value))
        if getattr(item, "pattern", None):
            words.append("matches " + _code(item.pattern))
        if getattr(item, "min_length", None):
            words.append(f"length ≥ {item.min_length}")
        if getattr(item, "max_length", None):
            words.append(f"length ≤ {item.max_length}")
    return words


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    return {"<class 'float'>": "number", "<class 'int'>": "integer", "<class 'bool'>": "boolean"}.get(
        text, text.replace("<class 'str'>", "string").replace("str", "string").replace(" | None", "")
    )


def config_reference() -> str:
    from backendauth_operator.config import Settings

    fields = Settings.model_fields
    missing = sorted(set(fields) - set(SETTING_TEXT))
    stale = sorted(set(SETTING_TEXT) - set(fields))
    if missing or stale:
        raise ValueError(
            f"docs/hooks/generate.py SETTING_TEXT: settings without a description {missing}, "
            f"descriptions of settings that do not exist {stale}"
        )
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, field in fields.items():
        variables = " or ".join(_code(env) for env in _env_names(field))
        default = "unset" if field.default is None else _code(str(field.default).lower()
                                                                if isinstance(field.default, bool)
                                                                else field.default)  # fmt: skip
        kind = _type_name(field.annotation)
        limits = _constraints(field)
        meaning = SETTING_TEXT[name] + (f" ({'; '.join(limits)})" if limits else "")
        rows.append(f"| {variables} | {_cell(kind)} | {default} | {meaning} |")
    return "\n".join(rows)


# ---- metrics ------------------------------------------------------------------------------------


def metrics_reference() -> str:
    from prometheus_client.metrics import MetricWrapperBase

    from backendauth_operator.metrics import OperatorMetrics

    rows = ["| metric | type | labels | what |", "|---|---|---|---|"]
    for collector in vars(OperatorMetrics()).values():
        if not isinstance(collector, MetricWrapperBase):
            continue
        kind = collector._type
        name = collector._name + ("_total" if kind == "counter" else "")
        labels = ", ".join(_code(label) for label in collector._labelnames)
        rows.append(f"| {_code(name)} | {kind} | {labels} | {_cell(collector._documentation)} |")
    return "\n".join(rows)


# ---- the command line ---------------------------------------------------------------------------


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        names = ", ".join(_code(o) for o in action.option_strings) or _code(action.metavar or action.dest)
        if action.option_strings and action.nargs != 0:
            names += " " + _code(action.metavar or action.dest.upper())
        default = "" if action.default in (None, argparse.SUPPRESS, False) else _code(action.default)
        text = _cell((action.help or "") % {"default": action.default, "prog": parser.prog})
        if action.choices:
            text += " (one of " + ", ".join(_code(c) for c in action.choices) + ")"
        if action.required:
            text += " (required)"
        rows.append(f"| {names} | {default} | {text} |")
    return rows


def cli_reference() -> str:
    from backendauth_operator.commands.cli import build_parser

    parser = build_parser()
    parts = [f"`{parser.prog}`: {_cell(parser.description or '')}", ""]
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            parts += [f"## `{parser.prog} {name}`", "", _cell(helps.get(name) or sub.description or ""), ""]
            parts += ["```text", sub.format_usage().strip(), "```", ""]
            if sub.description and sub.description != helps.get(name):
                parts += [_cell(sub.description), ""]
            rows = _option_rows(sub)
            parts += (rows if len(rows) > 2 else ["No options."]) + [""]
    return "\n".join(parts)


# ---- the reconciler's steps ---------------------------------------------------------------------


def _decision_rows() -> list[tuple[str, Any]]:
    """Every row of decide's tables in tests/test_decide.py: (situation, snapshot)."""
    path = ROOT / "tests" / "test_decide.py"
    spec = importlib.util.spec_from_file_location("_docs_decide_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return [(row.situation, row.snapshot) for row in (*module.ROWS, *module.STEP_ROWS)]


def _source(s: Any) -> tuple[str, str]:
    """Which action's result a snapshot carries, and what that result was."""
    if s.gone:
        return "start", "gone"
    if s.deleting:
        if s.delete_submitted is not None:
            return "Delete", _result(s.delete_submitted)
        if s.delete_job is not None:
            return "PollDelete", f"delete job {s.delete_job.status}"
        return "start", "deletion"
    if s.submitted is not None:
        return "sent", _result(s.submitted)
    if s.observed is not None:
        return "ReadResource", "absent" if s.observed.resource is None else "resource seen"
    for read, action, word in (
        (s.running, "FindRunning", "unfinished job" if s.running and s.running.job else "none unfinished"),
        (s.hold, "CheckHold", "held by another process" if s.hold and s.hold.holder else "not held"),
        (s.polled or None, "PollJob", "job " + (s.job.status if s.job else "")),
        (s.turn_read, "CheckTurn", "turn busy" if s.turn_read and s.turn_read.busy else "turn free"),
        (s.secrets, "ReadSecrets", "read"),
    ):
        if read is not None:
            return action, word
    if s.failure is not None:
        return "read_failed", s.failure.reason
    return "start", ""


def _result(outcome: Any) -> str:
    name = type(outcome).__name__
    failure = getattr(outcome, "failure", None)
    if failure is not None:
        return f"{name}: {failure.reason}" + (" (ambiguous)" if getattr(failure, "ambiguous", False) else "")
    return name


def _target(plan: Any) -> tuple[str, str]:
    """(node id, label) of the plan ``decide`` returned."""
    name = type(plan).__name__
    state = getattr(plan, "state", None)
    if name == "Settle":
        if state is None:
            return ("settle_again" if plan.again else "settle_none"), (
                "write the record; read again" if plan.again else "write the record"
            )
        return f"{state.phase}_{state.reason}", state.reason
    if name == "Submit":
        return f"submit_{plan.operation}", plan.operation
    if name == "Finish":
        return f"finish_{plan.outcome}", f"deletion: {plan.outcome.replace('_', ' ')}"
    return name, name


PHASES = {"ready": "Ready=True", "reconciling": "Reconciling=True", "stalled": "Stalled=True"}


def states_diagram() -> str:
    """The steps of ``decide`` as a flowchart: from the action whose result a snapshot carries
    (or the start of a step) to the plan decide returns, one edge per distinct case."""
    from backendauth_operator.core.decide import decide

    edges: dict[tuple[str, str, str], None] = {}
    nodes: dict[str, str] = {
        "start": "a step begins: the object as read",
        "sent": "the call's answer (marker written, turn taken)",
        "read_failed": "a read of AWS failed",
    }
    phases: dict[str, dict[str, str]] = {phase: {} for phase in PHASES}
    situations = []
    for situation, snapshot in _decision_rows():
        plan = decide(snapshot)
        source, result = _source(snapshot)
        target, label = _target(plan)
        phase = target.split("_", 1)[0]
        if phase in phases:
            phases[phase][target] = label
        else:
            nodes[target] = label
        if source not in nodes:
            nodes[source] = source
        edges[(source, result, target)] = None
        situations.append(f"| {_cell(situation)} | {_cell(source)} {_cell(result)} | {_cell(label)} |")
    lines = ["```mermaid", "flowchart LR"]
    for node, label in nodes.items():
        lines.append(f'  {node}["{label}"]')
    for phase, members in phases.items():
        lines.append(f'  subgraph {phase}["{PHASES[phase]}"]')
        lines += [f'    {node}["{label}"]' for node, label in sorted(members.items())]
        lines.append("  end")
    for source, result, target in edges:
        arrow = f' -- "{result}" --> ' if result else " --> "
        lines.append(f"  {source}{arrow}{target}")
    for node in nodes:
        if node.startswith("submit_"):
            lines.append(f"  {node} -.-> sent")
    lines.append("```")
    table = [
        "",
        f'??? note "The {len(situations)} rows the diagram is drawn from"',
        "",
        "    | situation (tests/test_decide.py) | the result decide was given | what decide returns |",
        "    |---|---|---|",
        *("    " + row for row in situations),
    ]
    return "\n".join(lines + table)


GENERATORS = {
    "spec": spec_reference,
    "status": status_reference,
    "configuration": config_reference,
    "metrics": metrics_reference,
    "cli": cli_reference,
    "states": states_diagram,
}


def generate(markdown: str) -> str:
    """``markdown`` with every marker replaced; an unknown marker is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated section {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return generate(markdown)
