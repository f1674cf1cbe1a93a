"""One keep-alive HTTP/1.1 connection to an upstream: asyncio Protocol + httptools response parser.

A connection carries one exchange at a time. :meth:`UpstreamConnection.request` writes the request
(head and body, streaming with back-pressure) and returns the response once its head is parsed.
A response whose body arrived with the head comes back with a ``bytes`` body and the connection is
already free for the next call; a longer body streams through :class:`UpstreamBody`, which pauses
reading from the upstream while the app is slow.

The upstream is not trusted: its response is parsed strictly, limited (header size and count),
stripped of hop-by-hop headers, and anything malformed becomes ``upstream_protocol`` (502) with the
connection closed. Library and socket errors become typed :mod:`sidecar.errors` here, and nowhere
else.
"""

from __future__ import annotations

__all__ = ["UpstreamBody", "UpstreamConnection"]

import asyncio
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httptools

from ..errors import SidecarError, UpstreamProtocolError, UpstreamReset
from ..exchange import Headers, Response
from ..http1 import HOP_BY_HOP, hop_by_hop_names

#: Response-body bytes buffered before reading from the upstream pauses.
BODY_HIGH_WATER = 256 * 1024
BODY_LOW_WATER = 64 * 1024
MAX_RESPONSE_HEADER_BYTES = 64 * 1024
MAX_RESPONSE_HEADERS = 200


class UpstreamBody:
    """A response body streaming from the upstream. An ``AsyncIterator[bytes]``."""

    __slots__ = ("_conn", "_error", "_waiter", "chunks", "eof", "size")

    def __init__(self, conn: UpstreamConnection) -> None:
        self._conn: UpstreamConnection | None = conn
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self._error: SidecarError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > BODY_HIGH_WATER and self._conn is not None:
            self._conn.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self.eof = True
        self._conn = None  # the connection went back to the pool; buffered chunks stay here
        self._wake()

    def fail(self, error: SidecarError) -> None:
        self._error = error
        self._conn = None
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self.chunks:
            if self.eof:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self.chunks.popleft()
        self.size -= len(data)
        if self.size < BODY_LOW_WATER and self._conn is not None:
            self._conn.resume_reading()
        return data

    async def aclose(self) -> None:
        """The app went away before the end: the connection cannot be reused."""
        conn = self._conn
        if conn is not None and not self.eof:
            self._conn = None
            conn.abort()


