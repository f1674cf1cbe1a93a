"""Resilience and security policies on gRPC calls, end to end: a real grpc client calls a real
sidecar's gRPC port, which calls the echo.v1.Echo test upstream (tests/grpc_echo)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from aiohttp import web

from sidecar.app import Sidecar
from sidecar.testing import FakeUpstream, running_sidecar
from tests.grpc_echo import echo_pb2, echo_pb2_grpc
from tests.integration.grpc_servers import grpc_server  # noqa: F401 - the fixture

from .grpc_upstream import SERVICE, EchoUpstream

#: every test here runs against both servers of the gRPC port (grpc.server: grpcio, h2)
pytestmark = pytest.mark.usefixtures("grpc_server")

#: every wait on a condition is bounded by this (seconds).
WAIT = 10.0
UNAVAILABLE, INTERNAL, UNAUTHENTICATED = 14, 13, 16
Req = echo_pb2.EchoRequest


@dataclass
class Rig:
    upstream: EchoUpstream
    sidecar: Sidecar
    stub: Any  # echo_pb2_grpc.EchoStub

    def metric(self, name: str, **labels: str) -> float:
        value = self.sidecar.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@asynccontextmanager
async def rig(**policies: Any) -> AsyncIterator[Rig]:
    """The echo upstream behind a sidecar whose upstream ``echo`` has ``policies``."""
    async with EchoUpstream() as up:
        config = {
            "admin": {"address": "127.0.0.1:0"},
            "http": {"address": "127.0.0.1:0"},
            "grpc": {"address": "127.0.0.1:0"},
            "upstreams": {
                "echo": {"adapter": "grpc", "url": up.url, "services": [SERVICE], **policies}
            },
        }
        async with (
            running_sidecar(config) as s,
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port(s)}") as channel,
        ):
            yield Rig(up, s, echo_pb2_grpc.EchoStub(channel))


def grpc_port(s: Sidecar) -> int:
    assert s.grpc is not None, "the sidecar has no gRPC port"
    return s.grpc.port


async def refused(call: Any) -> grpc.aio.AioRpcError:
    """The error a call ended with (it must end with one)."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


def sidecar_error(error: grpc.aio.AioRpcError) -> str | None:
    return dict(error.trailing_metadata() or ()).get("x-sidecar-error")


async def test_a_rate_limited_call_is_resource_exhausted_with_rate_limited_in_trailers() -> None:
    """A gRPC app is told RESOURCE_EXHAUSTED, and that the sidecar decided it, not its peer."""
    async with rig(rate_limit={"rate": "1/min", "burst": 2}) as r:
        for _ in range(2):
            await r.stub.Unary(Req(payload=b"ok"), timeout=WAIT)
        error = await refused(r.stub.Unary(Req(payload=b"one too many"), timeout=WAIT))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert sidecar_error(error) == "rate_limited"
        assert "retry-after" in dict(error.trailing_metadata() or ())
        assert len(r.upstream.calls) == 2


async def test_the_breaker_opens_on_unavailable_rejects_without_calling_and_recovers() -> None:
    """After N UNAVAILABLE answers the breaker answers UNAVAILABLE circuit_open itself; once
    open_for passed, one trial call closes it again."""
    breaker = {"consecutive_failures": 3, "open_for": "300ms"}
    async with rig(retry={"enabled": False}, circuit_breaker=breaker) as r:
        r.upstream.fail_next = [UNAVAILABLE] * 3
        for _ in range(3):
            error = await refused(r.stub.Unary(Req(payload=b"x"), timeout=WAIT))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert sidecar_error(error) is None  # the upstream's own answer
        error = await refused(r.stub.Unary(Req(payload=b"x"), timeout=WAIT))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert sidecar_error(error) == "circuit_open"
        assert len(r.upstream.calls) == 3  # refused without calling the upstream

        loop = asyncio.get_running_loop()
        until = loop.time() + WAIT
        while True:  # polled: the breaker turns half-open on the first call after open_for
            try:
                reply = await r.stub.Unary(Req(payload=b"trial"), timeout=WAIT)
                break
            except grpc.aio.AioRpcError as e:
                assert sidecar_error(e) == "circuit_open"
            assert loop.time() < until, "the breaker never let a trial call through"
            await asyncio.sleep(0.05)
        assert reply.payload == b"trial"
        assert len(r.upstream.calls) == 4  # exactly the trial reached it
        await r.stub.Unary(Req(payload=b"closed"), timeout=WAIT)
        assert len(r.upstream.calls) == 5
        assert r.metric("sidecar_circuit_state", upstream="echo") == 0


