"""Our HTTP/2 server fed hand-built frames that break RFC 9113: each connection error sends
GOAWAY with its code and raises, each stream error sends RST_STREAM and the connection goes on."""

from __future__ import annotations

import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from sidecar.http2 import events as ev
from sidecar.http2 import frames as f
from sidecar.http2.connection import Connection
from sidecar.http2.errors import DenialOfServiceError

from .wire import (
    REQUEST,
    RESPONSE,
    TRAILERS,
    connection_error,
    event_tuple,
    raw_server,
    sent_frames,
    stream_error,
)

BLOCK = hpack.Encoder().encode(REQUEST)


def headers(sid: int, block: bytes = BLOCK, *flags: str) -> bytes:
    return HeadersFrame(sid, data=block, flags=["END_HEADERS", *flags]).serialize()


def test_an_invalid_preface_is_a_protocol_error() -> None:
    """A client that does not speak HTTP/2 (an HTTP/1.1 request) is refused at once."""
    server = Connection(client_side=False)
    server.initiate_connection()
    server.data_to_send()
    connection_error(server, b"POST / HTTP/1.1\r\n", f.PROTOCOL_ERROR)


def test_the_first_frame_must_be_settings() -> None:
    """After the preface, anything but SETTINGS is a PROTOCOL_ERROR."""
    server = Connection(client_side=False)
    server.initiate_connection()
    server.data_to_send()
    data = f.PREFACE + PingFrame(0, opaque_data=b"12345678").serialize()
    connection_error(server, data, f.PROTOCOL_ERROR)


CONNECTION_ERRORS = {
    "settings on a stream": (f.build_frame(f.SETTINGS, 0, 1), f.PROTOCOL_ERROR),
    "settings of 5 bytes": (f.build_frame(f.SETTINGS, 0, 0, b"\0" * 5), f.FRAME_SIZE_ERROR),
    "settings ack with payload": (
        f.build_frame(f.SETTINGS, f.FLAG_ACK, 0, b"\0" * 6),
        f.FRAME_SIZE_ERROR,
    ),
    "enable push 2": (SettingsFrame(0, settings={2: 2}).serialize(), f.PROTOCOL_ERROR),
    "initial window 2**31": (
        SettingsFrame(0, settings={4: 2**31}).serialize(),
        f.FLOW_CONTROL_ERROR,
    ),
    "max frame size too small": (
        SettingsFrame(0, settings={5: 16383}).serialize(),
        f.PROTOCOL_ERROR,
    ),
    "max frame size too large": (
        SettingsFrame(0, settings={5: 2**24}).serialize(),
        f.PROTOCOL_ERROR,
    ),
    "ping of 7 bytes": (f.build_frame(f.PING, 0, 0, b"1234567"), f.FRAME_SIZE_ERROR),
    "ping on a stream": (f.build_frame(f.PING, 0, 1, b"12345678"), f.PROTOCOL_ERROR),
    "window update of 3 bytes": (f.build_frame(f.WINDOW_UPDATE, 0, 0, b"\0\0\1"), 6),
    "window update of 0": (WindowUpdateFrame(0, window_increment=0).serialize(), 1),
    "connection window past 2**31-1": (
        WindowUpdateFrame(0, window_increment=2**31 - 1).serialize(),
        f.FLOW_CONTROL_ERROR,
    ),
    "window update on an idle stream": (
        WindowUpdateFrame(9, window_increment=1).serialize(),
        f.PROTOCOL_ERROR,
    ),
    "rst_stream of 3 bytes": (f.build_frame(f.RST_STREAM, 0, 1, b"\0\0\0"), f.FRAME_SIZE_ERROR),
    "rst_stream on an idle stream": (RstStreamFrame(5).serialize(), f.PROTOCOL_ERROR),
    "rst_stream on stream 0": (f.build_frame(f.RST_STREAM, 0, 0, b"\0" * 4), f.PROTOCOL_ERROR),
    "data on an idle stream": (DataFrame(1, data=b"x").serialize(), f.PROTOCOL_ERROR),
    "data on stream 0": (f.build_frame(f.DATA, 0, 0, b"x"), f.PROTOCOL_ERROR),
    "headers on an even stream": (headers(2), f.PROTOCOL_ERROR),
    "headers on stream 0": (f.build_frame(f.HEADERS, 4, 0, BLOCK), f.PROTOCOL_ERROR),
    "continuation alone": (
        ContinuationFrame(1, data=BLOCK, flags=["END_HEADERS"]).serialize(),
        f.PROTOCOL_ERROR,
    ),
    "push promise": (
        f.build_frame(f.PUSH_PROMISE, 4, 1, f.push_promise_payload(2, BLOCK)),
        f.PROTOCOL_ERROR,
    ),
    "frame over max frame size": (
        f.build_frame(0xFA, 0, 0, b"\0" * 16385),
        f.FRAME_SIZE_ERROR,
    ),
    "goaway of 4 bytes": (f.build_frame(f.GOAWAY, 0, 0, b"\0" * 4), f.FRAME_SIZE_ERROR),
    "goaway on a stream": (f.build_frame(f.GOAWAY, 0, 1, b"\0" * 8), f.PROTOCOL_ERROR),
    "priority on stream 0": (f.build_frame(f.PRIORITY, 0, 0, b"\0" * 5), f.PROTOCOL_ERROR),
    "undecodable header block": (headers(1, b"\xff\xff\xff\xff\xff\xff"), f.COMPRESSION_ERROR),
    "padding as long as the frame": (
        f.build_frame(f.HEADERS, f.FLAG_PADDED | 4, 1, bytes([len(BLOCK) + 1]) + BLOCK),
        f.PROTOCOL_ERROR,
    ),
}


