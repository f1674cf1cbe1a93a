"""One call on a client connection to a gRPC upstream (:mod:`.h2_client_connection`): what the
upstream answered so far, and the writes of the request.

The connection hands a stream its events (:meth:`ClientStream.on_head`, ``on_data``,
``on_trailers``, ``on_end``, ``on_failed``); the call (:mod:`.h2_upstream_call`) waits on it
with :meth:`ClientStream.wait` and takes messages with :meth:`ClientStream.take`. Received
bytes are acknowledged to the upstream (reopening its flow-control window) only while no whole
message waits here: a call holds at most one window plus one message, and an app that reads
slowly slows the upstream down instead of filling memory.

A request is written by :meth:`ClientStream.send`, which waits for the upstream's window and
for the socket (``pause_writing``); :meth:`ClientStream.send_now` is the no-wait path a small
message takes. Not here: deframing (:mod:`.h2_client_framing`), the call's answer.
"""

from __future__ import annotations

__all__ = ["CANCEL", "NO_ERROR", "ClientStream", "StreamGone"]

import asyncio
from typing import TYPE_CHECKING

from ..http2.errors import ProtocolError
from ..waiter import new_future
from .h2_client_framing import FramingError, MessageReader

if TYPE_CHECKING:
    from .h2_client_connection import ClientConnection

NO_ERROR = 0x0
CANCEL = 0x8
#: the state machine's word that the stream (or the connection) can take no more.
_STREAM_ERRORS = (ProtocolError, KeyError)


class StreamGone(Exception):
    """The stream ended, failed or was reset: nothing more can be written on it."""


