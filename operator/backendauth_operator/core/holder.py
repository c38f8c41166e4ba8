"""The holder of a turn, as a turn Lease's ``holderIdentity`` names it: written and read here only.

A holder is ``<namespace>/<name>/<uid>@<process>``: the BackendAuth (its *object id*,
``namespace/name/uid``) and the operator process that acts for it. A holder without
``@<process>`` was disowned at a clean shutdown, or written before holders named processes.
Kubernetes names and uids hold no ``@``, so the first ``@`` ends the object id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def object_id(obj: Mapping[str, Any]) -> str:
    """The object id of a BackendAuth (``namespace/name/uid``) from its body; ``namespace/name``
    stands in for a uid the body lacks."""
    meta = obj.get("metadata", {})
    namespace, name = meta.get("namespace"), meta.get("name")
    return f"{namespace}/{name}/{meta.get('uid', f'{namespace}/{name}')}"


def holder_of(object_id: str, process: str) -> str:
    """The holder written for ``object_id`` by the operator process ``process`` (empty: a holder
    that names no process)."""
    return f"{object_id}@{process}" if process else object_id


def object_of(holder: str) -> str:
    """The object id (``namespace/name/uid``) of a holder."""
    return holder.split("@", 1)[0]


def process_of(holder: str) -> str:
    """The operator process of a holder (empty for a holder that names none)."""
    return holder.split("@", 1)[1] if "@" in holder else ""


def name_of(holder: str) -> str:
    """The ``namespace/name`` of a holder or an object id, as messages name a BackendAuth."""
    return object_of(holder).rsplit("/", 1)[0]