@pytest.mark.parametrize("name", CONNECTION_ERRORS)
def test_connection_errors(name: str) -> None:
    """Each frame the RFC makes a connection error ends the connection with its code."""
    data, code = CONNECTION_ERRORS[name]
    connection_error(raw_server(), data, code)


def test_unknown_settings_and_frame_types_are_ignored() -> None:
    """An unknown setting is acknowledged and not reported; an unknown frame type is skipped."""
    server = raw_server()
    got = server.receive_data(
        SettingsFrame(0, settings={0x99: 7}).serialize() + f.build_frame(0xFA, 0, 1, b"ext")
    )
    assert [event_tuple(e) for e in got] == [("RemoteSettingsChanged", {})]
    (ack,) = sent_frames(server.data_to_send())
    assert isinstance(ack, SettingsFrame) and "ACK" in ack.flags


def test_a_reused_stream_id_is_a_protocol_error() -> None:
    """A new stream must have a higher id than every stream before it."""
    server = raw_server()
    server.receive_data(headers(5))
    connection_error(server, headers(3), f.PROTOCOL_ERROR)


def test_headers_after_the_stream_ended_is_stream_closed() -> None:
    """More HEADERS on a stream the client half-closed resets that stream only."""
    server = raw_server()
    server.receive_data(headers(1, BLOCK, "END_STREAM"))
    stream_error(server, headers(1, hpack.Encoder().encode(TRAILERS)), 1, f.STREAM_CLOSED)


def test_data_after_the_stream_ended_is_stream_closed_and_its_window_given_back() -> None:
    """DATA after the client's END_STREAM resets the stream; its bytes still count."""
    server = raw_server()
    server.receive_data(headers(1, BLOCK, "END_STREAM"))
    stream_error(server, DataFrame(1, data=b"x" * 16000).serialize(), 1, f.STREAM_CLOSED)
    assert server.inbound_window + server.inbound_unacked == f.DEFAULT_WINDOW_SIZE
    assert server.inbound_unacked == 16000


def test_data_on_a_stream_closed_by_end_stream_is_a_connection_error() -> None:
    """DATA on a stream both sides ended is STREAM_CLOSED for the connection."""
    server = raw_server()
    server.receive_data(headers(1, BLOCK, "END_STREAM"))
    server.send_headers(1, RESPONSE, end_stream=True)
    connection_error(server, DataFrame(1, data=b"x").serialize(), f.STREAM_CLOSED)


def test_data_over_the_stream_window_is_a_flow_control_error() -> None:
    """DATA past the stream's receive window ends the connection (FLOW_CONTROL_ERROR)."""
    server = raw_server()
    server.receive_data(headers(1))
    for _ in range(3):
        server.receive_data(DataFrame(1, data=b"x" * 16384).serialize())
    data = DataFrame(1, data=b"x" * (65535 - 3 * 16384 + 1)).serialize()
    connection_error(server, data, f.FLOW_CONTROL_ERROR)


