"""A bare Kopf operator that watches BackendAuths and does nothing: the memory and CPU floor that
any Kopf operator over the same objects pays (benchmarks/run.py compares the operator with it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kopf

EXPECT = int(os.environ.get("BARE_KOPF_EXPECT", "0"))
SEEN_ALL = os.environ.get("BARE_KOPF_SEEN_ALL")
_seen: set[str] = set()


@kopf.on.event("amplifybackend.gitops.dev", "v1alpha1", "backendauths")
async def seen(uid: str | None, **_: Any) -> None:
    """Nothing but counting: only the watch and Kopf's own bookkeeping cost memory and CPU. A
    coroutine, as the operator's event handler is, so that no thread hop per event is counted
    in the floor. Once it has seen BARE_KOPF_EXPECT objects, it creates BARE_KOPF_SEEN_ALL."""
    if SEEN_ALL and len(_seen) < EXPECT:
        _seen.add(str(uid))
        if len(_seen) == EXPECT:
            Path(SEEN_ALL).touch()
