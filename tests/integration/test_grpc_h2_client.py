"""The sidecar's own HTTP/2 gRPC client (sidecar.grpc.h2_channel, h2_upstream_call) against a
real grpc.aio upstream (``echo.v1.Echo``, tests/integration/grpc_upstream.py): every RPC kind,
statuses and metadata as sent, deadlines, flow control, size limits, connection failures and
restarts, GOAWAY, TLS, mTLS and SPIFFE checks, and the upstream's stream limit."""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

from sidecar.chain import Handler
from sidecar.config.models import UpstreamConfig
from sidecar.errors import UpstreamConnectError, UpstreamReset, UpstreamTimeout, UpstreamTLSError
from sidecar.exchange import Response
from sidecar.grpc.channels import GrpcUpstreamOptions, unary_matcher
from sidecar.grpc.h2_channel import H2Channel
from sidecar.grpc.h2_channel_target import channel_target
from sidecar.grpc.h2_upstream_call import call_handler
from sidecar.grpc.keepalive_limits import MIN_KEEPALIVE_TIME
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import async_wait_until, make_exchange
from sidecar.tls import certs
from tests.grpc_echo import echo_pb2 as pb
from tests.integration.grpc_upstream import EchoUpstream
from tests.integration.mtls_pki import Pki

MiB = 1024 * 1024
UNARY = "/echo.v1.Echo/Unary"
SERVER_STREAM = "/echo.v1.Echo/ServerStream"
CLIENT_STREAM = "/echo.v1.Echo/ClientStream"
BIDI = "/echo.v1.Echo/Bidi"


class Client:
    """A channel to one upstream and its terminal handler, as the adapter would build them."""

    def __init__(self, channel: H2Channel, handler: Handler) -> None:
        self.channel = channel
        self.handler = handler

    async def call(
        self,
        path: str,
        body: bytes | AsyncIterator[bytes],
        *,
        timeout: float | None = 10.0,
        headers: list[tuple[str, str]] | None = None,
    ) -> Response:
        ex = make_exchange("POST", path, headers or [], body)
        if timeout is not None:
            ex.deadline = asyncio.get_running_loop().time() + timeout
        return await self.handler(ex)


@asynccontextmanager
async def h2_client(
    url: str, *, unary: tuple[str, ...] = (), options: dict[str, Any] | None = None, **up: Any
) -> AsyncIterator[Client]:
    """A client for ``url``; ``unary``: methods declared unary; ``up``: upstream settings."""
    cfg = UpstreamConfig.model_validate({"url": url, "adapter": "grpc", **up})
    # The config refuses a keepalive_time under gRPC's 10 s; keepalive tests ping every fraction
    # of a second to stay short, so theirs is put in after the rest is validated (at 10 s).
    given = dict(options or {})
    ping_every = given.get("keepalive_time")
    if ping_every is not None:
        given["keepalive_time"] = max(ping_every, MIN_KEEPALIVE_TIME)
    opts = GrpcUpstreamOptions.model_validate(given)
    if ping_every is not None:
        opts = opts.model_copy(update={"keepalive_time": ping_every})
    channel = H2Channel("echo", channel_target(cfg, opts))
    handler = call_handler("echo", channel, channel.target.target, Metrics(), unary_matcher(unary))
    try:
        yield Client(channel, handler)
    finally:
        await channel.aclose(0)


def req(**fields: Any) -> bytes:
    return pb.EchoRequest(**fields).SerializeToString()


async def messages(resp: Response) -> list[pb.EchoResponse]:
    """Every response message, decoded (the body read to its end)."""
    body = resp.body
    if isinstance(body, bytes):
        raw = [body] if body else []
    else:
        raw = [m async for m in body]
    return [pb.EchoResponse.FromString(m) for m in raw]


