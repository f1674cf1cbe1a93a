"""The admin and metrics ports' listening sockets: probes answered at once, aiohttp on demand,
behind a connection cap.

Each connection starts with the small protocol of :mod:`sidecar.control_light`, which answers
probes and scrapes itself. The first request it does not answer makes the port import aiohttp
and build its application and server (once, under a lock: concurrent first calls wait for the
same one); that connection, and each later one that asks more than a probe, is handed to
aiohttp's request handler with every byte read so far. A sidecar that is only probed and
scraped never loads aiohttp.

The data listeners are capped from the open-files limit (:mod:`sidecar.fdlimit`); these two
ports would otherwise take connections without bound, so idle ones held open by a local process
(or, on the metrics port, anything that reaches the pod) could use up every file handle and
silence the probes, reloads and the app's egress with them.

A port at its cap makes room the way nginx does when it runs out of connections: it closes its
oldest connection that is not in the middle of a request (a kept-alive one, or one that never
finished sending a request head: a slow-loris), and counts it as ``evicted``; connections still
served by the light protocol go first, then aiohttp's. Only when every connection is busy with
a request is the new one closed at once, counted as ``limit`` and logged once per episode. So a
probe or a scrape gets through a flood of idle connections.

Not here: the routes and the ``Host`` guard (:mod:`sidecar.admin`, :mod:`sidecar.metrics_port`).
"""

from __future__ import annotations

__all__ = ["CONTROL_MAX_CONNECTIONS", "ControlPort"]

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .control_light import LightProtocol, LightRoutes
from .fdlimit import ConnectionCap

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("sidecar")

#: Connections each control port keeps open at once: probes, scrapes and an operator's curl need
#: a handful; the two ports together stay well inside the handles kept out of the data
#: listeners' caps (:data:`sidecar.fdlimit.RESERVE`).
CONTROL_MAX_CONNECTIONS = 64
#: seconds aiohttp keeps reading a request body its answer left unread, before it closes
LINGERING_TIME = 1.0


class _Refused(asyncio.Protocol):
    """A connection past the cap: its handle goes back at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]  # uvloop's is not a subclass


def _idle(handler: RequestHandler) -> bool:
    # aiohttp sets the first while a request is being handled (its head was read): a kept-alive
    # connection, or one still trickling its head, is not in a request; the second once it was
    # told to close (it leaves ``connections`` when its transport is gone, a turn later)
    busy = getattr(handler, "_request_in_progress", False)
    return not busy and not getattr(handler, "_force_close", False)


class ControlPort:
    """One control port: its light routes, its aiohttp app (made by ``build_app`` when first
    needed) and its capped listening socket."""

    def __init__(
        self,
        name: str,
        routes: LightRoutes,
        build_app: Callable[[], web.Application],
        *,
        count: Callable[[str], None],
        limit: int = CONTROL_MAX_CONNECTIONS,
    ) -> None:
        self.name = name
        self.routes = routes
        #: connections the light protocol still serves, oldest first
        self.live: dict[LightProtocol, None] = {}
        self._build_app = build_app
        self._count = count
        self._limit = limit
        self._cap = ConnectionCap(name, limit, lambda: count("limit"))
        self._runner: web.AppRunner | None = None
        self._server: web.Server | None = None
        self._lock = asyncio.Lock()
        self._handing: set[asyncio.Task[None]] = set()
        self._listening: asyncio.AbstractServer | None = None
        self._stopped = False
        self.port = 0

    @property
    def aiohttp_loaded(self) -> bool:
        """Whether a request has needed aiohttp on this port yet."""
        return self._server is not None

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (``OSError`` when it cannot be bound)."""
        loop = asyncio.get_running_loop()
        self._listening = await loop.create_server(
            self._accept, host, port, reuse_address=True, backlog=128
        )
        sockets = getattr(self._listening, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        """Stop listening, close every connection, and aiohttp's server if it was built."""
        self._stopped = True
        if self._listening is not None:
            self._listening.close()
        for light in list(self.live):
            light.close()
        if self._handing:  # connections waiting for aiohttp: each sees it is closed, and ends
            await asyncio.gather(*self._handing, return_exceptions=True)
        async with self._lock:  # a build under way ends first
            runner, self._runner, self._server = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    # --- accepting ----------------------------------------------------------------------------

    def _accept(self) -> asyncio.BaseProtocol:
        listed = self._server.connections if self._server is not None else []
        # a handler whose connection is gone holds no handle: aiohttp lists it until its task
        # ends, up to its lingering time (10 s) after a body was left unread
        handlers = [h for h in listed if h.transport is not None]
        open_now = len(self.live) + len(handlers)
        if open_now < self._limit:
            self._cap.closed(open_now)  # room again: a later refusal is a new episode
        else:
            oldest_light = next((c for c in self.live if not c.handing_over), None)
            oldest_handler = next((h for h in handlers if _idle(h)), None)
            if oldest_light is not None:
                self._count("evicted")
                oldest_light.close()
            elif oldest_handler is not None:
                self._count("evicted")
                oldest_handler.force_close()
            elif not self._cap.admit(open_now):
                return _Refused()
        return LightProtocol(self)

    # --- handing a connection to aiohttp ------------------------------------------------------

    def hand_over(self, light: LightProtocol, transport: asyncio.Transport, data: bytes) -> None:
        """Give ``transport`` (reading paused) and ``data`` to aiohttp: now if its server is up,
        else once it is (see the module)."""
        if self._server is not None:
            self._give(light, transport, data, self._server)
            return
        task = asyncio.get_running_loop().create_task(self._later(light, transport, data))
        self._handing.add(task)
        task.add_done_callback(self._handing.discard)

    async def _later(self, light: LightProtocol, transport: asyncio.Transport, data: bytes) -> None:
        try:
            server = await self._aiohttp_server()
        except Exception:
            log.exception("cannot start aiohttp", extra={"fields": {"port": self.name}})
            server = None
        if server is None or transport.is_closing():  # failed, stopping, or the peer left
            light.handed_over()
            transport.abort()
            return
        self._give(light, transport, data, server)

    def _give(
        self, light: LightProtocol, transport: asyncio.Transport, data: bytes, server: web.Server
    ) -> None:
        light.handed_over()
        handler = server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        # reading resumes before the bytes are fed, so that aiohttp's own flow control (it
        # pauses reading when a body outgrows its buffer) has the last word; nothing is read
        # from the socket until this callback returns
        transport.resume_reading()
        if data:
            handler.data_received(data)

    async def _aiohttp_server(self) -> web.Server | None:
        """aiohttp's server of this port, built by the first request that needs it (``None``
        once the port stops)."""
        async with self._lock:
            if self._server is not None or self._stopped:
                return self._server
            from aiohttp import web  # here, not at start-up: probes and scrapes never need it

            runner = web.AppRunner(
                self._build_app(),
                access_log=None,
                handle_signals=False,
                # after an answer that left a request body unread (a 408 for a body that did
                # not come in time, a 413), read what still comes for 1 s, not aiohttp's 10,
                # then close: the connection is not held that long for a stalled client
                lingering_time=LINGERING_TIME,
            )
            await runner.setup()
            assert runner.server is not None
            self._runner, self._server = runner, runner.server
            log.debug("aiohttp loaded", extra={"fields": {"port": self.name}})
            return runner.server
