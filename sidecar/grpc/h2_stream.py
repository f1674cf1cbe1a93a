"""One gRPC call on an app connection of the HTTP/2 front (:mod:`.h2_connection`): its request
messages, reassembled from DATA frames, and its answer's writes.

A stream is the call's request body: an async iterator of whole messages, reassembled from DATA
frames by the 5-byte gRPC prefix; or, when the app had already sent one whole message and
half-closed as the call began (a unary or server-streaming call, sent in one go), that message
taken whole (:meth:`H2Stream.whole_request`), which the adapter can send as a single-request
call. Received bytes are acknowledged to the app (reopening its
flow-control window) only while no whole message waits here, so a call buffers at most one
window plus one message: the app is slowed down, not buffered. A prefix is checked as it
arrives: a compressed message (no ``grpc-encoding`` is accepted) or one over the size limit
ends the call at once. The stream also writes the answer: each message waits for the app's
window, and for the socket when the kernel buffer is full.

Not here: the connection's frames, reads and writes (:mod:`.h2_connection`), what a call does
(:mod:`.h2_listener`).
"""

from __future__ import annotations

__all__ = ["STREAM_ERRORS", "CompressedMessage", "H2Stream", "StreamGone", "TruncatedMessage"]

import asyncio
from typing import TYPE_CHECKING

from ..errors import BodyTooLarge, SidecarError
from ..http2.errors import ProtocolError
from ..http2.frames import NO_ERROR
from ..waiter import new_future

if TYPE_CHECKING:
    from .h2_connection import H2Connection

#: what the state machine raises for a stream that is gone (reset, or its connection closed)
STREAM_ERRORS = (ProtocolError, KeyError)


class StreamGone(Exception):
    """The app reset the stream or the connection closed: nothing more can be written."""


class CompressedMessage(SidecarError):
    """A message with the compressed flag: this listener takes no ``grpc-encoding``."""

    status, grpc_code, code = 400, 13, "bad_request"


class TruncatedMessage(SidecarError):
    """The app ended its stream inside a message."""

    status, grpc_code, code = 400, 13, "bad_request"


