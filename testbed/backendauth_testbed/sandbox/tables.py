"""Table answers (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``) for ``kubectl get``.

kubectl prints whatever columns the server sends, so the printer columns of a CRD only show up
when the server builds the Table. This module builds it the way the real server does: a ``Name``
column, then the CRD's ``additionalPrinterColumns`` (or ``Age`` when there are none), cells
taken with a JSONPath subset and ``date`` columns rendered as ages; ``priority > 0`` columns are
sent too and kubectl shows them with ``-o wide`` only.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Cell = Callable[[Mapping[str, Any]], Any]

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "priority": 0,
    "description": "Name must be unique within a namespace.",
}
_STEP = re.compile(
    r"""\.(?P<field>[^.\[\]]+)"""
    r"""|\[(?P<index>-?\d+|\*)\]"""
    r"""|\[['"](?P<key>[^'"]+)['"]\]"""
    r"""|\[\?\(@(?P<fpath>(?:\.[^.\s=!)]+)+)\s*(?P<op>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|[^)\s]+)\s*\)\]"""
)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate a simple JSONPath (``.a.b[0]``, ``[*]``, ``['k']``, ``[?(@.x=="y")]``) on ``obj``.

    This is the subset CRD printer columns use; anything else raises ValueError.
    """
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text[1:] if text.startswith("$") else text
    results = [obj]
    pos = 0
    while pos < len(text):
        match = _STEP.match(text, pos)
        if match is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {text[pos:]!r}")
        pos = match.end()
        results = [found for item in results for found in _step(item, match)]
    return results


def _step(item: Any, match: re.Match[str]) -> list[Any]:
    if match["field"] is not None or match["key"] is not None:
        name = match["field"] if match["field"] is not None else match["key"]
        if name == "*":
            return (
                list(item.values())
                if isinstance(item, dict)
                else list(item)
                if isinstance(item, list)
                else []
            )
        return [item[name]] if isinstance(item, dict) and name in item else []
    if match["index"] is not None:
        if not isinstance(item, list):
            return []
        if match["index"] == "*":
            return list(item)
        index = int(match["index"])
        return [item[index]] if -len(item) <= index < len(item) else []
    if not isinstance(item, list):
        return []
    wanted = (
        json.loads(match["fval"].replace("'", '"')) if match["fval"][0] in "'\"" else _literal(match["fval"])
    )
    selected = []
    for element in item:
        found = jsonpath(element, match["fpath"])
        hit = bool(found) and found[0] == wanted
        if hit == (match["op"] == "=="):
            selected.append(element)
    return selected


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_time(value: str) -> datetime.datetime:
    """Parse an RFC 3339 timestamp as the API server writes it."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def human_duration(seconds: float) -> str:
    """The age format of kubectl and the server (``k8s.io/apimachinery/pkg/util/duration``)."""
    if seconds < -1:
        return "<invalid>"
    s = max(int(seconds), 0)
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def age(timestamp: Any) -> str | None:
    """The age of an RFC 3339 timestamp, or None if there is none."""
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        then = parse_time(timestamp)
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.datetime.now(datetime.UTC) - then).total_seconds())


@dataclass(frozen=True)
class Column:
    """One column of a Table: its definition and how to compute its cell."""

    name: str
    cell: Cell
    type: str = "string"
    priority: int = 0
    description: str = ""
    format: str = ""

    def definition(self) -> dict[str, Any]:
        """The ``columnDefinitions`` entry."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def printer_column(spec: Mapping[str, Any]) -> Column:
    """A Column from one entry of a CRD's ``additionalPrinterColumns``."""
    kind: str = spec.get("type", "string")
    path: str = spec["jsonPath"]
    jsonpath({}, path)  # refuse unsupported paths when the CRD is registered, not on every get

    def cell(obj: Mapping[str, Any]) -> Any:
        found = jsonpath(obj, path)
        if not found or found[0] is None:
            return None
        value = found[0]
        if kind == "date":
            return age(value)
        if kind == "string":
            if isinstance(value, bool):
                return "true" if value else "false"
            return value if isinstance(value, str) else json.dumps(value)
        return value

    return Column(
        name=spec["name"],
        cell=cell,
        type=kind,
        priority=int(spec.get("priority", 0)),
        description=spec.get("description", ""),
        format=spec.get("format", ""),
    )


def _created(obj: Mapping[str, Any]) -> Any:
    return age(obj.get("metadata", {}).get("creationTimestamp"))


AGE = Column(
    "Age",
    _created,
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def _event_object(obj: Mapping[str, Any]) -> str:
    ref = obj.get("involvedObject") or obj.get("regarding") or {}  # core/v1 or events.k8s.io/v1
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _last_seen(obj: Mapping[str, Any]) -> Any:
    return age(
        obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("metadata", {}).get("creationTimestamp")
    )


def _count(*keys: str) -> Cell:
    return lambda obj: sum(len(obj.get(key) or {}) for key in keys)


# Columns of the built-in kinds the sandbox serves, keyed by plural (as kubectl shows them).
CORE_COLUMNS: dict[str, list[Column]] = {
    "namespaces": [Column("Status", lambda o: o.get("status", {}).get("phase")), AGE],
    "secrets": [
        Column("Type", lambda o: o.get("type", "Opaque")),
        Column("Data", _count("data"), "integer"),
        AGE,
    ],
    "configmaps": [Column("Data", _count("data", "binaryData"), "integer"), AGE],
    "events": [
        Column("Last Seen", _last_seen),
        Column("Type", lambda o: o.get("type")),
        Column("Reason", lambda o: o.get("reason")),
        Column("Object", _event_object),
        Column("Message", lambda o: o.get("message") or o.get("note")),
    ],
    "leases": [Column("Holder", lambda o: o.get("spec", {}).get("holderIdentity")), AGE],
    "customresourcedefinitions": [
        Column("Created At", lambda o: o.get("metadata", {}).get("creationTimestamp"), "date"),
    ],
}


@dataclass
class TableBuilder:
    """Builds Tables for one kind; ``columns`` come after the Name column."""

    columns: Sequence[Column] = field(default_factory=lambda: [AGE])
    name_first: bool = True

    def table(
        self,
        objects: Sequence[Mapping[str, Any]],
        resource_version: str,
        *,
        include_object: str = "Metadata",
        with_definitions: bool = True,
    ) -> dict[str, Any]:
        """A ``meta.k8s.io/v1`` Table of ``objects``."""
        definitions = ([_NAME_COLUMN] if self.name_first else []) + [c.definition() for c in self.columns]
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": definitions if with_definitions else None,
            "rows": [self._row(obj, include_object) for obj in objects],
        }

    def _row(self, obj: Mapping[str, Any], include_object: str) -> dict[str, Any]:
        cells = [obj.get("metadata", {}).get("name")] if self.name_first else []
        cells += [column.cell(obj) for column in self.columns]
        row: dict[str, Any] = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            # kubectl reads the namespace (for -A) and labels (for --show-labels) from here.
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            }
        return row


def builder_for(plural: str, printer_columns: Sequence[Mapping[str, Any]] | None) -> TableBuilder:
    """The Table builder of a CRD-defined kind (``printer_columns`` given) or a built-in one."""
    if printer_columns is not None:
        return TableBuilder([printer_column(spec) for spec in printer_columns] or [AGE])
    if plural == "events":
        return TableBuilder(CORE_COLUMNS["events"], name_first=False)
    return TableBuilder(CORE_COLUMNS.get(plural, [AGE]))
