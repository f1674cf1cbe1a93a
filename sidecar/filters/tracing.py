"""``tracing`` and ``upstream_span``: a SERVER span per call, a CLIENT span per upstream attempt.

``tracing`` (``ORDER_TRACING``) continues the app's W3C trace (``traceparent``/``tracestate``,
:mod:`sidecar.telemetry.trace_context`) or starts a new one, stashes the trace id for the access
log (:data:`~sidecar.telemetry.trace_ids.TRACE_ID`) and the span for ``upstream_span``, and ends
the span when the response is complete (``Response.on_complete``: a streamed body and gRPC
trailers are part of the call), or at once when the call ends in an error or is cancelled.

``upstream_span`` (``ORDER_UPSTREAM_SPAN``, inside retry, the breaker and auth) starts a CLIENT
span, child of the SERVER span, on every attempt, so retries are sibling CLIENT spans numbered
by ``sidecar.attempt``; it writes that span as the upstream's ``traceparent``, replacing the
app's. A call the sampler left out still carries the trace toward the upstream (its SERVER
span's context, not sampled), at the cost of one span start: no CLIENT span is made for it.

Attributes (built at compose time, but for the method and the path): ``sidecar.route``,
``sidecar.upstream``, ``sidecar.listener``; HTTP: ``http.request.method``, ``url.path`` (the
path as forwarded: route prefix stripped, upstream base path added on CLIENT spans, never the
query); gRPC: ``rpc.system``, ``rpc.service``, ``rpc.method``; CLIENT spans add
``server.address``, ``server.port`` and ``sidecar.attempt``. How a call's end is written:
:mod:`sidecar.telemetry.span_outcome`.

No contextvar is attached or read per call: the parent context is passed explicitly. With
tracing off (no ``sidecar.resources["tracing"]``) both factories return ``None``. A filter that
gives up a response must :func:`~sidecar.exchange.discard` it (as retry and auth do), so the
spans waiting for its end are ended.
"""

from __future__ import annotations

__all__ = ["SERVER_SPAN", "server_factory", "upstream_factory"]

import asyncio
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.trace import Span, SpanKind, set_span_in_context

from ..chain import Filter, Handler
from ..errors import SidecarError
from ..exchange import Exchange, Response, StashKey
from ..grpc.wire import GRPC_LISTENER
from ..registry import RouteContext
from ..telemetry.span_outcome import answered, cut, decided, failed
from ..telemetry.trace_context import EMPTY, inject, remote_parent
from ..telemetry.trace_ids import TRACE_ID
from ..telemetry.tracing import RESOURCE, Tracing
from .retry import ATTEMPTS

#: The call's SERVER span (sampled or not), for ``upstream_span``.
SERVER_SPAN: StashKey[Span] = StashKey("tracing.server_span")

#: Methods named as they are (HTTP semantic conventions); any other is ``_OTHER``.
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_SERVER, _CLIENT = SpanKind.SERVER, SpanKind.CLIENT


def _names(label: str) -> dict[str, tuple[str, str]]:
    """method → (span name, ``http.request.method``), built once per chain."""
    return {m: (f"{m} {label}", m) for m in KNOWN_METHODS}


def _request_attributes(
    exchange: Exchange, names: dict[str, tuple[str, str]], label: str, path_prefix: str
) -> tuple[str, dict[str, Any]]:
    """The span name and per-call attributes of an HTTP call."""
    method = exchange.method
    known = names.get(method)
    if known is None:
        return f"HTTP {label}", {
            "http.request.method": "_OTHER",
            "http.request.method_original": method,
            "url.path": path_prefix + exchange.path,
        }
    return known[0], {"http.request.method": known[1], "url.path": path_prefix + exchange.path}


def _rpc_attributes(exchange: Exchange) -> tuple[str, dict[str, Any]]:
    """The span name (``package.Service/Method``) and ``rpc.*`` attributes of a gRPC call."""
    name = exchange.path[1:]
    service, _, method = name.partition("/")
    return name, {"rpc.service": service, "rpc.method": method}


