"""gRPC pass-through: real grpcio clients call the sidecar's gRPC port and reach a real grpc.aio
upstream (``echo.v1.Echo``, tests/integration/grpc_upstream.py) for every RPC kind, with the
upstream's answers, metadata and statuses as it sent them."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import Sidecar
from sidecar.testing import SidecarProcess, async_wait_until, running_sidecar
from sidecar.tls import certs
from tests.grpc_echo import echo_pb2 as pb
from tests.grpc_echo import echo_pb2_grpc
from tests.integration.grpc_servers import grpc_server  # noqa: F401 - the fixture
from tests.integration.grpc_upstream import SERVICE, EchoUpstream
from tests.integration.mtls_pki import Pki

#: every test here runs against both servers of the gRPC port (grpc.server: grpcio, h2)
pytestmark = pytest.mark.usefixtures("grpc_server")

MiB = 1024 * 1024
#: the app's channel: big messages allowed both ways (the sidecar's limits are under test)
APP_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * MiB),
    ("grpc.max_send_message_length", 64 * MiB),
]


def upstream_config(url: str, **extra: Any) -> dict[str, Any]:
    return {"adapter": "grpc", "url": url, "services": [SERVICE], **extra}


@asynccontextmanager
async def through_sidecar(
    up: EchoUpstream, *, config: dict[str, Any] | None = None, **extra: Any
) -> AsyncIterator[tuple[Sidecar, echo_pb2_grpc.EchoStub, grpc.aio.Channel]]:
    """A sidecar routing ``echo.v1.Echo`` to ``up``, and an app's stub pointed at it."""
    cfg = {"upstreams": {"echo": upstream_config(up.url, **extra)}, **(config or {})}
    async with running_sidecar(cfg) as s:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}", options=APP_OPTIONS)
        try:
            yield s, echo_pb2_grpc.EchoStub(channel), channel
        finally:
            await channel.close()


async def requests(*messages: pb.EchoRequest) -> AsyncIterator[pb.EchoRequest]:
    for m in messages:
        yield m


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the four RPC kinds ------------------------------------------------------------------------


async def test_unary_call_reaches_the_upstream_and_returns_its_answer() -> None:
    """A unary call through the sidecar gets the upstream's answer, byte for byte."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        r = await stub.Unary(pb.EchoRequest(payload=b"hello \x00\xff"), timeout=10)
    assert r.payload == b"hello \x00\xff"
    assert [c.method for c in up.calls] == ["Unary"]


async def test_server_streaming_delivers_every_message_in_order() -> None:
    """A server-streaming call gets all the upstream's messages, in order, then OK."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        call = stub.ServerStream(pb.EchoRequest(payload=b"s", repeat=50), timeout=10)
        got = [r.index async for r in call]
        assert await call.code() == grpc.StatusCode.OK
    assert got == list(range(50))


async def test_client_streaming_forwards_every_message() -> None:
    """A client-streaming call's messages all reach the upstream, whole and in order."""
    parts = [bytes([i]) * (i + 1) for i in range(40)]
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        r = await stub.ClientStream(
            requests(*(pb.EchoRequest(payload=p) for p in parts)), timeout=10
        )
    assert r.payload == b"".join(parts)
    assert up.calls[0].received == 40


async def test_bidi_stream_answers_each_message_before_the_next_is_sent() -> None:
    """A bidi stream is relayed message by message (ping-pong), not buffered to its end."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        call = stub.Bidi(timeout=10)
        for i in range(20):
            await call.write(pb.EchoRequest(payload=b"%d" % i))
            r = await call.read()
            assert (r.payload, r.index, r.received) == (b"%d" % i, i, i + 1)
        await call.done_writing()
        assert await call.read() == grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


# --- payloads ----------------------------------------------------------------------------------


async def test_empty_messages_cross_both_ways() -> None:
    """Zero-byte messages are messages: sent, counted and answered as such."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, channel):
        raw = channel.stream_stream("/echo.v1.Echo/Bidi")
        call = raw(
            requests_raw([b"", b"", pb.EchoRequest(empty_response=True).SerializeToString()])
        )
        got = [m async for m in call]
        assert await call.code() == grpc.StatusCode.OK
    assert up.calls[0].received == 3
    assert len(got) == 3 and got[2] == b""


