"""The HTTP/2 front of the gRPC port (``grpc.server: h2``), where it differs from grpcio's
server: what it refuses (compression, bad bytes), and its drain (GOAWAY, in-flight calls
finish, the rest are cut and counted). The behaviour both servers share is tested in
test_grpc_passthrough.py and the other gRPC modules, against both."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from sidecar.app import Sidecar
from sidecar.grpc.h2_listener import CONNECTION_WINDOW, H2GrpcListener
from sidecar.testing import async_wait_until, running_sidecar
from tests.grpc_echo import echo_pb2 as pb
from tests.grpc_echo import echo_pb2_grpc
from tests.integration.grpc_upstream import SERVICE, EchoUpstream

H2 = {"address": "127.0.0.1:0", "server": "h2"}


@asynccontextmanager
async def h2_sidecar(up: EchoUpstream, **extra: Any) -> AsyncIterator[Sidecar]:
    cfg = {
        "upstreams": {"echo": {"adapter": "grpc", "url": up.url, "services": [SERVICE]}},
        "grpc": H2,
        **extra,
    }
    async with running_sidecar(cfg) as s:
        assert isinstance(s.grpc, H2GrpcListener)
        yield s


@pytest.mark.parametrize("payload", [b"", b"x" * 200], ids=["empty", "compressed-message"])
async def test_a_compressed_call_is_unimplemented_with_a_clear_reason(payload: bytes) -> None:
    """A call compressed by the app (``grpc-encoding: gzip``) is UNIMPLEMENTED, saying the
    encoding is not taken, and never reaches the upstream, whether or not its message arrived
    compressed in the same read as its HEADERS; uncompressed calls work."""
    async with EchoUpstream() as up, h2_sidecar(up) as s:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{s.grpc_port}", compression=grpc.Compression.Gzip
        ) as channel:
            request = pb.EchoRequest(payload=payload)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await echo_pb2_grpc.EchoStub(channel).Unary(request, timeout=10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
            await echo_pb2_grpc.EchoStub(channel).Unary(pb.EchoRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "gzip" in (err.value.details() or "")
    assert len(up.calls) == 1


def frame_types(data: bytes) -> list[int]:
    """The HTTP/2 frame types in ``data`` (a server's bytes, from its first frame)."""
    types, at = [], 0
    while at + 9 <= len(data):
        types.append(data[at + 3])
        at += 9 + int.from_bytes(data[at : at + 3], "big")
    return types


async def exchange_bytes(port: int, payload: bytes) -> bytes:
    """Send ``payload`` on a new connection; what the sidecar sent until it closed it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()  # until the sidecar closes the connection
    finally:
        writer.close()


async def test_garbage_on_the_port_closes_that_connection_only() -> None:
    """Bytes that are not HTTP/2 (no client preface) get the connection closed; the port keeps
    serving other connections."""
    async with EchoUpstream() as up, h2_sidecar(up) as s:
        got = await exchange_bytes(s.grpc_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert frame_types(got)[0] == 4  # the server's SETTINGS, then the close
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            r = await stub.Unary(pb.EchoRequest(payload=b"ok"), timeout=10)
    assert r.payload == b"ok"


async def test_a_protocol_error_closes_the_connection_not_the_process() -> None:
    """An HTTP/2 protocol error (DATA on stream 0) gets a GOAWAY and the connection closed;
    the listener forgets it and the port still answers."""
    async with EchoUpstream() as up, h2_sidecar(up) as s:
        listener = s.grpc
        assert isinstance(listener, H2GrpcListener)
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        data_on_stream_0 = b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x"  # RFC 9113 6.1
        got = await exchange_bytes(s.grpc_port, preface + data_on_stream_0)
        assert frame_types(got)[-1] == 7  # GOAWAY
        await async_wait_until(lambda: not listener.connections)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
            await echo_pb2_grpc.EchoStub(channel).Unary(pb.EchoRequest(), timeout=10)


async def test_drain_lets_a_call_finish_refuses_new_ones_and_counts_what_it_cuts() -> None:
    """Draining: a call in flight finishes within the grace, a new connection is refused, and
    a call still running after the grace is cut and counted."""
    async with EchoUpstream() as up, h2_sidecar(up) as s:
        listener = s.grpc
        assert isinstance(listener, H2GrpcListener)
        port = s.grpc_port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            quick = stub.Unary(pb.EchoRequest(payload=b"q", delay_ms=300), timeout=20)
            slow = stub.Unary(pb.EchoRequest(payload=b"s", delay_ms=10_000), timeout=20)
            await up.wait_call(2)
            listener.stop_accepting()
            cut = await listener.drain(1.5)
            assert (await quick).payload == b"q"
            with pytest.raises(grpc.aio.AioRpcError):
                await slow
        assert cut == 1
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()


async def test_refused_messages_do_not_shrink_the_connections_window() -> None:
    """Messages refused for their size (their bytes never read) are still acknowledged: after
    more refused bytes than the connection's whole window, the same channel's calls pass."""
    async with EchoUpstream() as up, h2_sidecar(up) as s:
        assert isinstance(s.grpc, H2GrpcListener)
        s.grpc.max_receive = 1024
        frame = 16 * 1024  # what arrives of a refused message before its call is reset
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            for _ in range(CONNECTION_WINDOW // frame + 100):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Unary(pb.EchoRequest(payload=b"x" * (frame + 1)), timeout=10)
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            r = await stub.Unary(pb.EchoRequest(payload=b"small"), timeout=10)
    assert r.payload == b"small"
    assert len(up.calls) == 1