def test_data_over_the_connection_window_is_a_flow_control_error() -> None:
    """DATA past the connection's window, however the streams' windows stand."""
    server = raw_server(initial_window_size=2**20)
    server.receive_data(headers(1) + headers(3))
    server.receive_data(SettingsFrame(0, flags=["ACK"]).serialize())  # no-op: nothing pending
    server.update_settings({f.SETTINGS_INITIAL_WINDOW_SIZE: 2**20})
    server.receive_data(SettingsFrame(0, flags=["ACK"]).serialize())
    for sid in (1, 3, 1):
        server.receive_data(DataFrame(sid, data=b"x" * 16384).serialize())
    data = DataFrame(3, data=b"x" * (65535 - 3 * 16384 + 1)).serialize()
    connection_error(server, data, f.FLOW_CONTROL_ERROR)


def test_padding_counts_toward_flow_control() -> None:
    """Padded DATA: the data without its padding, the whole frame counted and acknowledged."""
    server = raw_server()
    server.receive_data(headers(1))
    frame = DataFrame(1, data=b"abc", flags=["PADDED"])
    frame.pad_length = 10
    (event,) = server.receive_data(frame.serialize())
    assert isinstance(event, ev.DataReceived)
    assert (event.data, event.flow_controlled_length) == (b"abc", 14)
    assert server.inbound_window == 65535 - 14


def test_headers_with_priority_and_padding_are_read_right() -> None:
    """A HEADERS frame with PRIORITY and PADDED flags gives the same request."""
    server = raw_server()
    frame = HeadersFrame(1, data=BLOCK, flags=["END_HEADERS", "PRIORITY", "PADDED"])
    frame.pad_length, frame.depends_on, frame.stream_weight = 7, 0, 15
    (event,) = server.receive_data(frame.serialize())
    assert isinstance(event, ev.RequestReceived) and event.headers == REQUEST


def test_priority_frames() -> None:
    """PRIORITY is ignored, unless of the wrong length or self-dependent (stream reset)."""
    server = raw_server()
    assert server.receive_data(PriorityFrame(3, depends_on=1).serialize()) == []
    stream_error(server, f.build_frame(f.PRIORITY, 0, 3, b"\0" * 4), 3, f.FRAME_SIZE_ERROR)
    stream_error(server, PriorityFrame(5, depends_on=5).serialize(), 5, f.PROTOCOL_ERROR)


def test_stream_window_update_errors() -> None:
    """A stream WINDOW_UPDATE of 0, or one past 2**31-1, resets that stream."""
    server = raw_server()
    server.receive_data(headers(1) + headers(3))
    stream_error(server, WindowUpdateFrame(1, window_increment=0).serialize(), 1, 1)
    big = WindowUpdateFrame(3, window_increment=2**31 - 1).serialize()
    stream_error(server, big, 3, f.FLOW_CONTROL_ERROR)


def test_streams_past_max_concurrent_streams_are_refused() -> None:
    """A stream past our max concurrent streams is refused; others go on."""
    server = raw_server(max_concurrent_streams=2)
    server.receive_data(headers(1) + headers(3))
    stream_error(server, headers(5), 5, f.REFUSED_STREAM)
    assert server.open_inbound_streams == 2
    server.reset_stream(1)
    server.data_to_send()
    got = server.receive_data(headers(7))
    assert isinstance(got[0], ev.RequestReceived) and server.highest_inbound_stream_id == 7


def test_invalid_request_headers_reset_the_stream() -> None:
    """A malformed request (an uppercase header name) resets its stream, not the connection."""
    block = hpack.Encoder().encode([*REQUEST, (b"X-Upper", b"1")])
    stream_error(raw_server(), headers(1, block), 1, f.PROTOCOL_ERROR)


def test_unchecked_headers_when_validation_is_off() -> None:
    """validate_inbound_headers=False hands over even a malformed request."""
    block = hpack.Encoder().encode([*REQUEST, (b"X-Upper", b"1")])
    (event,) = raw_server(validate_inbound_headers=False).receive_data(headers(1, block))
    assert isinstance(event, ev.RequestReceived)


