"""The ``circuit_breaker`` filter: what counts as a failure, the answer while open, one breaker
per upstream, and the transitions' log lines and counters."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import pytest

from sidecar.api import RouteContext, SharedState
from sidecar.api.shared import SharedStateBuilder
from sidecar.chain import Filter, Handler
from sidecar.errors import (
    CircuitOpen,
    Overloaded,
    SidecarError,
    UpstreamConnectError,
    UpstreamReset,
    UpstreamTimeout,
)
from sidecar.exchange import Exchange, Response
from sidecar.filters import circuit_breaker, rescue
from sidecar.resilience.breaker import CLOSED, OPEN, CircuitBreaker
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_exchange, make_route_context, responder


def Shared() -> SharedStateBuilder:  # noqa: N802 (reads as the noun it stands for)
    """What a running sidecar keeps while it composes: one object per (kind, upstream)."""
    return SharedStateBuilder(SharedState())


def context(
    policy: dict[str, Any] | None = None,
    *,
    shared: SharedStateBuilder | None = None,
    metrics: Metrics | None = None,
    route: str = "pay",
) -> RouteContext:
    up: dict[str, Any] = {"url": "http://127.0.0.1:9", "retry": {"enabled": False}}
    if policy is not None:
        up["circuit_breaker"] = policy
    ctx = make_route_context(up, name="pay", route=route, metrics=metrics)
    return dataclasses.replace(ctx, shared_state=shared or Shared())


def build(ctx: RouteContext) -> tuple[Filter, CircuitBreaker]:
    f = circuit_breaker.factory(ctx)
    assert f is not None
    b = ctx.shared(circuit_breaker.BREAKER, ctx.upstream.circuit_breaker, lambda: None)
    assert isinstance(b, CircuitBreaker)
    return f, b


def raising(error: BaseException) -> Handler:
    async def call_next(exchange: Exchange) -> Response:
        raise error

    return call_next


async def outcome(f: Filter, call_next: Handler) -> Response | BaseException:
    try:
        return await f(make_exchange(upstream="pay"), call_next)
    except (SidecarError, asyncio.CancelledError) as e:
        return e


async def test_upstream_failures_count_and_other_answers_do_not() -> None:
    """Connect errors, resets, timeouts and 5xx trip it (the defaults); a 404 is an answer."""
    f, b = build(context({"consecutive_failures": 4}))
    for call in (
        raising(UpstreamConnectError("refused")),
        raising(UpstreamReset("rst")),
        raising(UpstreamTimeout("slow")),
        responder(404),
        responder(503),
    ):
        await outcome(f, call)
    assert b.state == CLOSED  # the 404 broke the streak
    for _ in range(3):
        await outcome(f, responder(500))
    assert b.state == OPEN


async def test_failure_on_decides_what_counts() -> None:
    """With failure_on [connect-failure], an upstream answering 503 keeps being called."""
    f, b = build(context({"consecutive_failures": 1, "failure_on": ["connect-failure"]}))
    for _ in range(5):
        await outcome(f, responder(503))
        await outcome(f, raising(UpstreamTimeout("slow")))
    assert b.state == CLOSED
    await outcome(f, raising(UpstreamConnectError("refused")))
    assert b.state == OPEN


async def test_the_sidecars_own_decisions_and_app_cancellations_are_no_verdict() -> None:
    """An `overloaded` from the pool or an app that hung up says nothing about the upstream."""
    f, b = build(context({"consecutive_failures": 1}))
    for call in (raising(Overloaded("pool full")), raising(asyncio.CancelledError())):
        for _ in range(3):
            await outcome(f, call)
    assert b.state == CLOSED


async def test_a_call_cut_by_the_deadline_is_a_timeout_failure() -> None:
    """The `timeout` filter cancels the call below when the deadline passes: that is a failure."""
    f, b = build(context({"consecutive_failures": 1}))
    ex = make_exchange(upstream="pay")
    ex.deadline = asyncio.get_running_loop().time()  # it has passed when the cancel arrives
    with pytest.raises(asyncio.CancelledError):
        await f(ex, raising(asyncio.CancelledError()))
    assert b.state == OPEN


async def test_a_cancelled_deadline_is_no_failure_when_timeouts_do_not_count() -> None:
    """failure_on without `timeout`: a deadline cut is not held against the upstream."""
    f, b = build(context({"consecutive_failures": 1, "failure_on": ["5xx"]}))
    ex = make_exchange(upstream="pay")
    ex.deadline = asyncio.get_running_loop().time()
    with pytest.raises(asyncio.CancelledError):
        await f(ex, raising(asyncio.CancelledError()))
    assert b.state == CLOSED


async def test_open_answers_503_circuit_open_with_retry_after_without_calling_upstream() -> None:
    """While open the app gets a fast, labelled 503 and the upstream is left alone."""
    ctx = context({"consecutive_failures": 2, "open_for": "30s"})
    f, b = build(ctx)
    await outcome(f, responder(503))
    await outcome(f, responder(503))
    seen: list[Exchange] = []
    chain = rescue.factory(ctx)
    resp = await chain(make_exchange(upstream="pay"), lambda ex: f(ex, responder(200, seen=seen)))
    assert resp.status == 503
    assert resp.headers.get("x-sidecar-error") == "circuit_open"
    assert resp.headers.get("retry-after") in ("30", "29")
    assert seen == []
    assert isinstance(resp.body, bytes) and b"'pay'" in resp.body


async def test_one_breaker_per_upstream_shared_by_its_routes() -> None:
    """Failures seen through one route open the breaker for every route of the upstream."""
    shared = Shared()
    f1, b1 = build(context({"consecutive_failures": 2}, shared=shared, route="a"))
    f2, b2 = build(context({"consecutive_failures": 2}, shared=shared, route="b"))
    assert b1 is b2
    await outcome(f1, responder(502))
    await outcome(f2, responder(502))
    assert isinstance(await outcome(f1, responder(200)), CircuitOpen)


async def test_disabled_leaves_the_chain() -> None:
    """`enabled: false` costs nothing: the filter is not in the chain."""
    assert circuit_breaker.factory(context({"enabled": False})) is None


async def test_each_transition_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    """Operators get one log line and one counter bump per transition, not one per call."""
    m = Metrics()
    f, b = build(context({"consecutive_failures": 2}, metrics=m))
    caplog.set_level(logging.INFO, logger="sidecar.circuit_breaker")
    for _ in range(2):
        await outcome(f, responder(503))
    for _ in range(10):
        assert isinstance(await outcome(f, responder(200)), CircuitOpen)
    records = [r for r in caplog.records if r.name == "sidecar.circuit_breaker"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == "circuit breaker open"
    assert records[0].fields == {  # type: ignore[attr-defined]
        "upstream": "pay",
        "from": "closed",
        "to": "open",
        "reason": "2 consecutive failures (last: 503)",
    }
    labels = {"upstream": "pay", "to": "open"}
    assert m.registry.get_sample_value("sidecar_circuit_transitions_total", labels) == 1.0
