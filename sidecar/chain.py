"""Filters, handlers and how a route's chain is composed once.

A :data:`Handler` answers an exchange. A :data:`Filter` wraps the rest of the chain: code before
``await call_next(exchange)`` runs on the way to the upstream, code after it on the way back, so
filters run in chain order outbound and reverse order inbound (Envoy's order).

:func:`compose` builds a route's handler at start-up or reload; a request then pays one Python call
per filter and nothing else (no hook calls, no lookups).
"""

from __future__ import annotations

__all__ = ["Filter", "Handler", "compose"]

from collections.abc import Awaitable, Callable, Sequence

from .exchange import Exchange, Response

Handler = Callable[[Exchange], Awaitable[Response]]
Filter = Callable[[Exchange, Handler], Awaitable[Response]]


def _bind(f: Filter, call_next: Handler) -> Handler:
    # A plain function returning the filter's coroutine: no extra coroutine frame per layer.
    def handler(exchange: Exchange) -> Awaitable[Response]:
        return f(exchange, call_next)

    return handler


def compose(filters: Sequence[Filter], terminal: Handler) -> Handler:
    """``filters[0] ∘ filters[1] ∘ … ∘ terminal``: the first filter is the outermost."""
    handler = terminal
    for f in reversed(filters):
        handler = _bind(f, handler)
    return handler
