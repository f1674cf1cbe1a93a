"""Our HTTP/2 server against ``h2``'s client, bytes piped in memory: gRPC-like calls, flow
control, trailers, resets, GOAWAY, PING, settings changes and CONTINUATION."""

from __future__ import annotations

import h2.events
import h2.settings
import pytest

from sidecar.http2 import events as ev
from sidecar.http2 import frames as f
from sidecar.http2.errors import FlowControlError, FrameTooLargeError, StreamClosedError

from .wire import REQUEST, RESPONSE, TRAILERS, message, pump, sent_frames, served, unindexable


def only(events: list[object], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def test_unary_call_round_trip() -> None:
    """A unary call in and its answer out; the stream is then gone and uncounted."""
    server, client = served()
    sid = client.get_next_available_stream_id()
    client.send_headers(sid, REQUEST)
    client.send_data(sid, message(b"ping" * 16), end_stream=True)
    _, got = pump(client, server)
    assert [type(e) for e in got] == [ev.RequestReceived, ev.DataReceived, ev.StreamEnded]
    request = got[0]
    assert isinstance(request, ev.RequestReceived)
    assert request.headers == REQUEST and not request.stream_ended
    data = got[1]
    assert isinstance(data, ev.DataReceived)
    assert data.data == message(b"ping" * 16) and data.stream_ended
    assert server.open_inbound_streams == 1
    server.send_headers(sid, RESPONSE)
    server.send_data(sid, message(b"pong"))
    server.send_headers(sid, TRAILERS, end_stream=True)
    answer, _ = pump(client, server)
    kinds = [type(e) for e in answer]
    assert kinds == [
        h2.events.ResponseReceived,
        h2.events.DataReceived,
        h2.events.TrailersReceived,
        h2.events.StreamEnded,
    ]
    assert answer[1].data == message(b"pong")
    assert answer[2].headers == TRAILERS
    assert server.streams == {} and server.open_inbound_streams == 0


def test_request_with_end_stream_on_headers() -> None:
    """A request whose HEADERS carries END_STREAM says so, then StreamEnded follows."""
    server, client = served()
    client.send_headers(1, REQUEST, end_stream=True)
    _, got = pump(client, server)
    assert [type(e) for e in got] == [ev.RequestReceived, ev.StreamEnded]
    assert isinstance(got[0], ev.RequestReceived) and got[0].stream_ended


def test_large_upload_over_small_windows_reopened_by_acknowledgements() -> None:
    """A 300 KB upload through a 1 KB stream window arrives whole as it is acknowledged."""
    server, client = served(initial_window_size=1024)
    server.update_settings({f.SETTINGS_INITIAL_WINDOW_SIZE: 1024})
    pump(client, server)
    body = bytes(range(256)) * 1200
    client.send_headers(1, REQUEST)
    received = bytearray()
    sent = 0
    for _ in range(10000):
        if sent < len(body):
            room = min(client.local_flow_control_window(1), client.max_outbound_frame_size)
            if room:
                end = min(len(body), sent + room)
                client.send_data(1, body[sent:end], end_stream=end == len(body))
                sent = end
        _, got = pump(client, server)
        for event in got:
            if isinstance(event, ev.DataReceived):
                received += event.data
                server.acknowledge_received_data(event.flow_controlled_length, 1)
        if sent == len(body) and any(isinstance(e, ev.StreamEnded) for e in got):
            break
    assert bytes(received) == body


def test_large_response_waits_for_window_updates() -> None:
    """A response over the client's window goes out as WindowUpdated events reopen it."""
    server, client = served()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 500})
    client.send_headers(1, REQUEST, end_stream=True)
    pump(client, server)
    assert server.local_flow_control_window(1) == 500
    server.send_headers(1, RESPONSE)
    body = b"z" * 100_000
    sent = 0
    received = bytearray()
    updates = 0
    for _ in range(10000):
        room = min(server.local_flow_control_window(1), server.max_outbound_frame_size)
        if room and sent < len(body):
            chunk = body[sent : sent + room]
            if sent + room < len(body):
                with pytest.raises(FlowControlError):
                    server.send_data(1, body[sent : sent + room + 1])
            server.send_data(1, chunk)
            sent += len(chunk)
        answer, got = pump(client, server)
        updates += len(only(got, ev.WindowUpdated))
        for event in answer:
            if isinstance(event, h2.events.DataReceived):
                received += event.data
                client.acknowledge_received_data(event.flow_controlled_length, 1)
        if sent == len(body):
            break
    server.send_headers(1, TRAILERS, end_stream=True)
    pump(client, server)
    assert bytes(received) == body and updates > 0


