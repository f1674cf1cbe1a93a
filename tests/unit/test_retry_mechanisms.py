"""The pieces retries are made of: backoff, Retry-After, the budget, idempotency, body replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from sidecar.errors import UpstreamTimeout
from sidecar.exchange import Exchange, Response
from sidecar.resilience.backoff import FullJitterBackoff, parse_retry_after
from sidecar.resilience.idempotency import may_repeat
from sidecar.resilience.per_try import PerTryTimeout
from sidecar.resilience.replay import make_replayable
from sidecar.resilience.retry_budget import SlidingRetryBudget
from sidecar.testing import make_exchange


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- backoff ------------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_from_base_up_to_the_cap() -> None:
    """Retry n waits at most base·2ⁿ⁻¹, never more than the cap (25 ms → 250 ms by default)."""
    b = FullJitterBackoff(0.025, 0.25)
    assert [b.ceiling(n) for n in range(1, 7)] == [0.025, 0.05, 0.1, 0.2, 0.25, 0.25]
    assert b.ceiling(10_000) == 0.25  # no overflow however many retries


def test_backoff_is_full_jitter_over_the_whole_interval() -> None:
    """The wait spans [0, ceiling): clients that failed together do not come back together."""
    assert FullJitterBackoff(0.1, 1.0, rand=lambda: 0.0).delay(3) == 0.0
    assert FullJitterBackoff(0.1, 1.0, rand=lambda: 0.5).delay(3) == pytest.approx(0.2)
    top = FullJitterBackoff(0.1, 1.0, rand=lambda: 0.999999).delay(3)
    assert 0.399 < top < 0.4


# --- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("3", 3.0), (" 120 ", 120.0), ("1.5", 1.5)],
)
def test_retry_after_delay_seconds(value: str, seconds: float) -> None:
    """`Retry-After: 120` asks for two minutes (a fraction is accepted, as some servers send)."""
    assert parse_retry_after(value, now=0.0) == seconds


def test_retry_after_http_date_is_measured_from_the_wall_clock() -> None:
    """`Retry-After: <HTTP-date>` waits until that date; a date already past means now."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 1, 2, 3, 4, 35, tzinfo=UTC), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, now) == pytest.approx(30.0)
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "-1", "1e3", "inf", "nan", "0x10", "1,5", "3 s"])
def test_malformed_retry_after_is_ignored(value: str) -> None:
    """A value that is neither seconds nor a date does not stall or crash the retry."""
    assert parse_retry_after(value, now=0.0) is None


# --- budget -------------------------------------------------------------------------------------


def test_budget_allows_ratio_of_requests_plus_the_floor() -> None:
    """With 100 requests in the window, 20 % + 3 retries pass and the next is refused."""
    clock = Clock()
    budget = SlidingRetryBudget(0.2, 3, 10.0, clock=clock)
    for _ in range(100):
        budget.record_request()
    allowed = sum(budget.try_retry() for _ in range(50))
    assert allowed == 23
    assert budget.describe()["available"] == 0
    assert budget.describe()["denied_total"] == 27


def test_a_quiet_upstream_still_gets_its_floor_of_retries() -> None:
    """A single failing call is retried even though 20 % of one request is less than one."""
    budget = SlidingRetryBudget(0.2, 3, 10.0, clock=Clock())
    budget.record_request()
    assert [budget.try_retry() for _ in range(5)] == [True, True, True, False, False]
    zero_floor = SlidingRetryBudget(0.2, 0, 10.0, clock=Clock())
    zero_floor.record_request()
    assert zero_floor.try_retry() is False


