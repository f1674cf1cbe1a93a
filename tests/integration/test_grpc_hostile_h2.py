"""The sidecar's HTTP/2 gRPC client (sidecar.grpc.h2_channel) against hostile upstreams: raw
asyncio servers on 127.0.0.1 that speak HTTP/2 badly on purpose.

What a user relies on: whatever an upstream sends, each call ends with a gRPC status, no later
than its deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import hpack
import pytest

from sidecar.errors import SidecarError
from sidecar.http2 import frames as f
from tests.integration.test_grpc_h2_client import h2_client

#: a response's HEADERS as gRPC servers begin them
GRPC_HEAD = [(":status", "200"), ("content-type", "application/grpc")]

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int, hpack.Encoder], Awaitable[None]]


async def first_request(reader: asyncio.StreamReader) -> int | None:
    """Read the client's preface and frames up to its first HEADERS; that stream's id."""
    buf = b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return None
        buf += chunk
        pos = len(f.PREFACE) if buf.startswith(f.PREFACE) else 0
        while len(buf) - pos >= f.FRAME_HEADER_SIZE:
            head = f.parse_header(buf, pos)
            if head.frame_type == f.HEADERS:
                return head.stream_id
            pos += f.FRAME_HEADER_SIZE + head.length


@asynccontextmanager
async def hostile_upstream(script: Script) -> AsyncIterator[str]:
    """A server that sends its SETTINGS, acknowledges the client's, then runs ``script`` on the
    first call's stream; the ``grpc://`` URL to reach it."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            writer.write(f.build_frame(f.SETTINGS, 0, 0))
            sid = await first_request(reader)
            if sid is not None:
                writer.write(f.build_frame(f.SETTINGS, f.FLAG_ACK, 0))
                await script(reader, writer, sid, hpack.Encoder())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def endless_empty_messages(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sid: int, enc: hpack.Encoder
) -> None:
    """HEADERS, then empty messages in 1-byte DATA frames for as long as the client reads."""
    writer.write(f.build_frame(f.HEADERS, f.FLAG_END_HEADERS, sid, enc.encode(GRPC_HEAD)))
    batch = f.build_frame(f.DATA, 0, sid, b"\0") * 1000
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        writer.write(batch)
        await writer.drain()


async def test_a_flood_of_tiny_messages_ends_at_the_calls_deadline() -> None:
    """An upstream streaming empty messages in 1-byte frames to a slow reader: the call ends
    with the sidecar's DEADLINE_EXCEEDED at its deadline, not after the messages held."""
    async with (
        hostile_upstream(endless_empty_messages) as url,
        h2_client(url) as client,
    ):
        start = time.monotonic()
        resp = await client.call("/a.B/C", b"\x0a\x01x", timeout=1.0)
        assert not isinstance(resp.body, bytes)
        read = 0
        async for _ in resp.body:
            read += 1
            if read % 100 == 0:
                await asyncio.sleep(0.01)  # a reader slower than the upstream
        took = time.monotonic() - start
        assert resp.trailers is not None
        assert resp.trailers.get("grpc-status") == "4"
        assert resp.trailers.get("x-sidecar-error") == "upstream_timeout"
        assert took < 1.5, took


async def test_keepalive_pings_come_every_keepalive_time_while_a_call_waits() -> None:
    """With ``keepalive_time`` 0.2 s and a 5 s ``keepalive_timeout``, an upstream that answers
    every PING but holds the call gets a PING about every 0.2 s, not one per timeout."""
    pings: list[float] = []
    four_pings = asyncio.Event()

    async def answer_pings(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sid: int, enc: hpack.Encoder
    ) -> None:
        buf = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buf += chunk
            pos = 0
            while len(buf) - pos >= f.FRAME_HEADER_SIZE:
                head = f.parse_header(buf, pos)
                end = pos + f.FRAME_HEADER_SIZE + head.length
                if end > len(buf):
                    break
                if head.frame_type == f.PING and not head.flags & f.FLAG_ACK:
                    pings.append(time.monotonic())
                    if len(pings) >= 4:
                        four_pings.set()
                    payload = buf[pos + f.FRAME_HEADER_SIZE : end]
                    writer.write(f.build_frame(f.PING, f.FLAG_ACK, 0, payload))
                pos = end
            buf = buf[pos:]

    async with hostile_upstream(answer_pings) as url:
        options = {"keepalive_time": 0.2, "keepalive_timeout": 5.0}
        async with h2_client(url, options=options) as c:
            call = asyncio.ensure_future(c.call("/echo.v1.Echo/Unary", b"", timeout=30))
            try:
                async with asyncio.timeout(3.0):
                    await four_pings.wait()
            finally:
                call.cancel()
                await asyncio.gather(call, return_exceptions=True)
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert max(gaps) < 1.0, gaps


async def test_too_many_pings_names_the_keepalive_options_in_the_error_and_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An upstream that ends the connection with GOAWAY(ENHANCE_YOUR_CALM, too_many_pings):
    the call's error and one warning say which keepalive options to change."""

    async def too_many_pings(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sid: int, enc: hpack.Encoder
    ) -> None:
        payload = f.goaway_payload(sid, f.ENHANCE_YOUR_CALM, b"too_many_pings")
        writer.write(f.build_frame(f.GOAWAY, 0, 0, payload))
        await writer.drain()

    caplog.set_level(logging.WARNING, logger="sidecar.grpc")
    async with hostile_upstream(too_many_pings) as url, h2_client(url) as c:
        with pytest.raises(SidecarError, match="keepalive_time"):
            await c.call("/echo.v1.Echo/Unary", b"", timeout=5)
    said = [r for r in caplog.records if r.getMessage() == "gRPC upstream connection closed"]
    assert len(said) == 1
    assert "too_many_pings" in said[0].fields["reason"]  # type: ignore[attr-defined]