async def stream_of(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the four RPC kinds ------------------------------------------------------------------------


async def test_a_declared_unary_call_is_answered_whole() -> None:
    """A unary method's answer comes back whole: its one message and its status at once."""
    async with EchoUpstream() as up, h2_client(up.url, unary=("echo.v1.Echo/Unary",)) as c:
        resp = await c.call(UNARY, req(payload=b"hello"))
        assert resp.trailers is not None and resp.trailers.get("grpc-status") == "0"
        assert [m.payload for m in await messages(resp)] == [b"hello"]
        empty = await c.call(UNARY, req(empty_response=True))
        assert [m.payload for m in await messages(empty)] == [b""]
        assert empty.trailers is not None and empty.trailers.get("grpc-status") == "0"


async def test_a_single_request_call_streams_its_answer() -> None:
    """A call not declared unary gets its messages as a stream, then the status."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        resp = await c.call(UNARY, req(payload=b"hi"))
        assert [m.payload for m in await messages(resp)] == [b"hi"]
        assert resp.trailers is not None and resp.trailers.get("grpc-status") == "0"


async def test_server_streaming_delivers_every_message_in_order() -> None:
    """Every message of a server stream arrives, in order, then the OK status."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        resp = await c.call(SERVER_STREAM, req(payload=b"s", repeat=5))
        assert [m.index for m in await messages(resp)] == [0, 1, 2, 3, 4]
        assert resp.trailers is not None and resp.trailers.get("grpc-status") == "0"


async def test_client_streaming_forwards_every_message() -> None:
    """Every message of the app's stream reaches the upstream, and its one answer comes back."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        body = stream_of(req(payload=b"a"), req(payload=b"b"), req(payload=b"c"))
        resp = await c.call(CLIENT_STREAM, body)
        got = await messages(resp)
        assert [m.payload for m in got] == [b"abc"]
        assert (await up.wait_call()).received == 3


async def test_bidi_answers_each_message_before_the_next_is_sent() -> None:
    """A bidi stream is interleaved: each answer arrives before the app sends its next one."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        outbox: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def app_stream() -> AsyncIterator[bytes]:
            while (item := await outbox.get()) is not None:
                yield item

        await outbox.put(req(payload=b"1"))
        resp = await c.call(BIDI, app_stream())
        assert not isinstance(resp.body, bytes)
        it = aiter(resp.body)
        for i in range(1, 4):
            answer = pb.EchoResponse.FromString(await anext(it))
            assert (answer.payload, answer.received) == (b"%d" % i, i)
            await outbox.put(req(payload=b"%d" % (i + 1)) if i < 3 else None)
        assert [m async for m in it] == []
        assert resp.trailers is not None and resp.trailers.get("grpc-status") == "0"


# --- statuses, metadata, deadlines -------------------------------------------------------------


async def test_a_trailers_only_error_keeps_its_details_and_metadata() -> None:
    """A trailers-only error is answered at once with its code, details and trailing metadata."""
    details = "no such thing: 100% ✓"
    async with EchoUpstream() as up:
        for unary in ((), ("echo.v1.Echo/Unary",)):
            async with h2_client(up.url, unary=unary) as c:
                resp = await c.call(
                    UNARY, req(fail_code=5, fail_details=details, fail_details_bin=b"\x00\xff")
                )
            assert resp.body == b""
            trailers = resp.trailers
            assert trailers is not None
            assert trailers.get("grpc-status") == "5"
            assert trailers.get("grpc-message") == details
            assert trailers.get("fail-marker") == "yes"
            assert trailers.get("grpc-status-details-bin") == base64.b64encode(b"\x00\xff").decode()
            assert trailers.get("x-sidecar-error") is None
            assert not resp.headers.get("fail-marker")  # trailing metadata, not initial


async def test_metadata_crosses_both_ways_including_binary_keys() -> None:
    """Metadata, -bin keys included, reaches the upstream and comes back as the chain carries it."""
    value = base64.b64encode(b"\x01\x02\xfe").decode()
    async with EchoUpstream() as up, h2_client(up.url) as c:
        resp = await c.call(
            SERVER_STREAM,
            req(echo_metadata=True, fail_code=9, fail_details="after"),
            headers=[("x-plain", "v"), ("x-blob-bin", value)],
        )
        seen = await up.wait_call()
        assert seen.meta("x-plain") == "v" and seen.meta("x-blob-bin") == b"\x01\x02\xfe"
        assert resp.headers.get("echo-x-blob-bin") == value
        assert resp.headers.get("echo-x-plain") == "v"
        await messages(resp)
        assert resp.trailers is not None
        assert resp.trailers.get("grpc-status") == "9"
        assert resp.trailers.get("trailer-x-blob-bin") == value


async def test_the_grpc_timeout_sent_is_never_later_than_the_calls_deadline() -> None:
    """The upstream sees a deadline a little under what the call had left, never over."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        await messages(await c.call(UNARY, req(), timeout=5.0))
        seen = await up.wait_call()
        assert seen.deadline_remaining is not None
        # rounded down to whole milliseconds, less one for the time until it is sent
        assert 4.5 < seen.deadline_remaining < 4.999


async def test_a_deadline_that_passes_is_upstream_timeout_and_cancels_the_upstream() -> None:
    """A deadline that passes is upstream_timeout at once, and cancels the upstream's call."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        began = time.monotonic()
        with pytest.raises(UpstreamTimeout, match="upstream 'echo'"):
            await c.call(UNARY, req(delay_ms=5000), timeout=0.3)
        assert time.monotonic() - began < 2.0
        seen = await up.wait_call()
        async with asyncio.timeout(5):
            await seen.finished.wait()
        assert seen.cancelled


async def test_a_deadline_during_a_stream_ends_it_with_the_sidecars_status() -> None:
    """A deadline passing mid-stream ends it DEADLINE_EXCEEDED with upstream_timeout."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        body = stream_of(req(payload=b"1"), req(payload=b"2", delay_ms=5000))
        resp = await c.call(BIDI, body, timeout=0.5)
        got = await messages(resp)
        assert [m.payload for m in got] == [b"1"]
        assert resp.trailers is not None and resp.trailers.get("grpc-status") == "4"
        assert resp.trailers.get("x-sidecar-error") == "upstream_timeout"
        assert up.calls


async def test_cancelling_a_call_cancels_the_upstreams() -> None:
    """A call the app cancels resets its stream: the upstream's call is cancelled at once."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        task = asyncio.create_task(c.call(UNARY, req(delay_ms=10_000)))
        seen = await up.wait_call()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5):
            await seen.finished.wait()
        assert seen.cancelled