def test_budget_window_slides_old_requests_and_retries_out() -> None:
    """Spent retries come back as the window moves on; old requests stop counting too."""
    clock = Clock()
    budget = SlidingRetryBudget(0.5, 0, 10.0, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert sum(budget.try_retry() for _ in range(10)) == 5
    clock.now += 5.0  # half a window later: everything still counts
    assert budget.try_retry() is False
    for _ in range(10):
        budget.record_request()
    assert sum(budget.try_retry() for _ in range(10)) == 5
    clock.now += 5.5  # the first batch has left the window, the second has not
    assert budget.try_retry() is False
    assert (budget.requests, budget.retries) == (10, 5)
    clock.now += 60.0  # long quiet: the window is empty
    assert budget.describe()["requests"] == budget.describe()["retries"] == 0
    budget.record_request()
    budget.record_request()
    assert budget.try_retry() is True


def test_budget_describe_shows_its_state() -> None:
    """`/upstreams` shows how much of the budget is left."""
    budget = SlidingRetryBudget(0.2, 3, 10.0, clock=Clock())
    for _ in range(10):
        budget.record_request()
    assert budget.try_retry()
    assert budget.describe() == {
        "ratio": 0.2,
        "min_retries": 3,
        "window_s": 10.0,
        "requests": 10,
        "retries": 1,
        "available": 4,
        "denied_total": 0,
    }


# --- idempotency --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"])
def test_idempotent_methods_may_be_repeated(method: str) -> None:
    """RFC 9110's idempotent methods are safe to send twice."""
    assert may_repeat(make_exchange(method))


@pytest.mark.parametrize("method", ["POST", "PATCH", "PURGE"])
def test_other_methods_need_a_key_or_the_operator_s_consent(method: str) -> None:
    """A POST is repeated only with `Idempotency-Key` or `retry.non_idempotent: true`."""
    assert not may_repeat(make_exchange(method))
    assert may_repeat(make_exchange(method, headers={"Idempotency-Key": "k-1"}))
    assert may_repeat(make_exchange(method), non_idempotent=True)


# --- replay buffer ------------------------------------------------------------------------------


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


class Tracked:
    """A request body stream that records whether anyone read from it."""

    def __init__(self, *parts: bytes) -> None:
        self.parts = list(parts)
        self.read = 0

    def __aiter__(self) -> Tracked:
        return self

    async def __anext__(self) -> bytes:
        if not self.parts:
            raise StopAsyncIteration
        self.read += 1
        return self.parts.pop(0)


async def test_a_body_in_memory_is_replayable_up_to_the_buffer() -> None:
    """Small bodies (the usual case) are kept as they are; over the buffer they are not retried."""
    assert await make_replayable(make_exchange("PUT", body=b"x" * 100), 100)
    assert not await make_replayable(make_exchange("PUT", body=b"x" * 101), 100)


async def test_a_stream_of_known_small_length_is_read_into_the_buffer() -> None:
    """A streamed body whose Content-Length fits is buffered first, then sent by every attempt."""
    ex = make_exchange("PUT", body=chunks(b"abc", b"def"))
    ex.body_length = 6
    assert await make_replayable(ex, 10)
    assert ex.body == b"abcdef" and ex.body_length == 6


async def test_a_long_or_unknown_length_stream_is_left_untouched() -> None:
    """Never consume a stream that cannot be replayed: it must still be sent once, whole."""
    big = Tracked(b"a" * 8, b"b" * 8)
    ex = make_exchange("PUT", body=big)
    ex.body_length = 16
    assert not await make_replayable(ex, 10)
    chunked = Tracked(b"a")
    ex2 = make_exchange("PUT", body=chunked)
    ex2.body_length = None
    assert not await make_replayable(ex2, 10)
    assert big.read == 0 and chunked.read == 0
    assert ex.body is big and ex2.body is chunked


# --- per-try timeout ----------------------------------------------------------------------------


async def test_an_attempt_sees_its_own_deadline_and_the_call_gets_its_own_back() -> None:
    """Filters below bound their waits by the attempt's deadline; the retry keeps the call's."""
    loop = asyncio.get_running_loop()
    ex = make_exchange()
    overall = ex.deadline = loop.time() + 10
    seen: list[float | None] = []

    async def attempt(exchange: Exchange) -> Response:
        seen.append(exchange.deadline)
        return Response(200)

    assert (await PerTryTimeout(0.5).attempt(attempt, ex)).status == 200
    assert seen[0] is not None and seen[0] < overall - 9
    assert ex.deadline == overall


async def test_an_overall_deadline_sooner_than_the_per_try_one_is_left_to_fire_alone() -> None:
    """With less time left than a try, the attempt keeps the call's deadline (the app's 504)."""
    ex = make_exchange()
    overall = ex.deadline = asyncio.get_running_loop().time() + 0.1
    seen: list[float | None] = []

    async def attempt(exchange: Exchange) -> Response:
        seen.append(exchange.deadline)
        return Response(200)

    await PerTryTimeout(5.0).attempt(attempt, ex)
    assert seen == [overall]


async def test_a_stalled_attempt_is_cut_with_a_timeout_the_retry_can_act_on() -> None:
    """A cut attempt ends as `UpstreamTimeout` (condition `timeout`), naming the setting."""

    async def stall(exchange: Exchange) -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with pytest.raises(UpstreamTimeout) as info:
        await asyncio.wait_for(PerTryTimeout(0.02).attempt(stall, make_exchange()), 5)
    assert "per_try_timeout" in info.value.detail


async def test_an_app_that_goes_away_mid_attempt_stays_a_cancellation() -> None:
    """Only the per-try deadline becomes a timeout: the app leaving is not retried."""
    started = asyncio.Event()

    async def stall(exchange: Exchange) -> Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(PerTryTimeout(5.0).attempt(stall, make_exchange()))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
