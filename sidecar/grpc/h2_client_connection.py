"""One HTTP/2 connection to a gRPC upstream: an asyncio Protocol driving a client-side
:class:`sidecar.http2.connection.Connection` and its calls' streams (:mod:`.h2_client_stream`).

It is *ready* once the upstream's first SETTINGS came (so its ``MAX_CONCURRENT_STREAMS`` is
known before a call is sent). Writes are coalesced: streams queue frames and one flush per
loop turn hands them to the socket. Senders stop while the socket is paused
(``pause_writing``); reading pauses only when the write buffer still grows past
:data:`MAX_WRITE_BUFFER` (control frames the upstream makes us answer while it reads nothing).
One loop turn hands the state machine at most :data:`FRAMES_PER_TURN` frames; the rest waits
for the next turn with reading paused, so an upstream flooding PINGs (each answered) takes one
turn's share of the event loop, not all of it, and the other connections keep being served.
What the upstream may send is bounded by the windows this client grants: a stream's
(:data:`STREAM_WINDOW`, reopened as the app reads) and the connection's
(:data:`CONNECTION_WINDOW`).

GOAWAY: calls above its last stream id fail as refused (nothing ran: a retry is safe), the
others finish, and the channel sends new calls to a new connection; the connection closes
when its last call ends. A lost connection fails every call on it. Keepalive: after
``keepalive_time`` without a byte from the upstream, a PING (only while calls are in flight
unless ``keepalive_permit_without_calls``); no answer within ``keepalive_timeout`` closes the
connection. Not here: connecting and reconnecting (:mod:`.h2_channel`).
"""

from __future__ import annotations

__all__ = ["CONNECTION_WINDOW", "MAX_WRITE_BUFFER", "STREAM_WINDOW", "ClientConnection"]

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from ..flow_control import reading_set
from ..http2 import events as ev
from ..http2.connection import Connection
from ..http2.errors import ProtocolError, StreamClosedError
from .h2_client_stream import ClientStream

#: the window each stream starts with (the upstream may send this much ahead of the app).
STREAM_WINDOW = 1024 * 1024
#: the connection's window: what all its streams together may hold unread.
CONNECTION_WINDOW = 16 * 1024 * 1024
#: past this much unwritten, reading pauses until the socket drains.
MAX_WRITE_BUFFER = 4 * 1024 * 1024
#: frames handed to the state machine per loop turn (tiny frames cost work, not bytes).
FRAMES_PER_TURN = 1000
#: streams opened on one connection at most, whatever the upstream allows.
MAX_STREAMS = 1024
_MAX_CONCURRENT_STREAMS = 0x3
_REFUSED = 0x7
_ENHANCE_YOUR_CALM = 0xB
_PING = b"sidecar!"
_STREAM_ERRORS = (ProtocolError, StreamClosedError, KeyError)