async def requests_raw(messages: list[bytes]) -> AsyncIterator[bytes]:
    for m in messages:
        yield m


async def test_four_mib_messages_arrive_intact_in_every_kind() -> None:
    """4 MiB messages pass unchanged, in both directions, for all four RPC kinds."""
    big = bytes(range(256)) * (4 * MiB // 256)
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        assert (await stub.Unary(pb.EchoRequest(payload=big), timeout=30)).payload == big
        stream = stub.ServerStream(pb.EchoRequest(payload=big, repeat=2), timeout=30)
        assert [r.payload async for r in stream] == [big, big]
        r = await stub.ClientStream(requests(pb.EchoRequest(payload=big)), timeout=30)
        assert r.payload == big
        bidi = stub.Bidi(requests(pb.EchoRequest(payload=big), pb.EchoRequest(payload=big)))
        assert [r.payload async for r in bidi] == [big, big]


# --- metadata ----------------------------------------------------------------------------------


async def test_metadata_crosses_both_ways_including_binary_keys() -> None:
    """Request metadata reaches the upstream; its initial and trailing metadata reach the app,
    ``-bin`` values as bytes."""
    binary = bytes(range(256))
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        call = stub.Unary(
            pb.EchoRequest(payload=b"m", echo_metadata=True),
            metadata=[("x-team", "payments"), ("x-trace-bin", binary), ("x-team", "two")],
            timeout=10,
        )
        await call
        initial = list(await call.initial_metadata())
        trailing = list(await call.trailing_metadata())
    seen = up.calls[0].metadata
    assert [v for k, v in seen if k == "x-team"] == ["payments", "two"]
    assert up.calls[0].meta("x-trace-bin") == binary
    assert ("echo-x-team", "payments") in initial and ("echo-x-trace-bin", binary) in initial
    assert ("trailer-x-team", "two") in trailing and ("trailer-x-trace-bin", binary) in trailing


async def test_status_codes_details_and_binary_details_are_passed_on_as_sent() -> None:
    """A failed call's code, details (any text) and grpc-status-details-bin reach the app
    unchanged, with its trailing metadata, and without a sidecar error marker."""
    cases = [
        (grpc.StatusCode.NOT_FOUND, "no such thing"),
        (grpc.StatusCode.INVALID_ARGUMENT, "bad: 100% wrong, détails ünïcode"),
        (grpc.StatusCode.PERMISSION_DENIED, ""),
        (grpc.StatusCode.UNAVAILABLE, "try later"),
        (grpc.StatusCode.DATA_LOSS, "lost"),
    ]
    async with (
        EchoUpstream() as up,
        through_sidecar(up, retry={"enabled": False}) as (
            _,
            stub,
            _ch,
        ),
    ):
        for code, details in cases:
            request = pb.EchoRequest(
                fail_code=code.value[0], fail_details=details, fail_details_bin=b"\x08\x05\xff"
            )
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Unary(request, timeout=10)
            assert (err.value.code(), err.value.details() or "") == (code, details)
            trailing = dict(err.value.trailing_metadata() or ())
            assert trailing["grpc-status-details-bin"] == b"\x08\x05\xff"
            assert trailing["fail-marker"] == "yes"
            assert "x-sidecar-error" not in trailing


async def test_a_stream_that_fails_after_messages_delivers_them_then_its_status() -> None:
    """Messages sent before a failure reach the app, then the failure's status."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        call = stub.ServerStream(
            pb.EchoRequest(repeat=3, fail_code=10, fail_details="aborted midway"), timeout=10
        )
        got = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for r in call:
                got.append(r.index)
    assert got == [0, 1, 2]
    assert (err.value.code(), err.value.details()) == (grpc.StatusCode.ABORTED, "aborted midway")


# --- deadlines and cancellation ----------------------------------------------------------------


#: gRPC's timeout header rounds up (10 ms steps between 1 s and 100 s), once per hop
ROUNDING = 0.05


async def test_the_apps_deadline_reaches_the_upstream() -> None:
    """The upstream sees the app's remaining time as its deadline (never more, but for gRPC's
    rounding of the timeout header)."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        r = await stub.Unary(pb.EchoRequest(), timeout=2.0)
    assert 1.0 < r.deadline_remaining <= 2.0 + ROUNDING


