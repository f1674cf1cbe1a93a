"""Our HTTP/2 client against ``h2``'s server, bytes piped in memory: gRPC-like calls, 1xx,
flow control both ways, trailers, resets, GOAWAY, PING, settings changes and CONTINUATION."""

from __future__ import annotations

from typing import Any

import h2.events
import h2.settings
import pytest

from sidecar.http2 import events as ev
from sidecar.http2 import frames as f
from sidecar.http2.errors import ProtocolError, StreamClosedError, TooManyStreamsError

from .wire import (
    REQUEST,
    RESPONSE,
    TRAILERS,
    calling,
    event_tuple,
    message,
    pump,
    sent_frames,
    unindexable,
)

CODES = h2.settings.SettingCodes


def only(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_unary_call_round_trip() -> None:
    """A unary call out and its answer back; the stream is then gone and uncounted."""
    client, server = calling()
    sid = client.get_next_available_stream_id()
    assert sid == 1
    client.send_headers(sid, REQUEST)
    client.send_data(sid, message(b"hello"), end_stream=True)
    assert client.open_outbound_streams == 1
    _, got = pump(client, server)
    assert [type(e) for e in got] == [
        h2.events.RequestReceived,
        h2.events.DataReceived,
        h2.events.StreamEnded,
    ]
    assert got[0].headers == REQUEST and got[1].data == message(b"hello")
    server.send_headers(sid, RESPONSE)
    server.send_data(sid, message(b"world"))
    server.send_headers(sid, TRAILERS, end_stream=True)
    answer, _ = pump(client, server)
    assert [event_tuple(e) for e in answer] == [
        ("ResponseReceived", 1, RESPONSE, False),
        ("DataReceived", 1, False, message(b"world"), len(message(b"world"))),
        ("TrailersReceived", 1, TRAILERS),
        ("StreamEnded", 1),
    ]
    assert client.streams == {} and client.open_outbound_streams == 0
    assert client.get_next_available_stream_id() == 3


def test_informational_response_then_final() -> None:
    """A 1xx comes as InformationalResponseReceived, the final response after it."""
    client, server = calling()
    client.send_headers(1, REQUEST, end_stream=True)
    pump(client, server)
    server.send_headers(1, [(b":status", b"103"), (b"link", b"</a>")])
    server.send_headers(1, RESPONSE, end_stream=True)
    answer, _ = pump(client, server)
    assert [type(e) for e in answer] == [
        ev.InformationalResponseReceived,
        ev.ResponseReceived,
        ev.StreamEnded,
    ]


def test_streaming_both_ways_over_small_windows() -> None:
    """200 KB each way through 1 KB windows arrive whole as each side acknowledges."""
    client, server = calling(initial_window_size=1024)
    client.update_settings({f.SETTINGS_INITIAL_WINDOW_SIZE: 1024})
    server.update_settings({CODES.INITIAL_WINDOW_SIZE: 1024})
    pump(client, server)
    up = bytes(range(256)) * 800
    down = bytes(range(255, -1, -1)) * 800
    client.send_headers(1, REQUEST)
    pump(client, server)
    server.send_headers(1, RESPONSE)
    sent_up = sent_down = 0
    got_up = bytearray()
    got_down = bytearray()
    for _ in range(10000):
        if sent_up < len(up):
            room = min(client.local_flow_control_window(1), client.max_outbound_frame_size)
            if room > 0:
                end = min(len(up), sent_up + room)
                client.send_data(1, up[sent_up:end], end_stream=end == len(up))
                sent_up = end
        if sent_down < len(down):
            room = min(server.local_flow_control_window(1), server.max_outbound_frame_size)
            if room > 0:
                end = min(len(down), sent_down + room)
                server.send_data(1, down[sent_down:end])
                sent_down = end
        answer, got = pump(client, server)
        for event in got:
            if isinstance(event, h2.events.DataReceived):
                got_up += event.data
                server.acknowledge_received_data(event.flow_controlled_length, 1)
        for event in answer:
            if isinstance(event, ev.DataReceived):
                got_down += event.data
                client.acknowledge_received_data(event.flow_controlled_length, 1)
        if sent_up == len(up) and sent_down == len(down):
            break
    server.send_headers(1, TRAILERS, end_stream=True)
    answer, _ = pump(client, server)
    assert bytes(got_up) == up and bytes(got_down) == down
    assert only(answer, ev.TrailersReceived) and client.streams == {}


def test_resets_both_ways() -> None:
    """Our RST_STREAM reaches the server; the server's is a StreamReset(remote_reset=True)."""
    client, server = calling()
    client.send_headers(1, REQUEST)
    client.send_headers(3, REQUEST)
    pump(client, server)
    client.reset_stream(1, f.CANCEL)
    server.reset_stream(3, f.INTERNAL_ERROR)
    answer, got = pump(client, server)
    assert [(e.stream_id, e.error_code) for e in only(got, h2.events.StreamReset)] == [(1, 8)]
    assert [event_tuple(e) for e in answer] == [("StreamReset", 3, 2, True)]
    assert client.open_outbound_streams == 0
    with pytest.raises(StreamClosedError):
        client.send_data(3, b"x")


def test_goaway_stops_new_streams() -> None:
    """After the server's GOAWAY no new stream opens; the open one may still send."""
    client, server = calling()
    client.send_headers(1, REQUEST)
    pump(client, server)
    server.close_connection(error_code=0, last_stream_id=1)
    answer, _ = pump(client, server)
    assert [event_tuple(e) for e in answer] == [("ConnectionTerminated", 0, 1, b"")]
    with pytest.raises(ProtocolError):
        client.send_headers(3, REQUEST)
    client.send_data(1, b"x", end_stream=True)


def test_pings_both_ways() -> None:
    """PINGs are answered with their data, each way."""
    client, server = calling()
    client.ping(b"ourping!")
    server.ping(b"h2 ping!")
    answer, got = pump(client, server)
    assert [event_tuple(e) for e in answer] == [
        ("PingReceived", b"h2 ping!"),
        ("PingAckReceived", b"ourping!"),
    ]
    assert only(got, h2.events.PingReceived)[0].ping_data == b"ourping!"
    assert only(got, h2.events.PingAckReceived)[0].ping_data == b"h2 ping!"


def test_settings_from_the_server_apply_mid_stream() -> None:
    """The server's new window moves our open stream's; its table size 0 is honoured."""
    client, server = calling()
    client.send_headers(1, REQUEST)
    client.send_data(1, b"x" * 10000)
    pump(client, server)
    assert client.local_flow_control_window(1) == 65535 - 10000
    server.update_settings({CODES.INITIAL_WINDOW_SIZE: 5000, CODES.HEADER_TABLE_SIZE: 0})
    _, _ = pump(client, server)
    assert client.local_flow_control_window(1) == 5000 - 10000
    for sid in (3, 5):
        client.send_headers(sid, [*REQUEST, (b"x-n", str(sid).encode())], end_stream=True)
        _, got = pump(client, server)
        assert only(got, h2.events.RequestReceived)[0].headers[-1] == (b"x-n", str(sid).encode())


def test_big_header_blocks_both_ways_use_continuation() -> None:
    """Header blocks over the max frame size use CONTINUATION both ways, whole."""
    client, server = calling(max_header_list_size=2**20, max_header_block_size=2**20)
    server.update_settings({CODES.MAX_HEADER_LIST_SIZE: 2**20})
    pump(client, server)
    big = [(f"x-big-{i}".encode(), unindexable(i, 2500)) for i in range(16)]
    client.send_headers(1, [*REQUEST, *big], end_stream=True)
    out = client.data_to_send()
    kinds = [type(x).__name__ for x in sent_frames(out)]
    assert kinds[0] == "HeadersFrame" and kinds.count("ContinuationFrame") >= 1
    got = server.receive_data(out)
    assert got[0].headers == [*REQUEST, *big]
    server.send_headers(1, [*RESPONSE, *big], end_stream=True)
    answer, _ = pump(client, server)
    assert [event_tuple(e) for e in answer] == [
        ("ResponseReceived", 1, [*RESPONSE, *big], True),
        ("StreamEnded", 1),
    ]


def test_the_server_max_concurrent_streams_is_kept() -> None:
    """Past the server's max concurrent streams opening raises, until one closes."""
    client, server = calling()
    server.update_settings({CODES.MAX_CONCURRENT_STREAMS: 1})
    pump(client, server)
    client.send_headers(1, REQUEST)
    with pytest.raises(TooManyStreamsError):
        client.send_headers(3, REQUEST)
    client.reset_stream(1)
    client.send_headers(3, REQUEST)
    assert client.open_outbound_streams == 1


def test_stream_ids_must_grow() -> None:
    """A stream id lower than one used, or even, cannot be opened."""
    client, _ = calling()
    client.send_headers(5, REQUEST)
    for sid in (3, 4):
        with pytest.raises(StreamClosedError):
            client.send_headers(sid, REQUEST)
