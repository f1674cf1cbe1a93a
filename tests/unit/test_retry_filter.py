"""The `retry` filter: what is retried, how often, how long it waits, and what it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sidecar.errors import CircuitOpen, UpstreamConnectError, UpstreamReset, UpstreamTimeout
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters import retry
from sidecar.filters.retry import ATTEMPTS, make_retry
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, make_route_context

Outcome = Response | BaseException | Callable[[], Any]


class Script:
    """A stub `call_next` that plays its outcomes in order (the last one repeats)."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.bodies: list[object] = []

    async def __call__(self, exchange: Exchange) -> Response:
        self.bodies.append(exchange.body)
        out = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(out, BaseException):
            raise out
        if callable(out):
            return await out()  # type: ignore[no-any-return]
        return out


def status(code: int, headers: dict[str, str] | None = None) -> Response:
    return Response(code, Headers((headers or {}).items()), b"body %d" % code)


class Sleeps:
    """An injected `sleep` that records the waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def build(retry_cfg: dict[str, Any] | None = None, **kw: Any) -> tuple[Any, Metrics, Sleeps]:
    metrics = Metrics()
    ctx = make_route_context(
        {"url": "http://127.0.0.1:9", "retry": retry_cfg or {}}, metrics=metrics
    )
    sleeps = Sleeps()
    f = make_retry(ctx, sleep=sleeps, **kw)
    assert f is not None
    return f, metrics, sleeps


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"upstream": "test", "route": "test", **labels})
    return value or 0.0


async def test_a_503_storm_is_retried_up_to_attempts_and_the_app_gets_the_last_answer() -> None:
    """Attempts are bounded by `retry.attempts`; if all fail, the app gets the last answer."""
    f, metrics, _ = build({"attempts": 3})
    up = Script(status(503))
    ex = make_exchange()
    resp = await f(ex, up)
    assert (resp.status, up.calls) == (503, 3)
    assert ex.stash[ATTEMPTS] == 3
    assert sample(metrics, "sidecar_retries_total", condition="503") == 2


async def test_a_success_is_returned_untouched_and_records_no_attempts() -> None:
    """The common case costs no retry bookkeeping on the exchange."""
    f, metrics, sleeps = build()
    ok = status(200)
    ex = make_exchange()
    assert await f(ex, Script(ok)) is ok
    assert ATTEMPTS not in ex.stash and sleeps.waits == []


async def test_transport_failures_are_retried_then_succeed() -> None:
    """A refused connection or a reset before any response byte is worth another attempt."""
    f, metrics, _ = build()
    up = Script(UpstreamConnectError("refused"), UpstreamReset("reset"), status(200))
    ex = make_exchange()
    assert (await f(ex, up)).status == 200
    assert up.calls == 3 and ex.stash[ATTEMPTS] == 3
    assert sample(metrics, "sidecar_retries_total", condition="connect-failure") == 1
    assert sample(metrics, "sidecar_retries_total", condition="reset") == 1


async def test_the_last_error_is_raised_when_every_attempt_failed() -> None:
    """Exhausted retries end with the sidecar's error (502 `upstream_connect`), not a hang."""
    f, _, _ = build({"attempts": 2})
    up = Script(UpstreamConnectError("refused"))
    with pytest.raises(UpstreamConnectError):
        await f(make_exchange(), up)
    assert up.calls == 2


async def test_only_listed_conditions_are_retried() -> None:
    """A 500 (a bug upstream, not an outage) is not in the default `retry.on`."""
    f, _, _ = build()
    up = Script(status(500))
    assert (await f(make_exchange(), up)).status == 500 and up.calls == 1
    f2, _, _ = build({"on": ["5xx"]})
    up2 = Script(status(500), status(200))
    assert (await f2(make_exchange(), up2)).status == 200 and up2.calls == 2


async def test_sidecar_decisions_are_not_retried() -> None:
    """An open breaker ends the retries at once (its error carries no retry condition)."""
    f, _, _ = build()
    up = Script(CircuitOpen("open"))
    with pytest.raises(CircuitOpen):
        await f(make_exchange(), up)
    assert up.calls == 1