async def test_the_upstream_timeout_caps_a_longer_deadline() -> None:
    """With no (or a longer) app deadline, the upstream's ``timeout`` is the call's deadline."""
    async with EchoUpstream() as up, through_sidecar(up, timeout="3s") as (_, stub, _ch):
        r = await stub.Unary(pb.EchoRequest())
        r2 = await stub.Unary(pb.EchoRequest(), timeout=30)
    assert 2.0 < r.deadline_remaining <= 3.0 + ROUNDING
    assert 2.0 < r2.deadline_remaining <= 3.0 + ROUNDING


async def test_a_deadline_that_passes_ends_the_call_and_the_upstream_call() -> None:
    """Past the app's deadline the app gets DEADLINE_EXCEEDED and the upstream's call is
    cancelled too (it saw the shorter deadline)."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Unary(pb.EchoRequest(delay_ms=5000), timeout=0.5)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        seen = await up.wait_call()
        async with asyncio.timeout(3):
            await seen.finished.wait()
    assert seen.deadline_remaining is not None and seen.deadline_remaining <= 0.5 + ROUNDING
    assert seen.cancelled


async def test_cancelling_a_stream_cancels_the_upstream_call_at_once() -> None:
    """An app that cancels mid-stream cancels the upstream call promptly (not at its deadline)."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        call = stub.Bidi(timeout=60)
        await call.write(pb.EchoRequest(payload=b"1"))
        assert (await call.read()).payload == b"1"
        await call.write(pb.EchoRequest(payload=b"2", delay_ms=30_000))
        seen = up.calls[0]
        await async_wait_until(lambda: seen.received == 2, 5)
        cancelled_at = time.monotonic()
        call.cancel()
        async with asyncio.timeout(5):
            await seen.finished.wait()
    assert seen.cancelled
    assert seen.cancelled_at is not None and seen.cancelled_at - cancelled_at < 2.0


