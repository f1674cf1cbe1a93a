"""``timeout``: the call's overall deadline (DESIGN §6: 15 s by default, all attempts included).

Sets ``exchange.deadline`` (loop time) for the filters and adapter below, which bound their own
waits by it, and cancels the work below when it passes: the app gets 504 ``upstream_timeout``.
A deadline already on the exchange (a gRPC ``grpc-timeout``, an outer filter's) wins when it is
shorter. It covers the call up to the response head; a streaming body is bounded by idle timeouts.
Not here: per-attempt timeouts (the adapter's ``response_header_timeout``, retry filters).
"""

from __future__ import annotations

import asyncio

from ..chain import Filter, Handler
from ..errors import UpstreamTimeout
from ..exchange import Exchange, Response
from ..registry import RouteContext


def factory(ctx: RouteContext) -> Filter:
    budget = ctx.upstream.timeout

    async def timeout(exchange: Exchange, call_next: Handler) -> Response:
        now = asyncio.get_running_loop().time()
        deadline = now + budget
        if exchange.deadline is not None and exchange.deadline < deadline:
            deadline = exchange.deadline  # a shorter deadline from the app wins
        exchange.deadline = deadline
        cm = asyncio.timeout_at(deadline)
        try:
            async with cm:
                return await call_next(exchange)
        except TimeoutError:
            if not cm.expired():
                raise  # someone else's timeout, untranslated: a bug below, rescue says so
            raise UpstreamTimeout(
                f"no response from upstream within {round(max(deadline - now, 0.0), 3):g}s"
            ) from None

    return timeout
