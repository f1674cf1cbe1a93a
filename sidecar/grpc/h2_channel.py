"""One HTTP/2 "channel" per gRPC upstream, on the sidecar's own HTTP/2 client: where its calls'
streams are opened, and the connection they go on (:mod:`.h2_client_connection`).

``grpc://host:port`` is plaintext (HTTP/2 with prior knowledge), ``grpcs://host:port`` TLS
with ALPN ``h2``, built from ``tls`` as an HTTP upstream's context is
(:func:`sidecar.tls.contexts.client_context`): ``tls.ca`` or the system CAs, the client
certificate when set (mTLS), ``tls.server_name`` for SNI and the name check, ``tls.verify:
false`` honoured, and ``tls.spiffe_id`` checked right after the handshake (no byte of a call
reaches a server with the wrong identity); the files are re-read when they change, for the next
connection. ``:authority`` is ``upstream.host`` when set, else the URL's ``host:port``.

A channel keeps one connection. It connects on its first call, within ``connect_timeout``
(TCP, TLS and the upstream's first SETTINGS). When a connect fails the channel is in
``transient_failure``: calls fail at once with the reason (as a gRPC client's do, so the
``retry`` filter decides), and it tries again in the background after a backoff that grows
(1 s, × 1.6, ±20 % jitter) up to ``max_reconnect_backoff``. A connection that closes or says
GOAWAY leaves the channel ``idle``: the next call connects anew at once; calls in flight on a
GOAWAY'd connection finish there.

The upstream's ``SETTINGS_MAX_CONCURRENT_STREAMS`` is respected by waiting: a call that finds
the connection full waits in line (first come, first served) for a stream to end, bounded by
its deadline (``upstream_timeout`` when it passes). A second connection is never opened for
it: the upstream said how much it takes, and the sidecar's ``concurrency`` limit bounds the
line.

Not here: what it is built from and its TLS context (:mod:`.h2_channel_target`), one call
(:mod:`.h2_upstream_call`), a connection's frames.
"""

from __future__ import annotations

__all__ = ["H2Channel"]

import asyncio
import logging
import os
import random
import ssl
from collections import deque

from ..errors import SidecarError, UpstreamConnectError, UpstreamTimeout, UpstreamTLSError
from ..tls.material import TlsMaterial
from ..upstream.tls import describe_tls_error
from .h2_channel_target import ChannelTarget, h2_context
from .h2_client_connection import ClientConnection
from .h2_client_framing import retime
from .h2_client_stream import ClientStream

#: the first reconnect backoff, and how it grows (gRPC's connection backoff).
INITIAL_BACKOFF = 1.0
BACKOFF_MULTIPLIER = 1.6
BACKOFF_JITTER = 0.2
_USER_AGENT = b"sidecar-grpc"

log = logging.getLogger("sidecar.grpc")


