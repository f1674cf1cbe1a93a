"""Received bytes cut anywhere (one byte at a time, or at random) give the same events and
the same answers as the whole: frames cut by a read are buffered, never misread. Random
frames raise nothing but ProtocolError."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hyperframe.frame import SettingsFrame

from sidecar.http2 import frames as f
from sidecar.http2.connection import Connection
from sidecar.http2.errors import ProtocolError
from sidecar.http2.frames import PREFACE, build_frame

from .wire import REQUEST, RESPONSE, TRAILERS, event_tuple, h2_peer, message, pump, unindexable


def client_script() -> bytes:
    """What an ``h2`` client sends in a busy session: calls with data, trailers, big
    headers (CONTINUATION), a reset, a ping, new settings."""
    client = h2_peer(True)
    for sid in (1, 3, 5, 7):
        client.send_headers(sid, REQUEST)
    client.send_data(1, message(b"a" * 100), end_stream=True)
    client.send_data(3, message(b"b" * 15000))
    client.send_data(3, message(b"c" * 20), end_stream=True)
    client.reset_stream(5)
    client.send_headers(7, [(b"x-trailer", unindexable(7, 20000))], end_stream=True)
    client.ping(b"pingping")
    client.update_settings({4: 30000, 1: 0})
    return client.data_to_send()


def server_events(chunks: list[bytes]) -> tuple[list[Any], bytes]:
    server = Connection(client_side=False, max_header_list_size=2**20)
    server.initiate_connection()
    events: list[Any] = []
    for chunk in chunks:
        events += [event_tuple(e) for e in server.receive_data(chunk)]
    return events, server.data_to_send()


def splits(data: bytes, rng: random.Random, most: int) -> list[bytes]:
    chunks: list[bytes] = []
    start = 0
    while start < len(data):
        size = rng.randint(1, most)
        chunks.append(data[start : start + size])
        start += size
    return chunks


def check_cuts(data: bytes, run: Callable[[list[bytes]], tuple[list[Any], bytes]]) -> None:
    whole = run([data])
    assert len(whole[0]) > 5
    assert run([data[i : i + 1] for i in range(len(data))]) == whole
    rng = random.Random(2026)
    for most in (2, 9, 10, 100, 5000, 40000):
        for _ in range(5):
            assert run(splits(data, rng, most)) == whole


def test_server_reads_the_same_whatever_the_cuts() -> None:
    """Our server gets the same events and sends the same bytes, however the reads cut."""
    check_cuts(client_script(), server_events)


def test_client_reads_the_same_whatever_the_cuts() -> None:
    """Our client gets the same events and sends the same bytes, however the reads cut."""

    def session() -> Connection:
        client = Connection(client_side=True, max_header_list_size=2**20)
        client.initiate_connection()
        for sid in (1, 3):
            client.send_headers(sid, REQUEST, end_stream=sid == 1)
        return client

    server = h2_peer(False)
    pump(session(), server)
    server.send_headers(1, [(b":status", b"100")])
    server.send_headers(1, RESPONSE)
    server.send_data(1, message(b"x" * 12000))
    server.send_headers(1, [*TRAILERS, (b"x-big", unindexable(1, 20000))], end_stream=True)
    server.send_headers(3, RESPONSE)
    server.reset_stream(3)
    server.ping(b"12345678")
    data = server.data_to_send()

    def run(chunks: list[bytes]) -> tuple[list[Any], bytes]:
        client = session()
        client.receive_data(replayed_opening)
        client.data_to_send()
        events: list[Any] = []
        for chunk in chunks:
            events += [event_tuple(e) for e in client.receive_data(chunk)]
        return events, client.data_to_send()

    # the server's opening (SETTINGS and its ACK of ours) went by in pump: replay it first
    replay = h2_peer(False)
    replayed_opening = replay.data_to_send()
    replay.receive_data(session().data_to_send())
    replayed_opening += replay.data_to_send()
    check_cuts(data, run)


def test_random_frames_raise_only_protocol_errors() -> None:
    """Random frames give events or a ProtocolError (connection closed), nothing else."""
    rng = random.Random(9113)
    types = [*range(10), 0xFA]
    for _ in range(3000):
        server = Connection(client_side=rng.random() < 0.3)
        server.initiate_connection()
        data = bytearray() if server.client_side else bytearray(PREFACE)
        data += SettingsFrame(0).serialize()
        for _ in range(rng.randint(1, 6)):
            payload = rng.randbytes(rng.choice([0, 1, 4, 5, 6, 8, 12, rng.randint(0, 300)]))
            sid = rng.choice([0, 1, 2, 3, 5, rng.randint(0, 2**31 - 1)])
            data += build_frame(rng.choice(types), rng.randint(0, 255), sid, payload)
        try:
            server.receive_data(bytes(data))
        except ProtocolError as error:
            assert server.closed and error.error_code <= f.HTTP_1_1_REQUIRED