# --- flow control and sizes --------------------------------------------------------------------


async def test_a_response_bigger_than_every_window_arrives_whole() -> None:
    """24 MiB of answers (past the stream's and the connection's windows) arrive intact."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        resp = await c.call(SERVER_STREAM, req(response_size=3 * MiB, repeat=8), timeout=60)
        got = await messages(resp)
        assert [m.index for m in got] == list(range(8))
        assert all(m.payload == b"x" * (3 * MiB) for m in got)
        assert resp.trailers is not None and resp.trailers.get("grpc-status") == "0"
        # and a big request the other way, in both request shapes
        whole = await c.call(UNARY, req(payload=b"y" * (5 * MiB)), timeout=60)
        assert [len(m.payload) for m in await messages(whole)] == [5 * MiB]
        streamed = await c.call(
            CLIENT_STREAM, stream_of(req(payload=b"z" * (3 * MiB)), req(payload=b"z")), timeout=60
        )
        assert [len(m.payload) for m in await messages(streamed)] == [3 * MiB + 1]


async def test_a_slow_reader_holds_the_upstream_back() -> None:
    """An app that stops reading holds the upstream about a window ahead, not the whole answer."""
    async with EchoUpstream() as up, h2_client(up.url) as c:
        resp = await c.call(SERVER_STREAM, req(response_size=256 * 1024, repeat=200), timeout=30)
        assert not isinstance(resp.body, bytes)
        it = aiter(resp.body)
        await anext(it)
        conn = c.channel._conn
        assert conn is not None
        stream = next(iter(conn.streams.values()))
        # the upstream fills the window the client granted, then waits for the app
        await async_wait_until(lambda: stream.unacked > 0, limit=10)
        await async_wait_until(lambda: stream.unacked >= 512 * 1024, limit=10)
        held = len(stream.reader.messages)
        assert held <= 8  # the stream's window (1 MiB) and a message; 200 were asked for
        assert len([m async for m in it]) == 199


async def test_a_response_message_over_the_limit_is_resource_exhausted() -> None:
    """A response message over max_receive_message_size is RESOURCE_EXHAUSTED, body_too_large."""
    options = {"max_receive_message_size": 1 * MiB}
    async with (
        EchoUpstream() as up,
        h2_client(up.url, unary=("echo.v1.Echo/Unary",), options=options) as c,
    ):
        for path in (UNARY, SERVER_STREAM):
            resp = await c.call(path, req(response_size=2 * MiB))
            await messages(resp)
            assert resp.trailers is not None
            assert resp.trailers.get("grpc-status") == "8"
            assert resp.trailers.get("x-sidecar-error") == "body_too_large"
            assert "upstream 'echo'" in (resp.trailers.get("grpc-message") or "")


async def test_a_request_message_over_the_send_limit_is_resource_exhausted() -> None:
    """A request message over ``max_send_message_size`` is not sent: RESOURCE_EXHAUSTED."""
    async with (
        EchoUpstream() as up,
        h2_client(up.url, options={"max_send_message_size": 1024}) as c,
    ):
        resp = await c.call(UNARY, req(payload=b"x" * 2048))
        assert resp.trailers is not None and resp.trailers.get("grpc-status") == "8"
        streamed = await c.call(CLIENT_STREAM, stream_of(req(payload=b"x" * 2048)))
        await messages(streamed)
        assert streamed.trailers is not None and streamed.trailers.get("grpc-status") == "8"
        assert streamed.trailers.get("x-sidecar-error") == "body_too_large"


# --- connections -------------------------------------------------------------------------------


async def test_an_upstream_that_is_down_fails_fast_with_the_reason() -> None:
    """A down upstream is upstream_connect at once, naming it; the channel is transient_failure."""
    port = free_port()
    async with h2_client(f"grpc://127.0.0.1:{port}", connect_timeout=2.0) as c:
        began = time.monotonic()
        with pytest.raises(UpstreamConnectError, match=f"upstream 'echo' \\(127.0.0.1:{port}\\)"):
            await c.call(UNARY, req())
        with pytest.raises(UpstreamConnectError, match="refused"):
            await c.call(UNARY, req())
        assert time.monotonic() - began < 1.0
        assert c.channel.state == "transient_failure"


async def test_a_connect_that_hangs_is_bounded_by_connect_timeout() -> None:
    """A server that accepts TCP but never speaks HTTP/2 fails the call after connect_timeout."""
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        async with h2_client(f"grpc://127.0.0.1:{port}", connect_timeout=0.3) as c:
            began = time.monotonic()
            with pytest.raises(UpstreamConnectError, match="timed out after 0.3s"):
                await c.call(UNARY, req())
            assert time.monotonic() - began < 2.0
    finally:
        silent.close()


async def test_the_channel_reconnects_after_the_upstream_restarts() -> None:
    """An upstream restarted between two calls: the next call goes to the new one."""
    up = await EchoUpstream().start()
    try:
        async with h2_client(up.url) as c:
            await messages(await c.call(UNARY, req(payload=b"one")))
            assert c.channel.state == "ready"
            await up.stop()
            await async_wait_until(lambda: c.channel.state != "ready", limit=5)
            up = await EchoUpstream(port=up.port).start()
            got = await messages(await c.call(UNARY, req(payload=b"two")))
            assert [m.payload for m in got] == [b"two"]
            assert c.channel.state == "ready"
    finally:
        await up.stop()


async def test_goaway_lets_the_call_in_flight_finish_and_the_next_reconnects() -> None:
    """On GOAWAY the call in flight finishes and the next call opens a new connection."""
    up = await EchoUpstream().start()
    try:
        async with h2_client(up.url, unary=("echo.v1.Echo/Unary",)) as c:
            await messages(await c.call(UNARY, req()))
            first = c.channel._conn
            running = asyncio.create_task(c.call(UNARY, req(payload=b"late", delay_ms=700)))
            await up.wait_call(2)
            stopping = asyncio.create_task(up.stop(grace=10))
            await async_wait_until(lambda: c.channel._conn is not first, limit=5)
            resp = await running
            assert [m.payload for m in await messages(resp)] == [b"late"]
            assert resp.trailers is not None and resp.trailers.get("grpc-status") == "0"
            await stopping
            up = await EchoUpstream(port=up.port).start()
            got = await messages(await c.call(UNARY, req(payload=b"next")))
            assert [m.payload for m in got] == [b"next"]
            assert c.channel._conn is not first
    finally:
        await up.stop()


async def silent_h2_server() -> asyncio.Server:
    """A server that says SETTINGS once, then reads everything and answers nothing (a peer
    gone quiet: no response, no PING acknowledgement)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS
        while await reader.read(65536):
            pass
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def plain_h2_server(status: bytes, content_type: bytes) -> asyncio.Server:
    """An HTTP/2 server (h2) that is not gRPC: every request gets ``status`` with a body of
    ``content_type``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    head = [(b":status", status), (b"content-type", content_type)]
                    conn.send_headers(event.stream_id, head)
                    conn.send_data(event.stream_id, b"<html>not here</html>", end_stream=True)
            writer.write(conn.data_to_send())
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.parametrize(
    ("status", "content_type", "code", "reason"),
    [(b"503", b"text/html", "14", None), (b"200", b"text/html", "13", "upstream_protocol")],
)
async def test_an_answer_that_is_not_grpc_is_a_status_not_garbage(
    status: bytes, content_type: bytes, code: str, reason: str | None
) -> None:
    """An HTTP error or a non-gRPC 200 is a gRPC status, its body never read as messages."""
    server = await plain_h2_server(status, content_type)
    port = server.sockets[0].getsockname()[1]
    try:
        for unary in ((), ("echo.v1.Echo/Unary",)):
            async with h2_client(f"grpc://127.0.0.1:{port}", unary=unary) as c:
                resp = await c.call(UNARY, req())
                assert resp.body == b""
                assert resp.trailers is not None
                assert resp.trailers.get("grpc-status") == code
                assert resp.trailers.get("x-sidecar-error") == reason
    finally:
        server.close()


async def test_an_unanswered_keepalive_ping_fails_the_calls_on_the_connection() -> None:
    """An unanswered keepalive ping fails the call within keepalive_time + timeout."""
    server = await silent_h2_server()
    port = server.sockets[0].getsockname()[1]
    options = {"keepalive_time": 0.2, "keepalive_timeout": 0.3}
    try:
        async with h2_client(f"grpc://127.0.0.1:{port}", options=options) as c:
            began = time.monotonic()
            with pytest.raises(UpstreamReset, match="keepalive ping"):
                await c.call(UNARY, req(), timeout=30)
            assert time.monotonic() - began < 3.0
            assert c.channel.state == "idle"
    finally:
        server.close()


async def test_a_broken_app_stream_cancels_the_upstream_call() -> None:
    """An app stream that breaks mid-call fails the call and resets the upstream's."""

    async def broken() -> AsyncIterator[bytes]:
        yield req(payload=b"a")
        await up.wait_call()
        raise ConnectionResetError("the app went away")

    async with EchoUpstream() as up, h2_client(up.url) as c:
        with pytest.raises(UpstreamReset, match="the app's request stream broke"):
            await messages(await c.call(CLIENT_STREAM, broken()))
        seen = await up.wait_call()
        async with asyncio.timeout(5):
            await seen.finished.wait()  # ended by the reset (grpc.aio may see it as the end)
        assert seen.received == 1
        conn = c.channel._conn
        assert conn is not None and not conn.streams


