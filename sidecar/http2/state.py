"""The bookkeeping an HTTP/2 connection shares between its receiving and sending halves:
settings on both sides, the stream table, flow-control windows, the output buffer, and the
few steps both halves take (close a stream, reset one, acknowledge consumed bytes).

:class:`Http2ConnectionState` is the root of one chain of classes, each adding one part:
:class:`~.header_blocks.HeaderBlockReceiver`, :class:`~.inbound.FrameReceiver`, then
:class:`~.connection.Connection`; it is not used alone. Local settings take effect when the
peer acknowledges them, except the two that only bound what we accept (max concurrent streams
and max header list size), which hold from the start, as in ``h2``.
"""

from __future__ import annotations

from . import frames as f
from .events import Event, StreamEnded, StreamReset
from .hpack import Decoder, Encoder
from .streams import (
    CLOSED_BY_END,
    CLOSED_BY_RESET_SENT,
    REMEMBERED_CLOSED_STREAMS,
    Stream,
    window_increment,
)


class Http2ConnectionState:
    """Settings, streams, windows and queued output of one connection (either role)."""

    def __init__(
        self,
        client_side: bool,
        *,
        header_table_size: int = 4096,
        max_concurrent_streams: int = 100,
        initial_window_size: int = f.DEFAULT_WINDOW_SIZE,
        max_frame_size: int = f.DEFAULT_MAX_FRAME_SIZE,
        max_header_list_size: int = 65536,
        max_header_block_size: int = 65536,
        validate_inbound_headers: bool = True,
    ) -> None:
        self.client_side = client_side
        self.validate_inbound_headers = validate_inbound_headers
        self.max_header_block_size = max_header_block_size
        check_settings(
            {
                f.SETTINGS_INITIAL_WINDOW_SIZE: initial_window_size,
                f.SETTINGS_MAX_FRAME_SIZE: max_frame_size,
            }
        )
        #: the settings the first SETTINGS frame announces (initiate_connection)
        self.initial_settings: dict[int, int] = {
            f.SETTINGS_HEADER_TABLE_SIZE: header_table_size,
            f.SETTINGS_ENABLE_PUSH: 0,
            f.SETTINGS_MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            f.SETTINGS_INITIAL_WINDOW_SIZE: initial_window_size,
            f.SETTINGS_MAX_FRAME_SIZE: max_frame_size,
            f.SETTINGS_MAX_HEADER_LIST_SIZE: max_header_list_size,
        }
        # local settings in effect (the RFC's defaults until the peer acknowledges ours)
        self.local_initial_window_size = f.DEFAULT_WINDOW_SIZE
        self.local_max_frame_size = f.DEFAULT_MAX_FRAME_SIZE
        self.local_max_concurrent_streams = max_concurrent_streams
        #: local settings sent and not acknowledged yet, oldest first
        self.pending_settings: list[dict[int, int]] = []
        # the peer's settings
        self.remote_initial_window_size = f.DEFAULT_WINDOW_SIZE
        self.max_outbound_frame_size = f.DEFAULT_MAX_FRAME_SIZE
        self.remote_max_concurrent_streams = f.MAX_STREAM_ID
        self.remote_max_header_list_size = f.MAX_STREAM_ID
        self.decoder = Decoder(max_header_list_size=max_header_list_size)
        self.encoder = Encoder()
        self.streams: dict[int, Stream] = {}
        #: stream id -> how it closed (streams.CLOSED_*), the most recent ones only
        self.recently_closed: dict[int, int] = {}
        self.highest_inbound_stream_id = 0
        self.highest_outbound_stream_id = 0
        self.open_inbound_streams = 0
        self.open_outbound_streams = 0
        self.outbound_window = f.DEFAULT_WINDOW_SIZE
        self.inbound_window = f.DEFAULT_WINDOW_SIZE
        self.inbound_window_max = f.DEFAULT_WINDOW_SIZE
        self.inbound_unacked = 0
        #: frames queued for data_to_send
        self.out = bytearray()
        #: closed to sending and receiving (after a connection error or close_connection)
        self.closed = False
        #: streams the peer opens above this id are refused (our GOAWAY's last stream id)
        self.accept_up_to = f.MAX_STREAM_ID
        self.goaway_received = False
        #: a client's peer opens even streams, a server's odd ones
        self.peer_parity = 0 if client_side else 1
        # receiving: a frame cut short by the last read, the client preface still to check
        # (a server's), whether the peer's first SETTINGS came
        self.partial = bytearray()
        self.preface_left = 0 if client_side else len(f.PREFACE)
        self.settings_received = False
        # a header block still waiting for its CONTINUATION frames (stream 0: none)
        self.continued_stream = 0
        self.continued_end_stream = False
        self.continued_block = bytearray()
        #: CONTINUATION frames the current header block took so far, and how many one may take:
        #: empty or tiny ones grow no block toward its size bound, so without a count a peer
        #: could send them forever (honest peers split a block at the max frame size, 16 KiB)
        self.continued_frames = 0
        self.max_continuations = 8 + max_header_block_size // 1024

    # --- streams -----------------------------------------------------------------------------

    def close_stream(self, stream: Stream, how: int) -> None:
        """Drop a stream from the table, remembering how it ended."""
        sid = stream.stream_id
        del self.streams[sid]
        if stream.outbound:
            self.open_outbound_streams -= 1
        else:
            self.open_inbound_streams -= 1
        self.remember_closed(sid, how)

    def remember_closed(self, stream_id: int, how: int) -> None:
        closed = self.recently_closed
        if len(closed) >= REMEMBERED_CLOSED_STREAMS:
            del closed[next(iter(closed))]
        closed[stream_id] = how

    def is_idle(self, sid: int) -> bool:
        """Whether no stream ``sid`` was opened yet (by either side, by its parity)."""
        if (sid & 1) == self.peer_parity:
            return sid > self.highest_inbound_stream_id
        return sid > self.highest_outbound_stream_id

    def remote_ended(self, stream: Stream, events: list[Event]) -> None:
        """The peer's END_STREAM: StreamEnded, and the stream closed if we ended ours."""
        stream.recv_closed = True
        events.append(StreamEnded(stream.stream_id))
        if stream.send_closed:
            self.close_stream(stream, CLOSED_BY_END)

    def stream_error(self, stream_id: int, error_code: int, events: list[Event]) -> None:
        """The peer broke the protocol on one stream: RST_STREAM, the stream closed, and a
        StreamReset(remote_reset=False) so the caller cancels the call."""
        f.write_frame(self.out, f.RST_STREAM, 0, stream_id, f.rst_stream_payload(error_code))
        stream = self.streams.get(stream_id)
        if stream is not None:
            self.close_stream(stream, CLOSED_BY_RESET_SENT)
        else:
            self.remember_closed(stream_id, CLOSED_BY_RESET_SENT)
        events.append(StreamReset(stream_id, error_code, False))

    # --- flow control ------------------------------------------------------------------------

    def acknowledge_connection(self, size: int) -> None:
        """``size`` bytes of the connection's window were consumed: WINDOW_UPDATE when due."""
        processed = self.inbound_unacked + size
        increment = window_increment(self.inbound_window, self.inbound_window_max, processed)
        if increment < 0:
            self.inbound_unacked = processed
            return
        self.inbound_unacked = 0
        if increment:
            self.inbound_window += increment
            f.write_frame(self.out, f.WINDOW_UPDATE, 0, 0, f.window_update_payload(increment))

    # --- local settings ----------------------------------------------------------------------

    def apply_local_settings(self, changes: dict[int, int]) -> None:
        """Our SETTINGS were acknowledged: they bind the peer from now on."""
        for code, value in changes.items():
            if code == f.SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - self.local_initial_window_size
                self.local_initial_window_size = value
                for stream in self.streams.values():
                    stream.recv_window += delta
                    stream.recv_max += delta
            elif code == f.SETTINGS_MAX_FRAME_SIZE:
                self.local_max_frame_size = value
            elif code == f.SETTINGS_HEADER_TABLE_SIZE:
                self.decoder.max_allowed_table_size = value
            elif code == f.SETTINGS_MAX_CONCURRENT_STREAMS:
                self.local_max_concurrent_streams = value
            elif code == f.SETTINGS_MAX_HEADER_LIST_SIZE:
                self.decoder.max_header_list_size = value


def check_settings(changes: dict[int, int]) -> None:
    """Refuse local settings the RFC forbids (ValueError), before any is sent."""
    for code, value in changes.items():
        if value < 0 or value > 0xFFFFFFFF:
            raise ValueError(f"setting {code} out of range")
        if code == f.SETTINGS_INITIAL_WINDOW_SIZE and value > f.MAX_WINDOW_SIZE:
            raise ValueError("SETTINGS_INITIAL_WINDOW_SIZE over 2**31-1")
        if code == f.SETTINGS_MAX_FRAME_SIZE and not (
            f.DEFAULT_MAX_FRAME_SIZE <= value <= f.LARGEST_MAX_FRAME_SIZE
        ):
            raise ValueError("SETTINGS_MAX_FRAME_SIZE outside 16384..16777215")
        if code == f.SETTINGS_ENABLE_PUSH and value > 1:
            raise ValueError("SETTINGS_ENABLE_PUSH is 0 or 1")
