"""The gRPC adapter's fast path, without sockets: which grpc.aio call carries an app's call, the
deadline sent upstream rounded down onto grpc-timeout's grid, the unary methods a config
declares, a whole request taken off the HTTP/2 front's stream, and trailers-only answers known
as such however late their status comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from pydantic import ValidationError

from sidecar.errors import UpstreamTimeout
from sidecar.exchange import Exchange, Response
from sidecar.grpc.channels import GrpcUpstreamOptions, unary_matcher
from sidecar.grpc.h2_stream import H2Stream
from sidecar.grpc.unary_call import OneMessage
from sidecar.grpc.upstream_call import call_handler
from sidecar.grpc.upstream_deadline import GRPCIO_SLACK_MS, header_grid_ms, upstream_timeout
from sidecar.grpc.wire import GRPC_LISTENER, grpc_status
from sidecar.testing import make_exchange

# --- the deadline sent upstream ------------------------------------------------------------------


def grpcio_header_ms(millis: int) -> int:
    """What grpcio's encoder makes of a timeout of ``millis`` ms, in ms: rounded up onto the
    grid (three significant digits below 100 s, then whole seconds, tens, hundreds)."""
    if millis <= 0:
        return 0
    for limit, step in ((1_000, 1), (10_000, 10), (100_000, 100)):
        if millis < limit:
            return -(-millis // step) * step
    seconds = -(-millis // 1000)
    for limit, step in ((1_000, 1), (10_000, 10), (100_000, 100)):
        if seconds < limit:
            return -(-seconds // step) * step * 1000
    return seconds * 1000


@pytest.mark.parametrize("elapsed_ms", [0.0, 0.3, 0.99])
def test_the_upstream_never_gets_a_later_deadline_than_the_call(elapsed_ms: float) -> None:
    """Whatever is left (1 ms to 2 h), the grpc-timeout grpcio sends, after its own rounding up
    and however long it takes to send (under a millisecond), ends no later than the call's
    deadline, and at most one grid step and a few ms earlier."""
    remaining_values = [r / 1000 for r in range(1, 3000)] + [r / 7.0 for r in range(21, 50_000, 37)]
    for remaining in remaining_values:
        timeout = upstream_timeout(remaining)
        if timeout is None:
            assert remaining < 0.0045
            continue
        # grpcio: deadline rounded up to the ms, 'now' rounded down: up to 2 ms more
        millis = int(timeout * 1000 + GRPCIO_SLACK_MS - elapsed_ms)
        sent = grpcio_header_ms(millis) / 1000
        left_when_sent = remaining - elapsed_ms / 1000
        assert sent <= left_when_sent + 1e-9, (remaining, timeout, sent)
        step = header_grid_ms(int(remaining * 1000)) / 1000
        assert left_when_sent - sent <= step + 0.0045, (remaining, timeout, sent)


def test_a_deadline_too_close_to_reach_the_upstream_is_not_sent() -> None:
    """A call with under ~4 ms left is not sent upstream at all: it would only arrive late."""
    assert upstream_timeout(0.002) is None
    assert upstream_timeout(-1.0) is None
    assert upstream_timeout(0.010) == pytest.approx(0.007)


# --- declared unary methods ------------------------------------------------------------------


def test_unary_methods_name_methods_or_whole_services() -> None:
    """``options.unary_methods`` takes Service/Method and Service/* and matches method paths."""
    options = GrpcUpstreamOptions.model_validate(
        {"unary_methods": ["echo.v1.Echo/Unary", "/inventory.v1.Admin/*"]}
    )
    is_unary = unary_matcher(options.unary_methods)
    assert is_unary("/echo.v1.Echo/Unary")
    assert is_unary("/inventory.v1.Admin/Reload")
    assert not is_unary("/echo.v1.Echo/Bidi")
    assert not is_unary("/inventory.v1.Inventory/GetStock")
    assert unary_matcher(["a.B/C"])("/a.B/C") and not unary_matcher(["a.B/C"])("/a.B/D")


@pytest.mark.parametrize(
    "bad", ["echo.v1.Echo", "echo.v1.Echo/", "echo.v1.Echo/A/B", "echo v1/A", "é.Echo/A", "/*"]
)
def test_a_malformed_unary_method_is_refused(bad: str) -> None:
    """A typo in ``unary_methods`` fails config validation instead of never matching."""
    with pytest.raises(ValidationError, match="package.Service/Method"):
        GrpcUpstreamOptions.model_validate({"unary_methods": [bad]})


# --- a whole request off the HTTP/2 front's stream -----------------------------------------------


def h2_stream() -> tuple[H2Stream, list[int]]:
    acked: list[int] = []
    h2c = SimpleNamespace(acknowledge_received_data=lambda n, sid: acked.append(n))
    conn: Any = SimpleNamespace(
        h2=h2c,
        clock=0.0,
        listener=SimpleNamespace(max_receive=1 << 20, refuse=lambda s, e: None),
        mark=lambda: None,
        loop=None,
    )
    return H2Stream(conn, 1), acked


def framed(message: bytes) -> bytes:
    return b"\0" + len(message).to_bytes(4, "big") + message


@pytest.mark.parametrize("message", [b"hello", b""])
def test_a_half_closed_single_message_request_is_taken_whole(message: bytes) -> None:
    """One whole message and the app's half-close (a unary call's request, empty ones too) are
    handed over as bytes, and the bytes are acknowledged to the app."""
    stream, acked = h2_stream()
    stream.on_data(framed(message), len(framed(message)))
    assert stream.whole_request() is None  # not half-closed yet: could be a stream
    stream.on_end()
    assert stream.whole_request() == message
    assert sum(acked) == len(framed(message)) and not stream.buf


async def test_two_messages_or_a_partial_one_stay_a_stream() -> None:
    """A request of two messages (or one still arriving) is read as a stream, nothing lost."""
    stream, _ = h2_stream()
    data = framed(b"a") + framed(b"b")
    stream.on_data(data, len(data))
    stream.on_end()
    assert stream.whole_request() is None
    assert [m async for m in stream] == [b"a", b"b"]
    partial, _ = h2_stream()
    partial.on_data(framed(b"abc")[:6], 6)
    assert partial.whole_request() is None


# --- which call carries an app's call ----------------------------------------------------------


class FakeCall:
    """A grpc.aio call answering ``messages`` then ``code`` (its status after ``late`` s)."""

    def __init__(self, messages: list[bytes], code: int = 0, late: float = 0.0) -> None:
        self.messages = list(messages)
        self.code = code
        self.late = late
        self.cancelled = False
        self.written: list[bytes] = []

    def _error(self) -> grpc.aio.AioRpcError:
        status = next(s for s in grpc.StatusCode if s.value[0] == self.code)
        return grpc.aio.AioRpcError(status, grpc.aio.Metadata(), grpc.aio.Metadata(), "down")

    def __await__(self) -> Any:  # unary-unary
        if self.code:
            raise self._error()
        return self.messages[0]
        yield

    async def initial_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    def done(self) -> bool:
        return False

    async def read(self) -> Any:
        if self.messages:
            return self.messages.pop(0)
        await asyncio.sleep(self.late)
        if self.code:
            raise self._error()
        return grpc.aio.EOF

    async def details(self) -> str:
        return ""

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        return grpc.aio.Metadata()

    def cancel(self) -> None:
        self.cancelled = True

    def add_done_callback(self, cb: Any) -> None:
        pass

    async def write(self, message: bytes) -> None:
        self.written.append(message)

    async def done_writing(self) -> None:
        pass


class FakeChannel:
    """Records which kind of call each method got, and the timeout of each call."""

    def __init__(self, answer: FakeCall) -> None:
        self.answer = answer
        self.kinds: list[str] = []
        self.timeouts: list[float | None] = []

    def _kind(self, kind: str) -> Any:
        def method(*args: Any, metadata: Any = None, timeout: float | None = None) -> FakeCall:
            self.kinds.append(kind)
            self.timeouts.append(timeout)
            return self.answer

        return method

    def unary_unary(self, path: str) -> Any:
        return self._kind("unary_unary")

    def unary_stream(self, path: str) -> Any:
        return self._kind("unary_stream")

    def stream_stream(self, path: str) -> Any:
        return self._kind("stream_stream")


def metrics() -> Any:
    attempts = SimpleNamespace(response=lambda: None, failed=lambda e: None)
    return SimpleNamespace(attempts=lambda name: attempts)


def grpc_call(body: bytes | AsyncIterator[bytes], path: str = "/echo.v1.Echo/Unary") -> Exchange:
    ex = make_exchange("POST", path, body=body)
    ex.listener = GRPC_LISTENER
    return ex


async def stream_of(*messages: bytes) -> AsyncIterator[bytes]:
    for m in messages:
        yield m


async def messages_of(resp: Response) -> list[bytes]:
    body = resp.body
    if isinstance(body, bytes):
        return [body] if body else []
    return [m async for m in body]


async def test_a_declared_unary_method_with_one_request_is_a_unary_call() -> None:
    """A method in unary_methods whose request is one whole message costs one unary call, and
    its answer (an empty message too) comes whole, status known."""
    for answer in (b"pong", b""):
        channel = FakeChannel(FakeCall([answer]))
        handler = call_handler("echo", channel, "t:1", metrics(), unary_matcher(["echo.v1.Echo/*"]))
        resp = await handler(grpc_call(b"ping"))
        assert channel.kinds == ["unary_unary"]
        assert grpc_status(resp) == 0 and await messages_of(resp) == [answer]
        assert isinstance(resp.body, bytes if answer else OneMessage)


async def test_an_undeclared_method_with_one_request_reads_every_answer() -> None:
    """Without a declaration, one whole request is a single-request call that reads however
    many messages come (a server-streaming method's)."""
    channel = FakeChannel(FakeCall([b"1", b"2", b"3"]))
    handler = call_handler("echo", channel, "t:1", metrics(), unary_matcher([]))
    resp = await handler(grpc_call(b"ping", "/echo.v1.Echo/ServerStream"))
    assert channel.kinds == ["unary_stream"]
    assert await messages_of(resp) == [b"1", b"2", b"3"] and grpc_status(resp) == 0


async def test_a_streamed_request_to_a_declared_unary_method_stays_a_stream() -> None:
    """A wrong declaration never cuts a call: a request of several messages goes as a stream,
    every message sent."""
    answer = FakeCall([b"sum"])
    channel = FakeChannel(answer)
    handler = call_handler("echo", channel, "t:1", metrics(), unary_matcher(["echo.v1.Echo/*"]))
    resp = await handler(grpc_call(stream_of(b"a", b"b", b"c")))
    assert channel.kinds == ["stream_stream"]
    assert await messages_of(resp) == [b"sum"]
    async with asyncio.timeout(1):
        while len(answer.written) < 3:
            await asyncio.sleep(0.001)
    assert answer.written == [b"a", b"b", b"c"]


@pytest.mark.parametrize("unary", [True, False])
async def test_the_timeout_sent_is_rounded_down_from_the_deadline_now(unary: bool) -> None:
    """The timeout given to grpcio is taken from what is left of the call's deadline at the
    moment of the call, rounded down onto grpc-timeout's grid."""
    channel = FakeChannel(FakeCall([b"x"]))
    handler = call_handler("echo", channel, "t:1", metrics(), unary_matcher(["a.B/*"] * unary))
    ex = grpc_call(b"x", "/a.B/C")
    ex.deadline = asyncio.get_running_loop().time() + 2.0
    await handler(ex)
    (sent,) = channel.timeouts
    assert sent is not None and 1.985 <= sent <= 1.990 - GRPCIO_SLACK_MS / 1000 + 1e-9
    ex = grpc_call(b"x", "/a.B/C")
    ex.deadline = asyncio.get_running_loop().time() + 0.003
    with pytest.raises(UpstreamTimeout):
        await handler(ex)


@pytest.mark.parametrize("body", [b"x", None])
async def test_a_trailers_only_answer_is_known_however_late_its_status(body: bytes | None) -> None:
    """Empty headers and a status that comes 50 ms later (no message) make a trailers-only
    answer whose status the filters see, not a stream answered early and judged a success."""
    channel = FakeChannel(FakeCall([], code=14, late=0.05))
    handler = call_handler("echo", channel, "t:1", metrics(), unary_matcher([]))
    resp = await handler(grpc_call(body if body is not None else stream_of(b"x")))
    assert resp.body == b"" and grpc_status(resp) == 14
