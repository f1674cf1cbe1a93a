"""``fault``: injected delays and aborts, to see how an app copes with a slow or failing upstream
(Envoy's fault filter is the model).

Only where ``upstreams.<name>.fault`` (or ``routes[i].fault``) is configured: without it the
factory returns ``None`` and the chain has no fault filter, so calls pay nothing. With it, a
call is held ``delay.duration`` (``delay.percent`` % of calls), then answered with
``abort.status`` without calling the upstream (``abort.percent`` %): the app gets the sidecar's
error answer with ``x-sidecar-error: fault_injected`` (a gRPC status on the gRPC port).

With ``header_triggered: true`` the app may choose one call's fault itself:
``x-sidecar-fault-delay-ms`` (up to ``header_max_delay``), ``x-sidecar-fault-abort-status``
(400-599) and ``x-sidecar-fault-percent`` (0-100, default 100, for both). A call carrying any of
them gets those faults instead of the configured ones; a malformed or out-of-bounds value is
refused with 400 ``bad_request`` (the app meant something by it). The headers are the sidecar's:
wherever the filter runs they are removed before the upstream, triggered or not.

At most ``max_active`` calls of an upstream are being faulted at once; a call due a fault past
that goes through unfaulted (``sidecar_faults_skipped_total{reason="max_active"}``), so a
fault config can never hold an unbounded number of calls. Faults injected are counted in
``sidecar_faults_injected_total{upstream,route,kind}``.

Where it sits and why (:mod:`sidecar.api.phases`): inside ``timeout``, so an injected delay
counts against the call's deadline as a slow upstream's would (a delay past it ends in 504
``upstream_timeout``); outside ``retry`` and ``circuit_breaker``, so an injected abort is what
the app gets at once: it consumes no retry and never trips the real breaker.

Not here: the config's shape and bounds (:mod:`sidecar.config.fault`).
"""

from __future__ import annotations

__all__ = [
    "ABORT_HEADER",
    "ACTIVE",
    "DELAY_HEADER",
    "PERCENT_HEADER",
    "ActiveFaults",
    "FaultInjected",
    "factory",
    "make_fault",
]

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..api import RouteContext
from ..api.shared import SharedKey
from ..chain import Filter, Handler
from ..config.fault import FaultPolicy, grpc_code_of
from ..errors import BadRequest, SidecarError
from ..exchange import Exchange, Response

#: the app's per-call fault headers (read only with ``header_triggered``; never forwarded).
DELAY_HEADER = "x-sidecar-fault-delay-ms"
ABORT_HEADER = "x-sidecar-fault-abort-status"
PERCENT_HEADER = "x-sidecar-fault-percent"
_HEADERS = (DELAY_HEADER, ABORT_HEADER, PERCENT_HEADER)


class FaultInjected(SidecarError):
    """An injected abort: answered like every sidecar decision, with the configured status."""

    code = "fault_injected"

    def __init__(self, status: int, grpc_code: int) -> None:
        super().__init__(f"fault injected: abort with status {status}")
        self.status = status
        self.grpc_code = grpc_code
        # what a failing upstream's answer would be classified as: were the filter ever placed
        # inside retry or the breaker, they would see the abort as an upstream failure
        self.conditions = (str(status), f"{status // 100}xx")


class ActiveFaults:
    """The calls of one upstream being faulted now (shared by its routes, across reloads)."""

    def __init__(self) -> None:
        self.count = 0

    def describe(self) -> dict[str, int]:
        return {"active": self.count}


#: the upstream's count of calls being faulted (``/upstreams`` shows it)
ACTIVE: SharedKey[ActiveFaults] = SharedKey("fault")


@dataclass(frozen=True, slots=True)
class _Plan:
    """The faults one call is due: a delay (seconds, or 0) and an abort (status, or 0), each
    with the percent of calls that get it."""

    delay: float
    delay_percent: float
    abort: int
    abort_percent: float
    grpc_code: int


def _bad(header: str, value: str, expected: str) -> BadRequest:
    err = BadRequest(f"malformed {header}: expected {expected}, got {value[:40]!r}")
    err.close_connection = False  # the request was framed correctly: the connection stays
    return err


