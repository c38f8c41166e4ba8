"""The HTTP front of the simulator: the model's rest-json routes plus the ``/_sim`` control API."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from backendauth_testbed.simulator import cognito, model
from backendauth_testbed.simulator.state import Backend, SimulatorConfig

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _json(status: int, payload: Any, code: str | None = None) -> web.Response:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if code:
        # botocore's rest-json parser takes the error code from this header.
        headers["x-amzn-ErrorType"] = code
    return web.Response(
        status=status, text=json.dumps(payload), content_type="application/json", headers=headers
    )


STALL_SECONDS = 60.0  # how long a 'stall' fault holds the answer back


class Simulator:
    """The AmplifyBackend simulator as an aiohttp server on the current event loop."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.backend = Backend(config or SimulatorConfig())
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (port 0 picks a free one) and set ``url``."""
        # A short shutdown timeout: a "stall" fault holds a request for a minute on purpose.
        # access_log=None: each call is logged by the backend already.
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # a wildcard is not reachable
        self.url = f"http://{shown}:{bound_port}"

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _app(self) -> web.Application:
        app = web.Application()
        for route in model.routes() + model.unserved_routes():
            app.router.add_route(route.method, route.path, self._api_handler(route.operation))
        # STS (query protocol) and Cognito (JSON 1.1, told apart by X-Amz-Target) share the
        # server: botocore posts both to "/".
        app.router.add_post("/", self._root)
        control: dict[str, Callable[[dict[str, Any], web.Request], Any]] = {
            "config": lambda b, r: self.backend.configure(**b),
            "faults": lambda b, r: {
                "faults": self.backend.inject_fault(
                    b.get("operation", "*"), b.get("fault", ""), b.get("count", 1)
                )
            },
            "faults/clear": lambda b, r: {"faults": self.backend.clear_faults()},
            "apps": lambda b, r: self.backend.register_app(
                b.get("appId", ""), b.get("backendEnvironmentName", ""), b.get("account")
            ),
            "jobs/{jobId}": lambda b, r: self.backend.force_job(
                r.match_info["jobId"], b.get("status", ""), b.get("error"), b.get("account")
            ),
            "hold": lambda b, r: self.backend.hold(b.get("held", True), b.get("account")),
            "resources": lambda b, r: self.backend.put_resource(
                b.get("appId", ""),
                b.get("backendEnvironmentName", ""),
                b.get("resourceName", ""),
                b.get("resourceConfig"),
                b.get("account"),
                b.get("region"),
            ),
            "cognito/seed": lambda b, r: self.backend.seed_pools(b),
            "deny_role": lambda b, r: self.backend.deny_role(b.get("roleArn"), b.get("denied", True)),
            "require_external_id": lambda b, r: self.backend.require_external_id(
                b.get("roleArn"), b.get("externalId")
            ),
            "reset": lambda b, r: self.backend.reset(),
        }
        for name, fn in control.items():
            app.router.add_post(f"/_sim/{name}", self._control_handler(fn))
        app.router.add_get(
            "/_sim/calls", self._control_handler(lambda b, r: self.backend.summary(r.query.get("account")))
        )
        app.router.add_get(
            "/_sim/state", self._control_handler(lambda b, r: self.backend.state(r.query.get("account")))
        )
        app.router.add_get("/_sim/access", self._control_handler(lambda b, r: self.backend.access_rules()))
        app.router.add_get("/_sim/config", self._control_handler(lambda b, r: self.backend.settings()))
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    def _api_handler(self, op: str) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            latency = self.backend.config.latency_ms
            if latency > 0:
                await asyncio.sleep(latency / 1000)
            raw = await request.read()
            status, code, payload = self.backend.handle(
                op, dict(request.match_info), raw, request.headers.get("Authorization")
            )
            if self.backend.calls and self.backend.calls[-1]["fault"] == "stall":
                await asyncio.sleep(STALL_SECONDS)
            return _json(status, payload, code)

        return handler

    async def _root(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "")
        if target.partition(".")[0] in cognito.SERVICES:
            return await self._cognito(request, target)
        return await self._sts(request)

    async def _cognito(self, request: web.Request, target: str) -> web.Response:
        latency = self.backend.config.latency_ms
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        status, payload = self.backend.cognito_call(
            target, await request.read(), request.headers.get("Authorization")
        )
        return web.Response(
            status=status,
            text=json.dumps(payload),
            content_type="application/x-amz-json-1.1",
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    async def _sts(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        form = {**{k: v for k, v in request.query.items()}, **form}
        status, body = self.backend.sts(form, request.headers.get("Authorization"))
        return web.Response(
            status=status,
            text=body,
            content_type="text/xml",
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _control_handler(self, fn: Callable[[dict[str, Any], web.Request], Any]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw.strip() else {}
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                result = fn(body, request)
            except KeyError as err:
                return _json(404, {"message": f"not found: {err}"})
            except (ValueError, TypeError) as err:
                return _json(400, {"message": str(err)})
            return _json(200, result if result is not None else self.backend.settings())

        return handler

    async def _unknown(self, request: web.Request) -> web.Response:
        return _json(
            404,
            {"message": f"The simulator does not serve {request.method} {request.path}"},
            "UnknownOperationException",
        )


class SimulatorThread:
    """A Simulator running on its own event loop in a background thread, for synchronous code.

    Use as a context manager; ``call(fn)`` runs ``fn(simulator)`` on the server's loop, which is
    the safe way to touch its state from another thread.
    """

    def __init__(self, config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = Simulator(config)
        self._host, self._port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amplifybackend-sim", daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give boto3 as ``endpoint_url``."""
        return self.simulator.url

    def start(self) -> SimulatorThread:
        """Start the thread and wait until the server listens."""
        self._thread.start()
        try:
            starting = self.simulator.start(self._host, self._port)
            asyncio.run_coroutine_threadsafe(starting, self._loop).result(30)
        except BaseException:
            self.stop()  # e.g. the port is taken: do not leave the thread behind
            raise
        return self

    def stop(self) -> None:
        """Stop the server, the loop and the thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop.close()

    def call(self, fn: Callable[[Simulator], T]) -> T:
        """Run ``fn(simulator)`` on the server's loop and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(self.simulator))
            except BaseException as err:  # handed to the calling thread
                future.set_exception(err)

        self._loop.call_soon_threadsafe(run)
        return future.result(30)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
