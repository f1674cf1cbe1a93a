"""The tracing filters' per-call code: a SERVER span per call, a CLIENT span per upstream
attempt, and the head-sampling decision before either (what each filter does, and why:
:mod:`.tracing`).

It needs the OpenTelemetry API and the SDK's sampler, so :mod:`.tracing`'s factories import it
only for a composition made while tracing is on; a sidecar that does not trace never loads it.
"""

from __future__ import annotations

__all__ = ["SERVER_SPAN", "UNSAMPLED", "server_filter", "upstream_filter"]

import asyncio
from collections.abc import Awaitable
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, set_span_in_context

from ..api import GRPC_STATUSES, RouteContext
from ..api.calls import SPAN_NAME
from ..chain import Filter, Handler
from ..errors import SidecarError
from ..exchange import Exchange, Response, StashKey
from ..telemetry.head_sampling import HeadSampler, new_span_id, new_trace_id
from ..telemetry.span_outcome import Attributes, answered, cut, decided, failed
from ..telemetry.trace_context import (
    EMPTY,
    drop_tracestate,
    inject,
    parent_context,
    read_parent,
    send_traceparent,
)
from ..telemetry.trace_ids import TRACE_ID
from ..telemetry.tracing import Tracing
from .retry import ATTEMPTS

#: A sampled call's SERVER span, for ``upstream_span``.
SERVER_SPAN: StashKey[Span] = StashKey("tracing.server_span")
#: An unsampled call's ``traceparent`` toward the upstream (it has no span).
UNSAMPLED: StashKey[str] = StashKey("tracing.unsampled")

#: Methods named as they are (HTTP semantic conventions); any other is ``_OTHER``.
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_SERVER, _CLIENT = SpanKind.SERVER, SpanKind.CLIENT

#: What :func:`_decide` found: a sampled call's parent context (or, for a new trace, the id it
#: was decided on), or ``None`` for an unsampled call.
Decided = Context | int | None


def _decide(exchange: Exchange, head: HeadSampler) -> Decided:
    """Sample the call or not, without the SDK. An unsampled call gets its trace id and the
    ``traceparent`` its upstream will see (a span id of its own, sampled flag off) stashed."""
    headers = exchange.headers
    parent = read_parent(headers)
    if parent is None:
        trace_id = new_trace_id()
        if head.new_trace(trace_id):
            return trace_id
        if headers.get("tracestate") is not None:
            drop_tracestate(headers)  # it belonged to the trace the app failed to send
        trace_hex, flags = f"{trace_id:032x}", "02"  # the random-trace-id flag, as the SDK's
    else:
        trace_hex, _, parent_flags = parent
        if head.continued(trace_hex, parent_flags):
            return parent_context(parent, headers)
        flags = "02" if parent_flags & 2 else "00"
    stash = exchange.stash
    stash[TRACE_ID] = trace_hex
    stash[UNSAMPLED] = f"00-{trace_hex}-{new_span_id():016x}-{flags}"
    return None


def _start(live: Tracing, name: str, parent: Context | int, kind: SpanKind) -> Span:
    """Start a sampled call's span under ``parent`` (an int: a new trace with that id); its
    attributes are set as it ends (:mod:`~sidecar.telemetry.span_outcome`)."""
    if isinstance(parent, int):
        live.ids.use(parent)  # the SDK draws the root span's trace id next
        parent = EMPTY
    return live.tracer.start_span(name, parent, kind)


def _names(label: str) -> dict[str, tuple[str, str]]:
    """method → (span name, ``http.request.method``), built once per chain."""
    return {m: (f"{m} {label}", m) for m in KNOWN_METHODS}


def _request_attributes(
    exchange: Exchange,
    static: Attributes,
    names: dict[str, tuple[str, str]],
    label: str,
    path_prefix: str,
) -> tuple[str, Attributes]:
    """The span name and attributes of an HTTP call: ``static``'s and the call's own."""
    attrs = static.copy()
    method = exchange.method
    known = names.get(method)
    if known is None:
        attrs["http.request.method"] = "_OTHER"
        attrs["http.request.method_original"] = method
        name = f"HTTP {label}"
    else:
        name, attrs["http.request.method"] = known
    attrs["url.path"] = path_prefix + exchange.path
    return name, attrs


def _rpc_attributes(exchange: Exchange, static: Attributes) -> tuple[str, Attributes]:
    """The span name (``package.Service/Method``) and attributes of a gRPC call: ``static``'s
    and the ``rpc.*`` ones."""
    attrs = static.copy()
    name = exchange.path[1:]
    attrs["rpc.service"], _, attrs["rpc.method"] = name.partition("/")
    return name, attrs