class H2Stream:
    """One call: its request messages (async iterator) and its response writes."""

    __slots__ = (
        "buf",
        "conn",
        "encoded",
        "ended",
        "error",
        "gone",
        "h2",
        "opened",
        "scan",
        "sent_head",
        "sid",
        "task",
        "unacked",
        "waiter",
        "writable",
    )

    def __init__(self, conn: H2Connection, sid: int) -> None:
        self.conn = conn
        self.h2 = conn.h2
        self.sid = sid
        self.buf = bytearray()
        #: offset of the next prefix not checked yet (every message before it was)
        self.scan = 0
        #: flow-controlled bytes received and not yet acknowledged to the app
        self.unacked = 0
        self.ended = False
        #: the request's HEADERS name a ``grpc-encoding`` other than identity: the call is
        #: refused for that (UNIMPLEMENTED, :meth:`H2GrpcListener.begin`), not for its messages
        self.encoded = False
        self.gone = False
        self.sent_head = False
        self.error: SidecarError | None = None
        #: the reader's wait for data, the writer's for window or socket room (two tasks)
        self.waiter: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        #: the connection's clock when the call opened (:attr:`H2Connection.clock`)
        self.opened = conn.clock

    # --- request messages --------------------------------------------------------------------

    def on_data(self, data: bytes, flow: int) -> None:
        buf = self.buf
        buf += data
        self.unacked += flow
        limit = self.conn.listener.max_receive
        scan = self.scan
        while len(buf) - scan >= 5:
            size = int.from_bytes(buf[scan + 1 : scan + 5], "big")
            if buf[scan]:
                if self.encoded:
                    return  # held (within the app's window) until the call is refused
                self.fail(CompressedMessage("a compressed message, but no grpc-encoding is used"))
                return
            if size > limit:
                self.fail(BodyTooLarge(f"a message of {size} bytes is over the limit ({limit})"))
                return
            scan += 5 + size
        self.scan = scan
        if not self._whole():
            self._ack()  # the next message needs more bytes: let the app send them
        self._wake()

    def on_end(self) -> None:
        self.ended = True
        self._wake()

    def _whole(self) -> bool:
        buf = self.buf
        return len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[1:5], "big")

    def _ack(self) -> None:
        if self.unacked:
            try:
                self.h2.acknowledge_received_data(self.unacked, self.sid)
            except STREAM_ERRORS:
                pass
            self.unacked = 0
            self.conn.mark()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        waiter = self.writable
        if waiter is not None:
            self.writable = None
            if not waiter.done():
                waiter.set_result(None)

    def fail(self, error: SidecarError) -> None:
        """End the request stream with ``error``: the chain reading it sees it, and the app
        is answered with its status (the call's task is cancelled if it does not finish)."""
        if self.error is None:
            self.error = error
            self.buf.clear()
            self.scan = 0
            self._ack()  # what was received counts against the connection's window too
            self.conn.listener.refuse(self, error)
        self._wake()

    def whole_request(self) -> bytes | None:
        """The call's only message, taken off the stream, when the app has half-closed after
        exactly one whole message; ``None`` otherwise (the body is read as a stream). It never
        waits: a message still on its way makes the call a stream, which is right for any."""
        buf = self.buf
        if not self.ended or self.error is not None or len(buf) < 5:
            return None
        end = 5 + int.from_bytes(buf[1:5], "big")
        if len(buf) != end:
            return None
        message = bytes(buf[5:])
        buf.clear()
        self.scan = 0
        self._ack()
        return message

    def __aiter__(self) -> H2Stream:
        return self

    async def __anext__(self) -> bytes:
        while True:
            if self.error is not None:
                raise self.error
            buf = self.buf
            if len(buf) >= 5:
                end = 5 + int.from_bytes(buf[1:5], "big")
                if len(buf) >= end:
                    message = bytes(buf[5:end])
                    del buf[:end]
                    self.scan -= end
                    if not self._whole():
                        self._ack()
                    return message
            if self.ended:
                if buf:
                    raise TruncatedMessage("the app's stream ended inside a message")
                raise StopAsyncIteration
            if self.gone:
                raise StreamGone
            waiter = self.waiter = new_future(self.conn.loop)
            await waiter

    # --- response ----------------------------------------------------------------------------

    def send_headers(self, block: list[tuple[bytes, bytes]], end: bool = False) -> None:
        if self.gone:
            raise StreamGone
        try:
            self.h2.send_headers(self.sid, block, end_stream=end)
        except STREAM_ERRORS:
            self.gone = True
            raise StreamGone from None
        self.sent_head = True
        self.conn.sent_frames += 1
        self.conn.mark()

    async def send_message(self, message: bytes) -> None:
        """Write one message, framed, as the app's flow-control window and the socket allow."""
        data = b"\0" + len(message).to_bytes(4, "big") + message
        conn, h2c, sid = self.conn, self.h2, self.sid
        offset, total = 0, len(data)
        while offset < total:
            if self.gone:
                raise StreamGone
            try:
                room = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size)
            except STREAM_ERRORS:
                self.gone = True
                raise StreamGone from None
            if room <= 0 or conn.paused:
                waiter = self.writable = new_future(self.conn.loop)
                await waiter
                continue
            chunk = data if offset == 0 and total <= room else data[offset : offset + room]
            h2c.send_data(sid, chunk)
            offset += len(chunk)
            conn.sent_frames += 1
            conn.mark()

    def finish(self) -> None:
        """After the answer's END_STREAM: a request stream still open is reset (NO_ERROR), as
        gRPC servers tell an app that its further messages are not wanted. Bytes received and
        never read are acknowledged: the connection's window must not shrink for good. A reader
        still waiting for a message (the upstream call's request pump) is woken to end."""
        self.buf.clear()
        self._ack()
        if not self.ended and not self.gone:
            try:
                self.h2.reset_stream(self.sid, NO_ERROR)
            except STREAM_ERRORS:
                pass
            self.conn.mark()
        self.gone = True
        self._wake()
