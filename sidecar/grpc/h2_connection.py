"""One app connection of the HTTP/2 front (:mod:`.h2_listener`): an asyncio Protocol driving a
:mod:`sidecar.http2` connection (the sidecar's own HTTP/2 state machine, compiled with the data
path) and its calls (:class:`~.h2_stream.H2Stream`, re-exported here).

Writes are coalesced: the state machine queues frames, and one flush per loop turn hands them to
the socket. A protocol error closes the connection (its GOAWAY is queued first); RST_STREAM
cancels the call's task; a lost connection cancels every call on it.

Reads are bounded (:mod:`.h2_abuse`): one loop turn hands the state machine at most
``frames_per_turn`` frames, the rest wait for the next turn with reading paused, and reading
also pauses while the app does not read what the sidecar writes (PING and SETTINGS
acknowledgements pile up nowhere).
A call's task starts only at the end of the turn that opened it, so a call reset in the same
turn costs no task; a connection keeps at most ``max_concurrent_streams`` tasks, those of reset
calls still unwinding included. A peer past the flood limits gets GOAWAY(ENHANCE_YOUR_CALM),
is counted and logged once, and is closed.

Not here: one call's messages (:mod:`.h2_stream`), what a call does (:mod:`.h2_listener`),
header decoding (:mod:`.h2_messages`), the flood bookkeeping (:mod:`.h2_abuse`).
"""

from __future__ import annotations

__all__ = ["H2Connection", "H2Stream", "StreamGone"]

import asyncio
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING

from ..flow_control import reading_set
from ..http2 import events as ev
from ..http2.errors import DenialOfServiceError, ProtocolError
from ..http2.frames import ENHANCE_YOUR_CALM, PROTOCOL_ERROR, REFUSED_STREAM
from .h2_abuse import FloodGuard, FrameScan
from .h2_messages import names_encoding
from .h2_stream import STREAM_ERRORS, H2Stream, StreamGone

if TYPE_CHECKING:
    from .h2_listener import H2GrpcListener

#: a closed connection whose peer does not read its last bytes is cut after this long.
ABORT_AFTER = 1.0

log = logging.getLogger("sidecar.grpc")