def server_filter(ctx: RouteContext, live: Tracing) -> Filter:
    """``tracing`` for one route: the SERVER span of each sampled call."""
    head = live.head
    grpc = ctx.front.grpc  # the app's call is a gRPC call: rpc.* attributes, its gRPC code
    route = ctx.route
    static: Attributes = {
        "sidecar.route": route,
        "sidecar.upstream": ctx.upstream_name,
        "sidecar.listener": ctx.listener,
    }
    if grpc:
        static["rpc.system"] = "grpc"
    names = _names(route)

    def tracing(exchange: Exchange, call_next: Handler) -> Awaitable[Response]:
        parent = _decide(exchange, head)
        if parent is None:
            return call_next(exchange)  # not sampled: no span, no frame of ours to keep
        return traced(exchange, call_next, parent)

    async def traced(exchange: Exchange, call_next: Handler, parent: Context | int) -> Response:
        if grpc:
            name, attrs = _rpc_attributes(exchange, static)
        else:
            name, attrs = _request_attributes(exchange, static, names, route, "")
        span = _start(live, name, parent, _SERVER)
        stash = exchange.stash
        stash[SERVER_SPAN] = span
        stash[TRACE_ID] = format(span.get_span_context().trace_id, "032x")
        try:
            try:
                resp = await call_next(exchange)
            finally:
                # a plugin's name for what the call did (api.name_span), set inside the chain
                renamed = stash.get(SPAN_NAME)
                if renamed is not None:
                    span.update_name(renamed)
        except SidecarError as e:
            decided(span, attrs, e, grpc=grpc, server=True)
            raise
        except asyncio.CancelledError:
            cut(span, attrs)
            raise
        except BaseException as e:
            failed(span, attrs, e)
            raise
        _end_with(resp, span, attrs, grpc=grpc, server=True)
        return resp

    return tracing


def upstream_filter(ctx: RouteContext, live: Tracing) -> Filter:
    """``upstream_span`` for one route: a CLIENT span per attempt of each sampled call."""
    head = live.head
    # a gRPC attempt when the app's call is one or the upstream answers in gRPC terms
    grpc = ctx.front.grpc or ctx.adapter.statuses == GRPC_STATUSES
    static: Attributes = {
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
        unsampled = exchange.peek(UNSAMPLED)
        if unsampled is None:
            server = exchange.peek(SERVER_SPAN)
            if server is not None:
                # the parent is the SERVER span, passed explicitly (no contextvar)
                return traced(exchange, call_next, set_span_in_context(server, EMPTY))
            # no SERVER span: a chain whose ``tracing`` filter a plugin replaced decides here
            parent = _decide(exchange, head)
            if parent is not None:
                return traced(exchange, call_next, parent)
            unsampled = exchange.stash[UNSAMPLED]
        # not sampled: the upstream still continues the trace, as not sampled
        send_traceparent(exchange.headers, unsampled)
        return call_next(exchange)

    async def traced(exchange: Exchange, call_next: Handler, parent: Context | int) -> Response:
        if grpc:
            name, attrs = _rpc_attributes(exchange, static)
        else:
            name, attrs = _request_attributes(exchange, static, names, label, base_path)
        attempt = exchange.peek(ATTEMPTS) or 1  # set by retry from the 2nd attempt on
        attrs["sidecar.attempt"] = attempt
        span = _start(live, name, parent, _CLIENT)
        inject(exchange.headers, span.get_span_context())
        if not span.is_recording():
            return await call_next(exchange)
        try:
            resp = await call_next(exchange)
        except SidecarError as e:
            decided(span, attrs, e, grpc=grpc, server=False)
            raise
        except asyncio.CancelledError:
            cut(span, attrs)
            raise
        except BaseException as e:
            failed(span, attrs, e)
            raise
        _end_with(resp, span, attrs, grpc=grpc, server=False)
        return resp

    return upstream_span


def _end_with(resp: Response, span: Span, attrs: Attributes, *, grpc: bool, server: bool) -> None:
    """End ``span`` when ``resp`` is complete: its body delivered (or given up), trailers in."""

    def done(ok: bool, sent: int) -> None:
        answered(span, attrs, resp, ok, grpc=grpc, server=server)

    if resp.on_complete is None:
        resp.on_complete = [done]
    else:
        resp.on_complete.append(done)
