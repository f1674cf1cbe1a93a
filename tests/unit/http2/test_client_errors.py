"""Our HTTP/2 client fed hand-built server frames that break RFC 9113: connection errors send
GOAWAY with their code and raise, stream errors reset the stream only."""

from __future__ import annotations

import hpack
from hyperframe.frame import DataFrame, HeadersFrame, PingFrame, SettingsFrame

from sidecar.http2 import frames as f
from sidecar.http2.connection import Connection

from .wire import (
    REQUEST,
    RESPONSE,
    TRAILERS,
    connection_error,
    event_tuple,
    raw_client,
    stream_error,
)


def block(headers: list[tuple[bytes, bytes]], encoder: hpack.Encoder | None = None) -> bytes:
    return (encoder or hpack.Encoder()).encode(headers)


def headers(sid: int, data: bytes, *flags: str) -> bytes:
    return HeadersFrame(sid, data=data, flags=["END_HEADERS", *flags]).serialize()


def test_the_server_must_open_with_settings() -> None:
    """A server whose first frame is not SETTINGS is a PROTOCOL_ERROR."""
    client = Connection(client_side=True)
    client.initiate_connection()
    client.data_to_send()
    connection_error(client, PingFrame(0, opaque_data=b"12345678").serialize(), 1)


def test_a_response_on_a_stream_never_opened() -> None:
    """HEADERS on an odd stream we did not open is a PROTOCOL_ERROR."""
    connection_error(raw_client(), headers(1, block(RESPONSE)), f.PROTOCOL_ERROR)


def test_headers_on_an_even_stream() -> None:
    """A server may not open streams (no push): HEADERS on an even one is a PROTOCOL_ERROR."""
    connection_error(raw_client(), headers(2, block(RESPONSE)), f.PROTOCOL_ERROR)


def test_push_promise_is_refused() -> None:
    """We never enable push: PUSH_PROMISE is a PROTOCOL_ERROR."""
    client = raw_client()
    client.send_headers(1, REQUEST, end_stream=True)
    client.data_to_send()
    frame = f.build_frame(f.PUSH_PROMISE, 4, 1, f.push_promise_payload(2, block(REQUEST)))
    connection_error(client, frame, f.PROTOCOL_ERROR)


def test_enable_push_from_a_server() -> None:
    """A server announcing SETTINGS_ENABLE_PUSH=1 is a PROTOCOL_ERROR."""
    data = SettingsFrame(0, settings={f.SETTINGS_ENABLE_PUSH: 1}).serialize()
    connection_error(raw_client(), data, f.PROTOCOL_ERROR)


def test_a_response_without_status_resets_the_stream() -> None:
    """A malformed response resets its stream; the connection goes on."""
    client = raw_client()
    client.send_headers(1, REQUEST, end_stream=True)
    client.data_to_send()
    stream_error(client, headers(1, block([(b"content-type", b"x")])), 1, f.PROTOCOL_ERROR)


def test_informational_with_end_stream_resets_the_stream() -> None:
    """A 1xx response may not end the stream."""
    client = raw_client()
    client.send_headers(1, REQUEST, end_stream=True)
    client.data_to_send()
    data = headers(1, block([(b":status", b"100")]), "END_STREAM")
    stream_error(client, data, 1, f.PROTOCOL_ERROR)


def test_trailers_must_end_the_stream() -> None:
    """Trailers must end the stream: without END_STREAM they reset it, with it they end it."""
    encoder = hpack.Encoder()
    client = raw_client()
    for sid in (1, 3):
        client.send_headers(sid, REQUEST, end_stream=True)
    client.data_to_send()
    client.receive_data(headers(1, block(RESPONSE, encoder)) + headers(3, block(RESPONSE, encoder)))
    stream_error(client, headers(1, block(TRAILERS, encoder)), 1, f.PROTOCOL_ERROR)
    got = client.receive_data(headers(3, block(TRAILERS, encoder), "END_STREAM"))
    assert [event_tuple(e) for e in got] == [("TrailersReceived", 3, TRAILERS), ("StreamEnded", 3)]


def test_data_before_the_response_resets_the_stream() -> None:
    """DATA before the response's headers resets the stream; its bytes still count."""
    client = raw_client()
    client.send_headers(1, REQUEST, end_stream=True)
    client.data_to_send()
    stream_error(client, DataFrame(1, data=b"early").serialize(), 1, f.PROTOCOL_ERROR)
    assert client.inbound_window + client.inbound_unacked == f.DEFAULT_WINDOW_SIZE
