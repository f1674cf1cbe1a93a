"""``metrics``: count every call and time it to the response head, per route.

Children are resolved when the chain is composed (:class:`~sidecar.telemetry.metrics.RouteMetrics`),
so a call costs a clock read, a gauge up/down, one histogram observe and one counter bump.
"""

from __future__ import annotations

from time import perf_counter

from ..chain import Filter, Handler
from ..errors import SidecarError
from ..exchange import Exchange, Response
from ..registry import RouteContext


def factory(ctx: RouteContext) -> Filter:
    rm = ctx.metrics.route(ctx.listener, ctx.upstream_name, ctx.route)
    observe = rm.duration.observe
    inc, dec = rm.in_flight.inc, rm.in_flight.dec
    count = rm.count
    errors = ctx.metrics.errors

    async def metrics(exchange: Exchange, call_next: Handler) -> Response:
        inc()
        try:
            resp = await call_next(exchange)
        except SidecarError as e:
            count(e.status)
            errors.labels(ctx.listener, ctx.upstream_name, e.code).inc()
            raise
        except Exception:
            count(500)
            raise
        finally:
            dec()
            observe(perf_counter() - exchange.start)
        count(resp.status)
        return resp

    return metrics
