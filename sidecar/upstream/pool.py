"""A bounded keep-alive connection pool for one upstream address.

At most ``max_connections`` connections are open; at most ``max_idle`` of them wait idle for reuse
(most recently used first, so a burst's extra connections age out) and none longer than
``idle_timeout``. A call that finds the pool full waits in a FIFO for a free connection until
its connect timeout, then gets 503 ``overloaded``: never an unbounded queue.

Connect errors become :class:`~sidecar.errors.UpstreamConnectError` here.
"""

from __future__ import annotations

__all__ = ["Pool"]

import asyncio
import ssl
from collections import deque

from ..errors import Overloaded, UpstreamConnectError
from .connection import UpstreamConnection


class Pool:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        max_connections: int = 512,
        max_idle: int = 64,
        idle_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        on_open: object = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.server_hostname = server_hostname
        self.max_connections = max_connections
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.idle: list[UpstreamConnection] = []
        self.open = 0
        self.waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self.closed = False
        self.opened_total = 0
        self._on_open = on_open

    async def acquire(self) -> tuple[UpstreamConnection, bool]:
        """A connection for one exchange and whether it was reused (may have gone stale)."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn, True
        if self.open < self.max_connections:
            return await self._connect(), False
        waiter: asyncio.Future[UpstreamConnection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(self.connect_timeout):
                handed = await waiter
        except TimeoutError:
            raise Overloaded(
                f"all {self.max_connections} connections to upstream {self.name!r} are busy"
            ) from None
        finally:
            if not waiter.done():
                waiter.cancel()
            try:
                self.waiters.remove(waiter)
            except ValueError:
                pass
        if handed is None:  # a slot freed up: open a new connection in it
            return await self._connect(), False
        return handed, True

    async def _connect(self) -> UpstreamConnection:
        self.open += 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(self._free, self._lost),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.server_hostname if self.ssl is not None else None,
                )
        except BaseException as e:
            self.open -= 1
            self._hand_slot()
            if isinstance(e, TimeoutError):
                raise UpstreamConnectError(
                    f"connect to {self.host}:{self.port} timed out after {self.connect_timeout:g}s"
                ) from None
            if isinstance(e, ssl.SSLError):
                raise UpstreamConnectError(
                    f"TLS handshake with {self.host}:{self.port} failed: {e.reason or e}"
                ) from None
            if isinstance(e, OSError):
                reason = e.strerror or str(e)
                raise UpstreamConnectError(
                    f"connect to {self.host}:{self.port} failed: {reason}"
                ) from None
            raise
        self.opened_total += 1
        if callable(self._on_open):
            self._on_open()
        return conn

    def _free(self, conn: UpstreamConnection) -> None:
        """A connection finished an exchange and can carry another."""
        if self.closed:
            conn.abort()
            return
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                conn.busy = True
                w.set_result(conn)
                return
        if len(self.idle) < self.max_idle:
            conn.idle_since = asyncio.get_running_loop().time()
            self.idle.append(conn)
        else:
            conn.abort()

    def _lost(self, conn: UpstreamConnection) -> None:
        """A connection closed (either side): forget it and let a waiter open another."""
        self.open -= 1
        try:
            self.idle.remove(conn)
        except ValueError:
            pass
        self._hand_slot()

    def _hand_slot(self) -> None:
        while self.waiters and self.open < self.max_connections:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def sweep(self, now: float) -> None:
        """Close connections idle longer than ``idle_timeout`` (called about once a second)."""
        if not self.idle:
            return
        limit = now - self.idle_timeout
        stale = [c for c in self.idle if c.idle_since < limit]
        for conn in stale:
            conn.abort()

    def stats(self) -> tuple[int, int]:
        """``(idle, busy)`` connection counts."""
        idle = len(self.idle)
        return idle, self.open - idle

    def close(self) -> None:
        self.closed = True
        for conn in list(self.idle):
            conn.abort()
        self.idle.clear()
        for w in self.waiters:
            if not w.done():
                w.set_exception(UpstreamConnectError(f"upstream {self.name!r} was removed"))
        self.waiters.clear()
