"""The gRPC fast path end to end: a real grpcio app calls a real grpc.aio upstream through the
sidecar's gRPC port. Unary calls of methods declared in ``options.unary_methods`` and single
requests of undeclared ones are answered as before, a wrong declaration cuts nothing, and the
deadline the upstream sees is never later than the app's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from sidecar.testing import running_sidecar
from tests.grpc_echo import echo_pb2 as pb
from tests.grpc_echo import echo_pb2_grpc
from tests.integration.grpc_servers import grpc_server  # noqa: F401 - the fixture
from tests.integration.grpc_upstream import SERVICE, EchoUpstream

pytestmark = pytest.mark.usefixtures("grpc_server")

DECLARED = {"unary_methods": [f"{SERVICE}/Unary", f"{SERVICE}/ClientStream"]}


@asynccontextmanager
async def app_through_sidecar(
    url: str, options: dict[str, object] | None = None
) -> AsyncIterator[grpc.aio.Channel]:
    upstream = {
        "adapter": "grpc",
        "url": url,
        "services": [SERVICE],
        "options": options or {},
        "timeout": "30s",  # above the app's deadlines here: the app's is the one that counts
    }
    async with running_sidecar({"upstreams": {"echo": upstream}}) as s:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}")
        try:
            yield channel
        finally:
            await channel.close()


async def requests(*messages: pb.EchoRequest) -> AsyncIterator[pb.EchoRequest]:
    for m in messages:
        yield m


async def test_declared_unary_methods_answer_as_before() -> None:
    """A declared unary method returns its answer, an empty one, its metadata and its error
    status as the upstream sent them."""
    async with EchoUpstream() as up, app_through_sidecar(up.url, DECLARED) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        call = stub.Unary(
            pb.EchoRequest(payload=b"hi", echo_metadata=True),
            metadata=[("x-tenant", "acme")],
            timeout=10,
        )
        assert (await call).payload == b"hi"
        assert ("echo-x-tenant", "acme") in tuple(await call.initial_metadata())
        assert ("trailer-x-tenant", "acme") in tuple(await call.trailing_metadata())
        assert await stub.Unary(pb.EchoRequest(empty_response=True), timeout=10) == (
            pb.EchoResponse()
        )
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Unary(pb.EchoRequest(fail_code=5, fail_details="no such item"), timeout=10)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        assert failed.value.details() == "no such item"


async def test_a_declared_method_called_with_a_stream_gets_every_message() -> None:
    """A method declared unary by mistake (client-streaming) still receives all the app's
    messages: only a request of one whole message takes the unary path."""
    async with EchoUpstream() as up, app_through_sidecar(up.url, DECLARED) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        parts = (b"a", b"b", b"c")
        r = await stub.ClientStream(
            requests(*(pb.EchoRequest(payload=p) for p in parts)), timeout=10
        )
        assert r.payload == b"abc" and r.received == 3
        one = await stub.ClientStream(requests(pb.EchoRequest(payload=b"z")), timeout=10)
        assert one.payload == b"z" and one.received == 1


async def test_single_requests_of_undeclared_methods_get_every_answer() -> None:
    """With nothing declared, a server-streaming call (one request, many answers) gets every
    message, and a stream's failure after its messages still reaches the app."""
    async with EchoUpstream() as up, app_through_sidecar(up.url) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        got = [m.index async for m in stub.ServerStream(pb.EchoRequest(repeat=5), timeout=10)]
        assert got == [0, 1, 2, 3, 4]
        assert (await stub.Unary(pb.EchoRequest(payload=b"u"), timeout=10)).payload == b"u"
        stream = stub.ServerStream(pb.EchoRequest(repeat=2, fail_code=10), timeout=10)
        seen = []
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            async for m in stream:
                seen.append(m.index)
        assert seen == [0, 1] and failed.value.code() == grpc.StatusCode.ABORTED


class DeadlineRecorder:
    """An upstream answering every method at once, recording when each call's deadline falls
    (its arrival, monotonic, plus grpc's time_remaining: what grpc-timeout said)."""

    def __init__(self) -> None:
        self.deadlines: list[float] = []
        self.server = grpc.aio.server()
        self.port = 0

    async def __aenter__(self) -> DeadlineRecorder:
        async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            remaining = context.time_remaining()
            assert remaining is not None
            self.deadlines.append(time.monotonic() + remaining)
            return pb.EchoResponse().SerializeToString()

        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Unary": grpc.unary_unary_rpc_method_handler(unary)}
        )
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(0)


@pytest.mark.parametrize("declared", [False, True])
async def test_the_upstream_deadline_is_never_later_than_the_apps(declared: bool) -> None:
    """Under a second, in 10 ms steps and in 100 ms steps, the deadline the upstream sees ends
    no later than the app's (gRPC's coarse timeout header is rounded down, not up)."""
    options = DECLARED if declared else None
    async with (
        DeadlineRecorder() as up,
        app_through_sidecar(f"grpc://127.0.0.1:{up.port}", options) as channel,
    ):
        stub = echo_pb2_grpc.EchoStub(channel)
        await stub.Unary(pb.EchoRequest(), timeout=10)  # connections warm: no set-up inside
        # timeouts on grpc-timeout's grid, so the app's own header says exactly what it set
        for timeout in (0.5, 2.0, 2.5, 12.0):
            for _ in range(3):
                up.deadlines.clear()
                started = time.monotonic()
                await stub.Unary(pb.EchoRequest(), timeout=timeout)
                took = time.monotonic() - started
                (upstream_deadline,) = up.deadlines
                # the app's deadline is started + timeout at the latest; grpcio rounds its own
                # clock by up to 2 ms (both ends), which the upstream's reading includes. A
                # deadline travels as a relative timeout, so it also carries the app → sidecar
                # trip, which a loaded machine stretches to milliseconds: at most the call's own
                # duration. A timeout rounded up (the 10 ms and 100 ms grids) exceeds all three.
                assert upstream_deadline <= started + timeout + 0.002 + took, (timeout, took)
                # and not much shorter: one grid step, the margins and the trip
                assert upstream_deadline >= started + timeout - (0.2 if timeout > 10 else 0.05)


async def test_a_deadline_that_passes_ends_a_unary_call_and_its_upstream_call() -> None:
    """On the unary path too, past the app's deadline the app gets DEADLINE_EXCEEDED and the
    upstream's call is cancelled (it saw no more than the app's 0.5 s)."""
    async with EchoUpstream() as up, app_through_sidecar(up.url, DECLARED) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.Unary(pb.EchoRequest(delay_ms=5000), timeout=0.5)
        assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        seen = await up.wait_call()
        async with asyncio.timeout(3):
            await seen.finished.wait()
    assert seen.deadline_remaining is not None and seen.deadline_remaining <= 0.5
    assert seen.cancelled