class ClientStream:
    """One call's HTTP/2 stream, as the call sees it."""

    __slots__ = (
        "app_error",
        "conn",
        "failure",
        "framing",
        "head",
        "local_ended",
        "reader",
        "refused",
        "remote_ended",
        "sid",
        "timed_out",
        "trailers",
        "unacked",
        "_read_waiter",
        "_write_waiter",
    )

    def __init__(self, conn: ClientConnection, sid: int, limit: int) -> None:
        self.conn = conn
        self.sid = sid
        self.reader = MessageReader(limit)
        #: the response's HEADERS, ``None`` until they came.
        self.head: list[tuple[bytes, bytes]] | None = None
        #: the trailers (the HEADERS again for a trailers-only answer), ``None`` until they came.
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.remote_ended = False
        self.local_ended = False
        #: why the stream failed (``"reset the call (RST_STREAM 2)"``), ``None`` while it did not.
        self.failure: str | None = None
        #: the upstream refused the stream before its answer began (REFUSED_STREAM, or above a
        #: GOAWAY's last stream): it did nothing with it, so it may be sent again.
        self.refused = False
        #: the call's deadline passed (the stream was reset then).
        self.timed_out = False
        #: a message the client refused, either way (the stream was reset then).
        self.framing: FramingError | None = None
        #: the app's request stream broke (the stream was reset then).
        self.app_error: Exception | None = None
        #: bytes received and not acknowledged yet (a whole message waits for the app).
        self.unacked = 0
        self._read_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None

    # --- from the connection -----------------------------------------------------------------

    def on_head(self, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        self.head = headers
        if ended:
            self.trailers = headers
            self.on_end()
        self._wake_reader()

    def on_data(self, data: bytes, flow_length: int) -> None:
        if self.failure is not None or self.framing is not None:
            self.conn.ack(flow_length, self.sid)
            return
        reader = self.reader
        try:
            reader.feed(data)
        except FramingError as e:
            self.framing = e
            self.conn.ack(flow_length, self.sid)
            self.reset(CANCEL)
            return
        if reader.messages:
            self.unacked += flow_length
        else:
            self.conn.ack(flow_length, self.sid)
        self._wake_reader()

    def on_trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.trailers = headers

    def on_end(self) -> None:
        if self.remote_ended:
            return
        self.remote_ended = True
        if self.local_ended:
            self.conn.forget(self)
        self._wake_reader()
        self._wake_writer()

    def on_failed(self, why: str, refused: bool = False) -> None:
        """Reset by the upstream, refused by its GOAWAY, or its connection is gone."""
        if self.failure is None and not self.remote_ended:
            self.failure = why
            self.refused = refused and self.head is None
        self.remote_ended = self.local_ended = True
        self._wake_reader()
        self._wake_writer()

    def on_window(self) -> None:
        self._wake_writer()

    # --- from the call -----------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Nothing more will come: the answer ended, or the stream failed."""
        return self.remote_ended

    async def wait(self) -> None:
        """Until the connection has news for this stream (its caller checks what it is)."""
        waiter = self._read_waiter = new_future(self.conn.loop)
        try:
            await waiter
        finally:
            self._read_waiter = None

    def take(self) -> bytes:
        """The next whole message (there is one); acknowledges what was held for it."""
        messages = self.reader.messages
        message = messages.popleft()
        if not messages and self.unacked:
            self.conn.ack(self.unacked, self.sid)
            self.unacked = 0
        return message

    def expire(self) -> None:
        """The call's deadline passed: reset the stream and wake the call."""
        if not self.remote_ended:
            self.timed_out = True
            self.reset(CANCEL)

    def reset(self, code: int = CANCEL) -> None:
        """End the stream both ways (the call was cancelled, or it is over)."""
        if not (self.remote_ended and self.local_ended):
            self.conn.reset(self, code)
        self.remote_ended = self.local_ended = True
        self._wake_reader()
        self._wake_writer()

    def send_now(self, data: bytes, end: bool) -> bool:
        """Send ``data`` at once if the window and the socket take it whole, else nothing."""
        conn = self.conn
        h2 = conn.h2
        size = len(data)
        try:
            if (
                self.local_ended
                or conn.write_paused
                or size > h2.local_flow_control_window(self.sid)
            ):
                return False
            frame = h2.max_outbound_frame_size
            if size <= frame:
                h2.send_data(self.sid, data, end_stream=end)
            else:  # within the window: in frames, all in this turn
                view = memoryview(data)
                for start in range(0, size, frame):
                    last = end and start + frame >= size
                    h2.send_data(self.sid, view[start : start + frame], end_stream=last)
        except _STREAM_ERRORS:
            return False  # closed meanwhile: send() says so
        conn.mark()
        if end:
            self._ended_locally()
        return True

    async def send(self, data: bytes, end: bool) -> None:
        """Send ``data`` as the upstream's window and the socket allow; raises
        :class:`StreamGone` once the stream can take no more."""
        conn = self.conn
        h2 = conn.h2
        view = memoryview(data)
        sent, size = 0, len(data)
        while True:
            if self.local_ended:
                raise StreamGone
            try:
                room = 0 if conn.write_paused else h2.local_flow_control_window(self.sid)
                if room <= 0 and (size > sent or not end):
                    if size == sent:
                        return
                    await self._wait_write()
                    continue
                chunk = min(room, h2.max_outbound_frame_size, size - sent)
                last = end and sent + chunk == size
                h2.send_data(self.sid, view[sent : sent + chunk], end_stream=last)
            except _STREAM_ERRORS:
                raise StreamGone from None
            conn.mark()
            sent += chunk
            if last:
                self._ended_locally()
                return
            if sent == size:
                return

    def end(self) -> None:
        """Half-close: the request is over."""
        if not self.local_ended:
            try:
                self.conn.h2.end_stream(self.sid)
            except _STREAM_ERRORS:
                raise StreamGone from None
            self.conn.mark()
            self._ended_locally()

    def _ended_locally(self) -> None:
        self.local_ended = True
        if self.remote_ended:
            self.conn.forget(self)

    async def _wait_write(self) -> None:
        waiter = self._write_waiter = new_future(self.conn.loop)
        try:
            await waiter
        finally:
            self._write_waiter = None

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
