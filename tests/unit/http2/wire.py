"""Test helpers for the HTTP/2 core: pipes between our Connection and ``h2``'s, frames built
with ``hyperframe`` and read back from what a connection sends, events reduced to tuples."""

from __future__ import annotations

import random
from typing import Any

import h2.config
import h2.connection
import pytest
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame, SettingsFrame

from sidecar.http2 import events as ev
from sidecar.http2 import frames as f
from sidecar.http2.connection import Connection
from sidecar.http2.errors import ProtocolError
from sidecar.http2.frames import PREFACE

Headers = list[tuple[bytes, bytes]]

REQUEST: Headers = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Echo/Say"),
    (b":authority", b"localhost"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
RESPONSE: Headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS: Headers = [(b"grpc-status", b"0"), (b"grpc-message", b"")]

#: every attribute an event of ours may carry, in the order event_tuple lists them
_FIELDS = (
    "stream_id",
    "headers",
    "stream_ended",
    "data",
    "flow_controlled_length",
    "error_code",
    "remote_reset",
    "delta",
    "changed",
    "last_stream_id",
    "additional_data",
)


def message(payload: bytes) -> bytes:
    """A gRPC length-prefixed message."""
    return b"\0" + len(payload).to_bytes(4, "big") + payload


def unindexable(seed: int, size: int) -> bytes:
    """A header value Huffman coding barely shrinks (random printable bytes)."""
    return bytes(random.Random(seed).choices(range(33, 127), k=size))


def h2_peer(client_side: bool, **settings: Any) -> h2.connection.H2Connection:
    """An ``h2`` connection with bytes headers, its opening queued."""
    config = h2.config.H2Configuration(client_side=client_side, header_encoding=None)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    return conn


def pump(a: Any, b: Any, rounds: int = 50) -> tuple[list[Any], list[Any]]:
    """Move bytes both ways until neither side has more; the events each side got."""
    got_a: list[Any] = []
    got_b: list[Any] = []
    for _ in range(rounds):
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            return got_a, got_b
        if out_a:
            got_b += b.receive_data(out_a)
        if out_b:
            got_a += a.receive_data(out_b)
    raise AssertionError("the two sides never went quiet")


def served(**options: Any) -> tuple[Connection, h2.connection.H2Connection]:
    """Our server and an ``h2`` client, past the opening exchange."""
    server = Connection(client_side=False, **options)
    server.initiate_connection()
    client = h2_peer(True)
    pump(client, server)
    return server, client


def calling(**options: Any) -> tuple[Connection, h2.connection.H2Connection]:
    """Our client and an ``h2`` server, past the opening exchange."""
    client = Connection(client_side=True, **options)
    client.initiate_connection()
    server = h2_peer(False)
    pump(client, server)
    return client, server


def raw_server(**options: Any) -> Connection:
    """Our server after a hand-written client opening (preface, empty SETTINGS, ACK of
    ours); the caller then feeds it frames of its own making."""
    server = Connection(client_side=False, **options)
    server.initiate_connection()
    server.receive_data(PREFACE + SettingsFrame(0).serialize())
    ack = SettingsFrame(0, flags=["ACK"]).serialize()
    server.receive_data(ack)
    server.data_to_send()
    return server


def raw_client(**options: Any) -> Connection:
    """Our client after a hand-written server opening (empty SETTINGS, ACK of ours)."""
    client = Connection(client_side=True, **options)
    client.initiate_connection()
    client.receive_data(SettingsFrame(0).serialize() + SettingsFrame(0, flags=["ACK"]).serialize())
    client.data_to_send()
    return client


def sent_frames(data: bytes) -> list[Frame]:
    """The frames in bytes a connection sent (hyperframe's parse)."""
    frames: list[Frame] = []
    view = memoryview(data)
    if data.startswith(PREFACE):
        view = view[len(PREFACE) :]
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        frame.parse_body(view[9 : 9 + length])
        frames.append(frame)
        view = view[9 + length :]
    return frames


def event_tuple(event: ev.Event) -> tuple[Any, ...]:
    """An event as a comparable tuple: its class name, then the attributes it has."""
    return (type(event).__name__, *(getattr(event, n) for n in _FIELDS if hasattr(event, n)))


def connection_error(conn: Connection, data: bytes, code: int) -> ProtocolError:
    """Feed ``data``: it must raise, queue GOAWAY(code) and close the connection."""
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(data)
    assert info.value.error_code == code
    last = sent_frames(conn.data_to_send())[-1]
    assert isinstance(last, GoAwayFrame) and last.error_code == code
    assert conn.closed and conn.receive_data(f.build_frame(f.PING, 0, 0, b"12345678")) == []
    return info.value


def stream_error(conn: Connection, data: bytes, sid: int, code: int) -> list[ev.Event]:
    """Feed ``data``: it must reset stream ``sid`` with ``code`` and report it, nothing more."""
    events = conn.receive_data(data)
    assert ("StreamReset", sid, code, False) in [event_tuple(e) for e in events]
    resets = [x for x in sent_frames(conn.data_to_send()) if isinstance(x, RstStreamFrame)]
    assert [(x.stream_id, x.error_code) for x in resets] == [(sid, code)]
    assert not conn.closed
    return events
