"""The app-facing HTTP/1.1 listener: asyncio Protocol + httptools (llhttp), the hot path.

:class:`HttpListener` owns the listening socket, its connections
(:class:`~sidecar.listeners.http_connection.HttpConnection`, where requests are parsed, checked
and answered), one ticker task that enforces the header, idle and linger timeouts of every
connection, and draining on shutdown.

The ticker keeps the time in ``listener.now``: connections stamp their state changes with it
instead of reading the clock per request, so a timeout fires up to one tick late (a tick is a
quarter of the shortest timeout, at most one second).

Not here: parsing, answering and framing (:mod:`sidecar.listeners.http_request`,
:mod:`sidecar.listeners.http_connection`, :mod:`sidecar.listeners.http_response`), routing
(:mod:`sidecar.routing`), filters, or anything upstream-specific.
"""

from __future__ import annotations

__all__ = ["HTTP_FRONT", "HttpListener"]

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

from ..api.traits import FrontTraits
from ..app_quiet import AppActivity
from ..errors import SidecarError
from ..exchange import Exchange
from ..fdlimit import UNLIMITED, ConnectionCap
from .http_connection import HttpConnection
from .http_state import BUSY, HEAD, IDLE

if TYPE_CHECKING:
    from ..config.models import HttpListenerConfig
    from ..routing import RouteTable
    from ..telemetry.metrics import Metrics

#: On drain, idle keep-alive connections are closed after this quiet period (see stop_accepting).
DRAIN_IDLE_QUIET: Final = 0.25
#: After the grace, cancelled calls get this long to unwind before the sidecar closes pools.
DRAIN_UNWIND: Final = 1.0


#: The app-facing HTTP port's traits.
HTTP_FRONT: Final = FrontTraits("http")


class HttpListener:
    """The listening socket, its connections, their timeouts, and draining."""

    def __init__(
        self, cfg: HttpListenerConfig, routes: RouteTable, metrics: Metrics, name: str = "http"
    ) -> None:
        self.cfg = cfg
        self.routes = routes
        self.metrics = metrics
        self.name = name
        self.connections: set[HttpConnection] = set()
        self.server: asyncio.base_events.Server | None = None
        #: every connection ends after the call it is on (``Connection: close``): set by the
        #: drain, or earlier by the wait for the app to go quiet (:meth:`hold_for_app`).
        self.draining = False
        #: connections opened plus requests dispatched, ever (see :meth:`app_activity`).
        self.began = 0
        self.now = 0.0
        self.tick = max(0.05, min(1.0, cfg.header_timeout / 4, cfg.idle_timeout / 4))
        self._ticker: asyncio.Task[None] | None = None
        self._all_closed: asyncio.Event | None = None
        self._close_idle: asyncio.TimerHandle | None = None
        #: called for a call that matched no route or failed before reaching one (access log).
        #: the sidecar's hook for a call no route took (its access-log line), with the body
        #: bytes written
        self.on_unrouted: Callable[[Exchange, SidecarError, int], None] | None = None
        self._conn_gauge = metrics.downstream_connections.labels(name)
        #: app connections open at once (the sidecar sets ``cap.limit`` at start: the config's
        #: value, or one sized from the open-files limit, :func:`sidecar.fdlimit.connection_cap`).
        self.cap = ConnectionCap(
            name,
            cfg.max_connections or UNLIMITED,
            metrics.connections_refused.labels(name, "limit").inc,
        )
        self._unrouted = metrics.requests
        self._unrouted_errors = metrics.errors

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        self._all_closed = asyncio.Event()
        await self._listen(loop, host, port)
        self._ticker = loop.create_task(self._tick())

    async def _listen(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        """Open the listening socket (the inbound listener overrides this: TLS comes first)."""
        self.server = await loop.create_server(
            lambda: HttpConnection(self), host, port, reuse_address=True, backlog=1024
        )

    @property
    def port(self) -> int:
        assert self.server is not None
        # read as Any: uvloop's ``Server.sockets`` is a list where typeshed says a tuple, and a
        # compiled build checks the declared type
        sockets: Any = cast(Any, self.server).sockets
        return int(sockets[0].getsockname()[1])

    def connection_opened(self, conn: HttpConnection) -> bool:
        """Register a new connection; ``False``: the listener is at its cap, close it."""
        if not self.cap.admit(len(self.connections)):
            return False
        self.began += 1
        self.connections.add(conn)
        self._conn_gauge.inc()
        return True

    def connection_closed(self, conn: HttpConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._conn_gauge.dec()
            self.cap.closed(len(self.connections))
            if not self.connections and self._all_closed is not None:
                self._all_closed.set()

    def count_unrouted(self, error: SidecarError) -> None:
        """Count a call that never reached a route (refused, or no route matched)."""
        self._unrouted.labels(self.name, "", "", str(error.status)).inc()
        self._unrouted_errors.labels(self.name, "", error.code).inc()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick)
            self.now = now = loop.time()
            for conn in list(self.connections):
                conn.timed_out(now)

    def hold_for_app(self) -> None:
        """SIGTERM while the app may still call out (``shutdown.app_quiet_period``): keep
        accepting, but every connection ends after the call it is on (its response says
        ``Connection: close``, so no keep-alive connection outlives the app's last call).
        Idle connections stay open until the drain: closing one now would race the app's next
        call on it, and an idle connection does not hold the wait (:mod:`sidecar.app_quiet`)."""
        self.draining = True

    def app_activity(self) -> AppActivity:
        """Open connections, requests being received or answered, and the ``began`` count."""
        busy = 0
        for conn in self.connections:
            if conn.state == BUSY or conn.state == HEAD:
                busy += 1
        return AppActivity(len(self.connections), busy, self.began)

    def stop_accepting(self) -> None:
        self.draining = True
        if self.server is not None:
            self.server.close()
        # Requests already read (pipelined behind the one in flight) are still answered, the
        # last with "Connection: close"; nothing after them is read.
        for conn in list(self.connections):
            conn.begin_drain()
        # Busy connections close after their response (it says "Connection: close"); closing
        # ones finish their linger. Idle keep-alive ones close after a short quiet period rather
        # than at once: a request the app sent just before the drain began may still be unread
        # in the socket buffer, and closing under it would fail a call that started before the
        # signal (the keep-alive close race).
        self._close_idle = asyncio.get_running_loop().call_later(
            DRAIN_IDLE_QUIET, self._close_idle_connections
        )

    def _close_idle_connections(self) -> None:
        for conn in list(self.connections):
            if conn.state == IDLE:
                conn.close()

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for connections to finish; abort the rest; say how many."""
        if self._all_closed is not None and self.connections:
            self._all_closed.clear()
            try:
                async with asyncio.timeout(grace):
                    await self._all_closed.wait()
            except TimeoutError:
                pass
        left = len(self.connections)
        workers = []
        for conn in list(self.connections):
            conn.close(abort=True)
            conn.connection_lost(None)  # cancels its worker now, not on the next loop turn
            if conn.worker is not None and not conn.worker.done():
                workers.append(conn.worker)
        if self._close_idle is not None:
            self._close_idle.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
        if workers:
            # let cancelled calls unwind (their adapter aborts the upstream connection) before
            # the caller closes pools under them; a call that ignores cancellation is not awaited
            await asyncio.wait(workers, timeout=DRAIN_UNWIND)
        return left
