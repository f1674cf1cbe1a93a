"""Without `burst`, a limit admits its rate's count for its period at once (10/min → 10)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.api import Limit
from sidecar.config.policies import (
    GlobalRateLimitPolicy,
    RateLimitBackendConfig,
    RateLimitPolicy,
)
from sidecar.errors import RateLimited
from sidecar.filters.rate_limit import LocalLimiter, make_filter
from sidecar.ratelimit.local_backend import LocalBackend
from sidecar.ratelimit.summary import limit_lines
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, make_route_context, responder

from .test_rate_limit import Clock


@pytest.mark.parametrize(
    ("rate", "burst"),
    [("10/min", 10), ("100/s", 100), ("1000/h", 1000), ("0.5/s", 1), ("1.5/min", 2), ("3/ms", 3)],
)
def test_the_default_burst_is_the_rates_count_per_period(rate: str, burst: int) -> None:
    """A quota of N calls per period admits N at once, locally and globally alike."""
    assert RateLimitPolicy(rate=rate).bucket_size == burst
    assert GlobalRateLimitPolicy(backend="b", rate=rate).bucket_size == burst


def test_an_explicit_burst_wins() -> None:
    """`burst` set in the file is the bucket's size, smaller or larger than the count."""
    assert RateLimitPolicy(rate="10/min", burst=1).bucket_size == 1
    assert GlobalRateLimitPolicy(backend="b", rate="10/min", burst=30).bucket_size == 30


def limiter(clock: Clock, **policy: Any) -> Any:
    ctx = make_route_context({"url": "http://127.0.0.1:9", "rate_limit": policy})
    assert ctx.upstream.rate_limit is not None
    limiter = LocalLimiter(ctx.upstream.rate_limit, clock=clock, sleep=clock.sleep)
    return make_filter(limiter, Metrics(), "test", "test")


async def test_ten_per_minute_admits_ten_at_once_then_the_eleventh_waits_six_seconds() -> None:
    """reject: 10 rapid calls pass, the 11th is told to come back in 6 s (one token's worth)."""
    clock = Clock()
    f = limiter(clock, rate="10/min")
    for _ in range(10):
        assert (await f(make_exchange(), responder(200))).status == 200
    with pytest.raises(RateLimited) as e:
        await f(make_exchange(), responder(200))
    assert dict(e.value.headers)["retry-after"] == "6"
    clock.now = 5.9
    with pytest.raises(RateLimited):
        await f(make_exchange(), responder(200))
    clock.now = 6.0
    assert (await f(make_exchange(), responder(200))).status == 200


async def test_ten_per_minute_in_wait_mode_queues_the_eleventh_for_six_seconds() -> None:
    """wait: the 11th call of a burst waits ~6 s for its token instead of failing."""
    clock = Clock()
    f = limiter(clock, rate="10/min", on_limit="wait", max_wait="10s")
    for _ in range(10):
        assert (await f(make_exchange(), responder(200))).status == 200
    eleventh = asyncio.create_task(f(make_exchange(), responder(200)))
    async with asyncio.timeout(5):
        while not clock.slept:  # noqa: ASYNC110 - the fake clock has no event to wait on
            await asyncio.sleep(0)
    assert clock.slept == [pytest.approx(6.0)]
    await clock.advance_to(6.0)
    assert (await eleventh).status == 200


async def test_the_global_local_backend_admits_ten_of_forty_at_ten_per_minute() -> None:
    """The limit a global policy hands its backend admits its count at once, then refuses."""
    policy = GlobalRateLimitPolicy(backend="b", rate="10/min")
    backend = LocalBackend("b", RateLimitBackendConfig(type="local"))
    limit = Limit(policy.rate.per_second, policy.bucket_size)
    decisions = [await backend.decide("k", limit) for _ in range(40)]
    assert sum(d.allowed for d in decisions) == 10
    assert 5.0 < decisions[10].retry_after <= 6.0


def test_check_says_each_limits_burst_and_whether_it_is_the_default() -> None:
    """`sidecar check` prints one line per limit, so the burst a file gets is never a guess."""
    ctx = make_route_context(
        {
            "url": "http://127.0.0.1:9",
            "rate_limit": {"rate": "10/min"},
            "global_rate_limit": {"backend": "shared", "rate": "100/s", "burst": 5},
        },
        config={"ratelimit_backends": {"shared": {"type": "local"}}},
    )
    assert limit_lines(ctx.config) == [
        "test: rate 10/min, burst 10 (default: the rate's count per period)",
        "test: global rate 100/s on backend shared, burst 5",
    ]
