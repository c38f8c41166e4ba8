"""Serving the emulated API over HTTP: on the current event loop, or in a background thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiohttp.web

from backendauth_testbed.sandbox.emulator import KubernetesAPI
from backendauth_testbed.sandbox.kubeconfig import write_kubeconfig

T = TypeVar("T")


class EmulatedCluster:
    """The emulated Kubernetes API with some CRDs installed, served on ``host:port``.

    ``api`` is the :class:`KubernetesAPI` (a kmock ``KubernetesEmulator``): its ``objects`` hold
    every object with its recent history, for assertions. Touch it only from the serving loop.
    """

    def __init__(self, crds: Iterable[Mapping[str, Any]] = ()) -> None:
        self.api = KubernetesAPI()
        for crd in crds:
            self.api.load_crd(crd)
        self._runner: aiohttp.web.ServerRunner | None = None
        self._url = ""
        self._counted: list[aiohttp.web.ServerRunner] = []

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        if not self._url:
            raise RuntimeError("the emulated cluster is not started")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 picks a free port). Raises OSError if the port is taken."""
        await self.api.__aenter__()  # kmock's handler runs its stream feeder while entered
        # handler_cancellation: a watch whose client went away is cancelled at once, not at its timeout.
        server = aiohttp.web.Server(self.api, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await aiohttp.web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            await self.api.__aexit__(None, None, None)
            raise
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self._url = f"http://{bound_host}:{bound_port}"

    async def serve_counted(
        self, count: Callable[[aiohttp.web.BaseRequest], None], host: str = "127.0.0.1"
    ) -> str:
        """Serve the same API on a second port, calling ``count(request)`` before each request
        it serves there; return that port's URL. The benchmark points the operator there to
        count its requests alone, without a proxy's hop in between."""

        async def counted(request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
            count(request)
            return await self.api(request)

        runner = aiohttp.web.ServerRunner(
            aiohttp.web.Server(counted, handler_cancellation=True), shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            await aiohttp.web.TCPSite(runner, host, 0).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._counted.append(runner)
        bound_host, bound_port = runner.addresses[0][:2]
        return f"http://{bound_host}:{bound_port}"

    async def stop(self) -> None:
        """End the watches, close the connections, stop listening."""
        if self._runner is not None:
            self.api.close_watches()
            for counted in self._counted:
                await counted.cleanup()
            self._counted.clear()
            await self._runner.cleanup()
            await self.api.__aexit__(None, None, None)
            self._runner = None

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default") -> Path:
        """Write a kubeconfig pointing at this cluster (context ``backendauth-dev``, no auth)."""
        return write_kubeconfig(path, self.url, namespace)

    async def __aenter__(self) -> EmulatedCluster:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class EmulatedClusterThread:
    """An :class:`EmulatedCluster` on its own event loop in a daemon thread, for synchronous code.

    ``with EmulatedClusterThread(crds=[...]) as cluster: ...`` — then use ``cluster.url``,
    ``cluster.write_kubeconfig(path)``, kubectl or the ``kubernetes`` client freely; to touch the
    emulator's state directly, use ``cluster.call(lambda api: ...)``, which runs on its loop.
    """

    def __init__(
        self, crds: Iterable[Mapping[str, Any]] = (), host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.cluster = EmulatedCluster(crds)
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulated-k8s-api", daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.cluster.url

    @property
    def api(self) -> KubernetesAPI:
        """The emulator; read it only via :meth:`call` while the cluster runs."""
        return self.cluster.api

    def write_kubeconfig(self, path: str | os.PathLike[str], namespace: str = "default") -> Path:
        """See :meth:`EmulatedCluster.write_kubeconfig`."""
        return self.cluster.write_kubeconfig(path, namespace)

    def call(self, fn: Callable[[KubernetesAPI], T], timeout: float = 30) -> T:
        """Run ``fn(api)`` on the server's loop and return its result."""

        async def run() -> T:
            return fn(self.cluster.api)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def serve_counted(self, count: Callable[[aiohttp.web.BaseRequest], None]) -> str:
        """See :meth:`EmulatedCluster.serve_counted`; ``count`` runs on the server's thread."""
        future = asyncio.run_coroutine_threadsafe(self.cluster.serve_counted(count), self._loop)
        return future.result(30)

    def start(self) -> EmulatedClusterThread:
        """Start the thread and wait until the server listens."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.cluster.start(self._host, self._port), self._loop)
        try:
            future.result(30)
        except (OSError, concurrent.futures.TimeoutError):
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server, the loop and the thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.cluster.stop(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        if not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> EmulatedClusterThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