def test_send_data_refuses_frames_over_the_peer_max_frame_size() -> None:
    """send_data never splits: more than the peer's max frame size raises, nothing queued."""
    server, client = served()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**20})
    client.increment_flow_control_window(2**20)
    client.send_headers(1, REQUEST, end_stream=True)
    pump(client, server)
    with pytest.raises(FrameTooLargeError):
        server.send_data(1, b"x" * (server.max_outbound_frame_size + 1))
    assert server.data_to_send() == b""


def test_client_reset_reported_and_stream_gone() -> None:
    """The client's RST_STREAM is a remote StreamReset; the stream is then closed."""
    server, client = served()
    client.send_headers(1, REQUEST)
    pump(client, server)
    client.reset_stream(1, 8)
    _, got = pump(client, server)
    reset = got[0]
    assert isinstance(reset, ev.StreamReset)
    assert (reset.stream_id, reset.error_code, reset.remote_reset) == (1, 8, True)
    with pytest.raises(StreamClosedError):
        server.send_headers(1, RESPONSE)
    assert server.open_inbound_streams == 0


def test_server_reset_drops_the_rest_of_the_request() -> None:
    """DATA late on a stream the server reset is dropped, its bytes given back."""
    server, client = served()
    client.send_headers(1, REQUEST)
    client.send_data(1, b"a" * 16000)
    pump(client, server)
    server.reset_stream(1, f.CANCEL)
    client.send_data(1, b"b" * 16000)
    client.send_data(1, b"c" * 16000)
    answer, got = pump(client, server)
    assert got == []
    assert only(answer, h2.events.StreamReset)[0].error_code == f.CANCEL
    server.acknowledge_received_data(16000, 1)  # what the call had read, given back late
    assert server.inbound_window + server.inbound_unacked == f.DEFAULT_WINDOW_SIZE
    assert server.inbound_window > 60000  # WINDOW_UPDATEs went out, not just counted


def test_client_goaway_is_connection_terminated() -> None:
    """The client's GOAWAY is a ConnectionTerminated with its code and last stream id."""
    server, client = served()
    client.close_connection(error_code=0, additional_data=b"bye")
    _, got = pump(client, server)
    (event,) = got
    assert isinstance(event, ev.ConnectionTerminated)
    assert (event.error_code, event.last_stream_id, event.additional_data) == (0, 0, b"bye")


def test_graceful_goaway_finishes_calls_and_refuses_new_ones() -> None:
    """goaway() lets the call in flight finish and refuses a later stream."""
    server, client = served()
    client.send_headers(1, REQUEST, end_stream=True)
    pump(client, server)
    server.goaway()
    client.send_headers(3, REQUEST, end_stream=True)  # crosses the GOAWAY
    got = server.receive_data(client.data_to_send())
    assert [type(e) for e in got] == [ev.StreamReset]
    server.send_headers(1, RESPONSE)
    server.send_headers(1, TRAILERS, end_stream=True)
    frames = sent_frames(server.data_to_send())
    assert [type(x).__name__ for x in frames] == [
        "GoAwayFrame",
        "RstStreamFrame",
        "HeadersFrame",
        "HeadersFrame",
    ]
    assert frames[0].last_stream_id == 1 and frames[0].error_code == 0
    assert frames[1].stream_id == 3 and frames[1].error_code == f.REFUSED_STREAM
    assert frames[3].stream_id == 1 and "END_STREAM" in frames[3].flags
    assert not server.closed


