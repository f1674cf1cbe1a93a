"""The gRPC upstream client's connection (sidecar.grpc.h2_client_connection) reads in bounded
turns: an upstream flooding PINGs gets a turn's share of the event loop, not all of it."""

from __future__ import annotations

import asyncio

from sidecar.grpc.h2_client_connection import FRAMES_PER_TURN, ClientConnection
from sidecar.http2 import frames as f
from tests.unit.fake_transport import FakeTransport


def pings_answered(transport: FakeTransport) -> int:
    """PING ACK frames among the bytes written so far."""
    data = b"".join(transport.written)
    pos = count = 0
    if data.startswith(f.PREFACE):
        pos = len(f.PREFACE)
    while len(data) - pos >= f.FRAME_HEADER_SIZE:
        head = f.parse_header(data, pos)
        if head.frame_type == f.PING and head.flags & f.FLAG_ACK:
            count += 1
        pos += f.FRAME_HEADER_SIZE + head.length
    return count


def connected() -> tuple[ClientConnection, FakeTransport]:
    """A client connection on an in-memory transport, its preface and SETTINGS written."""
    conn = ClientConnection(
        on_ready=lambda c: None,
        on_gone=lambda c: None,
        on_slot=lambda c: None,
        limit=4 * 1024 * 1024,
        keepalive=None,
    )
    transport = FakeTransport(conn)
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


async def test_a_ping_flood_is_answered_a_turn_at_a_time_with_reading_paused() -> None:
    """Five turns' worth of PINGs in one read: one turn answers FRAMES_PER_TURN of them and
    pauses reading, so the loop serves other connections between turns; all are answered."""
    conn, transport = connected()
    flood = f.build_frame(f.SETTINGS, 0, 0) + f.build_frame(f.PING, 0, 0, b"12345678") * (
        5 * FRAMES_PER_TURN
    )
    conn.data_received(flood)
    assert pings_answered(transport) == FRAMES_PER_TURN - 1  # the SETTINGS took one frame
    assert not transport.reading
    other_turns = 0
    async with asyncio.timeout(5):
        while not transport.reading:
            other_turns += 1
            await asyncio.sleep(0)  # one loop turn, as another connection's would be
    assert other_turns >= 4
    assert pings_answered(transport) == 5 * FRAMES_PER_TURN
    conn.close(None)


async def test_frames_split_over_reads_anywhere_are_all_handled_and_turns_still_cut() -> None:
    """Bytes arriving 7 at a time (frame headers and payloads cut anywhere) are all answered,
    and a flood read after them is still cut at a frame boundary (its PINGs answered)."""
    conn, transport = connected()
    ping = f.build_frame(f.PING, 0, 0, b"12345678")
    start = f.build_frame(f.SETTINGS, 0, 0) + ping * 30
    for at in range(0, len(start), 7):
        conn.data_received(start[at : at + 7])
    assert pings_answered(transport) == 30
    assert transport.reading
    conn.data_received(ping * (2 * FRAMES_PER_TURN))
    assert pings_answered(transport) == 30 + FRAMES_PER_TURN
    async with asyncio.timeout(5):
        while not transport.reading:
            await asyncio.sleep(0)
    assert pings_answered(transport) == 30 + 2 * FRAMES_PER_TURN
    assert not transport.closed
    conn.close(None)