async def test_a_bug_below_is_not_retried() -> None:
    """An unexpected exception is not an upstream outcome: it goes to rescue untouched."""
    f, _, _ = build()
    up = Script(RuntimeError("bug"))
    with pytest.raises(RuntimeError):
        await f(make_exchange(), up)
    assert up.calls == 1


async def test_post_without_idempotency_key_is_never_retried() -> None:
    """The upstream may have charged the card already: a POST goes once unless made safe."""
    f, metrics, _ = build()
    up = Script(status(503))
    assert (await f(make_exchange("POST", body=b"{}"), up)).status == 503
    assert up.calls == 1
    assert sample(metrics, "sidecar_retries_skipped_total", reason="non_idempotent") == 1
    keyed = Script(status(503), status(201))
    ex = make_exchange("POST", headers={"Idempotency-Key": "order-7"}, body=b"{}")
    assert (await f(ex, keyed)).status == 201 and keyed.calls == 2
    assert keyed.bodies == [b"{}", b"{}"]


async def test_non_idempotent_true_retries_any_method() -> None:
    """A route whose POSTs are safe to repeat can say so with `retry.non_idempotent: true`."""
    f, _, _ = build({"non_idempotent": True})
    up = Script(status(503), status(200))
    assert (await f(make_exchange("PATCH", body=b"x"), up)).status == 200 and up.calls == 2


async def test_a_body_over_the_buffer_is_sent_once() -> None:
    """Bodies larger than `retry.buffer` are not kept, so that call is not retried (and counted)."""
    f, metrics, _ = build({"buffer": 8})
    up = Script(status(503))
    assert (await f(make_exchange("PUT", body=b"123456789"), up)).status == 503
    assert up.calls == 1
    assert sample(metrics, "sidecar_retries_skipped_total", reason="body_too_large") == 1


async def test_a_small_stream_of_known_length_is_buffered_and_replayed() -> None:
    """Each attempt sends the whole body, even though the app streamed it."""

    async def stream() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    f, _, _ = build()
    ex = make_exchange("PUT", body=stream())
    ex.body_length = 11
    up = Script(UpstreamReset("reset"), status(200))
    assert (await f(ex, up)).status == 200
    assert up.bodies == [b"hello world", b"hello world"]


async def test_an_unknown_length_stream_is_streamed_once_not_buffered() -> None:
    """A chunked upload is passed through as a stream and never retried."""

    async def stream() -> AsyncIterator[bytes]:
        yield b"data"

    f, metrics, _ = build()
    body = stream()
    ex = make_exchange("PUT", body=body)
    ex.body_length = None
    up = Script(status(503))
    assert (await f(ex, up)).status == 503
    assert up.bodies == [body]
    assert sample(metrics, "sidecar_retries_skipped_total", reason="body_too_large") == 1


async def test_backoff_is_full_jitter_exponential() -> None:
    """Waits grow base, 2·base, 4·base... times a uniform draw, capped at `max`."""
    f, _, sleeps = build(
        {
            "attempts": 5,
            "backoff": {"base": "100ms", "max": "300ms"},
            "budget": {"min_retries": 10},
        },
        rand=lambda: 0.5,
    )
    await f(make_exchange(), Script(status(503)))
    assert sleeps.waits == pytest.approx([0.05, 0.1, 0.15, 0.15])


async def test_retry_after_seconds_replaces_the_backoff() -> None:
    """An upstream that says when to come back is believed (`Retry-After: 2`)."""
    f, _, sleeps = build()
    up = Script(status(503, {"retry-after": "2"}), status(200))
    assert (await f(make_exchange(), up)).status == 200
    assert sleeps.waits == [2.0]


async def test_retry_after_http_date_uses_the_wall_clock() -> None:
    """`Retry-After: <HTTP-date>` waits until that moment."""
    f, _, sleeps = build(wall=lambda: 784111747.0)  # 08:49:07 GMT
    up = Script(status(503, {"retry-after": "Sun, 06 Nov 1994 08:49:37 GMT"}), status(200))
    assert (await f(make_exchange(), up)).status == 200
    assert sleeps.waits == [30.0]


