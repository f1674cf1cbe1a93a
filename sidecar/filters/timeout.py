"""``timeout``: the call's overall deadline (DESIGN §6: 15 s by default, all attempts included).

Sets ``exchange.deadline`` (loop time) for the filters and adapter below, which bound their own
waits by it, and cancels the work below when it passes: the app gets 504 ``upstream_timeout``.
It covers the call up to the response head; a streaming body is bounded by idle timeouts.
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
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        if exchange.deadline is not None and exchange.deadline < deadline:
            deadline = exchange.deadline  # a shorter deadline from the app wins
        exchange.deadline = deadline
        try:
            async with asyncio.timeout_at(deadline):
                return await call_next(exchange)
        except TimeoutError:
            raise UpstreamTimeout(f"no response from upstream within {budget:g}s") from None

    return timeout
