"""The local rate_limit filter under a controlled clock: reject, wait, shadow, keys, headers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.errors import RateLimited
from sidecar.exchange import Exchange, Response
from sidecar.filters import rate_limit
from sidecar.filters.rate_limit import LocalLimiter, make_filter
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, make_route_context, responder


class Clock:
    """Time that moves only when the test moves it; ``sleep`` waits for the test to get there."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self._moved = asyncio.Condition()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        until = self.now + seconds
        async with self._moved:
            await self._moved.wait_for(lambda: self.now >= until)

    async def advance_to(self, when: float) -> None:
        async with self._moved:
            self.now = when
            self._moved.notify_all()


def limiter_for(clock: Clock, **policy: Any) -> tuple[Any, Metrics]:
    ctx = make_route_context({"url": "http://127.0.0.1:9", "rate_limit": policy})
    assert ctx.upstream.rate_limit is not None
    limiter = LocalLimiter(ctx.upstream.rate_limit, clock=clock, sleep=clock.sleep)
    metrics = Metrics()
    return make_filter(limiter, metrics, "test", "test"), metrics


async def outcomes(f: Any, n: int, **exchange: Any) -> list[int]:
    """Status of ``n`` calls in a row (429 for a refusal)."""
    out = []
    for _ in range(n):
        try:
            resp = await f(make_exchange(**exchange), responder(200))
            out.append(resp.status)
        except RateLimited as e:
            out.append(e.status)
    return out


def limited(metrics: Metrics, mode: str) -> float:
    value = metrics.registry.get_sample_value(
        "sidecar_rate_limited_total",
        {"upstream": "test", "route": "test", "scope": "local", "mode": mode},
    )
    return value or 0.0


def test_off_unless_configured() -> None:
    """An upstream without rate_limit (or with enabled: false) has no filter in its chain."""
    assert rate_limit.factory(make_route_context()) is None
    off = make_route_context({"url": "http://x", "rate_limit": {"rate": "1/s", "enabled": False}})
    assert rate_limit.factory(off) is None
    assert rate_limit.factory(
        make_route_context({"url": "http://x", "rate_limit": {"rate": "1/s"}})
    )


async def test_reject_admits_exactly_burst_then_rate() -> None:
    """reject: at 10/s with burst 5, a flood gets 5 at once and then 1 per 100 ms."""
    clock = Clock()
    f, metrics = limiter_for(clock, rate="10/s", burst=5)
    assert (await outcomes(f, 20)).count(200) == 5
    clock.now = 0.5
    assert (await outcomes(f, 20)).count(200) == 5
    clock.now = 0.75
    assert (await outcomes(f, 20)).count(200) == 2
    assert limited(metrics, "reject") == 15 + 15 + 18


async def test_a_refusal_says_when_to_come_back_in_the_ietf_fields() -> None:
    """429 carries Retry-After and the IETF RateLimit-Policy / RateLimit fields (draft -10)."""
    clock = Clock()
    f, _ = limiter_for(clock, rate="100/min", burst=1)
    await f(make_exchange(), responder(200))
    with pytest.raises(RateLimited) as e:
        await f(make_exchange(), responder(200))
    assert e.value.status == 429 and e.value.code == "rate_limited"
    assert dict(e.value.headers) == {
        "retry-after": "1",  # 0.6 s until the next token, in whole seconds (rounded up)
        "ratelimit-policy": '"local";q=100;w=60',
        "ratelimit": '"local";r=0;t=1',
    }