def plan_from_headers(exchange: Exchange, max_delay: float) -> _Plan:
    """The faults the app asked for with its headers (bounded; malformed: 400)."""
    headers = exchange.headers
    delay = 0.0
    value = headers.get(DELAY_HEADER)
    if value is not None:
        v = value.strip()
        if not (v.isascii() and v.isdigit()) or len(v) > 9 or int(v) / 1000 > max_delay:
            raise _bad(DELAY_HEADER, value, f"milliseconds from 0 to {round(max_delay * 1000)}")
        delay = int(v) / 1000
    abort = 0
    value = headers.get(ABORT_HEADER)
    if value is not None:
        v = value.strip()
        if not (v.isascii() and v.isdigit()) or len(v) > 3 or not 400 <= int(v) <= 599:
            raise _bad(ABORT_HEADER, value, "a status from 400 to 599")
        abort = int(v)
    percent = 100.0
    value = headers.get(PERCENT_HEADER)
    if value is not None:
        try:
            percent = float(value.strip())
        except ValueError:
            percent = -1.0
        if not 0.0 <= percent <= 100.0:  # NaN fails this too
            raise _bad(PERCENT_HEADER, value, "a percent from 0 to 100")
    return _Plan(delay, percent, abort, percent, grpc_code_of(abort) if abort else 0)


def configured_plan(policy: FaultPolicy) -> _Plan:
    """The faults every call is due by config."""
    delay, abort = policy.delay, policy.abort
    status = abort.status if abort is not None else 0
    grpc_code = 0
    if abort is not None:
        grpc_code = abort.grpc_status if abort.grpc_status is not None else grpc_code_of(status)
    return _Plan(
        delay.duration if delay is not None else 0.0,
        delay.percent if delay is not None else 0.0,
        status,
        abort.percent if abort is not None else 0.0,
        grpc_code,
    )


def make_fault(
    policy: FaultPolicy,
    active: ActiveFaults,
    *,
    injected: Callable[[str], Callable[[], None]],
    skipped: Callable[[], None],
    rng: random.Random,
) -> Filter:
    """The fault filter of one route. ``injected(kind)`` is the counter bump of a ``delay`` or
    ``abort``; ``skipped`` counts a fault due past ``max_active``; ``rng`` picks the calls."""
    configured = configured_plan(policy)
    by_header, max_delay, max_active = (
        policy.header_triggered,
        policy.header_max_delay,
        policy.max_active,
    )
    delayed, aborted = injected("delay"), injected("abort")
    draw = rng.random

    def due(percent: float) -> bool:
        return percent >= 100.0 or (percent > 0.0 and draw() * 100.0 < percent)

    async def fault(exchange: Exchange, call_next: Handler) -> Response:
        headers = exchange.headers
        plan = configured
        asked = False
        for name in _HEADERS:
            if headers.get(name) is not None:
                asked = True
                break
        if asked:
            if by_header:
                plan = plan_from_headers(exchange, max_delay)
            for name in _HEADERS:
                headers.remove(name)
        delay = plan.delay if plan.delay and due(plan.delay_percent) else 0.0
        abort = plan.abort if plan.abort and due(plan.abort_percent) else 0
        if not delay and not abort:
            return await call_next(exchange)
        if active.count >= max_active:
            skipped()
            return await call_next(exchange)
        active.count += 1
        try:
            if delay:
                delayed()
                await asyncio.sleep(delay)
            if abort:
                aborted()
                raise FaultInjected(abort, plan.grpc_code)
        finally:
            active.count -= 1
        return await call_next(exchange)

    return fault


def factory(ctx: RouteContext) -> Filter | None:
    policy = ctx.upstream.fault
    if policy is None or not policy.enabled:
        return None  # no fault configured: not in the chain, nothing per call
    metrics = ctx.metrics
    up, route = ctx.upstream_name, ctx.route
    active = ctx.shared(ACTIVE, None, ActiveFaults)
    return make_fault(
        policy,
        active,
        injected=lambda kind: metrics.faults_injected.labels(up, route, kind).inc,
        skipped=metrics.faults_skipped.labels("max_active").inc,
        rng=random.Random(policy.seed),  # noqa: S311 - picks calls to fault, not a secret
    )
