"""Retries of gRPC calls (gRFC A6): by status code, only before a response reached the app's
side, and with the request's messages replayed whole and in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sidecar.api import GRPC_STATUSES, FrontTraits
from sidecar.chain import Filter
from sidecar.errors import UpstreamReset
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters.retry import ATTEMPTS, PREVIOUS_ATTEMPTS, make_retry
from sidecar.grpc.wire import GRPC_LISTENER, classify_grpc
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, make_route_context, on_front

UNAVAILABLE, INTERNAL, RESOURCE_EXHAUSTED = 14, 13, 8


def answer(code: int, **trailing: str) -> Response:
    """A trailers-only answer, as the gRPC adapter returns a failed call."""
    resp = Response(200)
    resp.trailers = Headers([("grpc-status", str(code)), *trailing.items()])
    return resp


def streaming() -> Response:
    """An answer whose initial metadata arrived and whose messages (and status) are to come."""

    async def messages() -> AsyncIterator[bytes]:
        yield b"first"

    return Response(200, Headers([("x-initial", "1")]), messages(), length=None)


async def messages(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


class Upstream:
    """A stub adapter: reads the call's messages as a gRPC client would, then plays its
    outcomes in order (the last one repeats)."""

    def __init__(self, *outcomes: Response | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[list[bytes]] = []
        self.headers: list[Headers] = []

    async def __call__(self, exchange: Exchange) -> Response:
        body = exchange.body
        assert not isinstance(body, bytes)
        self.sent.append([m async for m in body])
        self.headers.append(exchange.headers.copy())
        out = self.outcomes[min(len(self.sent) - 1, len(self.outcomes) - 1)]
        if isinstance(out, BaseException):
            raise out
        return out

    @property
    def calls(self) -> int:
        return len(self.sent)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def build(retry: dict[str, Any] | None = None) -> tuple[Filter, Metrics, Sleeps]:
    metrics = Metrics()
    ctx = make_route_context({"url": "http://127.0.0.1:9", "retry": retry or {}}, metrics=metrics)
    ctx = on_front(ctx, "grpc", classify=classify_grpc)
    sleeps = Sleeps()
    f = make_retry(ctx, sleep=sleeps, rand=lambda: 0.5)
    assert f is not None
    return f, metrics, sleeps


def call(*items: bytes) -> Exchange:
    ex = make_exchange("POST", "/echo.v1.Echo/Unary", body=messages(*items))
    ex.listener = GRPC_LISTENER
    return ex


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"upstream": "test", "route": "test", **labels})
    return value or 0.0


async def test_unavailable_is_retried_and_the_same_message_is_sent_again() -> None:
    """A POST-shaped gRPC call is retried on UNAVAILABLE (no HTTP idempotency rule applies)."""
    f, metrics, _ = build()
    ok = answer(0)
    up = Upstream(answer(UNAVAILABLE), answer(UNAVAILABLE), ok)
    ex = call(b"request")
    assert await f(ex, up) is ok
    assert up.sent == [[b"request"]] * 3
    assert ex.stash[ATTEMPTS] == 3
    assert sample(metrics, "sidecar_retries_total", condition="unavailable") == 2
    assert sample(metrics, "sidecar_retries_skipped_total", reason="non_idempotent") == 0


async def test_retried_attempts_say_how_many_came_before() -> None:
    """Each retry carries grpc-previous-rpc-attempts, as gRPC's own retries do (A6)."""
    f, _, _ = build()
    up = Upstream(answer(UNAVAILABLE), answer(UNAVAILABLE), answer(0))
    await f(call(b"m"), up)
    assert [h.get(PREVIOUS_ATTEMPTS) for h in up.headers] == [None, "1", "2"]


async def test_a_code_not_in_retry_on_is_not_retried() -> None:
    """INTERNAL is the server's bug, not an outage: the app gets it after one attempt."""
    f, _, _ = build()
    failed = answer(INTERNAL)
    up = Upstream(failed, answer(0))
    assert await f(call(b"m"), up) is failed
    assert up.calls == 1


async def test_codes_may_be_listed_as_grpc_spells_them() -> None:
    """`on: [RESOURCE_EXHAUSTED]` (the gRPC service config's spelling) retries that code."""
    f, metrics, _ = build({"on": ["RESOURCE_EXHAUSTED"]})
    up = Upstream(answer(RESOURCE_EXHAUSTED), answer(0))
    assert grpc_code(await f(call(b"m"), up)) == 0
    assert sample(metrics, "sidecar_retries_total", condition="resource-exhausted") == 1
    f2, _, _ = build({"on": ["RESOURCE_EXHAUSTED"]})
    up2 = Upstream(answer(UNAVAILABLE), answer(0))
    assert grpc_code(await f2(call(b"m"), up2)) == UNAVAILABLE  # replaced the defaults