async def test_wait_delays_calls_to_the_rate_and_refuses_past_max_wait() -> None:
    """wait: calls beyond the burst wait their turn (one per interval) up to max_wait, then 429."""
    clock = Clock()
    f, metrics = limiter_for(clock, rate="10/s", burst=2, on_limit="wait", max_wait="0.35s")
    # concurrently: 2 go at once, 3 book a token 0.1/0.2/0.3 s ahead, 3 would wait too long
    calls = [asyncio.create_task(outcomes(f, 1)) for _ in range(8)]
    async with asyncio.timeout(5):
        while len(clock.slept) < 3 or sum(c.done() for c in calls) < 5:  # noqa: ASYNC110
            await asyncio.sleep(0)
    assert sorted(clock.slept) == pytest.approx([0.1, 0.2, 0.3])
    await clock.advance_to(0.3)
    results = await asyncio.gather(*calls)
    assert [r[0] for r in results].count(200) == 5
    assert [r[0] for r in results].count(429) == 3
    assert limited(metrics, "wait") == 3
    assert limited(metrics, "reject") == 3


async def test_waiting_calls_are_capped() -> None:
    """wait: past max_waiting waiting calls, a call without a token is refused at once."""
    clock = Clock()
    gate = asyncio.Event()

    async def stuck_sleep(seconds: float) -> None:
        await gate.wait()

    ctx = make_route_context(
        {
            "url": "http://x",
            "rate_limit": {
                "rate": "1/s",
                "burst": 1,
                "on_limit": "wait",
                "max_wait": "1h",
                "max_waiting": 2,
            },
        }
    )
    assert ctx.upstream.rate_limit is not None
    limiter = LocalLimiter(ctx.upstream.rate_limit, clock=clock, sleep=stuck_sleep)
    f = make_filter(limiter, Metrics(), "test", "test")
    assert (await outcomes(f, 1)) == [200]
    waiters = [asyncio.create_task(outcomes(f, 1)) for _ in range(2)]
    async with asyncio.timeout(5):
        while limiter.waiting < 2:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0)
    assert (await outcomes(f, 3)) == [429, 429, 429]
    gate.set()
    assert [await w for w in waiters] == [[200], [200]]
    assert limiter.waiting == 0


async def test_a_cancelled_waiting_call_gives_its_token_back() -> None:
    """The app that hangs up while waiting does not spend a token it never used."""
    clock = Clock()
    gate = asyncio.Event()

    async def stuck_sleep(seconds: float) -> None:
        await gate.wait()

    ctx = make_route_context(
        {"url": "http://x", "rate_limit": {"rate": "10/s", "burst": 1, "on_limit": "wait"}}
    )
    assert ctx.upstream.rate_limit is not None
    limiter = LocalLimiter(ctx.upstream.rate_limit, clock=clock, sleep=stuck_sleep)
    f = make_filter(limiter, Metrics(), "test", "test")
    await outcomes(f, 1)
    waiter = asyncio.create_task(outcomes(f, 1))
    async with asyncio.timeout(5):
        while limiter.waiting < 1:  # noqa: ASYNC110 - no event to wait on
            await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.waiting == 0
    # the token booked for 0.1 s is free again: the next booking waits 0.1 s, not 0.2 s
    assert limiter.buckets.reserve("", 0.0, 1.0) == pytest.approx(0.1)


async def test_wait_refuses_at_once_when_the_deadline_comes_first() -> None:
    """A call whose deadline passes before its token comes gets 429 now, not a timeout later."""
    clock = Clock()
    f, _ = limiter_for(clock, rate="1/s", burst=1, on_limit="wait", max_wait="10s")
    await outcomes(f, 1)
    ex = make_exchange()
    ex.deadline = asyncio.get_running_loop().time() + 0.5
    with pytest.raises(RateLimited):
        await f(ex, responder(200))
    assert clock.slept == []


async def test_shadow_counts_what_reject_would_refuse_and_refuses_nothing() -> None:
    """shadow: every call passes; the metric says how many a real limit would have refused."""
    clock = Clock()
    f, metrics = limiter_for(clock, rate="10/s", burst=5, shadow=True)
    assert await outcomes(f, 20) == [200] * 20
    assert limited(metrics, "shadow") == 15
    assert limited(metrics, "reject") == 0