def test_trailers_without_end_stream_reset_the_stream() -> None:
    """A second header block that does not end the stream is malformed."""
    encoder = hpack.Encoder()
    server = raw_server()
    server.receive_data(headers(1, encoder.encode(REQUEST)))
    stream_error(server, headers(1, encoder.encode(TRAILERS)), 1, f.PROTOCOL_ERROR)


def test_client_trailers_end_the_stream() -> None:
    """Request trailers are a TrailersReceived, then StreamEnded."""
    encoder = hpack.Encoder()
    server = raw_server()
    server.receive_data(headers(1, encoder.encode(REQUEST)))
    got = server.receive_data(headers(1, encoder.encode(TRAILERS), "END_STREAM"))
    assert [event_tuple(e) for e in got] == [
        ("TrailersReceived", 1, TRAILERS),
        ("StreamEnded", 1),
    ]


def test_an_interrupted_header_block_is_a_protocol_error() -> None:
    """Only CONTINUATION of the same stream may follow HEADERS without END_HEADERS."""
    start = HeadersFrame(1, data=BLOCK[:3]).serialize()
    for intruder in (
        PingFrame(0, opaque_data=b"12345678").serialize(),
        ContinuationFrame(3, data=BLOCK[3:], flags=["END_HEADERS"]).serialize(),
        f.build_frame(0xFA, 0, 0, b""),
    ):
        connection_error(raw_server(), start + intruder, f.PROTOCOL_ERROR)


def test_continuation_completes_the_block() -> None:
    """A block cut over HEADERS and CONTINUATION frames is decoded whole."""
    server = raw_server()
    data = HeadersFrame(1, data=BLOCK[:3], flags=["END_STREAM"]).serialize()
    data += ContinuationFrame(1, data=BLOCK[3:6]).serialize()
    data += ContinuationFrame(1, data=BLOCK[6:], flags=["END_HEADERS"]).serialize()
    got = server.receive_data(data)
    assert [event_tuple(e) for e in got] == [
        ("RequestReceived", 1, REQUEST, True),
        ("StreamEnded", 1),
    ]


def test_a_header_block_past_its_bound_is_enhance_your_calm() -> None:
    """CONTINUATION frames piling up past max_header_block_size: DenialOfServiceError."""
    server = raw_server(max_header_block_size=1000)
    data = HeadersFrame(1, data=b"\0" * 600).serialize()
    data += ContinuationFrame(1, data=b"\0" * 600).serialize()
    error = connection_error(server, data, f.ENHANCE_YOUR_CALM)
    assert isinstance(error, DenialOfServiceError)


def test_endless_empty_continuation_frames_are_enhance_your_calm() -> None:
    """Empty CONTINUATION frames grow no block, yet a header block may not take them forever:
    past its bound on frames, DenialOfServiceError (GOAWAY ENHANCE_YOUR_CALM)."""
    server = raw_server(max_header_block_size=4096)
    data = HeadersFrame(1, data=BLOCK[:1]).serialize()
    data += ContinuationFrame(1, data=b"").serialize() * 10_000
    error = connection_error(server, data, f.ENHANCE_YOUR_CALM)
    assert isinstance(error, DenialOfServiceError)


def test_a_block_split_into_small_continuation_frames_is_still_decoded() -> None:
    """A block in a few small CONTINUATION frames (within the frame bound) is decoded whole."""
    server = raw_server(max_header_block_size=4096)
    step = len(BLOCK) // 10 + 1  # at most 10 frames: the bound is 8 + 4096 // 1024 = 12
    chunks = [BLOCK[i : i + step] for i in range(0, len(BLOCK), step)]
    data = HeadersFrame(1, data=chunks[0], flags=["END_STREAM"]).serialize()
    for chunk in chunks[1:-1]:
        data += ContinuationFrame(1, data=chunk).serialize()
    data += ContinuationFrame(1, data=chunks[-1], flags=["END_HEADERS"]).serialize()
    got = server.receive_data(data)
    assert [event_tuple(e) for e in got][0] == ("RequestReceived", 1, REQUEST, True)


