"""``request_headers``: set the upstream's configured ``request_headers`` on every call.

Values replace whatever the app sent under the same name. Secret references are resolved when the
chain is composed (start-up, reload), so a missing secret fails then, with its key path, and never
per call; the values never reach a log or ``/config``.
"""

from __future__ import annotations

from ..chain import Filter, Handler
from ..config.types import SecretRef
from ..exchange import Exchange, Response
from ..registry import RouteContext


def factory(ctx: RouteContext) -> Filter | None:
    configured = ctx.upstream.request_headers
    if not configured:
        return None
    pairs = [
        (name, value.reveal() if isinstance(value, SecretRef) else value)
        for name, value in configured.items()
    ]
    names = frozenset(name for name, _ in pairs)

    async def request_headers(exchange: Exchange, call_next: Handler) -> Response:
        items = exchange.headers.items()
        items[:] = [kv for kv in items if kv[0] not in names]
        items.extend(pairs)
        return await call_next(exchange)

    return request_headers
