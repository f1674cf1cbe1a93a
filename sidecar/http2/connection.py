"""An HTTP/2 connection, either role (RFC 9113): the sending API on top of the receiving half.

A sans-I/O state machine: the caller feeds received bytes to
:meth:`~.inbound.FrameReceiver.receive_data`, handles the events, calls the methods below to
send, and writes what :meth:`Connection.data_to_send` returns. Sending never blocks and never
splits DATA: :meth:`Connection.send_data` refuses more than the flow-control window and the
peer's max frame size allow (the caller waits for a WindowUpdated event), as ``h2`` does.

Not here: reading frames (:mod:`.inbound`), header blocks (:mod:`.header_blocks`), the shared
state (:mod:`.state`), sockets, tasks, timers.
"""

from __future__ import annotations

__all__ = ["Connection"]

from . import frames as f
from .errors import (
    FlowControlError,
    FrameTooLargeError,
    ProtocolError,
    StreamClosedError,
    TooManyStreamsError,
)
from .header_blocks import informational
from .inbound import FrameReceiver
from .state import check_settings
from .streams import CLOSED_BY_END, CLOSED_BY_RESET_SENT, Stream, window_increment

Headers = list[tuple[bytes, bytes]]


class Connection(FrameReceiver):
    """One HTTP/2 connection: ``Connection(client_side=False)`` serves, ``True`` calls."""

    def initiate_connection(self) -> None:
        """Queue our opening: the client preface (client) and our first SETTINGS. A server
        still expects the client's preface first in what it receives."""
        if self.client_side:
            self.out += f.PREFACE
        settings = dict(self.initial_settings)
        f.write_frame(self.out, f.SETTINGS, 0, 0, f.settings_payload(settings))
        self.pending_settings.append(settings)

    def update_settings(self, changes: dict[int, int]) -> None:
        """Send new local settings; they take effect when the peer acknowledges them."""
        self.check_sending()
        check_settings(changes)
        changes = dict(changes)
        f.write_frame(self.out, f.SETTINGS, 0, 0, f.settings_payload(changes))
        self.pending_settings.append(changes)

    def data_to_send(self) -> bytes:
        """Every frame queued since the last call."""
        out = self.out
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        return data

    def get_next_available_stream_id(self) -> int:
        """The id of the next stream a client may open."""
        if not self.client_side:
            raise ProtocolError("a server opens no streams")
        sid = self.highest_outbound_stream_id + 2 if self.highest_outbound_stream_id else 1
        if sid > f.MAX_STREAM_ID:
            raise ProtocolError("no stream ids left")
        return sid

    # --- streams -----------------------------------------------------------------------------

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool = False) -> None:
        """HEADERS (and CONTINUATION past the peer's max frame size): a client's request
        opening a stream, a server's response, or trailers (which must end the stream)."""
        self.check_sending()
        stream = self.streams.get(stream_id)
        if stream is None:
            stream = self.open_stream(stream_id)
        elif stream.send_closed:
            raise StreamClosedError(stream_id)
        elif stream.head_sent and not end_stream:
            raise ProtocolError("trailers must end the stream")
        block = self.encoder.encode(headers)
        self.write_header_block(stream_id, block, f.FLAG_END_STREAM if end_stream else 0)
        if self.client_side or stream.head_sent or not informational(headers):
            stream.head_sent = True  # a 1xx is not the response: the final one follows
        if end_stream:
            self.local_ended(stream)

    def open_stream(self, stream_id: int) -> Stream:
        """A client's new stream (a server cannot open one)."""
        if not self.client_side or not stream_id & 1 or stream_id > f.MAX_STREAM_ID:
            raise StreamClosedError(stream_id)
        if stream_id <= self.highest_outbound_stream_id:
            raise StreamClosedError(stream_id, f"stream id {stream_id} was used already")
        if self.goaway_received:
            raise ProtocolError("the peer sent GOAWAY: no new streams")
        if self.open_outbound_streams >= self.remote_max_concurrent_streams:
            raise TooManyStreamsError("the peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached")
        stream = Stream(
            stream_id, True, self.remote_initial_window_size, self.local_initial_window_size
        )
        self.streams[stream_id] = stream
        self.highest_outbound_stream_id = stream_id
        self.open_outbound_streams += 1
        return stream

    def write_header_block(self, stream_id: int, block: bytes, flags: int) -> None:
        size = self.max_outbound_frame_size
        out = self.out
        if len(block) <= size:
            f.write_frame(out, f.HEADERS, flags | f.FLAG_END_HEADERS, stream_id, block)
            return
        f.write_frame(out, f.HEADERS, flags, stream_id, block[:size])
        start = size
        while start < len(block):
            end = start + size
            last = end >= len(block)
            flag = f.FLAG_END_HEADERS if last else 0
            f.write_frame(out, f.CONTINUATION, flag, stream_id, block[start:end])
            start = end

    def send_data(
        self, stream_id: int, data: bytes | bytearray | memoryview, end_stream: bool = False
    ) -> None:
        """One DATA frame: it must fit the send window and the peer's max frame size."""
        self.check_sending()
        stream = self.streams.get(stream_id)
        if stream is None or stream.send_closed:
            raise StreamClosedError(stream_id)
        size = len(data)
        if size > self.max_outbound_frame_size:
            raise FrameTooLargeError("DATA over the peer's SETTINGS_MAX_FRAME_SIZE")
        if size > self.outbound_window or size > stream.send_window:
            raise FlowControlError("DATA over the flow-control window")
        self.outbound_window -= size
        stream.send_window -= size
        f.write_frame(self.out, f.DATA, f.FLAG_END_STREAM if end_stream else 0, stream_id, data)
        if end_stream:
            self.local_ended(stream)

    def end_stream(self, stream_id: int) -> None:
        """End our side of the stream with an empty DATA frame."""
        self.send_data(stream_id, b"", end_stream=True)

    def local_ended(self, stream: Stream) -> None:
        stream.send_closed = True
        if stream.recv_closed:
            self.close_stream(stream, CLOSED_BY_END)

    def reset_stream(self, stream_id: int, error_code: int = 0) -> None:
        """RST_STREAM: the stream is closed; what the peer still sends on it is dropped."""
        self.check_sending()
        stream = self.streams.get(stream_id)
        if stream is None:
            raise StreamClosedError(stream_id)
        f.write_frame(self.out, f.RST_STREAM, 0, stream_id, f.rst_stream_payload(error_code))
        self.close_stream(stream, CLOSED_BY_RESET_SENT)

    # --- flow control ------------------------------------------------------------------------

    def local_flow_control_window(self, stream_id: int) -> int:
        """How much DATA may be sent on the stream now (the connection's window included)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            raise StreamClosedError(stream_id)
        return min(self.outbound_window, stream.send_window)

    def increment_flow_control_window(self, increment: int, stream_id: int | None = None) -> None:
        """WINDOW_UPDATE: let the peer send ``increment`` more bytes (on the connection, or
        on one stream)."""
        self.check_sending()
        if not 1 <= increment <= f.MAX_WINDOW_SIZE:
            raise ValueError("a window increment is 1..2**31-1")
        if not stream_id:
            if self.inbound_window + increment > f.MAX_WINDOW_SIZE:
                raise FlowControlError("connection window over 2**31-1")
            self.inbound_window += increment
            self.inbound_window_max = max(self.inbound_window_max, self.inbound_window)
            f.write_frame(self.out, f.WINDOW_UPDATE, 0, 0, f.window_update_payload(increment))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            raise StreamClosedError(stream_id)
        if stream.recv_window + increment > f.MAX_WINDOW_SIZE:
            raise FlowControlError("stream window over 2**31-1")
        stream.recv_window += increment
        stream.recv_max = max(stream.recv_max, stream.recv_window)
        payload = f.window_update_payload(increment)
        f.write_frame(self.out, f.WINDOW_UPDATE, 0, stream_id, payload)

    def acknowledge_received_data(self, acknowledged_size: int, stream_id: int) -> None:
        """The caller consumed ``acknowledged_size`` flow-controlled bytes of the stream:
        WINDOW_UPDATE for the connection and the stream once enough was (for a stream closed
        since, or ended by the peer, the connection's only)."""
        if acknowledged_size < 0:
            raise ValueError("a negative acknowledged size")
        if self.closed:
            return
        self.acknowledge_connection(acknowledged_size)
        stream = self.streams.get(stream_id)
        if stream is None or stream.recv_closed:
            return
        processed = stream.unacked + acknowledged_size
        increment = window_increment(stream.recv_window, stream.recv_max, processed)
        if increment < 0:
            stream.unacked = processed
            return
        stream.unacked = 0
        if increment:
            stream.recv_window += increment
            payload = f.window_update_payload(increment)
            f.write_frame(self.out, f.WINDOW_UPDATE, 0, stream_id, payload)

    # --- connection --------------------------------------------------------------------------

    def ping(self, data: bytes) -> None:
        """PING with 8 bytes of opaque data (a PingAckReceived answers it)."""
        self.check_sending()
        if len(data) != 8:
            raise ValueError("PING data is 8 bytes")
        f.write_frame(self.out, f.PING, 0, 0, data)

    def close_connection(
        self, error_code: int = 0, last_stream_id: int | None = None, additional_data: bytes = b""
    ) -> None:
        """GOAWAY, and the connection closed: nothing more is sent or received."""
        self.check_sending()
        last = self.highest_inbound_stream_id if last_stream_id is None else last_stream_id
        payload = f.goaway_payload(last, error_code, additional_data)
        f.write_frame(self.out, f.GOAWAY, 0, 0, payload)
        self.closed = True

    def goaway(self, error_code: int = 0) -> None:
        """A graceful GOAWAY naming the last stream taken: streams open go on, new ones from
        the peer are refused (REFUSED_STREAM). The connection stays open."""
        self.check_sending()
        last = self.highest_inbound_stream_id
        self.accept_up_to = min(self.accept_up_to, last)
        f.write_frame(self.out, f.GOAWAY, 0, 0, f.goaway_payload(last, error_code))

    def check_sending(self) -> None:
        if self.closed:
            raise ProtocolError("the connection is closed")
