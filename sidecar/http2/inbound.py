"""The receiving half of an HTTP/2 connection: bytes in, frames parsed, events out (RFC 9113).

Bytes are parsed straight from what the caller hands in; only a frame cut by the read is
buffered (at most one frame: its header is checked against our max frame size before its
payload is waited for). Each frame is dispatched on its type, an ``int``. A connection error
raises a :class:`~.errors.ProtocolError` from a handler; :meth:`FrameReceiver.receive_data`
queues the GOAWAY with its code, closes the connection and re-raises. A stream error is not
raised: RST_STREAM is queued, a StreamReset event reported, and the next frame read.

Not here: the sending API (:mod:`.connection`), the shared bookkeeping (:mod:`.state`), header
blocks and their checks (:mod:`.header_blocks`).
"""

from __future__ import annotations

from . import frames as f
from .errors import (
    DenialOfServiceError,
    FlowControlError,
    FrameSizeError,
    ProtocolError,
)
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    PingAckReceived,
    PingReceived,
    RemoteSettingsChanged,
    SettingsAcknowledged,
    StreamReset,
    WindowUpdated,
)
from .header_blocks import HeaderBlockReceiver
from .streams import CLOSED_BY_RESET_RECEIVED, CLOSED_BY_RESET_SENT


class FrameReceiver(HeaderBlockReceiver):
    """Parses received bytes into frames and frames into events and state changes."""

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed received bytes; return the events they complete. A connection error raises
        (its GOAWAY queued); after it, or after close_connection, bytes are ignored."""
        events: list[Event] = []
        if self.closed:
            return events
        chunk = data if isinstance(data, bytes) else bytes(data)
        try:
            if self.preface_left:
                chunk = self.check_preface(chunk)
            partial = self.partial
            if partial:
                partial += chunk
                if len(partial) < f.FRAME_HEADER_SIZE:
                    return events
                length = f.frame_length(partial, 0)
                if length > self.local_max_frame_size:
                    raise FrameSizeError("frame over SETTINGS_MAX_FRAME_SIZE")
                if len(partial) < f.FRAME_HEADER_SIZE + length:
                    return events
                chunk = bytes(partial)
                partial.clear()
            used = self.read_frames(chunk, events)
        except ProtocolError as error:
            self.connection_error(error.error_code)
            raise
        if used < len(chunk):
            self.partial += chunk[used:]
        return events

    def connection_error(self, error_code: int) -> None:
        """GOAWAY with ``error_code``, and the connection closed."""
        if not self.closed:
            self.closed = True
            self.partial.clear()
            f.write_frame(
                self.out,
                f.GOAWAY,
                0,
                0,
                f.goaway_payload(self.highest_inbound_stream_id, error_code),
            )

    def check_preface(self, chunk: bytes) -> bytes:
        """Check the client preface as it arrives; the bytes after it."""
        done = len(f.PREFACE) - self.preface_left
        take = min(self.preface_left, len(chunk))
        if chunk[:take] != f.PREFACE[done : done + take]:
            raise ProtocolError("invalid HTTP/2 preface")
        self.preface_left -= take
        return chunk[take:]

    def read_frames(self, view: bytes, events: list[Event]) -> int:
        """Handle every whole frame in ``view``; how many bytes they took."""
        pos = 0
        end = len(view)
        while end - pos >= f.FRAME_HEADER_SIZE:
            length = f.frame_length(view, pos)
            if length > self.local_max_frame_size:
                raise FrameSizeError("frame over SETTINGS_MAX_FRAME_SIZE")
            start = pos + f.FRAME_HEADER_SIZE
            if end - start < length:
                break
            frame_type = view[pos + 3]
            flags = view[pos + 4]
            sid = f.stream_id_at(view, pos + 5)
            pos = start + length
            payload = view[start:pos]
            if self.continued_stream:
                if frame_type != f.CONTINUATION or sid != self.continued_stream:
                    raise ProtocolError("a header block was interrupted")
                self.on_continuation(flags, payload, events)
            elif frame_type == f.DATA:
                self.on_data(flags, sid, payload, events)
            elif frame_type == f.HEADERS:
                self.on_headers(flags, sid, payload, events)
            elif not self.settings_received and frame_type != f.SETTINGS:
                raise ProtocolError("the first frame must be SETTINGS")
            elif frame_type == f.WINDOW_UPDATE:
                self.on_window_update(sid, payload, events)
            elif frame_type == f.RST_STREAM:
                self.on_rst_stream(sid, payload, events)
            elif frame_type == f.SETTINGS:
                self.on_settings(flags, sid, payload, events)
            elif frame_type == f.PING:
                self.on_ping(flags, sid, payload, events)
            elif frame_type == f.PRIORITY:
                self.on_priority(sid, payload, events)
            elif frame_type == f.GOAWAY:
                self.on_goaway(sid, payload, events)
            elif frame_type == f.CONTINUATION:
                raise ProtocolError("CONTINUATION without a header block")
            elif frame_type == f.PUSH_PROMISE:
                raise ProtocolError("PUSH_PROMISE, but push is disabled")
            # any other type is an extension: ignored
        return pos

    # --- frames on streams -------------------------------------------------------------------

    def on_data(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if not self.settings_received:
            raise ProtocolError("the first frame must be SETTINGS")
        if sid == 0:
            raise ProtocolError("DATA on stream 0")
        data = f.unpad(payload, flags) if flags & f.FLAG_PADDED else payload
        if data is None:
            raise ProtocolError("padding as long as the frame")
        flow = len(payload)
        stream = self.streams.get(sid)
        if stream is None:
            if self.is_idle(sid):
                raise ProtocolError("DATA on an idle stream")
            self.consume_unread(flow)
            how = self.recently_closed.get(sid, -1)
            if how == CLOSED_BY_RESET_RECEIVED:
                self.stream_error(sid, f.STREAM_CLOSED, events)
            elif how != CLOSED_BY_RESET_SENT:
                raise ProtocolError("DATA on a closed stream", f.STREAM_CLOSED)
            return
        if flow > self.inbound_window:
            raise FlowControlError("DATA over the connection's window")
        if stream.recv_closed or not stream.head_received:
            # after the peer's END_STREAM, or before its response's headers (a client's)
            self.consume_unread(flow)
            code = f.STREAM_CLOSED if stream.recv_closed else f.PROTOCOL_ERROR
            self.stream_error(sid, code, events)
            return
        if flow > stream.recv_window:
            raise FlowControlError("DATA over the stream's window")
        self.inbound_window -= flow
        stream.recv_window -= flow
        ended = bool(flags & f.FLAG_END_STREAM)
        events.append(DataReceived(sid, data, flow, ended))
        if ended:
            self.remote_ended(stream, events)

    def consume_unread(self, flow: int) -> None:
        """DATA nobody will read (its stream is gone) still counts against the connection's
        window, and is acknowledged at once so the window does not shrink for good."""
        if flow > self.inbound_window:
            raise FlowControlError("DATA over the connection's window")
        self.inbound_window -= flow
        self.acknowledge_connection(flow)

    def on_headers(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if not self.settings_received:
            raise ProtocolError("the first frame must be SETTINGS")
        if sid == 0:
            raise ProtocolError("HEADERS on stream 0")
        block = f.unpad(payload, flags) if flags & f.FLAG_PADDED else payload
        if block is None:
            raise ProtocolError("padding as long as the frame")
        if flags & f.FLAG_PRIORITY:
            if len(block) < 5:
                raise FrameSizeError("HEADERS too short for its priority")
            block = block[5:]
        end_stream = bool(flags & f.FLAG_END_STREAM)
        if len(block) > self.max_header_block_size:
            raise DenialOfServiceError("header block over its size limit")
        if flags & f.FLAG_END_HEADERS:
            self.header_block(sid, block, end_stream, events)
            return
        self.continued_stream = sid
        self.continued_end_stream = end_stream
        self.continued_block = bytearray(block)
        self.continued_frames = 0

    def on_continuation(self, flags: int, payload: bytes, events: list[Event]) -> None:
        block = self.continued_block
        block += payload
        if len(block) > self.max_header_block_size:
            raise DenialOfServiceError("header block over its size limit")
        self.continued_frames += 1
        if self.continued_frames > self.max_continuations:
            raise DenialOfServiceError("a header block in too many CONTINUATION frames")
        if flags & f.FLAG_END_HEADERS:
            sid = self.continued_stream
            self.continued_stream = 0
            self.continued_block = bytearray()
            self.header_block(sid, bytes(block), self.continued_end_stream, events)

    def on_rst_stream(self, sid: int, payload: bytes, events: list[Event]) -> None:
        if sid == 0:
            raise ProtocolError("RST_STREAM on stream 0")
        if len(payload) != 4:
            raise FrameSizeError("RST_STREAM of a length other than 4")
        stream = self.streams.get(sid)
        if stream is None:
            if self.is_idle(sid):
                raise ProtocolError("RST_STREAM on an idle stream")
            return  # a closed stream: the reset crossed our end
        self.close_stream(stream, CLOSED_BY_RESET_RECEIVED)
        events.append(StreamReset(sid, f.parse_u32(payload), True))

    def on_window_update(self, sid: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 4:
            raise FrameSizeError("WINDOW_UPDATE of a length other than 4")
        increment = f.parse_u32(payload) & 0x7FFFFFFF
        if sid == 0:
            if not increment:
                raise ProtocolError("WINDOW_UPDATE of 0")
            self.outbound_window += increment
            if self.outbound_window > f.MAX_WINDOW_SIZE:
                raise FlowControlError("connection window over 2**31-1")
            events.append(WindowUpdated(0, increment))
            return
        stream = self.streams.get(sid)
        if stream is None:
            if self.is_idle(sid):
                raise ProtocolError("WINDOW_UPDATE on an idle stream")
            return
        if not increment:
            self.stream_error(sid, f.PROTOCOL_ERROR, events)
            return
        stream.send_window += increment
        if stream.send_window > f.MAX_WINDOW_SIZE:
            self.stream_error(sid, f.FLOW_CONTROL_ERROR, events)
            return
        events.append(WindowUpdated(sid, increment))

    def on_priority(self, sid: int, payload: bytes, events: list[Event]) -> None:
        if sid == 0:
            raise ProtocolError("PRIORITY on stream 0")
        if len(payload) != 5:
            self.stream_error(sid, f.FRAME_SIZE_ERROR, events)
        elif f.stream_id_at(payload, 0) == sid:
            self.stream_error(sid, f.PROTOCOL_ERROR, events)

    # --- connection frames -------------------------------------------------------------------

    def on_settings(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if sid != 0:
            raise ProtocolError("SETTINGS on a stream")
        if flags & f.FLAG_ACK:
            if payload:
                raise FrameSizeError("SETTINGS ACK with a payload")
            if not self.settings_received:
                raise ProtocolError("the first frame must be SETTINGS")
            if self.pending_settings:
                self.apply_local_settings(self.pending_settings.pop(0))
            events.append(SettingsAcknowledged())
            return
        if len(payload) % 6:
            raise FrameSizeError("SETTINGS length not a multiple of 6")
        self.settings_received = True
        changed: dict[int, int] = {}
        for code, value in f.parse_settings(payload):
            if code == f.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW_SIZE:
                    raise FlowControlError("SETTINGS_INITIAL_WINDOW_SIZE over 2**31-1")
                delta = value - self.remote_initial_window_size
                self.remote_initial_window_size = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > f.MAX_WINDOW_SIZE:
                        raise FlowControlError("a stream window over 2**31-1")
            elif code == f.SETTINGS_MAX_FRAME_SIZE:
                if not f.DEFAULT_MAX_FRAME_SIZE <= value <= f.LARGEST_MAX_FRAME_SIZE:
                    raise ProtocolError("SETTINGS_MAX_FRAME_SIZE out of range")
                self.max_outbound_frame_size = value
            elif code == f.SETTINGS_HEADER_TABLE_SIZE:
                self.encoder.set_max_table_size(value)
            elif code == f.SETTINGS_ENABLE_PUSH:
                if value > 1 or (value == 1 and self.client_side):
                    raise ProtocolError("invalid SETTINGS_ENABLE_PUSH")
            elif code == f.SETTINGS_MAX_CONCURRENT_STREAMS:
                self.remote_max_concurrent_streams = value
            elif code == f.SETTINGS_MAX_HEADER_LIST_SIZE:
                self.remote_max_header_list_size = value
            else:
                continue  # unknown settings are ignored
            changed[code] = value
        f.write_frame(self.out, f.SETTINGS, f.FLAG_ACK, 0, b"")
        events.append(RemoteSettingsChanged(changed))

    def on_ping(self, flags: int, sid: int, payload: bytes, events: list[Event]) -> None:
        if sid != 0:
            raise ProtocolError("PING on a stream")
        if len(payload) != 8:
            raise FrameSizeError("PING of a length other than 8")
        if flags & f.FLAG_ACK:
            events.append(PingAckReceived(payload))
        else:
            f.write_frame(self.out, f.PING, f.FLAG_ACK, 0, payload)
            events.append(PingReceived(payload))

    def on_goaway(self, sid: int, payload: bytes, events: list[Event]) -> None:
        if sid != 0:
            raise ProtocolError("GOAWAY on a stream")
        if len(payload) < 8:
            raise FrameSizeError("GOAWAY shorter than 8 bytes")
        last_stream_id, error_code, extra = f.parse_goaway(payload)
        self.goaway_received = True
        events.append(ConnectionTerminated(error_code, last_stream_id, extra))