async def test_retry_after_past_the_deadline_returns_the_upstream_answer() -> None:
    """No retry can finish in time, so the app gets the 503 (and its Retry-After) at once."""
    f, metrics, sleeps = build()
    up = Script(status(503, {"retry-after": "30"}))
    ex = make_exchange()
    ex.deadline = asyncio.get_running_loop().time() + 5
    resp = await f(ex, up)
    assert resp.status == 503 and resp.headers.get("retry-after") == "30"
    assert up.calls == 1 and sleeps.waits == []
    assert sample(metrics, "sidecar_retries_skipped_total", reason="retry_after") == 1


async def test_retry_after_can_be_ignored() -> None:
    """`honor_retry_after: false` keeps the sidecar's own backoff."""
    f, _, sleeps = build({"honor_retry_after": False}, rand=lambda: 0.5)
    await f(make_exchange(), Script(status(503, {"retry-after": "30"}), status(200)))
    assert sleeps.waits == [0.0125]


async def test_no_retry_when_the_backoff_would_pass_the_deadline() -> None:
    """A retry that cannot start before the deadline is not attempted (and counted)."""
    f, metrics, sleeps = build({"backoff": {"base": "1s", "max": "1s"}}, rand=lambda: 0.9)
    ex = make_exchange()
    ex.deadline = asyncio.get_running_loop().time() + 0.5
    up = Script(status(503))
    assert (await f(ex, up)).status == 503 and up.calls == 1 and sleeps.waits == []
    assert sample(metrics, "sidecar_retries_skipped_total", reason="deadline") == 1


async def test_the_budget_stops_retries_once_spent() -> None:
    """With the budget spent, failures go back at once instead of multiplying the load."""
    f, metrics, _ = build({"budget": {"ratio": 0.0, "min_retries": 2}})
    first = Script(status(503))
    await f(make_exchange(), first)
    second = Script(status(503))
    await f(make_exchange(), second)
    assert (first.calls, second.calls) == (3, 1)
    assert sample(metrics, "sidecar_retries_skipped_total", reason="budget") == 1


async def test_a_retried_response_body_is_closed_and_its_listeners_told() -> None:
    """A streaming 503 given up for a retry closes its connection instead of leaving it mid-body."""
    closed: list[bool] = []
    ended: list[tuple[bool, int]] = []

    class Body:
        def __aiter__(self) -> Body:
            return self

        async def __anext__(self) -> bytes:
            raise StopAsyncIteration

        async def aclose(self) -> None:
            closed.append(True)

    failing = Response(503, Headers(), Body(), None)  # type: ignore[arg-type]
    failing.on_complete = [lambda ok, sent: ended.append((ok, sent))]
    f, _, _ = build()
    assert (await f(make_exchange(), Script(failing, status(200)))).status == 200
    assert closed == [True] and ended == [(False, 0)]


async def test_per_try_timeout_cuts_a_stalled_attempt_and_retries() -> None:
    """One stuck upstream instance costs `per_try_timeout`, not the whole call's budget."""
    cancelled: list[bool] = []

    async def stall() -> Response:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        raise AssertionError("unreachable")

    f, metrics, _ = build({"per_try_timeout": "50ms"})
    up = Script(stall, status(200))
    ex = make_exchange()
    ex.deadline = asyncio.get_running_loop().time() + 10
    resp = await asyncio.wait_for(f(ex, up), 5)
    assert resp.status == 200 and cancelled == [True]
    assert sample(metrics, "sidecar_retries_total", condition="timeout") == 1


async def test_per_try_timeout_alone_ends_with_504_when_attempts_are_spent() -> None:
    """With one attempt, `per_try_timeout` still bounds it: a 504 `upstream_timeout`."""

    async def stall() -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    f, _, _ = build({"attempts": 1, "per_try_timeout": "20ms"})
    with pytest.raises(UpstreamTimeout) as info:
        await asyncio.wait_for(f(make_exchange(), Script(stall)), 5)
    assert "per_try_timeout" in info.value.detail


def test_the_filter_is_left_out_when_it_has_nothing_to_do() -> None:
    """Retries off, or one attempt with no per-try timeout: no filter, no cost."""
    for cfg in ({"enabled": False}, {"attempts": 1}):
        ctx = make_route_context({"url": "http://127.0.0.1:9", "retry": cfg})
        assert retry.factory(ctx) is None
    ctx = make_route_context({"url": "http://127.0.0.1:9"})
    assert retry.factory(ctx) is not None