async def test_closing_the_channel_lets_calls_in_flight_finish_within_the_grace() -> None:
    """``aclose(grace)``: new calls are refused, the call in flight finishes."""
    async with EchoUpstream() as up, h2_client(up.url, unary=("echo.v1.Echo/Unary",)) as c:
        running = asyncio.create_task(c.call(UNARY, req(payload=b"last", delay_ms=300)))
        await up.wait_call()
        closing = asyncio.create_task(c.channel.aclose(10))
        await async_wait_until(lambda: c.channel.state == "shutdown", limit=5)
        with pytest.raises(UpstreamConnectError, match="closed"):
            await c.call(UNARY, req())
        assert [m.payload for m in await messages(await running)] == [b"last"]
        async with asyncio.timeout(5):
            await closing


async def test_the_upstreams_stream_limit_is_respected_by_200_concurrent_calls() -> None:
    """200 concurrent calls all succeed with never more than the upstream's 10 streams open."""
    options = [("grpc.max_concurrent_streams", 10)]
    async with EchoUpstream(options=options) as up, h2_client(up.url) as c:
        await messages(await c.call(UNARY, req()))
        conn = c.channel._conn
        assert conn is not None and conn.max_streams == 10
        peak = 0
        done = False

        async def watch() -> None:
            nonlocal peak
            while not done:
                peak = max(peak, len(conn.streams))
                await asyncio.sleep(0)

        async def one(i: int) -> bytes:
            resp = await c.call(UNARY, req(payload=b"%d" % i, delay_ms=5), timeout=60)
            return (await messages(resp))[0].payload

        watcher = asyncio.create_task(watch())
        try:
            async with asyncio.timeout(60):
                got = await asyncio.gather(*(one(i) for i in range(200)))
        finally:
            done = True
            await watcher
        assert got == [b"%d" % i for i in range(200)]
        assert 1 < peak <= 10
        # the calls that waited in line were sent with what was left of their deadline
        first, last = up.calls[1].deadline_remaining, up.calls[-1].deadline_remaining
        assert first is not None and last is not None and last < first - 0.05


