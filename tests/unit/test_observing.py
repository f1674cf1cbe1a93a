"""Observing filters fused into one frame behave exactly as the same filters nested. No sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.chain import Filter, Handler, compose, fuse
from sidecar.errors import RateLimited, UpstreamTimeout
from sidecar.exchange import Exchange, Response
from sidecar.observing import Absorbing, Observer, ObserverOf, Observing, Rescuer, RescuerOf
from sidecar.testing import make_exchange, make_route_context
from tests.unit.chain_harness import route_filters


def recording(name: str, log: list[str], raises: str = "") -> Observer:
    """An observer writing what it is told into a shared log under its name; with ``raises``
    (``begin``, ``ok`` or ``error``) it then raises there, as a buggy observer would."""

    def begin(exchange: Exchange) -> None:
        log.append(f"{name}.begin")
        if raises == "begin":
            raise KeyError("begin")

    def ok(exchange: Exchange, resp: Response) -> None:
        log.append(f"{name}.ok {resp.status}")
        if raises == "ok":
            raise ValueError("ok")

    def error(exchange: Exchange, e: BaseException) -> None:
        log.append(f"{name}.error {type(e).__name__}")
        if raises == "error":
            raise LookupError("error")

    return ObserverOf(begin, ok, error)


def answering(log: list[str]) -> Rescuer:
    def rescued(exchange: Exchange, e: BaseException) -> Response:
        log.append(f"rescue {type(e).__name__}")
        if isinstance(e, asyncio.CancelledError):
            raise e
        return Response(503, body=b"rescued")

    return RescuerOf(rescued)


def nested_equivalent(log: list[str]) -> list[Filter]:
    """The same three as ordinary coroutine filters: what fusing must not change."""

    async def rescue(ex: Exchange, call_next: Handler) -> Response:
        try:
            return await call_next(ex)
        except asyncio.CancelledError:
            log.append("rescue CancelledError")
            raise
        except BaseException as e:
            log.append(f"rescue {type(e).__name__}")
            return Response(503, body=b"rescued")

    def observing(name: str) -> Filter:
        async def f(ex: Exchange, call_next: Handler) -> Response:
            log.append(f"{name}.begin")
            try:
                resp = await call_next(ex)
            except BaseException as e:
                log.append(f"{name}.error {type(e).__name__}")
                raise
            log.append(f"{name}.ok {resp.status}")
            return resp

        return f

    return [rescue, observing("outer"), observing("inner")]


def fused_three(log: list[str]) -> list[Filter]:
    return [
        Observing((), answering(log)),
        Observing((recording("outer", log),)),
        Observing((recording("inner", log),)),
    ]


def terminal_of(outcome: Any) -> Handler:
    async def terminal(ex: Exchange) -> Response:
        if isinstance(outcome, BaseException):
            raise outcome
        return Response(outcome, body=b"")

    return terminal


@pytest.mark.parametrize(
    "outcome",
    [200, 502, UpstreamTimeout("slow"), RuntimeError("bug"), asyncio.CancelledError()],
    ids=["ok", "5xx", "decision", "bug", "cancelled"],
)
async def test_fused_observers_see_and_answer_what_nested_filters_would(outcome: Any) -> None:
    """Each observer's begin runs outermost first, its ok/error innermost first, the rescue
    last, and the app gets the same answer (or the same cancellation) as with nested filters."""
    results = []
    for build in (nested_equivalent, fused_three):
        log: list[str] = []
        handler = compose(build(log), terminal_of(outcome))
        try:
            resp = await handler(make_exchange())
            answer: object = (resp.status, resp.body)
        except asyncio.CancelledError:
            answer = "cancelled"
        results.append((log, answer))
    assert results[0] == results[1]


def test_adjacent_observing_filters_become_one_and_others_stay_put() -> None:
    """A run of observing filters is one filter; an ordinary filter between two runs keeps
    them apart, and a rescuer is never fused inside another filter."""
    log: list[str] = []

    async def plain(ex: Exchange, call_next: Handler) -> Response:
        return await call_next(ex)

    a, b, c = (Observing((recording(n, log),)) for n in "abc")
    rescuer = Observing((), answering(log))
    out = fuse([rescuer, a, b, plain, c, Observing((), answering(log))])
    assert len(out) == 4
    first = out[0]
    assert isinstance(first, Observing)
    assert first.rescuer is rescuer.rescuer
    assert first.observers == a.observers + b.observers
    assert out[1] is plain and out[2] is c and isinstance(out[3], Observing)


@pytest.mark.parametrize(
    ("upstream", "fused_names"),
    [
        ({}, ["rescue", "access_log", "metrics", "concurrency", "timeout"]),
        (
            {"rate_limit": {"rate": "100/s"}},
            ["rescue", "access_log", "metrics", "rate_limit", "concurrency", "timeout"],
        ),
        ({"concurrency": {"queue": 10}}, ["rescue", "access_log", "metrics"]),
    ],
    ids=["defaults", "local-rate-limit", "queued-concurrency"],
)
def test_the_outer_filters_of_a_route_run_in_one_frame(
    upstream: dict[str, Any], fused_names: list[str]
) -> None:
    """rescue, the access log, metrics, the local rate limit, the concurrency limit and the
    deadline (the outer filters of a route) are one filter once composed; a limit that may
    wait (a queue) keeps its own frame; retry runs the circuit breaker in its own."""
    names, filters = route_filters(make_route_context({"url": "http://pay.internal", **upstream}))
    n = len(fused_names)
    assert names[:n] == fused_names
    assert names[-2:] == ["retry", "circuit_breaker"]
    fused = fuse(filters)
    outer = fused[0]
    assert isinstance(outer, Observing)
    assert outer.rescuer is not None and len(outer.observers) == n - 1
    # what follows is unchanged, but retry, which now runs the breaker in its own frame
    assert fused[1:-1] == filters[n:-2]
    assert isinstance(filters[-2], Absorbing) and isinstance(filters[-1], Observing)
    assert not isinstance(fused[-1], Absorbing | Observing)


async def test_a_decision_is_counted_logged_and_answered_by_the_fused_default_filters() -> None:
    """Through the real default filters: a sidecar decision below them still reaches the app
    as its status with x-sidecar-error, is counted with that status and not rescued as a bug."""
    ctx = make_route_context({"url": "http://pay.internal"})
    _, filters = route_filters(ctx)
    handler = compose(filters[:3], terminal_of(RateLimited("no")))
    resp = await handler(make_exchange())
    assert resp.status == 429
    assert resp.headers.get("x-sidecar-error") == "rate_limited"
    sample = ctx.metrics.requests.labels(ctx.listener, ctx.upstream_name, ctx.route, "429")
    assert sample.value == 1


def nested_buggy(log: list[str], where: str) -> list[Filter]:
    """The nested form of a buggy middle observer: its bug raised where a coroutine's would."""
    rescue, outer, inner = nested_equivalent(log)

    async def middle(ex: Exchange, call_next: Handler) -> Response:
        log.append("middle.begin")
        if where == "begin":
            raise KeyError("begin")
        try:
            resp = await call_next(ex)
        except BaseException as e:
            log.append(f"middle.error {type(e).__name__}")
            if where == "error":
                raise LookupError("error") from None
            raise
        log.append(f"middle.ok {resp.status}")
        if where == "ok":
            raise ValueError("ok")
        return resp

    return [rescue, outer, middle, inner]


