"""``concurrency``: load shedding, a bound on the calls in flight to each upstream.

One :class:`~sidecar.resilience.concurrency.ConcurrencyLimiter` per upstream, shared by all its
routes (kept across reloads while ``concurrency`` is unchanged). A call holds a slot from here
until its response head (or error) comes back, retries included: the filter sits outside
``timeout`` and ``retry``, so one app call is one slot however many attempts it makes, and inside
the rate limits, so a call they refuse never takes a slot. Past ``max_in_flight`` a call gets 503
``overloaded`` with ``Retry-After: 1`` at once, or waits in a bounded FIFO queue (``queue``) for at
most ``max_wait``; there is never an unbounded queue. A streamed response body no longer holds
its slot (its upstream connection is still bounded by ``pool.max_connections``).

Under the limit a call costs a comparison, an increment and a decrement: no allocation, no
asyncio object. Shed calls are counted in ``sidecar_overloaded_total{upstream,reason}``; slots in
use and queued calls are read at scrape time and shown on ``/upstreams``.
"""

from __future__ import annotations

from typing import Final

from ..api import RouteContext, SharedKey
from ..chain import Filter, Handler
from ..exchange import Exchange, Response
from ..observing import Observer, Observing
from ..resilience.concurrency import ConcurrencyLimiter

#: the ``shared`` kind (and the key under ``/upstreams`` → ``policies``).
LIMITER: Final[SharedKey[ConcurrencyLimiter]] = SharedKey("concurrency")


def make_limiter(ctx: RouteContext) -> ConcurrencyLimiter:
    counter = ctx.metrics.overloaded
    upstream = ctx.upstream_name
    shed = {reason: counter.labels(upstream, reason).inc for reason in ("limit", "max_wait")}
    return ConcurrencyLimiter(
        upstream, ctx.upstream.concurrency, on_shed=lambda reason: shed[reason]()
    )


def factory(ctx: RouteContext) -> Filter | None:
    policy = ctx.upstream.concurrency
    if not policy.enabled:
        return None
    limiter = ctx.shared(LIMITER, policy, lambda: make_limiter(ctx))
    limit = limiter.limit
    wait, release = limiter.wait, limiter.release

    if not limiter.queue_size:
        # no queue (the default): nobody ever waits for a slot, so taking one decides at once
        # and giving one back is a decrement: an observer, fused with its neighbours
        return Observing((_Slots(limiter),))

    async def concurrency(exchange: Exchange, call_next: Handler) -> Response:
        if limiter.in_flight < limit:
            limiter.in_flight += 1
        else:
            await wait()  # queue for a slot, or raise Overloaded
        try:
            return await call_next(exchange)
        finally:
            release()

    return concurrency


class _Slots(Observer):
    """The limit without a queue: a slot per call, or ``Overloaded`` at once."""

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self.limiter = limiter
        self.limit = limiter.limit

    def begin(self, exchange: Exchange) -> None:
        limiter = self.limiter
        if limiter.in_flight < self.limit:
            limiter.in_flight += 1
        else:
            raise limiter.full()

    def ok(self, exchange: Exchange, resp: Response) -> None:
        self.limiter.in_flight -= 1

    def error(self, exchange: Exchange, e: BaseException) -> None:
        self.limiter.in_flight -= 1