async def test_unavailable_is_retried_until_the_upstream_answers() -> None:
    """An upstream failing twice then answering: the app sees one success; it saw 3 calls."""
    async with rig(retry={"attempts": 3}) as r:
        r.upstream.fail_next = [UNAVAILABLE, UNAVAILABLE]
        reply = await r.stub.Unary(Req(payload=b"hello"), timeout=WAIT)
        assert reply.payload == b"hello"
        assert len(r.upstream.calls) == 3
        assert [c.meta("grpc-previous-rpc-attempts") for c in r.upstream.calls] == [
            None,
            "1",
            "2",
        ]
        retries = r.metric(
            "sidecar_retries_total", upstream="echo", route="echo", condition="unavailable"
        )
        assert retries == 2


async def test_a_client_stream_is_replayed_whole_on_retry() -> None:
    """The retry sends every message the app streamed, each intact, in order."""
    async with rig() as r:
        r.upstream.fail_next = [UNAVAILABLE]

        async def messages() -> AsyncIterator[Any]:
            for part in (b"alpha-", b"", b"beta-", b"gamma"):
                yield Req(payload=part)

        reply = await r.stub.ClientStream(messages(), timeout=WAIT)
        assert reply.payload == b"alpha-beta-gamma"
        assert [c.received for c in r.upstream.calls] == [4, 4]


async def test_a_client_stream_longer_than_the_buffer_is_not_retried() -> None:
    """Past `retry.buffer` the messages were not kept: the call goes once, whole, and the app
    gets the upstream's UNAVAILABLE."""
    async with rig(retry={"buffer": "1KiB"}) as r:
        r.upstream.fail_next = [UNAVAILABLE]

        async def messages() -> AsyncIterator[Any]:
            for _ in range(3):
                yield Req(payload=b"x" * 600)

        error = await refused(r.stub.ClientStream(messages(), timeout=WAIT))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert [c.received for c in r.upstream.calls] == [3]
        skipped = r.metric(
            "sidecar_retries_skipped_total", upstream="echo", route="echo", reason="body_too_large"
        )
        assert skipped == 1


async def test_a_bidi_ping_pong_is_retried_without_losing_or_repeating_a_message() -> None:
    """An app that waits for each answer before its next message: the failed attempt's writer is
    still waiting for that message when the retry starts; the retry gets every message once."""
    async with rig() as r:
        r.upstream.fail_next = [UNAVAILABLE]
        call = r.stub.Bidi(timeout=WAIT)
        answers = []
        for i in range(3):
            await call.write(Req(payload=b"ping-%d" % i))
            answers.append((await call.read()).payload)
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert answers == [b"ping-0", b"ping-1", b"ping-2"]
        assert [c.received for c in r.upstream.calls] == [1, 3]


async def test_no_retry_once_a_response_message_was_sent() -> None:
    """A server stream that fails after its first messages reaches the app as it happened."""
    async with rig() as r:
        call = r.stub.ServerStream(Req(payload=b"m", repeat=2, fail_code=UNAVAILABLE), timeout=WAIT)
        got = []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for reply in call:
                got.append(reply.index)
        assert got == [0, 1]
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert len(r.upstream.calls) == 1


async def test_a_code_not_in_retry_on_is_not_retried() -> None:
    """INTERNAL is a bug upstream, not an outage: one call, and the app gets it as sent."""
    async with rig() as r:
        error = await refused(
            r.stub.Unary(Req(fail_code=INTERNAL, fail_details="boom"), timeout=WAIT)
        )
        assert (error.code(), error.details()) == (grpc.StatusCode.INTERNAL, "boom")
        assert len(r.upstream.calls) == 1