def test_pings_both_ways() -> None:
    """The client's PING is answered with its data; ours comes back as PingAckReceived."""
    server, client = served()
    client.ping(b"12345678")
    server.ping(b"abcdefgh")
    answer, got = pump(client, server)
    assert [(type(e), e.data) for e in got] == [
        (ev.PingReceived, b"12345678"),
        (ev.PingAckReceived, b"abcdefgh"),
    ]
    assert only(answer, h2.events.PingAckReceived)[0].ping_data == b"12345678"


def test_initial_window_change_mid_stream_moves_open_windows() -> None:
    """A new INITIAL_WINDOW_SIZE moves open streams' send windows, below zero if need be."""
    server, client = served()
    client.send_headers(1, REQUEST, end_stream=True)
    pump(client, server)
    server.send_headers(1, RESPONSE)
    server.send_data(1, b"x" * 16000)
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    _, got = pump(client, server)
    changed = only(got, ev.RemoteSettingsChanged)[0]
    assert changed.changed == {f.SETTINGS_INITIAL_WINDOW_SIZE: 1000}
    assert server.local_flow_control_window(1) == 1000 - 16000
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 20000})
    pump(client, server)
    assert server.local_flow_control_window(1) == 20000 - 16000


def test_header_table_size_zero_from_the_client() -> None:
    """A client that allows no dynamic table still decodes every response of ours."""
    server, client = served()
    client.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    pump(client, server)
    for sid in (1, 3, 5):
        client.send_headers(sid, REQUEST, end_stream=True)
        pump(client, server)
        server.send_headers(sid, [*RESPONSE, (b"x-call", str(sid).encode())])
        server.send_headers(sid, TRAILERS, end_stream=True)
        answer, _ = pump(client, server)
        response = only(answer, h2.events.ResponseReceived)[0]
        assert response.headers == [*RESPONSE, (b"x-call", str(sid).encode())]


def test_big_header_blocks_both_ways_use_continuation() -> None:
    """Header blocks over the max frame size use CONTINUATION both ways, whole."""
    server, client = served(max_header_list_size=2**20, max_header_block_size=2**20)
    big = [(f"x-big-{i}".encode(), unindexable(i, 3000)) for i in range(20)]
    client.send_headers(1, [*REQUEST, *big], end_stream=True)
    _, got = pump(client, server)
    request = got[0]
    assert isinstance(request, ev.RequestReceived) and request.headers == [*REQUEST, *big]
    server.send_headers(1, [*RESPONSE, *big])
    out = server.data_to_send()
    kinds = [type(x).__name__ for x in sent_frames(out)]
    assert kinds[0] == "HeadersFrame" and kinds.count("ContinuationFrame") >= 1
    answer = client.receive_data(out)
    assert answer[0].headers == [*RESPONSE, *big]


def test_server_sends_an_informational_response_first() -> None:
    """A 1xx before the final response: the client sees both, then the trailers."""
    server, client = served()
    client.send_headers(1, REQUEST, end_stream=True)
    pump(client, server)
    server.send_headers(1, [(b":status", b"103")])
    server.send_headers(1, RESPONSE)
    server.send_headers(1, TRAILERS, end_stream=True)
    answer, _ = pump(client, server)
    assert [type(e) for e in answer] == [
        h2.events.InformationalResponseReceived,
        h2.events.ResponseReceived,
        h2.events.TrailersReceived,
        h2.events.StreamEnded,
    ]


def test_sending_on_a_stream_never_opened_raises() -> None:
    """A server cannot open streams: sending on an unknown one raises StreamClosedError."""
    server, _ = served()
    with pytest.raises(StreamClosedError):
        server.send_headers(1, RESPONSE)
    with pytest.raises(StreamClosedError):
        server.send_data(2, b"x")
    with pytest.raises(StreamClosedError):
        server.local_flow_control_window(7)