class UpstreamConnection(asyncio.Protocol):
    """A connection to one upstream, owned by its :class:`~sidecar.upstream.pool.Pool`."""

    def __init__(
        self,
        on_free: Callable[[UpstreamConnection], None],
        on_lost: Callable[[UpstreamConnection], None],
    ) -> None:
        self._on_free = on_free
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.busy = False
        self.reusable = True
        self.idle_since = 0.0
        self.requests = 0
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._head: asyncio.Future[Response] | None = None
        self._resp: Response | None = None
        self._hdrs: list[tuple[str, str]] = []
        self._hdr_bytes = 0
        self._parts: list[bytes] | None = None
        self._body: UpstreamBody | None = None
        self._head_ready = False
        self._complete = False
        self._head_only = False
        self._got_bytes = False
        self._read_paused = False
        self._error: SidecarError | None = None
        self._close_delimited = False
        self.request_sent = True

    # --- transport events --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        was_closed = self.closed
        self.closed = True
        if self.busy:
            if self._close_delimited and self._head_ready and not self._complete:
                self.on_message_complete()  # read-until-close body ends here
            else:
                self._fail(
                    UpstreamReset(
                        "upstream closed the connection before the response was complete"
                        if self._got_bytes
                        else "upstream closed the connection before responding"
                    )
                )
        if not was_closed:
            self._on_lost(self)
        w = self._drain
        if w is not None and not w.done():
            w.set_exception(
                UpstreamReset("upstream closed the connection while receiving the body")
            )

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        w = self._drain
        if w is not None and not w.done():
            w.set_result(None)

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            # bytes nobody asked for: the upstream is confused, never reuse this connection
            self.abort()
            return
        self._got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("upstream switched protocols unasked"))
            self.abort()
            return
        except httptools.HttpParserError as e:
            err = self._error or UpstreamProtocolError(f"malformed response from upstream: {e}")
            self._fail(err)
            self.abort()
            return
        if self._head_ready:
            self._deliver_head()

    # --- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._hdrs = []
        self._hdr_bytes = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._hdr_bytes += len(name) + len(value) + 4
        if self._hdr_bytes > MAX_RESPONSE_HEADER_BYTES or len(self._hdrs) >= MAX_RESPONSE_HEADERS:
            self._error = UpstreamProtocolError("upstream response headers over the limit")
            raise self._error
        self._hdrs.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:
                self._error = UpstreamProtocolError("upstream switched protocols unasked")
                raise self._error
            return  # interim response (100 Continue, 103 Early Hints): skip it
        hdrs = self._hdrs
        connection: list[str] = []
        length: int | None = None
        chunked = False
        for name, value in hdrs:
            if name == "connection":
                connection.append(value)
            elif name == "content-length":
                length = int(value)  # llhttp validated it
            elif name == "transfer-encoding":
                chunked = True
        drop = hop_by_hop_names(connection) if connection else HOP_BY_HOP
        if any(name in drop for name, _ in hdrs):
            hdrs = [kv for kv in hdrs if kv[0] not in drop]
        if not self.parser.should_keep_alive():
            self.reusable = False
        no_body = self._head_only or status in (204, 304)
        if chunked and not no_body:
            length = None
        elif length is None and not no_body:
            self._close_delimited = True  # body runs until the upstream closes
            self.reusable = False
        if status == 204:
            length = None
        self._resp = Response(status, Headers.wrap(hdrs), b"", length)
        self._parts = []
        self._head_ready = True
        if self._head_only:
            # llhttp cannot be told a HEAD response has no body: the message ends here and the
            # parser, now waiting for a body that never comes, is replaced in _finish().
            self._complete = True

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.feed(body)
        elif self._parts is not None:
            self._parts.append(body)

    def on_message_complete(self) -> None:
        if self._resp is None:
            return  # end of an interim (1xx) response
        self._complete = True
        if self._head_ready:
            self._deliver_head()
        elif self._body is not None:
            body = self._body
            self._body = None
            self._finish()
            body.feed_eof()

    # --- exchanges ---------------------------------------------------------------------------

    def _deliver_head(self) -> None:
        """After a read: hand the response head over, with the whole body if it is here."""
        self._head_ready = False
        resp = self._resp
        head = self._head
        assert resp is not None
        parts = self._parts or []
        self._parts = None
        if self._complete:
            resp.body = b"".join(parts) if len(parts) != 1 else parts[0]
            if resp.length is None and not self._head_only and resp.status not in (204, 304):
                resp.length = len(resp.body)
            self._finish()
        else:
            body = self._body = UpstreamBody(self)
            for p in parts:
                body.feed(p)
            resp.body = body
        if head is not None and not head.done():
            head.set_result(resp)

    def _finish(self) -> None:
        """The response is complete: give the connection back if it can carry another call."""
        self._resp = None
        self._complete = False
        self._close_delimited = False
        self.busy = False
        if self._head_only:
            self.parser = httptools.HttpResponseParser(self)
        if self._read_paused:
            self.resume_reading()
        if self.reusable and self.request_sent and not self.closed:
            self._on_free(self)
        else:
            self.abort()

    def _fail(self, error: SidecarError) -> None:
        self.reusable = False
        head = self._head
        if head is not None and not head.done():
            head.set_exception(error)
        body = self._body
        if body is not None:
            self._body = None
            body.fail(error)

    def begin(self, head_only: bool) -> asyncio.Future[Response]:
        """Start an exchange; the returned future resolves with the response head."""
        self.busy = True
        self.requests += 1
        self._head_only = head_only
        self._got_bytes = False
        self._error = None
        self._resp = None
        self._body = None
        self.request_sent = False
        self._head = asyncio.get_running_loop().create_future()
        return self._head

    @property
    def got_bytes(self) -> bool:
        return self._got_bytes

    async def drain(self) -> None:
        if self.closed:
            raise UpstreamReset("upstream closed the connection while receiving the body")
        self._drain = asyncio.get_running_loop().create_future()
        try:
            await self._drain
        finally:
            self._drain = None

    def abort(self) -> None:
        """Close now, without reuse (the pool forgets it through ``connection_lost``)."""
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def describe(self) -> dict[str, Any]:
        return {"busy": self.busy, "requests": self.requests}
