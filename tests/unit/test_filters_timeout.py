"""The ``timeout`` filter: one deadline for the whole call, 504 `upstream_timeout` past it."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import UpstreamTimeout
from sidecar.exchange import Exchange, Response
from sidecar.filters import rescue, timeout
from sidecar.testing import make_exchange, make_route_context, responder


def hanging(seen: dict[str, object]):  # type: ignore[no-untyped-def]
    """A call_next that never answers; it records the deadline it saw and its cancellation."""

    async def call_next(exchange: Exchange) -> Response:
        seen["deadline"] = exchange.deadline
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["cancelled"] = True
            raise
        raise AssertionError("unreachable")

    return call_next


async def test_fires_with_504_upstream_timeout_and_cancels_the_work_below() -> None:
    """A slow upstream costs the app at most the upstream's `timeout`, then a clear 504."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "50ms"}))
    seen: dict[str, object] = {}
    with pytest.raises(UpstreamTimeout) as info:
        await asyncio.wait_for(f(make_exchange(), hanging(seen)), 5)
    assert info.value.status == 504 and info.value.code == "upstream_timeout"
    assert "0.05s" in info.value.detail
    assert seen["cancelled"] is True
    # through rescue, as in every chain: the response says who decided
    chain_rescue = rescue.factory(make_route_context())
    resp = await chain_rescue(make_exchange(), lambda ex: f(ex, hanging({})))
    assert (resp.status, resp.headers.get("x-sidecar-error")) == (504, "upstream_timeout")


async def test_sets_the_deadline_for_the_filters_below() -> None:
    """Filters and the adapter below bound their own waits by `exchange.deadline`."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "7s"}))
    seen: list[Exchange] = []
    ex = make_exchange()
    before = asyncio.get_running_loop().time()
    resp = await f(ex, responder(200, seen=seen))
    after = asyncio.get_running_loop().time()
    assert resp.status == 200 and seen == [ex]
    assert ex.deadline is not None
    assert before + 7 <= ex.deadline <= after + 7


async def test_a_shorter_existing_deadline_wins() -> None:
    """A caller's tighter deadline (e.g. gRPC `grpc-timeout`) is kept and enforced."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "15s"}))
    ex = make_exchange()
    ex.deadline = asyncio.get_running_loop().time() + 0.05
    tight = ex.deadline
    seen: dict[str, object] = {}
    with pytest.raises(UpstreamTimeout):
        await asyncio.wait_for(f(ex, hanging(seen)), 5)
    assert seen["deadline"] == tight


async def test_a_longer_existing_deadline_is_shortened_to_the_budget() -> None:
    """The upstream's `timeout` still bounds a call that arrived with a laxer deadline."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "2s"}))
    ex = make_exchange()
    now = asyncio.get_running_loop().time()
    ex.deadline = now + 60
    await f(ex, responder())
    assert ex.deadline is not None and ex.deadline <= now + 2.5


async def test_someone_elses_timeout_error_is_not_reported_as_upstream_timeout() -> None:
    """Only the deadline's own expiry is `upstream_timeout`; a stray TimeoutError stays a bug."""
    f = timeout.factory(make_route_context())

    async def call_next(exchange: Exchange) -> Response:
        raise TimeoutError("from a library nobody translated")

    with pytest.raises(TimeoutError) as info:
        await f(make_exchange(), call_next)
    assert not isinstance(info.value, UpstreamTimeout)