def test_a_single_header_frame_past_the_block_bound_is_enhance_your_calm() -> None:
    """One HEADERS frame bigger than max_header_block_size is refused before decoding."""
    server = raw_server(max_header_block_size=100)
    block = hpack.Encoder().encode([*REQUEST, (b"x-big", b"v" * 300)])
    error = connection_error(server, headers(1, block), f.ENHANCE_YOUR_CALM)
    assert isinstance(error, DenialOfServiceError)


def test_a_request_header_list_past_its_bound_opens_a_stream_to_refuse() -> None:
    """A request decoding past max_header_list_size is reported, its stream open (for the
    front to answer) with the list's size and its :path, and the connection goes on: the
    decoder read the whole block, so the next request, which refers to table entries the big
    one added after the bound, decodes as the client meant it."""
    server = raw_server(max_header_list_size=400)
    client = hpack.Encoder()
    big = [*REQUEST, (b"x-big", b"v" * 300), (b"x-tenant", b"acme")]
    size = sum(len(n) + len(v) + 32 for n, v in big)
    got = server.receive_data(headers(1, client.encode(big)))
    assert [event_tuple(e) for e in got] == [("RequestTooLarge", 1, False)]
    assert (got[0].size, got[0].path) == (size, b"/pkg.Echo/Say")  # type: ignore[attr-defined]
    assert not server.closed and 1 in server.streams
    small = [*REQUEST, (b"x-tenant", b"acme")]
    block = client.encode(small)
    assert len(block) < 20  # indexed: x-tenant came in the big block, past the bound
    got = server.receive_data(headers(3, block, "END_STREAM"))
    assert [event_tuple(e) for e in got][0] == ("RequestReceived", 3, small, True)


def test_an_oversized_request_that_ends_its_stream_is_reported_ended() -> None:
    server = raw_server(max_header_list_size=400)
    block = hpack.Encoder().encode([*REQUEST, (b"x-big", b"v" * 300)])
    got = server.receive_data(headers(1, block, "END_STREAM"))
    assert [event_tuple(e) for e in got] == [("RequestTooLarge", 1, True), ("StreamEnded", 1)]


def test_an_oversized_request_past_the_concurrency_is_refused_stream() -> None:
    """Over the streams the server allows, an oversized request is refused as any other."""
    server = raw_server(max_header_list_size=400, max_concurrent_streams=1)
    server.receive_data(SettingsFrame(0, flags=["ACK"]).serialize())
    server.receive_data(headers(1))
    block = hpack.Encoder().encode([*REQUEST, (b"x-big", b"v" * 300)])
    stream_error(server, headers(3, block), 3, f.REFUSED_STREAM)


def test_oversized_trailers_are_enhance_your_calm() -> None:
    """Past the bound anywhere but a new request (here trailers on an open stream), the
    connection ends: DenialOfServiceError."""
    server = raw_server(max_header_list_size=400)
    client = hpack.Encoder()
    server.receive_data(headers(1, client.encode(REQUEST)))
    block = client.encode([(b"x-big", b"v" * 400)])
    error = connection_error(server, headers(1, block, "END_STREAM"), f.ENHANCE_YOUR_CALM)
    assert isinstance(error, DenialOfServiceError)


def test_frames_on_a_stream_we_reset_are_ignored() -> None:
    """Frames late on a stream we reset are dropped, their DATA given back."""
    server = raw_server()
    server.receive_data(headers(1))
    server.reset_stream(1, f.CANCEL)
    server.data_to_send()
    late = DataFrame(1, data=b"x" * 16000).serialize() * 3
    late += WindowUpdateFrame(1, window_increment=5).serialize() + headers(1, BLOCK)
    assert server.receive_data(late) == []
    window_updates = sent_frames(server.data_to_send())
    assert [(x.stream_id, x.window_increment) for x in window_updates] == [(0, 48000)]
    assert server.inbound_window == f.DEFAULT_WINDOW_SIZE


def test_frames_after_the_client_reset_a_stream() -> None:
    """After the client's RST_STREAM, its WINDOW_UPDATE is ignored, its DATA is STREAM_CLOSED."""
    server = raw_server()
    server.receive_data(headers(1) + RstStreamFrame(1).serialize())
    assert server.receive_data(WindowUpdateFrame(1, window_increment=1).serialize()) == []
    stream_error(server, DataFrame(1, data=b"x").serialize(), 1, f.STREAM_CLOSED)
