"""Reading the AmplifyBackend simulator's state in tests (jobs with their resource, resources)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any, Protocol


class HasSimulator(Protocol):
    @property
    def sim(self) -> Any: ...


def sim_state(bed: HasSimulator) -> dict[str, Any]:
    """``/_sim/state``: ``apps``, ``jobs`` (each with its ``resourceName``) and ``resources`` by
    ``app/env/name`` (secrets redacted)."""
    with urllib.request.urlopen(f"{bed.sim.url}/_sim/state", timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def create_jobs(bed: HasSimulator, resource: str) -> list[dict[str, Any]]:
    """The CreateBackendAuth jobs AWS started for ``resource``."""
    jobs = sim_state(bed)["jobs"]
    return [j for j in jobs if j["operation"] == "CreateBackendAuth" and j["resourceName"] == resource]
