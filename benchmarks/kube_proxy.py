"""Counting the operator's Kubernetes requests, for the benchmark, by verb and resource.

With the real API server, the operator's kubeconfig points at a counting reverse proxy (plain
HTTP on 127.0.0.1) that forwards each request as it came (headers, body, and watch streams as
they flow) and counts it. With the emulated API, the emulator serves the operator on a port of
its own and counts there (:meth:`EmulatedCluster.serve_counted`): a proxy's extra hop, in the
benchmark's own interpreter, cost as much CPU as the emulated API and slowed every request.
Either way the count does not trust the operator's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web
from typing_extensions import override

# Hop-by-hop headers, and the ones aiohttp computes itself for what it sends on.
_DROP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}


def classify(method: str, path: str, watch: bool) -> str:
    """``"PATCH backendauths/status"``, ``"WATCH backendauths"``, ``"GET leases"``…

    The resource is the path's plural (and subresource) after the group/version and namespace.
    """
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return f"{method} {path}"
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0] if rest else "(discovery)"
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    verb = "WATCH" if watch else method
    if method == "GET" and not watch and len(rest) == 1:
        verb = "LIST"
    return f"{verb} {resource}"


class RequestCounter:
    """Requests by :func:`classify`; :meth:`count` may be called from any thread."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, request: web.BaseRequest) -> None:
        watch = request.query.get("watch", "").lower() in {"1", "true"}
        with self._lock:
            self.counts[classify(request.method, request.path, watch)] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def stop(self) -> None:
        """Nothing runs: the server that calls :meth:`count` is stopped with the cluster."""


class CountingProxy(RequestCounter):
    """Runs in a daemon thread; :attr:`url` is where clients connect."""

    def __init__(self, upstream: str, ca_file: Path | None = None) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.ssl: ssl.SSLContext | bool = False
        if upstream.startswith("https"):
            self.ssl = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.count(request)
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        body = await request.read()
        # Some clients send a body without a Content-Type, which the API server reads as JSON;
        # aiohttp would add "application/octet-stream", which the API server refuses.
        skip = () if "Content-Type" in request.headers else ("Content-Type",)
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body or None,
            ssl=self.ssl, timeout=aiohttp.ClientTimeout(total=None), allow_redirects=False,
            skip_auto_headers=skip,
        ) as upstream:  # fmt: skip
            response = web.StreamResponse(status=upstream.status)
            for key, value in upstream.headers.items():
                if key.lower() not in _DROP:
                    response.headers[key] = value
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client went away (a watch closed at shutdown): nothing to forward to
            return response

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> CountingProxy:
        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            self._ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, name="kube-proxy", daemon=True).start()
        if not self._ready.wait(30):
            raise RuntimeError("the counting proxy did not start")
        return self

    @override
    def stop(self) -> None:
        async def close() -> None:
            # The upstream session first: that ends the open watches the handlers are forwarding,
            # so the server can close without waiting for them.
            if self._session is not None:
                await self._session.close()
            if self._runner is not None:
                await self._runner.cleanup()
            # Whatever still runs (a handler forwarding to a client that is gone) ends here,
            # rather than being destroyed pending when the loop stops.
            rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        if self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