async def test_an_answer_whose_messages_are_streaming_is_never_retried() -> None:
    """Once initial metadata came back, the call is committed: a stream that later ends
    UNAVAILABLE is the app's to see, since messages of it may already have reached the app."""
    f, _, _ = build()
    stream = streaming()
    up = Upstream(stream, answer(0))
    assert await f(call(b"m"), up) is stream
    assert up.calls == 1


async def test_a_client_stream_is_replayed_message_by_message() -> None:
    """Message boundaries survive the replay buffer: every attempt sends the same messages."""
    f, _, _ = build()
    up = Upstream(answer(UNAVAILABLE), answer(0))
    await f(call(b"one", b"", b"three"), up)
    assert up.sent == [[b"one", b"", b"three"]] * 2


async def test_a_stream_longer_than_the_buffer_is_sent_once_and_counted() -> None:
    """Past `retry.buffer` the call is committed: it goes through whole, and is not retried."""
    f, metrics, _ = build({"buffer": 10})
    up = Upstream(answer(UNAVAILABLE), answer(0))
    resp = await f(call(b"123456", b"789012", b"345"), up)
    assert grpc_code(resp) == UNAVAILABLE
    assert up.sent == [[b"123456", b"789012", b"345"]]
    assert sample(metrics, "sidecar_retries_skipped_total", reason="body_too_large") == 1


async def test_transport_errors_of_the_adapter_are_retried_too() -> None:
    """A reset before any answer is UNAVAILABLE to gRPC: retried by default."""
    f, _, _ = build()
    up = Upstream(UpstreamReset("reset"), answer(0))
    assert grpc_code(await f(call(b"m"), up)) == 0
    assert up.sent == [[b"m"]] * 2


async def test_pushback_is_honoured_like_retry_after() -> None:
    """grpc-retry-pushback-ms says how long to wait before the retry."""
    f, _, sleeps = build()
    up = Upstream(answer(UNAVAILABLE, **{"grpc-retry-pushback-ms": "40"}), answer(0))
    assert grpc_code(await f(call(b"m"), up)) == 0
    assert sleeps.waits == [0.04]


@pytest.mark.parametrize("pushback", ["-1", "soon"])
async def test_a_negative_or_malformed_pushback_means_no_retry(pushback: str) -> None:
    """A6: the server asked not to be retried (or said something unreadable): believe it."""
    f, metrics, _ = build()
    up = Upstream(answer(UNAVAILABLE, **{"grpc-retry-pushback-ms": pushback}), answer(0))
    assert grpc_code(await f(call(b"m"), up)) == UNAVAILABLE
    assert up.calls == 1
    assert sample(metrics, "sidecar_retries_skipped_total", reason="retry_after") == 1


async def test_the_http_route_of_the_same_upstream_keeps_the_http_rules() -> None:
    """The gRPC rules are chosen per chain: an HTTP POST is still not retried without a key."""
    metrics = Metrics()
    ctx = make_route_context({"url": "http://127.0.0.1:9"}, metrics=metrics)
    f = make_retry(ctx)
    assert f is not None
    seen: list[Exchange] = []

    async def up(exchange: Exchange) -> Response:
        seen.append(exchange)
        return Response(503)

    assert (await f(make_exchange("POST", body=b"{}"), up)).status == 503
    assert len(seen) == 1


async def test_a_plugin_front_answering_in_grpc_terms_gets_the_grpc_rules() -> None:
    """The front's traits choose the rules, not its name: a plugin's gRPC front retries by code,
    replays whole messages and says how many attempts came before."""
    mesh = FrontTraits("mesh", statuses=GRPC_STATUSES, whole_messages=True)
    ctx = make_route_context({"url": "http://127.0.0.1:9"})
    f = make_retry(on_front(ctx, mesh, classify=classify_grpc), sleep=Sleeps(), rand=lambda: 0.5)
    assert f is not None
    up = Upstream(answer(UNAVAILABLE, **{"grpc-retry-pushback-ms": "1"}), answer(0))
    ex = make_exchange("POST", "/echo.v1.Echo/ClientStream", body=messages(b"a", b"b"))
    assert grpc_code(await f(ex, up)) == 0
    assert up.sent == [[b"a", b"b"]] * 2
    assert [h.get(PREVIOUS_ATTEMPTS) for h in up.headers] == [None, "1"]


