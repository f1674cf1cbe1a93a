"""A per-minute global quota shared through a real redis-server admits its count at once.

Two sidecar processes share `global_rate_limit: {rate: 10/min}` with no `burst`: a flood of 40
rapid calls across both gets exactly 10 through (the quota), not 1 (one second's worth).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from sidecar.testing import RedisServer, SidecarProcess


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A private redis-server for this test (the test fails if it cannot start)."""
    with RedisServer() as server:
        yield server


async def test_two_sidecars_sharing_ten_per_minute_admit_exactly_ten_of_forty(
    redis: RedisServer,
) -> None:
    """Users of per-minute quotas (Kong, LiteLLM rpm) get N calls per period, not one."""
    config = {
        "telemetry": {"access_log": {"enabled": False}},
        # the stops below need not wait for the app to go quiet (2 s each, one after the other)
        "shutdown": {"app_quiet_period": "0s"},
        # a generous budget: on a busy machine no decision may fail open and blur the count
        "ratelimit_backends": {"shared": {"type": "redis", "url": redis.url, "timeout": "2s"}},
        "upstreams": {
            "api": {"adapter": "echo", "global_rate_limit": {"backend": "shared", "rate": "10/min"}}
        },
    }
    procs = [SidecarProcess(config), SidecarProcess(config)]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in procs))
        async with httpx.AsyncClient(timeout=10) as client:
            start = time.monotonic()
            answers = await asyncio.gather(
                *(client.get(f"{procs[i % 2].http_url}/api/x") for i in range(40))
            )
            elapsed = time.monotonic() - start
    finally:
        for p in procs:
            p.terminate()
    # one token comes back every 6 s: the count is exact only if the flood took less
    assert elapsed < 5.0, elapsed
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(429) == 30, statuses
    refused = [r for r in answers if r.status_code == 429]
    assert all(1 <= int(r.headers["retry-after"]) <= 6 for r in refused)
    assert {r.headers["x-sidecar-error"] for r in refused} == {"rate_limited"}
