"""A bare Kopf operator that watches BackendAuths and does nothing: the memory floor that any
Kopf operator over the same objects pays (benchmarks/run.py compares the operator with it)."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.event("amplifybackend.gitops.dev", "v1alpha1", "backendauths")
def seen(**_: Any) -> None:
    """Nothing: only the watch and Kopf's own bookkeeping cost memory."""