def fused_buggy(log: list[str], where: str) -> list[Filter]:
    return [
        Observing((), answering(log)),
        Observing((recording("outer", log),)),
        Observing((recording("middle", log, where),)),
        Observing((recording("inner", log),)),
    ]


@pytest.mark.parametrize("where", ["begin", "ok", "error"])
@pytest.mark.parametrize("outcome", [200, RuntimeError("upstream bug")], ids=["ok", "bug"])
async def test_an_observer_that_raises_hands_its_error_outward_as_a_nested_filter(
    where: str, outcome: Any
) -> None:
    """A bug in one observer is seen by the observers outside it and answered by the rescue,
    exactly as when the same code ran as nested filters (not lost, not a dropped connection)."""
    results = []
    for build in (nested_buggy, fused_buggy):
        log: list[str] = []
        handler = compose(build(log, where), terminal_of(outcome))
        resp = await handler(make_exchange())
        results.append((log, resp.status, resp.body))
    assert results[0] == results[1]
    bug_ran = where != "error" or isinstance(outcome, BaseException)
    assert results[1][1] == (503 if bug_ran else 200)  # the rescue answered the bug


async def through_retry(retry: Filter, statuses: list[Any], absorbed: bool) -> tuple[Any, ...]:
    """What the attempts did and what the app got, with a recording observer right inside
    ``retry``: taken into retry's frame, or kept apart as a plain filter of its own."""
    log: list[str] = []
    left = list(statuses)

    async def terminal(ex: Exchange) -> Response:
        outcome = left.pop(0) if len(left) > 1 else left[0]
        log.append(f"upstream {outcome}")
        if outcome == "boom":
            raise UpstreamTimeout("slow")
        return Response(outcome, body=b"")

    observing = Observing((recording("breaker", log),))

    def apart(ex: Exchange, call_next: Handler) -> Any:
        return observing(ex, call_next)

    chain: list[Filter] = [retry, observing if absorbed else apart]
    assert len(fuse(chain)) == (1 if absorbed else 2)
    resp = await compose(chain, terminal)(make_exchange())
    return tuple(log), resp.status


@pytest.mark.parametrize(
    "statuses",
    [[200], [503, 200], [503, 503, 503], ["boom", 200]],
    ids=["first", "retried", "exhausted", "error-then-ok"],
)
async def test_retry_runs_the_observers_inside_it_as_the_nested_filter_would(
    statuses: list[Any],
) -> None:
    """Each attempt passes the observers right inside retry (the circuit breaker) the same way,
    whether retry runs them in its own frame or they are a filter of their own."""
    upstream = {
        "url": "http://pay.internal",
        # a budget no test run spends: both runs share this retry filter's budget
        "retry": {
            "attempts": 3,
            "backoff": {"base": "1ms", "max": "1ms"},
            "budget": {"min_retries": 100},
        },
    }
    _, filters = route_filters(make_route_context(upstream))
    retry = next(f for f in filters if isinstance(f, Absorbing))
    absorbed = await through_retry(retry, statuses, True)
    assert absorbed == await through_retry(retry, statuses, False)
    log, _ = absorbed
    attempts = len([x for x in log if x.startswith("upstream")])
    assert attempts == min(len(statuses), 3) and len(log) == 3 * attempts
