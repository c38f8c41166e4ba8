"""A TCP forwarder on 127.0.0.1 that can turn into a black hole, for tests of a network cut.

``cut()`` stops passing bytes without closing anything: data already read waits in the
forwarder, the rest waits in the kernel's buffers, and no FIN or RST reaches either side, as
when a router drops every packet. New connections are still accepted (the kernel completes the
TCP handshake of a listening socket by itself) but are held, never forwarded: the client's TLS
handshake gets no answer, which is what a client sees of a connect that hangs. (A SYN that gets
no answer at all would need packet filtering in a network namespace; both are covered by the
same client-side connect deadline, since aiohttp's ``sock_connect`` and urllib3's connect
timeout each include the TLS handshake.) ``restore()`` passes everything on again, as when the
path comes back: held connections are connected upstream then, so what a client sent before
giving up still arrives.

With ``stale_stay_dead=True`` the path comes back for new connections only: every connection that
was open or opened during a cut stays a black hole for good. That is harsher than TCP, whose
retransmissions get through some time after the path is back (up to two minutes later, on its
backoff schedule), and shows that a client does not depend on them.

Runs an asyncio loop in a thread of its own; every method is called from the test's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any


class BlackHoleForwarder:
    """Forward ``127.0.0.1:<port>`` to ``target``; :meth:`cut` and :meth:`restore` the path."""

    def __init__(self, target_host: str, target_port: int, stale_stay_dead: bool = False) -> None:
        self.target = (target_host, target_port)
        self.stale_stay_dead = stale_stay_dead
        self._cuts = 0  # connections remember how many cuts there had been when they opened
        self.port = 0
        self.accepted = 0  # connections accepted, held or not
        self._loop = asyncio.new_event_loop()
        self._open: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="blackhole", daemon=True)

    # ---- the test's side

    def start(self) -> BlackHoleForwarder:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def cut(self) -> None:
        """Stop passing bytes, on open connections and new ones; close nothing."""

        def cut() -> None:
            self._cuts += 1
            self._event.clear()

        self._call(cut)

    def restore(self) -> None:
        """Pass bytes again, including what was held during the cut."""
        self._call(lambda: self._event.set())

    @property
    def is_cut(self) -> bool:
        return not self._event.is_set()

    def stop(self) -> None:
        """Close the listening socket and every connection; end the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # ---- the loop's side

    @property
    def _event(self) -> asyncio.Event:
        assert self._open is not None, "not started"
        return self._open

    def _call(self, what: Any) -> None:
        done = threading.Event()

        def run() -> None:
            what()
            done.set()

        self._loop.call_soon_threadsafe(run)
        assert done.wait(10), "the forwarder's loop does not answer"

    async def _start(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(client_writer)
        upstream_writer: asyncio.StreamWriter | None = None
        opened = self._cuts if self._event.is_set() else self._cuts - 1
        try:
            await self._passing(opened)  # held while cut: the client's handshake gets no answer
            if client_writer.transport.is_closing():
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            self._writers.add(upstream_writer)
            await asyncio.gather(
                self._pump(client_reader, upstream_writer, opened),
                self._pump(upstream_reader, client_writer, opened),
            )
        except OSError:
            pass
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()

    async def _passing(self, opened: int) -> None:
        """Return when bytes of a connection opened after ``opened`` cuts may pass."""
        await self._event.wait()
        if self.stale_stay_dead and opened != self._cuts:
            await asyncio.Event().wait()  # it lived through a cut: a black hole for good

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opened: int) -> None:
        """Copy until end of stream; while cut, what was read is held, not written (nor the EOF)."""
        with contextlib.suppress(OSError):
            while True:
                await self._passing(opened)
                data = await reader.read(65536)
                await self._passing(opened)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