# --- TLS ---------------------------------------------------------------------------------------


def server_pki(tmp_path: Path) -> tuple[Pki, bytes, bytes, bytes]:
    """A CA, and the upstream's certificate for ``echo.test`` with a SPIFFE ID."""
    pki = Pki(tmp_path / "pki")
    server_dir = tmp_path / "server"
    certs.issue(
        pki.ca_dir, "spiffe://cluster.local/ns/x/sa/echo", server_dir, dns_names=["echo.test"]
    )
    cert, key = (server_dir / "tls.crt").read_bytes(), (server_dir / "tls.key").read_bytes()
    return pki, cert, key, Path(pki.ca).read_bytes()


async def test_tls_verifies_the_upstream_and_mtls_presents_the_client_certificate(
    tmp_path: Path,
) -> None:
    """grpcs:// verifies the upstream's name and CA, and mTLS presents the client certificate."""
    pki, cert, key, ca = server_pki(tmp_path)
    tls = {"ca": pki.ca, "server_name": "echo.test"}
    async with EchoUpstream(tls=(cert, key, None)) as up, h2_client(up.url, tls=tls) as c:
        assert [m.payload for m in await messages(await c.call(UNARY, req(payload=b"t")))] == [b"t"]
    async with EchoUpstream(tls=(cert, key, None)) as up:
        async with h2_client(up.url, tls={"ca": pki.ca, "server_name": "other.test"}) as c:
            with pytest.raises(UpstreamTLSError, match="certificate verify failed"):
                await c.call(UNARY, req())
    client = pki.workload("web", "spiffe://cluster.local/ns/shop/sa/web")
    async with EchoUpstream(tls=(cert, key, ca)) as up:
        mtls = {**tls, "cert": client.cert, "key": client.key}
        async with h2_client(up.url, tls=mtls) as c:
            got = await messages(await c.call(UNARY, req(payload=b"m")))
            assert [m.payload for m in got] == [b"m"]
        async with h2_client(up.url, tls=tls) as c:
            began = time.monotonic()
            with pytest.raises(UpstreamConnectError, match="upstream 'echo'") as refused:
                await c.call(UNARY, req())
            assert time.monotonic() - began < 2.0  # the refusal, not connect_timeout
    assert "TLS handshake" in str(refused.value)
    assert "set tls.cert and tls.key" in str(refused.value)


