"""Reading and driving the AmplifyBackend simulator in tests: its state, its call log and the
pools it can seed. Each helper takes a test bed (anything with ``.sim.url``) or the simulator's
base URL."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Protocol


class HasSimulator(Protocol):
    @property
    def sim(self) -> Any: ...


def _url(bed: HasSimulator | str) -> str:
    return bed if isinstance(bed, str) else str(bed.sim.url)


def _get(bed: HasSimulator | str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{_url(bed)}/_sim/{path}", timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


def sim_state(bed: HasSimulator | str, account: str | None = None) -> dict[str, Any]:
    """``/_sim/state``: ``apps``, ``jobs`` (each with its ``resourceName``), ``resources`` by
    ``app/env/name`` (secrets redacted), ``links`` (each auth resource's Cognito ids) and
    ``cognito`` (pools and clients, no secrets)."""
    return _get(bed, "state" + (f"?account={account}" if account else ""))


def create_jobs(bed: HasSimulator | str, resource: str) -> list[dict[str, Any]]:
    """The CreateBackendAuth jobs AWS started for ``resource``."""
    jobs = sim_state(bed)["jobs"]
    return [j for j in jobs if j["operation"] == "CreateBackendAuth" and j["resourceName"] == resource]


def sim_calls(bed: HasSimulator | str, account: str | None = None) -> dict[str, Any]:
    """``/_sim/calls``: ``calls``, ``byOperation``, ``byResource`` and ``mutating`` of
    ``account`` (the base account by default), and ``byAccount``: the same per account."""
    return _get(bed, "calls" + (f"?account={account}" if account else ""))


def mutating_calls(bed: HasSimulator | str) -> list[dict[str, Any]]:
    """Every call, in any account, to an AmplifyBackend or Cognito operation that changes
    something (whatever the answer was), oldest first."""
    by_account = sim_calls(bed)["byAccount"]
    found = [call for summary in by_account.values() for call in summary["mutating"]]
    return sorted(found, key=lambda call: int(call["seq"]))


def seed_pools(
    bed: HasSimulator | str,
    *,
    account: str | None = None,
    region: str | None = None,
    user_pool_name: str | None = None,
    clients: list[dict[str, Any]] | None = None,
    identity_pool: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Seed a user pool made outside Amplify (``POST /_sim/cognito/seed``) and return its ids:
    ``{"account", "region", "userPoolId", "clients": {name: id}, "identityPoolId"}``.

    ``clients``: ``[{"name": str, "secret": bool}]`` (default ``web`` without and ``native`` with
    a secret); ``identity_pool``: ``{"name"?, "clients"?: [names], "allowUnauthenticated"?}``
    (default: none). ValueError with the simulator's message on bad input."""
    body: dict[str, Any] = {}
    for key, value in (
        ("account", account),
        ("region", region),
        ("userPoolName", user_pool_name),
        ("clients", clients),
        ("identityPool", identity_pool),
    ):
        if value is not None:
            body[key] = value
    request = urllib.request.Request(
        f"{_url(bed)}/_sim/cognito/seed",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise ValueError(json.loads(err.read()).get("message", str(err))) from None
    return data