class AppStream:
    """The app's request stream, fed by the test: a streaming app sends its next message when
    it wants to (a bidi app may wait for an answer first)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.reads = 0

    def __aiter__(self) -> AppStream:
        return self

    async def __anext__(self) -> bytes:
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        self.reads += 1
        return item


async def test_a_reader_left_behind_by_a_failed_attempt_does_not_steal_messages() -> None:
    """grpc.aio's request writer of a failed attempt may still wait for the app's next message:
    that message still reaches the retry, once and in order."""
    f, _, _ = build()
    app = AppStream()
    ex = make_exchange("POST", "/echo.v1.Echo/Bidi", body=app)
    ex.listener = GRPC_LISTENER
    leftovers: list[bytes] = []
    retried: list[bytes] = []

    async def upstream(exchange: Exchange) -> Response:
        body = exchange.body
        assert not isinstance(body, bytes)
        if not leftovers and not retried and app.reads == 0:
            # attempt 1: read one message, leave a writer waiting for the next, then fail
            leftovers.append(await body.__anext__())

            async def writer() -> None:
                async for m in body:  # type: ignore[union-attr]
                    leftovers.append(m)

            asyncio.get_running_loop().create_task(writer())
            await asyncio.sleep(0)  # the writer now waits on the app's stream
            return answer(UNAVAILABLE)
        async for m in body:
            retried.append(m)
        return answer(0)

    app.queue.put_nowait(b"a")
    task = asyncio.create_task(f(ex, upstream))
    await asyncio.sleep(0.01)
    app.queue.put_nowait(b"b")
    app.queue.put_nowait(b"c")
    app.queue.put_nowait(None)
    resp = await asyncio.wait_for(task, 5)
    assert grpc_code(resp) == 0
    assert retried == [b"a", b"b", b"c"]
    assert app.reads == 3  # the app's stream was read once
    assert leftovers == [b"a", b"b"]  # the old writer got the read it waited for, then stopped


async def test_a_retry_whose_stream_outgrows_the_buffer_goes_through_whole_and_is_the_last() -> (
    None
):
    """The buffer can fill during a retry (the app still streaming): that attempt still gets
    every message, and no attempt follows it."""
    f, metrics, _ = build({"buffer": 4, "attempts": 5})
    app = AppStream()
    ex = make_exchange("POST", "/echo.v1.Echo/Bidi", body=app)
    ex.listener = GRPC_LISTENER
    sent: list[list[bytes]] = []

    async def upstream(exchange: Exchange) -> Response:
        body = exchange.body
        assert not isinstance(body, bytes)
        if not sent:
            sent.append([await body.__anext__()])  # one message, then UNAVAILABLE
            return answer(UNAVAILABLE)
        sent.append([m async for m in body])
        return answer(UNAVAILABLE)

    app.queue.put_nowait(b"a")
    task = asyncio.create_task(f(ex, upstream))
    await asyncio.sleep(0.01)
    for item in (b"bbbb", b"c", None):
        app.queue.put_nowait(item)
    resp = await asyncio.wait_for(task, 5)
    assert grpc_code(resp) == UNAVAILABLE
    assert sent == [[b"a"], [b"a", b"bbbb", b"c"]]
    assert sample(metrics, "sidecar_retries_skipped_total", reason="body_too_large") == 1


async def test_an_interrupted_read_of_the_app_stream_is_never_replayed() -> None:
    """A read cut by cancellation may have lost a message: the call is not retried rather than
    sent upstream truncated."""
    f, metrics, _ = build()
    app = AppStream()
    ex = make_exchange("POST", "/echo.v1.Echo/ClientStream", body=app)
    ex.listener = GRPC_LISTENER
    calls = 0

    async def upstream(exchange: Exchange) -> Response:
        nonlocal calls
        calls += 1
        body = exchange.body
        assert not isinstance(body, bytes)
        reader = asyncio.ensure_future(body.__anext__())
        await asyncio.sleep(0)
        reader.cancel()  # the attempt's writer is cancelled mid-read
        with pytest.raises(asyncio.CancelledError):
            await reader
        return answer(UNAVAILABLE)

    resp = await f(ex, upstream)
    assert grpc_code(resp) == UNAVAILABLE and calls == 1
    assert sample(metrics, "sidecar_retries_skipped_total", reason="body_too_large") == 1


def grpc_code(resp: Response) -> int:
    assert resp.trailers is not None
    return int(resp.trailers.get("grpc-status") or "-1")
