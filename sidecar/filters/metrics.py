"""``metrics``: count every call and time it to the response head, per route.

What it records, per call: ``sidecar_requests_total{listener,upstream,route,code}`` with the status
the app gets (a sidecar decision counts with its own status, an unexpected error as 500, a call
whose app went away as 499), ``sidecar_request_duration_seconds``, and
``sidecar_requests_in_flight`` up for the call's duration; a sidecar decision also bumps
``sidecar_errors_total{listener,upstream,reason}``.

On a front that answers in gRPC terms (:attr:`~sidecar.api.FrontTraits.grpc`: the gRPC port)
``code`` is the gRPC status code the app got, in decimal (``"0"``, ``"14"``; a call the app
cancelled ``"1"``), counted when the call ends, since a streamed answer's status comes last: the
filter adds an ``on_complete`` callback, which the front runs. The HTTP path does not pay for it
(the variant is chosen when the chain is composed).

Children are resolved when the chain is composed (:class:`~sidecar.telemetry.metrics.RouteMetrics`),
so a successful call costs a clock read, a gauge up/down, one histogram observe and one counter
bump: no ``labels()`` lookup, and no lock (:mod:`sidecar.telemetry.families`: plain numbers
updated on the event loop). Not here: the metric families themselves
(:mod:`sidecar.telemetry.metrics`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter, time
from typing import Any, Final

from ..api import RouteContext
from ..chain import Filter
from ..errors import SidecarError
from ..exchange import Exchange, Response
from ..grpc.wire import grpc_status
from ..observing import Observer, Observing
from ..telemetry.families import CounterChild, HistogramChild
from ..telemetry.metrics import RouteMetrics

#: Status counted for a call whose app connection went away first (nginx's 499).
CLIENT_CLOSED: Final = 499
#: gRPC codes counted for a call the app cancelled, and for one the rescue filter answers.
GRPC_CANCELLED, GRPC_INTERNAL = 1, 13


def _error_recorder(ctx: RouteContext) -> Callable[[Exchange, str, int, str], None]:
    """``error(exchange, reason, status, detail)``: count a sidecar decision in
    ``sidecar_errors_total`` and keep it for the dashboard's "recent errors" (a bounded deque).
    ``status`` is what the app got: the HTTP status, or the gRPC code on a gRPC front."""
    errors = ctx.metrics.errors
    recent = ctx.metrics.recent_errors.append
    listener, upstream, route = ctx.listener, ctx.upstream_name, ctx.route
    # reason -> child; bounded by the set of SidecarError codes
    reasons: dict[str, Any] = {}

    def error(exchange: Exchange, reason: str, status: int, detail: str) -> None:
        child = reasons.get(reason)
        if child is None:
            child = reasons[reason] = errors.labels(listener, upstream, reason)
        child.inc()
        recent(
            {
                "ts": time(),
                "listener": listener,
                "upstream": upstream,
                "route": route,
                "reason": reason,
                "status": status,
                "method": exchange.method,
                "path": exchange.path[:200],
                "detail": detail[:200],
            }
        )

    return error


def factory(ctx: RouteContext) -> Filter:
    rm = ctx.metrics.route(ctx.listener, ctx.upstream_name, ctx.route)
    kind = _GrpcCallMetrics if ctx.front.grpc else _CallMetrics
    # an observer (sidecar.observing): fused with the access log and rescue into one frame
    return Observing((kind(rm, _error_recorder(ctx)),))


class _CallMetrics(Observer):
    """An HTTP front's: ``code`` is the status the app got."""

    def __init__(self, rm: RouteMetrics, error: Callable[[Exchange, str, int, str], None]) -> None:
        #: the child itself, not its bound method: a compiled build calls it directly
        self.duration: HistogramChild = rm.duration
        self.in_flight = rm.in_flight  # a plain number on the loop thread: no lock, no call
        self.count = rm.count
        self.requests = rm.requests
        #: status -> its requests_total child, bumped here (RouteMetrics is not compiled)
        self.codes: dict[int, CounterChild] = {}
        self.error_of = error

    def begin(self, exchange: Exchange) -> None:
        self.in_flight.value += 1

    def ok(self, exchange: Exchange, resp: Response) -> None:
        self.in_flight.value -= 1
        self.duration.observe(perf_counter() - exchange.start)
        status = resp.status
        child = self.codes.get(status)
        if child is None:
            child = self.codes[status] = self.requests(status)
        child.value += 1

    def error(self, exchange: Exchange, e: BaseException) -> None:
        if isinstance(e, SidecarError):
            self.count(e.status)
            self.error_of(exchange, e.code, e.status, e.detail)
        elif isinstance(e, asyncio.CancelledError):
            self.count(CLIENT_CLOSED)
        elif isinstance(e, Exception):
            self.count(500)  # the rescue filter answers it with 500 internal
            self.error_of(exchange, "internal", 500, "unexpected error in the sidecar")
        self.in_flight.value -= 1
        self.duration.observe(perf_counter() - exchange.start)


class _GrpcCallMetrics(_CallMetrics):
    """A gRPC front's: ``code`` is the gRPC status code the app got, counted when the call
    ends (its trailers are known only then: the front runs ``on_complete``); the duration is
    still to the response head."""

    def ok(self, exchange: Exchange, resp: Response) -> None:
        self.in_flight.value -= 1
        self.duration.observe(perf_counter() - exchange.start)
        count = self.count

        def done(ok: bool, sent: int) -> None:
            count(_code_of(resp, ok))

        callbacks = resp.on_complete
        if callbacks is None:
            resp.on_complete = [done]
        else:
            callbacks.append(done)

    def error(self, exchange: Exchange, e: BaseException) -> None:
        if isinstance(e, SidecarError):
            self.count(e.grpc_code)
            self.error_of(exchange, e.code, e.grpc_code, e.detail)
        elif isinstance(e, asyncio.CancelledError):
            self.count(GRPC_CANCELLED)
        elif isinstance(e, Exception):
            self.count(GRPC_INTERNAL)
            self.error_of(exchange, "internal", GRPC_INTERNAL, "unexpected error in the sidecar")
        self.in_flight.value -= 1
        self.duration.observe(perf_counter() - exchange.start)


def _code_of(resp: Response, ok: bool) -> int:
    """The code the app got; a call cut before its status counts as CANCELLED."""
    code = grpc_status(resp)
    if code is None:
        return GRPC_INTERNAL if ok else GRPC_CANCELLED
    return code
