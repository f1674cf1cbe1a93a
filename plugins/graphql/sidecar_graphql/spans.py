"""A span per attempt at the GraphQL server, when the sidecar traces.

A CLIENT span named after the operation as OpenTelemetry's GraphQL conventions say,
``<type> <name>`` (``query GetUser``; ``query`` for an anonymous one), with
``graphql.operation.type`` and ``graphql.operation.name`` (a GraphQL name, cut at 128
characters), child of the sidecar's span of the
upstream call (the ``traceparent`` the sidecar writes just above the adapter). Never the
document or the variables. Imported only by a sidecar that traces.
"""

from __future__ import annotations

__all__ = ["attempt_span", "end_span"]

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from sidecar import Exchange

    from .gate import GraphQLCall

_PROPAGATOR = TraceContextTextMapPropagator()


def attempt_span(tracer: Tracer, exchange: Exchange, call: GraphQLCall) -> Span:
    carrier = {}
    traceparent = exchange.headers.get("traceparent")
    if traceparent is not None:
        carrier["traceparent"] = traceparent
    kind = call.operation.kind
    attributes: dict[str, str] = {"graphql.operation.type": kind}
    name = kind
    if call.operation.name is not None:
        attributes["graphql.operation.name"] = call.operation.name[:128]
        name = f"{kind} {call.operation.name[:128]}"
    return tracer.start_span(
        name, context=_PROPAGATOR.extract(carrier), kind=SpanKind.CLIENT, attributes=attributes
    )


def end_span(span: Span, status: int | None, failure: str | None) -> None:
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if failure is not None:
        span.set_attribute("error.type", failure)
        span.set_status(Status(StatusCode.ERROR))
    span.end()