def server_factory(ctx: RouteContext) -> Filter | None:
    live: Tracing | None = ctx.resources.get(RESOURCE)
    if live is None:
        return None
    start = live.tracer.start_span
    grpc = ctx.listener == GRPC_LISTENER
    route = ctx.route
    static: dict[str, Any] = {
        "sidecar.route": route,
        "sidecar.upstream": ctx.upstream_name,
        "sidecar.listener": ctx.listener,
    }
    if grpc:
        static["rpc.system"] = "grpc"
    names = _names(route)

    def tracing(exchange: Exchange, call_next: Handler) -> Awaitable[Response]:
        if grpc:
            name, attrs = _rpc_attributes(exchange)
        else:
            name, attrs = _request_attributes(exchange, names, route, "")
        span = start(name, remote_parent(exchange.headers), _SERVER, {**static, **attrs})
        stash = exchange.stash
        stash[SERVER_SPAN] = span
        stash[TRACE_ID] = format(span.get_span_context().trace_id, "032x")
        if not span.is_recording():
            return call_next(exchange)  # sampled out: nothing to end, no frame of ours to keep
        return traced(exchange, call_next, span)

    async def traced(exchange: Exchange, call_next: Handler, span: Span) -> Response:
        try:
            resp = await call_next(exchange)
        except SidecarError as e:
            decided(span, e, grpc=grpc, server=True)
            raise
        except asyncio.CancelledError:
            cut(span)
            raise
        except BaseException as e:
            failed(span, e)
            raise
        _end_with(resp, span, grpc=grpc, server=True)
        return resp

    return tracing


def upstream_factory(ctx: RouteContext) -> Filter | None:
    live: Tracing | None = ctx.resources.get(RESOURCE)
    if live is None:
        return None
    start = live.tracer.start_span
    grpc = ctx.listener == GRPC_LISTENER or ctx.upstream.adapter == "grpc"
    static: dict[str, Any] = {
        "sidecar.route": ctx.route,
        "sidecar.upstream": ctx.upstream_name,
        "sidecar.listener": ctx.listener,
    }
    base_path = ""
    if ctx.upstream.url is not None:
        parts = urlsplit(ctx.upstream.url)
        base_path = parts.path.rstrip("/")
        if parts.hostname:
            static["server.address"] = parts.hostname
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        if port is not None:
            static["server.port"] = port
    if grpc:
        static["rpc.system"] = "grpc"
    label = ctx.upstream_name
    names = _names(label)

    def upstream_span(exchange: Exchange, call_next: Handler) -> Awaitable[Response]:
        server = exchange.peek(SERVER_SPAN)
        if server is not None and not server.is_recording():
            # sampled out: the upstream still continues the trace, as not sampled
            inject(exchange.headers, server.get_span_context())
            return call_next(exchange)
        return traced(exchange, call_next, server)

    async def traced(exchange: Exchange, call_next: Handler, server: Span | None) -> Response:
        if grpc:
            name, attrs = _rpc_attributes(exchange)
        else:
            name, attrs = _request_attributes(exchange, names, label, base_path)
        attrs["sidecar.attempt"] = exchange.peek(ATTEMPTS) or 1  # set by retry from the 2nd on
        # the parent is the SERVER span, passed explicitly (no contextvar); without one (a
        # chain whose ``tracing`` filter a plugin replaced), the app's context
        parent = set_span_in_context(server, EMPTY) if server is not None else None
        if parent is None:
            parent = remote_parent(exchange.headers)
        span = start(name, parent, _CLIENT, {**static, **attrs})
        inject(exchange.headers, span.get_span_context())
        if not span.is_recording():
            return await call_next(exchange)
        try:
            resp = await call_next(exchange)
        except SidecarError as e:
            decided(span, e, grpc=grpc, server=False)
            raise
        except asyncio.CancelledError:
            cut(span)
            raise
        except BaseException as e:
            failed(span, e)
            raise
        _end_with(resp, span, grpc=grpc, server=False)
        return resp

    return upstream_span


def _end_with(resp: Response, span: Span, *, grpc: bool, server: bool) -> None:
    """End ``span`` when ``resp`` is complete: its body delivered (or given up), trailers in."""

    def done(ok: bool, sent: int) -> None:
        answered(span, resp, ok, grpc=grpc, server=server)

    if resp.on_complete is None:
        resp.on_complete = [done]
    else:
        resp.on_complete.append(done)
