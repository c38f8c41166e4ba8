"""The probe endpoints on the ``--liveness`` address: its own path (``/healthz``) and ``/readyz``.

Kopf serves ``--liveness`` itself, on one path only. The operator serves that address instead,
in Kopf's event loop, with the same answer on the liveness path (the results of Kopf's probe
handlers, as JSON, refreshed at most every 10 s, like Kopf) and ``/readyz`` beside it.

- The liveness path is a check of the process: it answers while the event loop runs, whatever
  the API server does (restarting the pod does not bring the API server back).
- ``/readyz`` is 200 ``ok`` when every readiness check passes, else 503 with one line naming the
  first check that does not and why. The checks are named, so that more can join (a leader, or a
  standby ready to take over, counts as serving).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp.web

READINESS_PATH = "/readyz"
PROBE_CACHE_SECONDS = 10.0  # as Kopf's own health reporter

Check = Callable[[], tuple[bool, str]]


class Readiness:
    """Named checks, each returning (passes, a one-line reason when it does not)."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def verdict(self) -> tuple[bool, str]:
        """(ready, ``ok`` or ``<check>: <reason>`` of the first check that does not pass)."""
        for name, check in self._checks.items():
            passes, reason = check()
            if not passes:
                return False, f"{name}: {' '.join(reason.split()) or 'not ready'}"
        return True, "ok"


def parse_endpoint(endpoint: str) -> tuple[str, int, str]:
    """``http://host:port/path`` → (host, port, path), as Kopf reads ``--liveness``."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme != "http":
        raise ValueError(f"--liveness: only http:// URLs are served, not {endpoint!r}")
    path = parts.path or "/"
    if path == READINESS_PATH:
        raise ValueError(f"--liveness: {READINESS_PATH} is the readiness path; use another (e.g. /healthz)")
    return parts.hostname or "localhost", parts.port or 80, path


class ProbeServer:
    """The liveness path and ``/readyz`` on one address (an aiohttp server in the running loop)."""

    def __init__(
        self,
        endpoint: str,
        readiness: Readiness,
        liveness: Callable[[], Awaitable[Mapping[str, Any]]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host, self.port, self.path = parse_endpoint(endpoint)
        self.readiness, self.liveness, self.clock = readiness, liveness, clock
        self._cached: tuple[float, Mapping[str, Any]] | None = None
        self._lock = asyncio.Lock()
        self._runner: aiohttp.web.AppRunner | None = None

    async def _health(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        async with self._lock:
            if self._cached is None or self.clock() - self._cached[0] >= PROBE_CACHE_SECONDS:
                self._cached = (self.clock(), dict(await self.liveness()))
            return aiohttp.web.json_response(self._cached[1])

    async def _ready(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        ready, reason = self.readiness.verdict()
        return aiohttp.web.Response(status=200 if ready else 503, text=reason + "\n")

    async def start(self) -> None:
        app = aiohttp.web.Application()
        app.add_routes(
            [aiohttp.web.get(self.path, self._health), aiohttp.web.get(READINESS_PATH, self._ready)]
        )
        self._runner = aiohttp.web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await aiohttp.web.TCPSite(self._runner, self.host, self.port).start()

    @property
    def bound_port(self) -> int:
        """The port listened on (the given one, or the one chosen for port 0)."""
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@contextlib.asynccontextmanager
async def serving(server: ProbeServer | None) -> AsyncIterator[None]:
    """Serve ``server`` (if any) for the duration of the block."""
    if server is None:
        yield
        return
    await server.start()
    try:
        yield
    finally:
        await asyncio.shield(server.stop())