async def test_a_slow_reader_holds_back_a_fast_upstream() -> None:
    """Flow control end to end: while the app does not read, the upstream cannot run ahead
    (nothing piles up in the sidecar); once it reads, every message arrives."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        call = stub.ServerStream(pb.EchoRequest(repeat=200, response_size=MiB), timeout=60)
        # read as an async iterator: grpcio's read() answers EOF as soon as the call's status
        # arrived, even with messages still unread before it
        messages = aiter(call)
        first = await anext(messages)
        assert first.index == 0
        seen = up.calls[0]
        # let the upstream write as far as the windows let it
        previous = -1
        async with asyncio.timeout(10):
            while seen.sent != previous:
                previous = seen.sent
                await asyncio.sleep(0.3)
        stalled_at = seen.sent
        rest = [message.index async for message in messages]
    assert stalled_at < 40, f"the upstream wrote {stalled_at} MiB ahead of a stalled app"
    assert rest == list(range(1, 200))


# --- failures the sidecar reports --------------------------------------------------------------


async def test_an_unreachable_upstream_is_unavailable_with_a_clear_reason() -> None:
    """No upstream listening: UNAVAILABLE, details naming the upstream and why, and the
    sidecar's ``x-sidecar-error``."""
    port = free_port()
    cfg = {"upstreams": {"inventory": upstream_config(f"grpc://127.0.0.1:{port}")}}
    async with running_sidecar(cfg) as s:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Unary(pb.EchoRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    details = err.value.details() or ""
    assert f"upstream 'inventory' (127.0.0.1:{port})" in details
    assert "connect" in details.lower()
    assert dict(err.value.trailing_metadata() or ())["x-sidecar-error"] == "upstream_connect"


async def test_an_unknown_service_is_unimplemented_by_the_sidecar() -> None:
    """A service no upstream serves: UNIMPLEMENTED with ``x-sidecar-error: no_route``."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, _stub, channel):
        other = channel.unary_unary("/billing.v1.Billing/Charge")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await other(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "billing.v1.Billing" in (err.value.details() or "")
    assert dict(err.value.trailing_metadata() or ())["x-sidecar-error"] == "no_route"
    assert up.calls == []


async def test_the_authority_naming_an_upstream_routes_to_it(grpc_server: str) -> None:  # noqa: F811
    """A channel whose ``:authority`` (``grpc.default_authority``) names an upstream reaches
    it, whatever the service; grpcio cannot tell a server the authority (grpc/grpc#38906), so
    there the call is routed by service only: UNIMPLEMENTED for a service no upstream lists."""
    async with EchoUpstream() as up:
        cfg = {"upstreams": {"echo": {"adapter": "grpc", "url": up.url}}}  # no services
        async with running_sidecar(cfg) as s:
            options = [("grpc.default_authority", "echo:443")]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}", options) as ch:
                stub = echo_pb2_grpc.EchoStub(ch)
                if grpc_server == "h2":
                    r = await stub.Unary(pb.EchoRequest(payload=b"by authority"), timeout=10)
                    assert r.payload == b"by authority"
                else:
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.Unary(pb.EchoRequest(), timeout=10)
                    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
                    assert dict(err.value.trailing_metadata() or ())["x-sidecar-error"] == (
                        "no_route"
                    )
    assert len(up.calls) == (1 if grpc_server == "h2" else 0)


async def test_an_unknown_authority_and_service_is_unimplemented() -> None:
    """An authority naming no upstream and a service none serves: UNIMPLEMENTED
    (``x-sidecar-error: no_route``), the upstream never called."""
    async with EchoUpstream() as up, through_sidecar(up) as (s, _stub, _ch):
        options = [("grpc.default_authority", "billing")]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}", options) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ch.unary_unary("/billing.v1.Billing/Charge")(b"", timeout=10)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert dict(err.value.trailing_metadata() or ())["x-sidecar-error"] == "no_route"
    assert up.calls == []


async def test_a_message_over_the_limit_is_resource_exhausted() -> None:
    """A message larger than ``grpc.max_receive_message_size`` is refused with
    RESOURCE_EXHAUSTED and never reaches the upstream."""
    cfg = {"grpc": {"address": "127.0.0.1:0", "max_receive_message_size": "1MiB"}}
    async with EchoUpstream() as up, through_sidecar(up, config=cfg) as (_, stub, _ch):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Unary(pb.EchoRequest(payload=b"x" * (2 * MiB)), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # the limit is per message: one under it still passes
        r = await stub.Unary(pb.EchoRequest(payload=b"y" * (MiB - 100)), timeout=10)
        assert len(r.payload) == MiB - 100
    # the refused message never reached the upstream: only the second call did
    assert len(up.calls) == 1


async def test_metadata_over_the_limit_refuses_that_call_only(grpc_server: str) -> None:  # noqa: F811
    """A call whose metadata is over ``grpc.max_metadata_size`` is RESOURCE_EXHAUSTED and never
    reaches the upstream; a call in flight on the same connection goes on, and the next call
    passes: one app's oversized call does not cost its other calls their connection."""
    cfg = {"grpc": {"address": "127.0.0.1:0", "max_metadata_size": "4KiB"}}
    async with EchoUpstream() as up, through_sidecar(up, config=cfg) as (_, stub, _ch):
        chat = stub.Bidi(timeout=30)
        await chat.write(pb.EchoRequest(payload=b"before"))
        assert (await chat.read()).payload == b"before"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Unary(pb.EchoRequest(), metadata=[("x-big", "v" * 6000)], timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        if grpc_server == "h2":
            assert "grpc.max_metadata_size" in (err.value.details() or "")
            assert dict(err.value.trailing_metadata() or ())["x-sidecar-error"] == (
                "headers_too_large"
            )
        await chat.write(pb.EchoRequest(payload=b"after"))
        assert (await chat.read()).payload == b"after"
        await chat.done_writing()
        r = await stub.Unary(pb.EchoRequest(payload=b"next"), timeout=10)
        assert r.payload == b"next"
    assert sorted(c.method for c in up.calls) == ["Bidi", "Unary"]


async def test_an_upstream_message_over_the_adapters_limit_is_resource_exhausted() -> None:
    """An upstream message larger than ``options.max_receive_message_size`` ends the call with
    RESOURCE_EXHAUSTED, saying which upstream and that the sidecar refused it."""
    async with EchoUpstream() as up, through_sidecar(up) as (_, stub, _ch):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Unary(pb.EchoRequest(response_size=9 * MiB), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "upstream 'echo'" in (err.value.details() or "")
    assert dict(err.value.trailing_metadata() or ())["x-sidecar-error"] == "body_too_large"


async def test_the_http_port_says_a_grpc_upstream_is_on_the_grpc_port() -> None:
    """An HTTP call to a gRPC upstream gets a 404 that says where to call it instead."""
    async with EchoUpstream() as up, through_sidecar(up) as (s, _stub, _ch):
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{s.http_port}/echo/x")
    assert r.status_code == 404
    assert r.headers["x-sidecar-error"] == "no_route"
    assert "speaks gRPC" in r.text and "gRPC port" in r.text


# --- scale, TLS, metrics, reload, drain --------------------------------------------------------


async def test_a_thousand_concurrent_streams_through_one_sidecar() -> None:
    """1 000 bidi streams open at the same time through one sidecar each get their answers."""
    n = 1000
    async with (
        EchoUpstream() as up,
        through_sidecar(up) as (
            _,
            stub,
            _ch,
        ),
    ):
        opened = 0
        all_open = asyncio.Event()

        async def one(i: int) -> bytes:
            nonlocal opened
            call = stub.Bidi(timeout=60)
            await call.write(pb.EchoRequest(payload=b"%d" % i))
            first = (await call.read()).payload
            opened += 1
            if opened == n:
                all_open.set()
            await all_open.wait()  # every stream is open at once before any ends
            await call.write(pb.EchoRequest(payload=b"again"))
            second = (await call.read()).payload
            await call.done_writing()
            assert await call.read() == grpc.aio.EOF
            return first + b"/" + second

        async with asyncio.timeout(90):
            got = await asyncio.gather(*(one(i) for i in range(n)))
    assert got == [b"%d/again" % i for i in range(n)]
    assert len(up.calls) == n


async def test_tls_and_mtls_upstreams(tmp_path: Path) -> None:
    """``grpcs://`` verifies the upstream against ``tls.ca`` under ``tls.server_name``, and
    presents the sidecar's client certificate when the upstream requires one."""
    pki = Pki(tmp_path / "pki")
    server_dir = tmp_path / "server"
    certs.issue(
        pki.ca_dir, "spiffe://cluster.local/ns/x/sa/echo", server_dir, dns_names=["echo.test"]
    )
    cert, key = (server_dir / "tls.crt").read_bytes(), (server_dir / "tls.key").read_bytes()
    client = pki.workload("web", "spiffe://cluster.local/ns/shop/sa/web")
    ca = Path(pki.ca).read_bytes()
    tls = {"ca": pki.ca, "server_name": "echo.test"}
    async with EchoUpstream(tls=(cert, key, None)) as up:
        async with through_sidecar(up, tls=tls) as (s, stub, _ch):
            assert (await stub.Unary(pb.EchoRequest(payload=b"tls"), timeout=10)).payload == b"tls"
            described = s.describe_upstreams()["echo"]
            assert (described["tls"], described["mtls"]) == (True, False)
    async with EchoUpstream(tls=(cert, key, ca)) as up:
        mtls = {**tls, "cert": client.cert, "key": client.key}
        async with through_sidecar(up, tls=mtls) as (_, stub, _ch):
            r = await stub.Unary(pb.EchoRequest(payload=b"mtls"), timeout=10)
            assert r.payload == b"mtls"
        # without a client certificate the upstream refuses the handshake
        async with through_sidecar(up, tls=tls, retry={"enabled": False}) as (_, stub, _ch):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Unary(pb.EchoRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "x-sidecar-error" in dict(err.value.trailing_metadata() or ())


async def test_calls_are_counted_by_grpc_status_code() -> None:
    """``sidecar_requests_total`` on the gRPC listener counts each call by its gRPC code."""
    async with (
        EchoUpstream() as up,
        through_sidecar(up, retry={"enabled": False}) as (
            s,
            stub,
            _ch,
        ),
    ):
        await stub.Unary(pb.EchoRequest(), timeout=10)
        [_ async for _ in stub.ServerStream(pb.EchoRequest(repeat=3), timeout=10)]
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Unary(pb.EchoRequest(fail_code=5), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError):
            stream = stub.ServerStream(pb.EchoRequest(repeat=2, fail_code=14), timeout=10)
            [_ async for _ in stream]
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    counted = {
        sample.labels["code"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sidecar_requests_total" and sample.labels["listener"] == "grpc"
    }
    assert counted == {"0": 2.0, "5": 1.0, "14": 1.0}


async def test_a_reload_that_moves_a_service_sends_new_calls_to_the_new_upstream(
    tmp_path: Path,
) -> None:
    """Reloading a config that moves a service to another upstream routes new calls there;
    one that removes it makes it UNIMPLEMENTED."""
    path = tmp_path / "sidecar.yaml"
    base = {
        "admin": {"address": "127.0.0.1:0"},
        "http": {"address": "127.0.0.1:0"},
        "grpc": {"address": "127.0.0.1:0"},
    }

    def write(upstreams: dict[str, Any]) -> str:
        path.write_text(yaml.safe_dump({**base, "upstreams": upstreams}))
        return path.read_text()

    async with EchoUpstream() as a, EchoUpstream() as b:
        text = write({"a": upstream_config(a.url), "b": {"adapter": "grpc", "url": b.url}})
        async with running_sidecar(text, config_path=str(path)) as s:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
                stub = echo_pb2_grpc.EchoStub(channel)
                await stub.Unary(pb.EchoRequest(), timeout=10)
                write({"a": {"adapter": "grpc", "url": a.url}, "b": upstream_config(b.url)})
                assert await s.reload()
                await stub.Unary(pb.EchoRequest(), timeout=10)
                write({"a": {"adapter": "grpc", "url": a.url}})
                assert await s.reload()
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Unary(pb.EchoRequest(), timeout=10)
    assert (len(a.calls), len(b.calls)) == (1, 1)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_reload_that_moves_an_upstream_keeps_calls_in_flight_on_the_old_one(
    tmp_path: Path,
) -> None:
    """A reload that points an upstream elsewhere sends new calls to the new address, while a
    stream open before it finishes on the old one; an unchanged upstream keeps its channel."""
    path = tmp_path / "sidecar.yaml"
    base = {
        "admin": {"address": "127.0.0.1:0"},
        "http": {"address": "127.0.0.1:0"},
        "grpc": {"address": "127.0.0.1:0"},
    }

    def write(url: str) -> str:
        path.write_text(yaml.safe_dump({**base, "upstreams": {"echo": upstream_config(url)}}))
        return path.read_text()

    async with EchoUpstream() as old, EchoUpstream() as new:
        async with running_sidecar(write(old.url), config_path=str(path)) as s:
            adapter = s.adapters["grpc"]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
                stub = echo_pb2_grpc.EchoStub(channel)
                stream = stub.Bidi(timeout=30)
                await stream.write(pb.EchoRequest(payload=b"before"))
                assert (await stream.read()).payload == b"before"
                held = adapter.describe("echo")
                assert await s.reload()  # same file: the channel stays
                assert adapter.describe("echo") == held
                write(new.url)
                assert await s.reload()
                assert adapter.describe("echo")["target"] == new.target
                await stub.Unary(pb.EchoRequest(), timeout=10)
                # the stream opened before the reload still works, on the old upstream
                await stream.write(pb.EchoRequest(payload=b"after"))
                assert (await stream.read()).payload == b"after"
                await stream.done_writing()
                assert await stream.code() == grpc.StatusCode.OK
    assert [c.method for c in old.calls] == ["Bidi"]
    assert old.calls[0].received == 2
    assert [c.method for c in new.calls] == ["Unary"]


async def test_sigterm_lets_an_in_flight_call_finish() -> None:
    """On SIGTERM a call in flight completes normally; the process then exits 0."""
    async with EchoUpstream() as up:
        config = {
            "upstreams": {"echo": upstream_config(up.url)},
            # no wait for the app to go quiet: the drain itself begins while the call is in flight
            "shutdown": {"drain_timeout": "10s", "app_quiet_period": "0s"},
        }
        with SidecarProcess(config) as p:
            async with grpc.aio.insecure_channel(p.grpc_target) as channel:
                stub = echo_pb2_grpc.EchoStub(channel)
                call = stub.Unary(pb.EchoRequest(payload=b"slow", delay_ms=1500), timeout=20)
                await up.wait_call()
                p.send(signal.SIGTERM)
                r = await call
                assert r.payload == b"slow"
            code = await asyncio.to_thread(p.proc.wait, 20)  # type: ignore[union-attr]
    assert code == 0