@pytest.mark.parametrize(
    ("key", "a", "b"),
    [
        ("header:x-tenant", {"headers": {"x-tenant": "acme"}}, {"headers": {"x-tenant": "other"}}),
        ("peer", {"client": "10.0.0.1:5000"}, {"client": "10.0.0.2:5000"}),
    ],
)
async def test_keyed_limits_count_each_key_apart(key: str, a: Any, b: Any) -> None:
    """Per tenant header or per app address: one flood does not limit the others."""
    clock = Clock()
    f, _ = limiter_for(clock, rate="1/s", burst=2, key=key)
    assert await outcomes(f, 3, **a) == [200, 200, 429]
    assert await outcomes(f, 3, **b) == [200, 200, 429]


async def test_peer_key_ignores_the_port() -> None:
    """One app reconnecting from new ports is still one app."""
    clock = Clock()
    f, _ = limiter_for(clock, rate="1/s", burst=1, key="peer")
    assert await outcomes(f, 1, client="10.0.0.1:5000") == [200]
    assert await outcomes(f, 1, client="10.0.0.1:5001") == [429]


async def test_a_missing_header_shares_one_bucket() -> None:
    """Calls without the key header are limited together, not let through unlimited."""
    clock = Clock()
    f, _ = limiter_for(clock, rate="1/s", burst=2, key="header:x-tenant")
    assert await outcomes(f, 3) == [200, 200, 429]


async def test_keys_are_bounded_by_max_keys() -> None:
    """A client inventing header values cannot grow memory past max_keys buckets."""
    clock = Clock()
    ctx = make_route_context(
        {"url": "http://x", "rate_limit": {"rate": "1/s", "key": "header:x-id", "max_keys": 50}}
    )
    assert ctx.upstream.rate_limit is not None
    limiter = LocalLimiter(ctx.upstream.rate_limit, clock=clock)
    f = make_filter(limiter, Metrics(), "test", "test")
    for i in range(500):
        await f(make_exchange(headers={"x-id": f"v{i}" * 40}), responder(200))
    assert len(limiter.buckets) == 50


async def test_route_key_gives_each_route_its_bucket() -> None:
    """key: route: the upstream's routes do not share one budget."""
    clock = Clock()
    ctx = make_route_context(
        {"url": "http://x", "rate_limit": {"rate": "1/s", "burst": 1, "key": "route"}}
    )
    assert ctx.upstream.rate_limit is not None
    limiter = LocalLimiter(ctx.upstream.rate_limit, clock=clock)
    one = make_filter(limiter, Metrics(), "test", "one")
    two = make_filter(limiter, Metrics(), "test", "two")

    async def status(f: Any) -> int:
        try:
            return (await f(make_exchange(), responder(200))).status  # type: ignore[no-any-return]
        except RateLimited as e:
            return e.status

    assert [await status(one), await status(two), await status(one)] == [200, 200, 429]


async def test_describe_shows_the_live_state() -> None:
    """/upstreams shows the policy and how many keys and waiting calls it holds."""
    clock = Clock()
    ctx = make_route_context({"url": "http://x", "rate_limit": {"rate": "5/s", "key": "peer"}})
    assert ctx.upstream.rate_limit is not None
    limiter = LocalLimiter(ctx.upstream.rate_limit, clock=clock)
    f = make_filter(limiter, Metrics(), "test", "test")
    await f(make_exchange(client="10.0.0.1:1"), responder(200))
    assert limiter.describe() == {
        "rate": "5/s",
        "burst": 5,
        "key": "peer",
        "keys": 1,
        "on_limit": "reject",
        "waiting": 0,
        "shadow": False,
    }


async def test_admitted_calls_reach_the_next_filter_untouched() -> None:
    """The limiter adds nothing to a call it lets through."""
    clock = Clock()
    f, _ = limiter_for(clock, rate="5/s")
    seen: list[Exchange] = []
    ex = make_exchange(headers={"a": "b"})
    resp: Response = await f(ex, responder(204, seen=seen))
    assert resp.status == 204 and seen == [ex] and list(ex.headers) == [("a", "b")]
