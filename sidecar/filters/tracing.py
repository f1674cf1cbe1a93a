"""``tracing`` and ``upstream_span``: a SERVER span per call, a CLIENT span per upstream attempt.

``tracing`` (observe phase) continues the app's W3C trace (``traceparent``/``tracestate``,
:mod:`sidecar.telemetry.trace_context`) or starts a new one, stashes the trace id for the access
log (:data:`~sidecar.telemetry.trace_ids.TRACE_ID`) and the span for ``upstream_span``, and ends
the span when the response is complete (``Response.on_complete``: a streamed body and gRPC
trailers are part of the call), or at once when the call ends in an error or is cancelled.

A plugin may rename a call's SERVER span after what the call did (``query GetUser``,
:func:`sidecar.api.name_span`): the name is read once the chain inside returned or raised.

``upstream_span`` (attempt phase, inside retry, the breaker and auth) starts a CLIENT
span, child of the SERVER span, on every attempt, so retries are sibling CLIENT spans numbered
by ``sidecar.attempt``; it writes that span as the upstream's ``traceparent``, replacing the
app's.

Whether a call is sampled is decided first, without the SDK
(:mod:`sidecar.telemetry.head_sampling`: the provider's sampler, read once). A call left out
makes no span and builds no attribute: it gets a span id drawn at random, its trace id
stashed, and the upstream a ``traceparent`` continuing the trace with the sampled flag off (the
app's ``tracestate`` travels on as it came); with tracing at 1 %, 99 calls in 100 pay only
that.

Attributes (built at compose time, but for the method and the path): ``sidecar.route``,
``sidecar.upstream``, ``sidecar.listener``; HTTP: ``http.request.method``, ``url.path`` (the
path as forwarded: route prefix stripped, upstream base path added on CLIENT spans, never the
query); gRPC (a front that answers in gRPC terms, or on CLIENT spans an adapter that does:
their traits, :mod:`sidecar.api.traits`): ``rpc.system``, ``rpc.service``, ``rpc.method``;
CLIENT spans add ``server.address``, ``server.port`` and ``sidecar.attempt``. How a call's end
is written: :mod:`sidecar.telemetry.span_outcome`.

No contextvar is attached or read per call: the parent context is passed explicitly. With
tracing off (no ``sidecar.resources["tracing"]``) both factories return ``None``; with it on
they build the filters of :mod:`.tracing_spans`, imported then (at composition, never per
call), so a sidecar that does not trace never loads OpenTelemetry. A filter that gives up a
response must :func:`~sidecar.exchange.discard` it (as retry and auth do), so the spans waiting
for its end are ended.
"""

from __future__ import annotations

__all__ = ["server_factory", "upstream_factory"]

from typing import TYPE_CHECKING

from ..telemetry.tracing import RESOURCE

if TYPE_CHECKING:
    from ..api import RouteContext
    from ..chain import Filter
    from ..telemetry.tracing import Tracing


def server_factory(ctx: RouteContext) -> Filter | None:
    live: Tracing | None = ctx.resources.get(RESOURCE)
    if live is None:
        return None
    from .tracing_spans import server_filter  # OpenTelemetry, only while tracing is on

    return server_filter(ctx, live)


def upstream_factory(ctx: RouteContext) -> Filter | None:
    live: Tracing | None = ctx.resources.get(RESOURCE)
    if live is None:
        return None
    from .tracing_spans import upstream_filter

    return upstream_filter(ctx, live)
