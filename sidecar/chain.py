"""Filters, handlers and how a route's chain is composed once.

A :data:`Handler` answers an exchange. A :data:`Filter` wraps the rest of the chain: code before
``await call_next(exchange)`` runs on the way to the upstream, code after it on the way back, so
filters run in chain order outbound and reverse order inbound (Envoy's order).

:func:`compose` builds a route's handler at start-up or reload; a request then pays one Python call
per filter and nothing else (no hook calls, no lookups). Adjacent filters that only observe
(:class:`~sidecar.observing.Observing`: metrics, the access log, rescue...) are fused into one
coroutine frame on the way, and retry runs the circuit breaker's steps in its own frame.
"""

from __future__ import annotations

__all__ = ["Filter", "Handler", "ObservedHandler", "compose", "fuse"]

from collections.abc import Awaitable, Callable, Sequence

from .exchange import Exchange, Response
from .observing import Absorbing, Observing

Handler = Callable[[Exchange], Awaitable[Response]]
Filter = Callable[[Exchange, Handler], Awaitable[Response]]


class ObservedHandler:
    """A handler whose outermost filter is an observing one; called, it is that filter's
    call. A caller that awaits the call in a coroutine of its own (the HTTP/1.1 worker) may run
    :attr:`observing`'s steps in its own frame around ``await inner(exchange)`` instead, as
    :meth:`Observing.__call__ <sidecar.observing.Observing.__call__>` runs them: one coroutine
    frame fewer per call."""

    __slots__ = ("inner", "observing")

    def __init__(self, observing: Observing, inner: Handler) -> None:
        self.observing = observing
        self.inner = inner

    def __call__(self, exchange: Exchange) -> Awaitable[Response]:
        return self.observing(exchange, self.inner)


def _bind(f: Filter, call_next: Handler) -> Handler:
    if isinstance(f, Observing):
        return ObservedHandler(f, call_next)

    # A plain function returning the filter's coroutine: no extra coroutine frame per layer.
    def handler(exchange: Exchange) -> Awaitable[Response]:
        return f(exchange, call_next)

    return handler


def compose(filters: Sequence[Filter], terminal: Handler) -> Handler:
    """``filters[0] ∘ filters[1] ∘ … ∘ terminal``: the first filter is the outermost."""
    handler = terminal
    for f in reversed(fuse(filters)):
        handler = _bind(f, handler)
    return handler


def fuse(filters: Sequence[Filter]) -> list[Filter]:
    """``filters`` with each run of adjacent observing filters joined into one, and the run
    right inside an absorbing filter (retry) taken into its frame: same order, same behaviour,
    fewer coroutine frames."""
    out: list[Filter] = []
    for f in filters:
        last = out[-1] if out else None
        if isinstance(f, Observing) and isinstance(last, Observing):
            joined = last.fused(f)
            if joined is not None:
                out[-1] = joined
                continue
        out.append(f)
    done: list[Filter] = []
    i = 0
    while i < len(out):
        f = out[i]
        if isinstance(f, Absorbing):
            inner = out[i + 1] if i + 1 < len(out) else None
            if isinstance(inner, Observing) and inner.rescuer is None:
                done.append(f.build(inner))
                i += 2
                continue
            f = f.plain
        done.append(f)
        i += 1
    return done