async def test_an_overloaded_upstream_is_unavailable_overloaded() -> None:
    """Past the concurrency limit a call is shed at once with UNAVAILABLE overloaded."""
    async with rig(concurrency={"max_in_flight": 1}) as r:
        slow = asyncio.ensure_future(
            r.stub.Unary(Req(payload=b"slow", delay_ms=1000), timeout=WAIT)
        )
        await r.upstream.wait_call(1, WAIT)
        error = await refused(r.stub.Unary(Req(payload=b"shed"), timeout=WAIT))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert sidecar_error(error) == "overloaded"
        assert (await slow).payload == b"slow"
        assert len(r.upstream.calls) == 1


async def test_the_routes_timeout_is_deadline_exceeded_with_upstream_timeout() -> None:
    """A call the upstream's `timeout` cut is DEADLINE_EXCEEDED, said to be the sidecar's."""
    async with rig(timeout="200ms", retry={"enabled": False}) as r:
        error = await refused(r.stub.Unary(Req(delay_ms=3000), timeout=WAIT))
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert sidecar_error(error) == "upstream_timeout"


async def test_an_api_key_reaches_the_upstream_as_metadata_replacing_the_apps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The upstream sees the sidecar's key, once, whatever the app sent under that name."""
    monkeypatch.setenv("ECHO_API_KEY", "k-from-the-sidecar")
    auth = {"type": "api_key", "header": "x-api-key", "key": {"env": "ECHO_API_KEY"}}
    async with rig(auth=auth) as r:
        await r.stub.Unary(Req(payload=b"x"), metadata=(("x-api-key", "apps-own"),), timeout=WAIT)
        seen = r.upstream.calls[0].metadata
        assert [v for k, v in seen if k == "x-api-key"] == ["k-from-the-sidecar"]


class TokenEndpoint:
    """An OAuth2 token endpoint on 127.0.0.1 issuing tok-1, tok-2, ..."""

    def __init__(self) -> None:
        self.issued = 0

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        self.issued += 1
        return web.json_response(
            {"access_token": f"tok-{self.issued}", "token_type": "Bearer", "expires_in": 300}
        )


@asynccontextmanager
async def oauth2_rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Rig, TokenEndpoint]]:
    monkeypatch.setenv("ECHO_CLIENT_SECRET", "s3cret")
    idp = TokenEndpoint()
    async with FakeUpstream(idp.handle) as server:
        auth = {
            "type": "oauth2_client_credentials",
            "token_url": f"{server.url}/token",
            "client_id": "shop",
            "client_secret": {"env": "ECHO_CLIENT_SECRET"},
        }
        async with rig(auth=auth) as r:
            yield r, idp


async def test_an_oauth2_token_replaces_the_apps_authorization_on_every_rpc_kind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token from a real token endpoint is the only authorization the upstream sees."""
    async with oauth2_rig(monkeypatch) as (r, idp):
        mine = (("authorization", "Bearer apps-own"),)
        await r.stub.Unary(Req(payload=b"u"), metadata=mine, timeout=WAIT)
        async for _ in r.stub.ServerStream(Req(repeat=2), metadata=mine, timeout=WAIT):
            pass

        async def one() -> AsyncIterator[Any]:
            yield Req(payload=b"c")

        await r.stub.ClientStream(one(), metadata=mine, timeout=WAIT)
        async for _ in r.stub.Bidi(one(), metadata=mine, timeout=WAIT):
            pass
        assert [c.method for c in r.upstream.calls] == [
            "Unary",
            "ServerStream",
            "ClientStream",
            "Bidi",
        ]
        for call in r.upstream.calls:
            assert [v for k, v in call.metadata if k == "authorization"] == ["Bearer tok-1"]
        assert idp.issued == 1  # cached


async def test_unauthenticated_renews_the_token_and_sends_the_call_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gRPC's 401: the upstream refused the token, the app still gets its answer."""
    async with oauth2_rig(monkeypatch) as (r, idp):
        await r.stub.Unary(Req(payload=b"warm"), timeout=WAIT)
        r.upstream.fail_next = [UNAUTHENTICATED]
        reply = await r.stub.Unary(Req(payload=b"again"), timeout=WAIT)
        assert reply.payload == b"again"
        tokens = [c.meta("authorization") for c in r.upstream.calls]
        assert tokens == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
        assert idp.issued == 2
