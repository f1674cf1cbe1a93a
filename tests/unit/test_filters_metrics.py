"""The ``metrics`` filter: what `/metrics` says about calls is what the app got."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import Overloaded, UpstreamConnectError
from sidecar.exchange import Exchange, Response
from sidecar.filters import metrics
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, make_route_context, responder

LABELS = {"listener": "http", "upstream": "pay", "route": "pay-route"}


def value(m: Metrics, name: str, **labels: str) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def requests(m: Metrics, code: str) -> float:
    return value(m, "sidecar_requests_total", **LABELS, code=code)


def in_flight(m: Metrics) -> float:
    return value(m, "sidecar_requests_in_flight", listener="http", upstream="pay")


def make(m: Metrics):  # type: ignore[no-untyped-def]
    return metrics.factory(make_route_context(name="pay", route="pay-route", metrics=m))


def raising(error: BaseException):  # type: ignore[no-untyped-def]
    async def call_next(exchange: Exchange) -> Response:
        raise error

    return call_next


async def test_counts_successes_by_status_and_times_them() -> None:
    """`sidecar_requests_total` and the duration histogram count every answered call."""
    m = Metrics()
    f = make(m)
    for status in (200, 200, 404):
        await f(make_exchange(), responder(status))
    assert requests(m, "200") == 2
    assert requests(m, "404") == 1
    assert value(m, "sidecar_request_duration_seconds_count", **LABELS) == 3
    assert value(m, "sidecar_request_duration_seconds_sum", **LABELS) >= 0


async def test_counts_sidecar_errors_with_their_status_and_reason() -> None:
    """A sidecar decision counts with the status the app got and its `x-sidecar-error` reason."""
    m = Metrics()
    f = make(m)
    for error in (UpstreamConnectError("down"), UpstreamConnectError("down"), Overloaded("full")):
        with pytest.raises(type(error)):
            await f(make_exchange(), raising(error))
    assert requests(m, "502") == 2
    assert requests(m, "503") == 1
    errors = "sidecar_errors_total"
    assert value(m, errors, listener="http", upstream="pay", reason="upstream_connect") == 2
    assert value(m, errors, listener="http", upstream="pay", reason="overloaded") == 1


async def test_counts_unexpected_errors_as_500_internal_and_cancellations_as_499() -> None:
    """A bug counts as the 500 the app gets; an app that went away as 499 (nginx's code)."""
    m = Metrics()
    f = make(m)
    with pytest.raises(KeyError):
        await f(make_exchange(), raising(KeyError("bug")))
    with pytest.raises(asyncio.CancelledError):
        await f(make_exchange(), raising(asyncio.CancelledError()))
    assert requests(m, "500") == 1
    assert requests(m, "499") == 1
    assert value(m, "sidecar_errors_total", listener="http", upstream="pay", reason="internal") == 1
    assert value(m, "sidecar_request_duration_seconds_count", **LABELS) == 2


async def test_in_flight_is_up_during_the_call_and_back_to_zero_after_any_outcome() -> None:
    """The in-flight gauge never leaks: success, error and cancellation all bring it back."""
    m = Metrics()
    f = make(m)
    during: list[float] = []
    release = asyncio.Event()

    async def slow(exchange: Exchange) -> Response:
        during.append(in_flight(m))
        await release.wait()
        return Response(200)

    calls = [asyncio.create_task(f(make_exchange(), slow)) for _ in range(3)]
    async with asyncio.timeout(5):
        while len(during) < 3:
            await asyncio.sleep(0)
    assert in_flight(m) == 3
    release.set()
    await asyncio.gather(*calls)
    assert in_flight(m) == 0
    with pytest.raises(UpstreamConnectError):
        await f(make_exchange(), raising(UpstreamConnectError("x")))

    async def forever(exchange: Exchange) -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    hung = asyncio.create_task(f(make_exchange(), forever))
    async with asyncio.timeout(5):
        while in_flight(m) != 1:
            await asyncio.sleep(0)
    hung.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hung
    assert in_flight(m) == 0