class H2Connection(asyncio.Protocol):
    """One app connection: its HTTP/2 state machine, streams, bounded reads and coalesced
    writes."""

    def __init__(self, listener: H2GrpcListener) -> None:
        self.listener = listener
        self.h2 = listener.new_h2()
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.client = ""
        self.paused = False
        self.refusing = False
        self._flush_at: asyncio.Handle | None = None
        limits = listener.cfg.flood_protection
        self.frames_per_turn = limits.frames_per_turn
        self.calls_per_turn = limits.calls_per_turn
        self.max_tasks = listener.cfg.max_concurrent_streams
        self.guard = FloodGuard(limits, self.loop.time())
        #: the time the app took, as calls' ages are measured: it runs while the connection
        #: waits for bytes and stands still while the sidecar works through bytes already
        #: received (a call is as young as the app made it, however late the sidecar reads)
        self.clock = 0.0
        self._waiting_since = self.loop.time()
        self.scan = FrameScan()
        #: frames sent so far (each earns the peer a few control frames)
        self.sent_frames = 0
        #: call tasks not finished yet (reset ones still unwinding included)
        self.tasks = 0
        #: calls opened and not started yet, with their headers (``calls_per_turn`` start a turn)
        self._starts: deque[tuple[H2Stream, list[tuple[bytes, bytes]]]] = deque()
        #: bytes received and left for the next turn (reading is paused meanwhile)
        self._backlog: bytearray | None = None
        self._next_turn: asyncio.Handle | None = None
        self._reading_paused = False
        self.flooded: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self.listener
        if not listener.cap.admit(len(listener.connections)):
            # over the listener's connection cap: its handle goes back at once
            transport.abort()  # type: ignore[attr-defined]  # uvloop's is not a subclass
            return
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            host = peer[0]
            self.client = f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
        h2c = self.h2
        h2c.initiate_connection()  # its SETTINGS carry the listener's (see new_h2)
        h2c.increment_flow_control_window(listener.connection_window)
        listener.connections.add(self)
        self.flush()
        if listener.draining:
            self.refuse_new()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._backlog = None
        self._starts.clear()
        if self._next_turn is not None:
            self._next_turn.cancel()
        connections = self.listener.connections
        if self in connections:
            connections.discard(self)
            self.listener.cap.closed(len(connections))
        for stream in list(self.streams.values()):
            stream.gone = True
            stream._wake()
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()

    def pause_writing(self) -> None:
        self.paused = True
        self._pace_reading()  # what the app does not read must not grow: read no more of it

    def resume_writing(self) -> None:
        self.paused = False
        for stream in self.streams.values():
            stream._wake()
        if self._backlog is not None and self._next_turn is None:
            self._next_turn = self.loop.call_soon(self._turn)
        self._pace_reading()

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
        """GOAWAY naming the last stream taken: calls in flight go on, new ones are refused."""
        if self.refusing or self.transport is None:
            return
        self.refusing = True
        self.h2.goaway()
        self.flush()
        if not self.streams:
            self.transport.close()

    def close(self) -> None:
        """Flush what the state machine queued (its GOAWAY), close, and cut the connection if the
        peer has not read it after :data:`ABORT_AFTER`: a peer that stopped reading pins no
        buffer."""
        transport = self.transport
        self._backlog = None
        if transport is not None and not transport.is_closing():
            self.flush()
            transport.close()
            self.loop.call_later(ABORT_AFTER, transport.abort)

    # --- reads -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._backlog is not None:  # a read already in hand when reading paused: in order
            self._backlog += data
            return
        now = self.loop.time()
        self.clock += now - self._waiting_since
        self._receive(data, now)

    def _turn(self) -> None:
        """The next turn: its share of the bytes left over, or of the calls waiting to start.
        Bytes wait while the app does not read (resume_writing schedules a turn)."""
        self._next_turn = None
        if self.transport is None:
            return
        data = self._backlog
        if data is not None and not self.paused:
            self._backlog = None
            self._receive(data, self.loop.time())
            self._pace_reading()
        elif self._starts:
            self._start_calls()
            self.flush()

    def _pace_reading(self) -> None:
        """Read while nothing is left over and the app reads what is written to it."""
        pause = self._backlog is not None or self.paused
        self._reading_paused = reading_set(self.transport, pause, self._reading_paused)

    def _receive(self, data: bytes | bytearray, now: float) -> None:
        """One turn: at most ``frames_per_turn`` frames to the state machine, their events, the
        verdict on the window's counts, then up to ``calls_per_turn`` tasks of calls opened and
        still alive."""
        guard = self.guard
        guard.roll(now, self.sent_frames)
        cut = self.scan.scan(data, self.frames_per_turn, guard.frames)
        chunk: bytes | bytearray | memoryview = data
        if cut < len(data):
            view = memoryview(data)
            self._backlog = bytearray(view[cut:])
            chunk = view[:cut]
            self._next_turn = self.loop.call_soon(self._turn)
            self._pace_reading()
        try:
            events = self.h2.receive_data(chunk)
        except DenialOfServiceError:
            self._flooded("header_block")  # GOAWAY(ENHANCE_YOUR_CALM) is queued already
            return
        except ProtocolError:
            self.close()  # its GOAWAY is queued; the streams are cancelled in connection_lost
            return
        self._events(events)
        if self.transport is None or self.transport.is_closing():
            return
        reason = guard.verdict(self.sent_frames)
        if reason is not None:
            self._flooded(reason)
            return
        self._start_calls()
        self.flush()
        if self._backlog is None:
            self._waiting_since = self.loop.time()

    def _start_calls(self) -> None:
        """Start the tasks of up to ``calls_per_turn`` calls, oldest first; a call the app
        reset before its turn came gets none. More next turn."""
        starts, streams, begin = self._starts, self.streams, self.listener.begin
        started = 0
        while starts and started < self.calls_per_turn:
            stream, headers = starts.popleft()
            if streams.get(stream.sid) is not stream:
                continue
            begin(stream, headers)
            started += 1
            task = stream.task
            if task is not None:
                self.tasks += 1
                task.add_done_callback(self._task_done)
        if starts and self._next_turn is None:
            self._next_turn = self.loop.call_soon(self._turn)

    def _events(self, events: list[ev.Event]) -> None:
        streams = self.streams
        for event in events:
            if isinstance(event, ev.DataReceived):
                stream = streams.get(event.stream_id)
                if stream is None or stream.error is not None:
                    self._ack(event)
                else:
                    stream.on_data(event.data, event.flow_controlled_length)
            elif isinstance(event, ev.RequestReceived):
                self._request(event)
            elif isinstance(event, ev.RequestTooLarge):
                self._too_large(event)
            elif isinstance(event, ev.StreamEnded):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_end()
            elif isinstance(event, ev.WindowUpdated):
                self._window(event.stream_id)
            elif isinstance(event, ev.StreamReset):
                if (
                    not event.remote_reset
                    and event.error_code == REFUSED_STREAM
                    and not self.refusing
                    and event.stream_id not in streams
                ):
                    self._over_the_limit()
                    return
                self._reset(event.stream_id, event.remote_reset)
            elif isinstance(event, ev.RemoteSettingsChanged):
                self._window(0)
            elif isinstance(event, ev.ConnectionTerminated):
                self.refusing = True  # the app said GOAWAY: its calls in flight may finish
                if not streams:
                    self.close()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks -= 1

    def _ack(self, event: ev.DataReceived) -> None:
        try:
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        except STREAM_ERRORS:
            pass

    def _request(self, event: ev.RequestReceived) -> None:
        sid = event.stream_id
        # refused while draining, or while this connection's tasks (reset calls still unwinding
        # included) and calls waiting to start fill its concurrency: REFUSED_STREAM tells the
        # app nothing ran (gRPC clients retry it)
        if self.refusing or self.tasks + len(self._starts) >= self.max_tasks:
            try:
                self.h2.reset_stream(sid, REFUSED_STREAM)
            except STREAM_ERRORS:
                pass
            return
        stream = self._opened(sid, event.stream_ended)
        stream.encoded = names_encoding(event.headers)
        self._starts.append((stream, event.headers))

    def _too_large(self, event: ev.RequestTooLarge) -> None:
        """A call whose metadata is over the limit: answered now, with no task."""
        stream = self._opened(event.stream_id, event.stream_ended)
        self.listener.too_large(stream, event.size, event.path)

    def _opened(self, sid: int, ended: bool) -> H2Stream:
        """The app's new call on stream ``sid``, kept and counted as a call."""
        stream = H2Stream(self, sid)
        self.streams[sid] = stream
        if ended:
            stream.ended = True
        self.guard.calls += 1
        return stream

    def _window(self, sid: int) -> None:
        if sid == 0:
            for stream in self.streams.values():
                stream._wake()
        else:
            one = self.streams.get(sid)
            if one is not None:
                one._wake()

    def _reset(self, sid: int, by_app: bool) -> None:
        stream = self.streams.pop(sid, None)
        if stream is not None:
            if by_app and self.clock - stream.opened < self.guard.min_lifetime:
                self.guard.premature += 1
            stream._ack()
            stream.gone = True
            stream._wake()
            if stream.task is not None:
                stream.task.cancel()

    def _over_the_limit(self) -> None:
        """The app opened more calls than the SETTINGS it was sent allow (the state machine
        refused the call, a stream error the RFC allows): the connection is closed with
        GOAWAY(PROTOCOL_ERROR) instead, as a refused stream costs the sidecar a header block
        decoded and nothing counts it as a call, so a peer that keeps doing it is flooding."""
        if self.transport is None:
            return
        try:
            self.h2.close_connection(error_code=PROTOCOL_ERROR)
        except ProtocolError:
            pass
        self.close()

    def _flooded(self, reason: str) -> None:
        """GOAWAY(ENHANCE_YOUR_CALM), counted and logged once, and the connection closed: its
        calls are cancelled as for a lost connection."""
        if self.flooded is not None or self.transport is None:
            return
        self.flooded = reason
        self.listener.metrics.http2_flood_closed.labels("grpc", reason).inc()
        log.warning(
            "app connection closed: HTTP/2 flood",
            extra={"fields": {"client": self.client, "reason": reason, **self.guard.summary()}},
        )
        try:
            self.h2.close_connection(error_code=ENHANCE_YOUR_CALM)
        except ProtocolError:
            pass  # closed already (and its own GOAWAY queued)
        self.close()

    def forget(self, stream: H2Stream) -> None:
        """The call's task ended."""
        if self.streams.get(stream.sid) is stream:
            del self.streams[stream.sid]
        if self.refusing and not self.streams:
            self.close()
