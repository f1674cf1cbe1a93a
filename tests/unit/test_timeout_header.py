"""`x-sidecar-timeout`: the app's own, shorter deadline for one call."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import BadRequest, UpstreamTimeout
from sidecar.exchange import Exchange, Response
from sidecar.filters import rescue, timeout
from sidecar.filters.timeout import parse_timeout_header
from sidecar.testing import make_exchange, make_route_context, responder


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("250ms", 0.25), ("2s", 2.0), ("1.5", 1.5), ("3", 3.0), ("1m", 60.0), (" 10ms ", 0.01)],
)
def test_durations_the_header_accepts(value: str, seconds: float) -> None:
    """Milliseconds, seconds (with or without `s`) and minutes, like the config's durations."""
    assert parse_timeout_header(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "0", "0ms", "-1s", "soon", "1h", "1e3", "1 s", "inf", "2s3"])
def test_values_the_header_refuses(value: str) -> None:
    """Zero, negative, unit-less garbage or unknown units are not guessed at."""
    assert parse_timeout_header(value) is None


async def test_a_shorter_app_deadline_wins_and_the_header_is_not_forwarded() -> None:
    """The app bounds its own call; the upstream never sees the sidecar's header."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "15s"}))
    seen: list[Exchange] = []
    ex = make_exchange(headers={"X-Sidecar-Timeout": "250ms", "accept": "*/*"})
    now = asyncio.get_running_loop().time()
    await f(ex, responder(seen=seen))
    assert ex.deadline is not None and now + 0.25 <= ex.deadline < now + 0.5
    assert "x-sidecar-timeout" not in seen[0].headers
    assert seen[0].headers.get("accept") == "*/*"


async def test_a_longer_app_deadline_does_not_extend_the_upstream_timeout() -> None:
    """The operator's `timeout` stays the ceiling, whatever the app asks."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "1s"}))
    ex = make_exchange(headers={"x-sidecar-timeout": "60s"})
    now = asyncio.get_running_loop().time()
    await f(ex, responder())
    assert ex.deadline is not None and ex.deadline <= now + 1.5


async def test_the_app_deadline_fires_with_504() -> None:
    """Past the app's deadline the call is cut and answered 504 `upstream_timeout`."""
    f = timeout.factory(make_route_context({"url": "http://127.0.0.1:9", "timeout": "15s"}))

    async def hang(exchange: Exchange) -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    ex = make_exchange(headers={"x-sidecar-timeout": "30ms"})
    with pytest.raises(UpstreamTimeout) as info:
        await asyncio.wait_for(f(ex, hang), 5)
    assert "0.03s" in info.value.detail


async def test_a_malformed_value_is_400_bad_request_and_keeps_the_connection() -> None:
    """A typo in the header is reported to the app, not silently turned into the default."""
    f = timeout.factory(make_route_context())
    seen: list[Exchange] = []
    ex = make_exchange(headers={"x-sidecar-timeout": "fast"})
    with pytest.raises(BadRequest) as info:
        await f(ex, responder(seen=seen))
    assert seen == [] and not info.value.close_connection
    assert "x-sidecar-timeout" in info.value.detail
    resp = await rescue.factory(make_route_context())(ex, lambda e: f(e, responder()))
    assert (resp.status, resp.headers.get("x-sidecar-error"), resp.close) == (
        400,
        "bad_request",
        False,
    )


async def test_a_repeated_header_takes_the_shortest() -> None:
    """Sent twice (two layers of the app each set one), the tighter deadline is kept."""
    f = timeout.factory(make_route_context())
    ex = make_exchange(headers=[("x-sidecar-timeout", "5s"), ("x-sidecar-timeout", "100ms")])
    now = asyncio.get_running_loop().time()
    await f(ex, responder())
    assert ex.deadline is not None and ex.deadline < now + 1
    assert "x-sidecar-timeout" not in ex.headers