class H2Channel:
    """The calls of one upstream: their streams, on one connection (see the module)."""

    def __init__(self, name: str, target: ChannelTarget) -> None:
        self.name = name
        self.target = target
        self.where = f"upstream {name!r} ({target.target})"
        self.material: TlsMaterial | None = None
        tls = target.tls
        if tls is not None:
            files = [p for p in (tls.ca, tls.cert, tls.key) if p is not None]
            self.material = TlsMaterial(
                lambda: h2_context(tls), files, labels={"upstream": name}, cert_path=tls.cert
            )
        scheme = b"https" if tls is not None else b"http"
        #: a call's HEADERS before its path, and after it (then its timeout and metadata)
        self.pseudo = [(b":method", b"POST"), (b":scheme", scheme)]
        self.pseudo.append((b":authority", target.authority.encode("latin-1")))
        self.fields = [
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"grpc-accept-encoding", b"identity"),
            (b"user-agent", _USER_AGENT),
        ]
        self.closed = False
        self._conn: ClientConnection | None = None
        self._conns: set[ClientConnection] = set()
        self._connecting: asyncio.Task[ClientConnection | SidecarError] | None = None
        self._failure: SidecarError | None = None
        self._backoff = 0.0
        self._retry: asyncio.TimerHandle | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._all_closed: asyncio.Future[None] | None = None

    @property
    def state(self) -> str:
        """``idle``, ``connecting``, ``ready``, ``transient_failure`` or ``shutdown``."""
        if self.closed:
            return "shutdown"
        if self._conn is not None:
            return "ready"
        if self._connecting is not None:
            return "connecting"
        if self._failure is not None:
            return "transient_failure"
        return "idle"

    # --- streams -----------------------------------------------------------------------------

    def start(self, headers: list[tuple[bytes, bytes]], end: bool) -> ClientStream | None:
        """The call's stream at once when the connection is up and has room, else ``None``
        (then :meth:`open`)."""
        conn = self._conn
        if conn is not None and conn.has_room and not self._waiters:
            return conn.start(headers, end)
        return None

    async def open(
        self, headers: list[tuple[bytes, bytes]], end: bool, deadline: float | None
    ) -> ClientStream:
        """The call's stream once a connection is up and has room for it; raises the
        sidecar's errors (connect, TLS, ``upstream_timeout`` when ``deadline`` passes)."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._open(headers, end, deadline)
        except TimeoutError:
            raise UpstreamTimeout(
                f"no answer from {self.where} within the call's deadline (it waited for a "
                "connection or a free stream)"
            ) from None

    async def _open(
        self, headers: list[tuple[bytes, bytes]], end: bool, deadline: float | None
    ) -> ClientStream:
        first_in_line = False
        loop = asyncio.get_running_loop()
        while True:
            if self.closed:
                raise UpstreamConnectError(f"the channel to {self.where} is closed")
            conn = self._conn
            if conn is None:
                conn = await self._connected()
            if conn.has_room and (first_in_line or not self._waiters):
                # the wait counts: the upstream gets what is left now, never more
                if deadline is not None and not retime(headers, deadline - loop.time()):
                    raise TimeoutError
                return conn.start(headers, end)
            waiter = loop.create_future()
            if first_in_line:
                self._waiters.appendleft(waiter)
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken but not going: the next in line goes instead
                else:
                    self._waiters.remove(waiter)
                raise
            first_in_line = True

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    # --- connections -------------------------------------------------------------------------

    async def _connected(self) -> ClientConnection:
        task = self._connecting
        if task is None:
            failure = self._failure
            if failure is not None:
                raise type(failure)(*failure.args)  # failing fast until the next attempt
            task = self._connect_now()
        result = await asyncio.shield(task)
        if isinstance(result, SidecarError):
            raise type(result)(*result.args)
        return result

    def _connect_now(self) -> asyncio.Task[ClientConnection | SidecarError]:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        task = asyncio.get_running_loop().create_task(self._connect())
        self._connecting = task
        return task

    async def _connect(self) -> ClientConnection | SidecarError:
        """One connect attempt: the connection, or why it failed (never raised: nobody may be
        waiting for it)."""
        loop = asyncio.get_running_loop()
        t = self.target
        ready = loop.create_future()

        def settled(conn: ClientConnection) -> None:
            if not ready.done():
                ready.set_result(None)  # ready, or closed before it was

        def gone(conn: ClientConnection) -> None:
            settled(conn)
            self._gone(conn)

        def factory() -> ClientConnection:
            return ClientConnection(
                on_ready=settled,
                on_gone=gone,
                on_slot=self._slot,
                limit=t.max_receive_message_size,
                keepalive=t.keepalive,
            )

        context = None
        if self.material is not None:
            self.material.refresh()
            context = self.material.context
        conn: ClientConnection | None = None
        try:
            async with asyncio.timeout(t.connect_timeout):
                _, conn = await loop.create_connection(
                    factory, t.host, t.port, ssl=context, server_hostname=t.server_name
                )
                await ready
            if not conn.ready or conn.closed:
                raise conn.lost or ConnectionResetError(conn.error or "closed the connection")
            self._conns.add(conn)
        except asyncio.CancelledError:
            # only aclose cancels it; the calls waiting for it get the reason, not a cancel
            if conn is not None:
                conn.close("the channel closed")
            return UpstreamConnectError(f"the channel to {self.where} is closed")
        except BaseException as e:
            if conn is not None:
                conn.close(None)
            error = self._connect_error(e)
            self._failed(error)
            return error
        finally:
            self._connecting = None
        self._failure = None
        self._backoff = 0.0
        if self.closed:
            conn.close("the channel closed")
            return UpstreamConnectError(f"the channel to {self.where} is closed")
        self._conn = conn
        self._wake_all()
        return conn

    def _connect_error(self, e: BaseException) -> SidecarError:
        where, t = self.where, self.target
        if isinstance(e, TimeoutError):
            return UpstreamConnectError(
                f"cannot reach {where}: connect timed out after {t.connect_timeout:g}s"
            )
        if isinstance(e, ssl.SSLError):
            return UpstreamTLSError(describe_tls_error(e, where, t.server_name))
        if isinstance(e, ConnectionError) and self.material is not None:
            # closed during or right after the handshake: the usual cause is a client
            # certificate the upstream requires (its TLS alert is not always read before the
            # close), so say what would fix that when none is configured
            hint = ""
            if t.tls is not None and t.tls.cert is None:
                hint = "; if it requires a client certificate, set tls.cert and tls.key"
            return UpstreamConnectError(f"TLS handshake with {where} failed: {e}{hint}")
        if isinstance(e, ConnectionResetError) and str(e) == "closed the connection":
            # the TCP connection was made, but it closed before any HTTP/2 answer
            return UpstreamConnectError(
                f"cannot reach {where}: it closed the connection before answering in HTTP/2 "
                "(if it speaks TLS, the URL is grpcs://)"
            )
        if isinstance(e, OSError):
            reason = os.strerror(e.errno) if e.errno else str(e)
            return UpstreamConnectError(f"cannot reach {where}: connect failed: {reason}")
        return UpstreamConnectError(f"cannot reach {where}: {e!r}")

    def _failed(self, error: SidecarError) -> None:
        """A connect attempt failed: calls fail fast until the next one, made after a backoff."""
        self._failure = error
        self._wake_all()  # the calls in line get the error
        if self.closed:
            return
        cap = self.target.max_reconnect_backoff
        base = min(cap, self._backoff * BACKOFF_MULTIPLIER if self._backoff else INITIAL_BACKOFF)
        self._backoff = base
        delay = base * random.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)  # noqa: S311
        self._retry = asyncio.get_running_loop().call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if not self.closed and self._connecting is None and self._conn is None:
            self._connect_now()

    def _gone(self, conn: ClientConnection) -> None:
        """``conn`` takes no new call (GOAWAY, closed); once closed it is forgotten. Why, when
        the upstream said (a GOAWAY with an error code), is logged once per connection: the
        calls that meet it get the reason, but an idle channel would otherwise close silently."""
        if conn.goaway_reason is not None and not conn.logged:
            conn.logged = True
            log.warning(
                "gRPC upstream connection closed",
                extra={"fields": {"upstream": self.name, "reason": conn.goaway_reason}},
            )
        if conn is self._conn:
            self._conn = None
            self._wake_all()  # calls in line go to the next connection
        if conn.closed:
            self._conns.discard(conn)
            if not self._conns and self._all_closed is not None:
                if not self._all_closed.done():
                    self._all_closed.set_result(None)

    def _slot(self, conn: ClientConnection) -> None:
        if conn is self._conn:
            self._wake_one()

    async def aclose(self, grace: float = 0.0) -> None:
        """No new call; calls in flight get up to ``grace`` seconds, then the connections
        close (their calls fail as reset)."""
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._connecting is not None:
            self._connecting.cancel()
        self._conn = None
        self._wake_all()
        self._all_closed = asyncio.get_running_loop().create_future()
        for conn in list(self._conns):
            conn.going_away = True
            if not conn.streams:
                conn.close(None)
        if self._conns and grace > 0:
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._all_closed)
            except TimeoutError:
                pass
        for conn in list(self._conns):
            conn.close("the channel closed")
        self._conns.clear()