class ClientConnection(asyncio.Protocol):
    """One connection's state machine, streams, coalesced writes and keepalive."""

    def __init__(
        self,
        *,
        on_ready: Callable[[ClientConnection], None],
        on_gone: Callable[[ClientConnection], None],
        on_slot: Callable[[ClientConnection], None],
        limit: int,
        keepalive: tuple[float, float, bool] | None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.h2 = Connection(
            True,
            initial_window_size=STREAM_WINDOW,
            max_header_list_size=64 * 1024,
            max_header_block_size=64 * 1024,
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, ClientStream] = {}
        #: the upstream's SETTINGS_MAX_CONCURRENT_STREAMS (bounded by :data:`MAX_STREAMS`).
        self.max_streams = MAX_STREAMS
        #: streams a new call may find open: ``max_streams``, or fewer right after a refusal.
        self.cap = MAX_STREAMS
        self.ready = False
        #: GOAWAY came (or the channel let it go): no new stream.
        self.going_away = False
        self.closed = False
        self.write_paused = False
        #: why it closed, for the calls that were on it.
        self.error: str | None = None
        #: why the upstream sent GOAWAY with an error code (logged once by the channel)
        self.goaway_reason: str | None = None
        self.logged = False
        #: what ended the transport (a TLS alert in a handshake's last step, say).
        self.lost: Exception | None = None
        self._on_ready, self._on_gone, self._on_slot = on_ready, on_gone, on_slot
        self._limit = limit
        self._flush_at: asyncio.Handle | None = None
        self._reading_paused = False
        #: reading is held for the write buffer to drain
        self._writes_held = False
        #: bytes received past this turn's frames, handed over next turn
        self._backlog: bytearray | None = None
        self._next_turn: asyncio.Handle | None = None
        #: payload bytes of the frame being received still to come, and the start of a
        #: frame header split over two reads (where turns may cut the bytes)
        self._skip = 0
        self._head = b""
        self._keepalive = keepalive
        self._keepalive_at: asyncio.TimerHandle | None = None
        self._ping_sent = False
        self._last_read = self.loop.time()

    # --- asyncio -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            alpn = ssl_object.selected_alpn_protocol()
            if alpn not in (None, "h2"):
                self.close(f"negotiated {alpn} over ALPN, not h2")
                return
        h2 = self.h2
        h2.initiate_connection()
        h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()
        if self._keepalive is not None:
            self._keepalive_at = self.loop.call_later(self._keepalive[0], self._keepalive_due)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.lost = exc
        self._backlog = None
        if self._next_turn is not None:
            self._next_turn.cancel()
            self._next_turn = None
        self._fail_all(self.error or "closed the connection")

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._writes_held = False
        self._pace_reading()
        for stream in self.streams.values():
            stream.on_window()

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        if self._backlog is not None:  # a read already in hand when reading paused: in order
            self._backlog += data
            return
        self._receive(data)

    def _turn(self) -> None:
        self._next_turn = None
        data = self._backlog
        if data is None or self.transport is None:
            return
        self._backlog = None
        self._receive(data)
        self._pace_reading()

    def _pace_reading(self) -> None:
        """Read while no bytes wait for a turn and the write buffer is not held up."""
        pause = self._backlog is not None or self._writes_held
        self._reading_paused = reading_set(self.transport, pause, self._reading_paused)

    def _receive(self, data: bytes | bytearray) -> None:
        """One turn: up to :data:`FRAMES_PER_TURN` frames, the rest kept for the next."""
        cut = self._frames_end(data)
        chunk: bytes | bytearray | memoryview = data
        if cut < len(data):
            view = memoryview(data)
            self._backlog = bytearray(view[cut:])
            chunk = view[:cut]
            self._next_turn = self.loop.call_soon(self._turn)
            self._pace_reading()
        try:
            events = self.h2.receive_data(chunk)
        except ProtocolError as e:
            self.close(f"broke the HTTP/2 protocol ({e})")
            return
        streams = self.streams
        for event in events:
            if isinstance(event, ev.DataReceived):
                stream = streams.get(event.stream_id)
                if stream is None:
                    self.ack(event.flow_controlled_length, event.stream_id)
                else:
                    stream.on_data(event.data, event.flow_controlled_length)
            elif isinstance(event, ev.ResponseReceived):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_head(event.headers, bool(event.stream_ended))
            elif isinstance(event, ev.TrailersReceived):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_trailers(event.headers)
            elif isinstance(event, ev.StreamEnded):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_end()
            elif isinstance(event, ev.WindowUpdated):
                self._window(event.stream_id)
            elif isinstance(event, ev.StreamReset):
                stream = streams.pop(event.stream_id, None)
                if stream is not None:
                    code = event.error_code
                    stream.on_failed(f"reset the call (RST_STREAM {code})", code == _REFUSED)
                    if code == _REFUSED and streams:
                        # the upstream counts streams a little longer than this client does:
                        # the next call waits for one of those open to end
                        self.cap = len(streams)
                    self._freed()
            elif isinstance(event, ev.RemoteSettingsChanged):
                self._settings(event.changed)
            elif isinstance(event, ev.PingAckReceived):
                self._ping_answered()
            elif isinstance(event, ev.ConnectionTerminated):
                self._goaway(event.error_code, event.last_stream_id, event.additional_data)
        self.flush()

    def _frames_end(self, data: bytes | bytearray) -> int:
        """Where :data:`FRAMES_PER_TURN` frames of ``data`` end (its length if fewer): a frame
        boundary, so the rest is counted again next turn. Headers only; payloads are skipped."""
        end = len(data)
        pos = seen = 0
        skip = self._skip
        if self._head:  # a frame header split over reads
            need = 9 - len(self._head)
            if end < need:
                self._head += bytes(data)
                return end
            skip = int.from_bytes((self._head + bytes(data[:need]))[:3], "big")
            self._head = b""
            pos, seen = need, 1
        while True:
            take = min(skip, end - pos)
            pos += take
            skip -= take
            if skip or seen >= FRAMES_PER_TURN or pos == end:
                break
            if end - pos < 9:
                self._head = bytes(data[pos:])
                pos = end
                break
            skip = int.from_bytes(data[pos : pos + 3], "big")
            seen += 1
            pos += 9
        self._skip = skip
        return pos

    # --- writes ------------------------------------------------------------------------------

    def mark(self) -> None:
        """Frames were queued: flush them once this loop turn is over."""
        if self._flush_at is None:
            self._flush_at = self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_at = None
        transport = self.transport
        if transport is None:
            return
        data = self.h2.data_to_send()
        if data:
            transport.write(data)
            if (
                self.write_paused
                and not self._writes_held
                and transport.get_write_buffer_size() > MAX_WRITE_BUFFER
            ):
                self._writes_held = True
                self._pace_reading()

    # --- streams -----------------------------------------------------------------------------

    @property
    def has_room(self) -> bool:
        """A new call may start here now."""
        # the state machine's own count too: it refuses a stream past the upstream's limit
        return (
            self.ready
            and not self.going_away
            and len(self.streams) < self.cap
            and self.h2.open_outbound_streams < self.max_streams
        )

    def start(self, headers: list[tuple[bytes, bytes]], end: bool) -> ClientStream:
        """A new stream with the call's HEADERS queued (``end``: and its request over)."""
        h2 = self.h2
        sid = h2.get_next_available_stream_id()
        stream = ClientStream(self, sid, self._limit)
        h2.send_headers(sid, headers, end_stream=end)
        if end:
            stream.local_ended = True
        self.streams[sid] = stream
        self.mark()
        return stream

    def ack(self, length: int, sid: int) -> None:
        """``length`` received bytes of stream ``sid`` were consumed: reopen the windows."""
        if length and self.transport is not None:
            try:
                self.h2.acknowledge_received_data(length, sid)
            except _STREAM_ERRORS:
                return  # the stream is gone; the connection's window is h2's to reopen
            self.mark()

    def reset(self, stream: ClientStream, code: int) -> None:
        if self.streams.pop(stream.sid, None) is None:
            return
        if self.transport is not None:
            try:
                self.h2.reset_stream(stream.sid, code)
            except _STREAM_ERRORS:
                pass  # closed meanwhile: nothing to reset
            self.mark()
        self._freed()

    def forget(self, stream: ClientStream) -> None:
        """The stream closed both ways."""
        if self.streams.pop(stream.sid, None) is not None:
            self.cap = self.max_streams
            self._freed()

    def _freed(self) -> None:
        if self.going_away:
            if not self.streams:
                self.close(None)
        elif len(self.streams) < self.cap:
            self._on_slot(self)

    def _window(self, sid: int) -> None:
        if sid:
            stream = self.streams.get(sid)
            if stream is not None:
                stream.on_window()
        else:
            for stream in self.streams.values():
                stream.on_window()

    def _settings(self, changed: Any) -> None:
        value = changed.get(_MAX_CONCURRENT_STREAMS)
        if value is not None:
            value = getattr(value, "new_value", value)
            before, self.max_streams = self.max_streams, max(0, min(int(value), MAX_STREAMS))
            self.cap = self.max_streams
            if self.max_streams > before:
                self._on_slot(self)
        self._window(0)  # a new INITIAL_WINDOW_SIZE may have opened every stream's window
        if not self.ready:
            self.ready = True
            self._on_ready(self)

    def _goaway(self, code: int, last_stream_id: int, debug: bytes = b"") -> None:
        first = not self.going_away
        self.going_away = True
        if code and self.error is None:
            # the calls it still ends (when it closes) say why it went away
            self.error = f"closed the connection (GOAWAY, error code {code})"
            if code == _ENHANCE_YOUR_CALM and b"too_many_pings" in debug:
                self.error = (
                    "closed the connection: it was sent more keepalive pings than it allows "
                    "(GOAWAY too_many_pings); raise options.keepalive_time, or turn off "
                    "options.keepalive_permit_without_calls"
                )
            self.goaway_reason = self.error
        for sid in [sid for sid in self.streams if sid > last_stream_id]:
            self.streams.pop(sid).on_failed("refused the call (GOAWAY: it did not run)", True)
        if first:
            self._on_gone(self)
        if not self.streams:
            self.close(None)

    # --- keepalive and closing ---------------------------------------------------------------

    def _keepalive_due(self) -> None:
        self._keepalive_at = None
        keepalive = self._keepalive
        if keepalive is None or self.transport is None:
            return
        every, timeout, without_calls = keepalive
        loop = self.loop
        if self._ping_sent:
            # the ping's time is up: the upstream (or the path to it) is gone
            self.close(f"did not answer a keepalive ping within {timeout:g}s")
            return
        idle = loop.time() - self._last_read
        if idle < every:
            self._keepalive_at = loop.call_later(every - idle, self._keepalive_due)
            return
        if self.streams or without_calls:
            self._ping_sent = True
            self.h2.ping(_PING)
            self.flush()
            self._keepalive_at = loop.call_later(timeout, self._keepalive_due)
        else:
            self._keepalive_at = loop.call_later(every, self._keepalive_due)

    def _ping_answered(self) -> None:
        """The keepalive ping was answered: the next one is due ``keepalive_time`` from now
        (not when the wait for this answer would have ended)."""
        if not self._ping_sent:
            return
        self._ping_sent = False
        keepalive, due = self._keepalive, self._keepalive_at
        if keepalive is not None and due is not None:
            due.cancel()
            self._keepalive_at = self.loop.call_later(keepalive[0], self._keepalive_due)

    def close(self, why: str | None) -> None:
        """Say GOAWAY and close; the calls still on it fail with ``why``."""
        if self.closed:
            return
        self.closed = self.going_away = True
        if why is not None:
            self.error = why
        if self._keepalive_at is not None:
            self._keepalive_at.cancel()
            self._keepalive_at = None
        transport = self.transport
        if transport is not None:
            try:
                self.h2.close_connection()
            except ProtocolError:
                pass  # the state machine closed already
            self.flush()
            transport.close()
            # a peer that does not read its last bytes pins nothing
            self.loop.call_later(1.0, transport.abort)
        self._fail_all(self.error or "closed the connection")

    def _fail_all(self, why: str) -> None:
        if not self.closed:
            self.closed = self.going_away = True
            if self._keepalive_at is not None:
                self._keepalive_at.cancel()
                self._keepalive_at = None
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.on_failed(why)
        self._on_gone(self)
