"""Tracing of gRPC calls end to end: a real grpc client calls the sidecar's gRPC port, which calls
the echo.v1.Echo test upstream; spans go to an in-process OTLP receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from sidecar.app import Sidecar
from sidecar.testing import running_sidecar
from tests.grpc_echo import echo_pb2, echo_pb2_grpc

from .grpc_upstream import SERVICE, EchoUpstream
from .otlp_receiver import OtlpReceiver, ReceivedSpan

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SAMPLED = (("traceparent", f"00-{TRACE}-{PARENT}-01"),)


@dataclass
class Rig:
    rx: OtlpReceiver
    upstream: EchoUpstream
    sidecar: Sidecar
    stub: Any  # echo_pb2_grpc.EchoStub


@asynccontextmanager
async def rig() -> AsyncIterator[Rig]:
    async with OtlpReceiver() as rx, EchoUpstream() as up:
        config = {
            "grpc": {"address": "127.0.0.1:0"},
            "telemetry": {"tracing": {"endpoint": rx.endpoint, "schedule_delay": "50ms"}},
            "upstreams": {"echo": {"adapter": "grpc", "url": up.url, "services": [SERVICE]}},
        }
        async with running_sidecar(config) as s:
            assert s.grpc is not None
            async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc.port}") as channel:
                yield Rig(rx, up, s, echo_pb2_grpc.EchoStub(channel))


def one(spans: list[ReceivedSpan], kind: str) -> ReceivedSpan:
    (span,) = [s for s in spans if s.kind == kind]
    return span


async def test_a_grpc_call_is_traced_and_the_upstream_continues_the_trace() -> None:
    """A gRPC call gets a SERVER span with its service, method and status, a CLIENT span under
    it, and the upstream receives `traceparent` metadata naming the CLIENT span."""
    async with rig() as r:
        await r.stub.Unary(echo_pb2.EchoRequest(payload=b"hi"), metadata=SAMPLED, timeout=10)
        spans = await r.rx.wait_for(2)
        seen = r.upstream.calls[0]
    server, client = one(spans, "SERVER"), one(spans, "CLIENT")
    assert (server.trace_id, server.parent_span_id) == (TRACE, PARENT)
    assert client.parent_span_id == server.span_id
    assert seen.meta("traceparent") == f"00-{TRACE}-{client.span_id}-01"
    for span in (server, client):
        assert span.name == f"{SERVICE}/Unary"
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == SERVICE
        assert span.attributes["rpc.method"] == "Unary"
        assert span.attributes["rpc.grpc.status_code"] == 0
        assert span.status == "UNSET"
    assert server.attributes["sidecar.listener"] == "grpc"
    assert client.attributes["server.port"] == r.upstream.port


@pytest.mark.parametrize(("code", "server_error"), [(13, True), (5, False)])
async def test_a_failed_grpc_call_carries_its_status_code(code: int, server_error: bool) -> None:
    """The upstream's gRPC status reaches both spans; INTERNAL is the call's error, NOT_FOUND
    only the client's (semantic conventions)."""
    async with rig() as r:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await r.stub.Unary(echo_pb2.EchoRequest(fail_code=code), metadata=SAMPLED, timeout=10)
        assert e.value.code().value[0] == code
        spans = await r.rx.wait_for(2)
    server, client = one(spans, "SERVER"), one(spans, "CLIENT")
    assert server.attributes["rpc.grpc.status_code"] == client.attributes["rpc.grpc.status_code"]
    assert client.attributes["rpc.grpc.status_code"] == code
    assert client.status == "ERROR"
    assert (server.status == "ERROR") is server_error


async def test_a_streamed_grpc_call_ends_its_span_after_the_last_message() -> None:
    """A server-streaming call's span covers the whole stream and its final status."""
    async with rig() as r:
        call = r.stub.ServerStream(echo_pb2.EchoRequest(repeat=3), metadata=SAMPLED, timeout=10)
        got = [m async for m in call]
        assert len(got) == 3
        spans = await r.rx.wait_for(2)
    server = one(spans, "SERVER")
    assert server.attributes["rpc.method"] == "ServerStream"
    assert server.attributes["rpc.grpc.status_code"] == 0
