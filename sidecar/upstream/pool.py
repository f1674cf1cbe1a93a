"""A bounded keep-alive connection pool for one upstream address.

At most ``max_connections`` connections are open; at most ``max_idle`` of them (by default all of
them) wait idle for reuse, most recently used first, so a burst's extra connections age out: none
waits longer than ``idle_timeout``, or than the upstream said it keeps them (``Keep-Alive:
timeout=N``, less a margin: reusing a connection the upstream is closing is the keep-alive race).
A call that finds the pool full waits in a FIFO for a free connection until its connect timeout,
then gets 503 ``overloaded``: never an unbounded queue.

Connect and TLS errors become :class:`~sidecar.errors.UpstreamConnectError` here. Not here: what
is written on a connection (:mod:`sidecar.upstream.connection`, the adapter).
"""

from __future__ import annotations

__all__ = ["Pool"]

import asyncio
import os
import ssl
from collections import deque
from collections.abc import Callable

from ..errors import Overloaded, UpstreamConnectError, UpstreamTLSError
from .connection import ConnectionOwner, UpstreamConnection
from .tls import describe_tls_error

#: A waiter gets a free connection (``UpstreamConnection``) or a free slot to connect (``None``).
_Handed = UpstreamConnection | None


class Pool(ConnectionOwner):
    """Connections to ``host:port``; see the module docstring for the bounds."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        max_connections: int = 512,
        max_idle: int | None = None,
        idle_timeout: float = 60.0,
        connect_timeout: float = 5.0,
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.ssl = ssl_context
        self.server_hostname = server_hostname if ssl_context is not None else None
        self.max_connections = max_connections
        # Closing a connection that could be idle costs a connect per call as soon as more calls
        # are in flight than the cap (measured: half the calls reconnected at 400 concurrent
        # with a cap of 64), so by default only idle_timeout closes idle connections (Envoy).
        self.max_idle = max_connections if max_idle is None else max_idle
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        #: idle connections, most recently used last (``acquire`` pops from the end).
        self.idle: list[UpstreamConnection] = []
        #: connections open or being opened (idle + busy + connecting).
        self.open = 0
        self.waiters: deque[asyncio.Future[_Handed]] = deque()
        self.closed = False
        self.opened_total = 0
        self._on_open = on_open
        self._loop: asyncio.AbstractEventLoop | None = None

    def _factory(self) -> UpstreamConnection:
        return UpstreamConnection(self)

    def take_idle(self) -> UpstreamConnection | None:
        """An idle connection for one exchange, if one is fit for reuse; never waits.

        The common case of :meth:`acquire` without a coroutine: the adapter tries this first.
        """
        idle = self.idle
        if idle:
            loop = self._loop or asyncio.get_running_loop()
            now = loop.time()
            while idle:
                conn = idle.pop()
                if not conn.reusable:
                    continue  # closing; connection_lost has not run yet
                if now >= conn.expires:
                    conn.abort()  # the upstream may be closing it right now
                    continue
                conn.busy = True
                return conn
        return None

    async def acquire(self, fresh: bool = False) -> tuple[UpstreamConnection, bool]:
        """A connection for one exchange and whether it was reused (it may have gone stale).

        ``fresh``: a new connection, never one used before (a resend after the keep-alive race:
        a reused one could be the next the upstream closes). In a full pool it takes the slot
        of an idle connection, or of one freed while it waits, closing that one.
        """
        if not fresh:
            conn = self.take_idle()
            if conn is not None:
                return conn, True
        if self.open < self.max_connections:
            return await self._connect(), False
        if not fresh:
            return await self._wait()
        conn = self.take_idle()
        if conn is None:
            conn, reused = await self._wait()
            if not reused:
                return conn, False
        return await self._connect_instead_of(conn), False

    async def _connect_instead_of(self, conn: UpstreamConnection) -> UpstreamConnection:
        """A new connection in ``conn``'s slot; ``conn`` is closed without giving the slot up."""
        conn.pooled = False  # its close is not counted (``lost``): the slot passes to the new one
        conn.abort()
        return await self._connect(reserved=True)

    async def _wait(self) -> tuple[UpstreamConnection, bool]:
        waiter: asyncio.Future[_Handed] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(self.connect_timeout):
                handed = await waiter
        except BaseException as e:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # handed over just as the wait timed out or was cancelled: pass it on
                self._pass_on(waiter.result())
            else:
                waiter.cancel()
                try:
                    self.waiters.remove(waiter)
                except ValueError:
                    pass
            if isinstance(e, TimeoutError):
                raise Overloaded(
                    f"all {self.max_connections} connections to upstream {self.name!r} are busy"
                    f" (waited {self.connect_timeout:g}s)"
                ) from None
            raise
        if handed is None:  # a slot freed up (and was reserved for us): connect in it
            return await self._connect(reserved=True), False
        return handed, True

    def _pass_on(self, handed: _Handed) -> None:
        if handed is None:
            self.open -= 1  # the slot reserved for us
            self._hand_slot()
        else:
            self.free(handed)

    async def _connect(self, reserved: bool = False) -> UpstreamConnection:
        if not reserved:
            self.open += 1  # reserve the slot now: the connect awaits
        loop = self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    self._factory,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.server_hostname,
                )
        except BaseException as e:
            self.open -= 1
            self._hand_slot()
            raise self._connect_error(e) from None
        conn.pooled = True
        if conn.closed:  # closed by the upstream before we could use it
            self.open -= 1
            self._hand_slot()
            raise UpstreamConnectError(
                f"upstream {self.host}:{self.port} closed the connection right after connect"
            )
        conn.busy = True
        self.opened_total += 1
        if self._on_open is not None:
            self._on_open()
        return conn

    def _connect_error(self, e: BaseException) -> BaseException:
        where = f"{self.host}:{self.port}"
        if isinstance(e, TimeoutError):
            return UpstreamConnectError(
                f"connect to {where} timed out after {self.connect_timeout:g}s"
            )
        if isinstance(e, ssl.SSLError):
            return UpstreamTLSError(describe_tls_error(e, where, self.server_hostname))
        if isinstance(e, ConnectionError) and self.ssl is not None:
            return UpstreamConnectError(f"TLS handshake with {where} failed: {e}")
        if isinstance(e, OSError):
            # asyncio's strerror is "Connect call failed (addr)": the errno says why
            reason = os.strerror(e.errno) if e.errno else str(e)
            return UpstreamConnectError(f"connect to {where} failed: {reason}")
        return e  # cancellation and the like pass through unchanged

    def free(self, conn: UpstreamConnection) -> None:
        """A connection finished an exchange and can carry another."""
        if self.closed:
            conn.abort()
            return
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done():
                w.set_result(conn)  # it stays busy: the waiter owns it now
                return
        conn.busy = False
        if len(self.idle) >= self.max_idle:
            conn.abort()
            return
        keep = self.idle_timeout
        hint = conn.keep_alive_hint
        if hint is not None:
            # leave a margin so we never send on a connection the upstream is about to close
            hint = hint - 1.0 if hint >= 2.0 else hint / 2
            keep = min(keep, hint)
        loop = self._loop or asyncio.get_running_loop()
        conn.expires = loop.time() + keep
        self.idle.append(conn)

    def lost(self, conn: UpstreamConnection) -> None:
        """A connection closed (either side): forget it and let a waiter open another."""
        if not conn.pooled:
            return  # never handed over by create_connection; _connect accounted for it
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
                self.open += 1  # reserved for the waiter, who connects in it
                w.set_result(None)
                return

    def sweep(self, now: float) -> None:
        """Close idle connections past their expiry (called about once a second)."""
        idle = self.idle
        if not idle or min(c.expires for c in idle) > now:
            return
        stale = [c for c in idle if c.expires <= now]
        idle[:] = [c for c in idle if c.expires > now]
        for conn in stale:
            conn.abort()

    def stats(self) -> tuple[int, int]:
        """``(idle, busy)`` connection counts (connections being opened count as busy)."""
        idle = len(self.idle)
        return idle, self.open - idle

    def close(self) -> None:
        """Stop pooling: idle connections close now, busy ones when their exchange ends."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.abort()
        waiters, self.waiters = self.waiters, deque()
        for w in waiters:
            if not w.done():
                w.set_exception(UpstreamConnectError(f"upstream {self.name!r} was removed"))