async def test_a_plaintext_url_to_a_tls_upstream_says_to_use_grpcs(tmp_path: Path) -> None:
    """grpc:// to an upstream that speaks TLS fails at once, and the error names grpcs://."""
    pki, cert, key, _ = server_pki(tmp_path)
    async with EchoUpstream(tls=(cert, key, None)) as up:
        plain = up.url.replace("grpcs://", "grpc://")
        async with h2_client(plain) as c:
            with pytest.raises(UpstreamConnectError, match="grpcs://"):
                await c.call(UNARY, req(), timeout=5)


async def test_verify_false_skips_the_checks(tmp_path: Path) -> None:
    """``tls.verify: false`` connects to an upstream whose CA and name are unknown."""
    _, cert, key, _ = server_pki(tmp_path)
    async with (
        EchoUpstream(tls=(cert, key, None)) as up,
        h2_client(up.url, tls={"verify": False}) as c,
    ):
        assert [m.payload for m in await messages(await c.call(UNARY, req(payload=b"v")))] == [b"v"]


async def test_the_upstreams_spiffe_id_is_checked(tmp_path: Path) -> None:
    """``tls.spiffe_id`` accepts the upstream with that identity and refuses another one."""
    pki, cert, key, _ = server_pki(tmp_path)
    async with EchoUpstream(tls=(cert, key, None)) as up:
        good = {"ca": pki.ca, "spiffe_id": "spiffe://cluster.local/ns/x/sa/echo"}
        async with h2_client(up.url, tls=good) as c:
            got = await messages(await c.call(UNARY, req(payload=b"id")))
            assert [m.payload for m in got] == [b"id"]
        bad = {"ca": pki.ca, "spiffe_id": "spiffe://cluster.local/ns/x/sa/other"}
        async with h2_client(up.url, tls=bad) as c:
            with pytest.raises(UpstreamTLSError, match="SPIFFE ID"):
                await c.call(UNARY, req())
        assert len(up.calls) == 1  # no call reached the upstream with the wrong identity


def test_the_client_loads_no_grpcio() -> None:
    """The client's modules never import grpcio (its ~10 MB are what this client saves)."""
    code = (
        "import sys; import sidecar.grpc.h2_upstream_call, sidecar.grpc.h2_channel; "
        "print('grpc' in sys.modules)"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
