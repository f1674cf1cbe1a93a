"""One app connection of the HTTP/2 front (:mod:`.h2_listener`): an asyncio Protocol driving an
``h2`` connection, and :class:`H2Stream`, one gRPC call on it.

A stream is the call's request body: an async iterator of whole messages, reassembled from DATA
frames by the 5-byte gRPC prefix. Received bytes are acknowledged to the app (reopening its
flow-control window) only while no whole message waits here, so a call buffers at most one
window plus one message: the app is slowed down, not buffered. A prefix is checked as it
arrives: a compressed message (no ``grpc-encoding`` is accepted) or one over the size limit
ends the call at once. The stream also writes the answer: each message waits for the app's
window, and for the socket when the kernel buffer is full.

Writes are coalesced: h2 queues frames, and one flush per loop turn hands them to the socket.
A protocol error closes the connection (h2 queues its GOAWAY first); RST_STREAM cancels the
call's task; a lost connection cancels every call on it.

Not here: what a call does (:mod:`.h2_listener`), header decoding (:mod:`.h2_messages`).
"""

from __future__ import annotations

__all__ = ["H2Connection", "H2Stream", "StreamGone"]

import asyncio
import socket
from typing import TYPE_CHECKING, Any

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from ..errors import BodyTooLarge, SidecarError

if TYPE_CHECKING:
    from .h2_listener import H2GrpcListener

_STREAM_ERRORS = (h2.exceptions.ProtocolError, KeyError)
_NO_ERROR = h2.errors.ErrorCodes.NO_ERROR
_CANCEL = h2.errors.ErrorCodes.CANCEL


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
        "ended",
        "error",
        "gone",
        "h2",
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
        self.gone = False
        self.sent_head = False
        self.error: SidecarError | None = None
        #: the reader's wait for data, the writer's for window or socket room (two tasks)
        self.waiter: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

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
            except _STREAM_ERRORS:
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
            waiter = self.waiter = self.conn.loop.create_future()
            await waiter

    # --- response ----------------------------------------------------------------------------

    def send_headers(self, block: list[tuple[bytes, bytes]], end: bool = False) -> None:
        if self.gone:
            raise StreamGone
        try:
            self.h2.send_headers(self.sid, block, end_stream=end)
        except _STREAM_ERRORS:
            self.gone = True
            raise StreamGone from None
        self.sent_head = True
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
            except _STREAM_ERRORS:
                self.gone = True
                raise StreamGone from None
            if room <= 0 or conn.paused:
                waiter = self.writable = conn.loop.create_future()
                await waiter
                continue
            chunk = data if offset == 0 and total <= room else data[offset : offset + room]
            h2c.send_data(sid, chunk)
            offset += len(chunk)
            conn.mark()

    def finish(self) -> None:
        """After the answer's END_STREAM: a request stream still open is reset (NO_ERROR), as
        gRPC servers tell an app that its further messages are not wanted. Bytes received and
        never read are acknowledged: the connection's window must not shrink for good."""
        self.buf.clear()
        self._ack()
        if not self.ended and not self.gone:
            try:
                self.h2.reset_stream(self.sid, _NO_ERROR)
            except _STREAM_ERRORS:
                pass
            self.conn.mark()
        self.gone = True


class H2Connection(asyncio.Protocol):
    """One app connection: its h2 state machine, streams, and coalesced writes."""

    def __init__(self, listener: H2GrpcListener) -> None:
        self.listener = listener
        self.h2 = h2.connection.H2Connection(listener.h2_config)
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.client = ""
        self.paused = False
        self.refusing = False
        self._flush_at: asyncio.Handle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            host = peer[0]
            self.client = f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
        listener = self.listener
        h2c = self.h2
        h2c.initiate_connection()
        h2c.update_settings(listener.h2_settings)
        h2c.increment_flow_control_window(listener.connection_window)
        listener.connections.add(self)
        self.flush()
        if listener.draining:
            self.refuse_new()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.listener.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.gone = True
            stream._wake()
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in self.streams.values():
            stream._wake()

    # --- writes ------------------------------------------------------------------------------

    def mark(self) -> None:
        """Frames were queued: flush them once this loop turn is over."""
        if self._flush_at is None:
            self._flush_at = self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_at = None
        data = self.h2.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def refuse_new(self) -> None:
        """GOAWAY naming the last stream taken: calls in flight go on, new ones are refused.
        Written by hand: h2's own GOAWAY closes its state machine to every further frame."""
        if self.refusing or self.transport is None:
            return
        self.refusing = True
        self.flush()
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.h2.highest_inbound_stream_id
        frame.error_code = _NO_ERROR
        self.transport.write(frame.serialize())
        if not self.streams:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.flush()
            self.transport.close()

    # --- reads -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.close()  # h2 queued its GOAWAY; the streams are cancelled in connection_lost
            return
        streams = self.streams
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is None or stream.error is not None:
                    self._ack(event)
                else:
                    stream.on_data(event.data, event.flow_controlled_length)  # type: ignore[attr-defined]
            elif kind is h2.events.RequestReceived:
                self._request(event)
            elif kind is h2.events.StreamEnded:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.on_end()
            elif kind is h2.events.WindowUpdated:
                self._window(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.StreamReset:
                self._reset(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.RemoteSettingsChanged:
                self._window(0)
            elif kind is h2.events.ConnectionTerminated:
                self.refusing = True  # the app said GOAWAY: its calls in flight may finish
                if not streams:
                    self.close()
        self.flush()

    def _ack(self, event: Any) -> None:
        try:
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        except _STREAM_ERRORS:
            pass

    def _request(self, event: Any) -> None:
        sid = event.stream_id
        if self.refusing:
            try:
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            except _STREAM_ERRORS:
                pass
            return
        stream = H2Stream(self, sid)
        self.streams[sid] = stream
        if event.stream_ended is not None:
            stream.ended = True
        self.listener.begin(stream, event.headers)

    def _window(self, sid: int) -> None:
        if sid == 0:
            for stream in self.streams.values():
                stream._wake()
        else:
            one = self.streams.get(sid)
            if one is not None:
                one._wake()

    def _reset(self, sid: int) -> None:
        stream = self.streams.pop(sid, None)
        if stream is not None:
            stream._ack()
            stream.gone = True
            stream._wake()
            if stream.task is not None:
                stream.task.cancel()

    def forget(self, stream: H2Stream) -> None:
        """The call's task ended."""
        if self.streams.get(stream.sid) is stream:
            del self.streams[stream.sid]
        if self.refusing and not self.streams:
            self.close()
