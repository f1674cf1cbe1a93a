"""Each attempt at the server is a CLIENT span named after the operation (OpenTelemetry's
GraphQL conventions), marked failed when the answer had errors and no data."""

from __future__ import annotations

import json
import logging

from graphql_server import ServedInThread
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sidecar_graphql.adapter import GraphQLAdapter
from sidecar_graphql.config import GraphQLOptions
from sidecar_graphql.gate import GRAPHQL_CALL, GraphQLCall, UpstreamState

from sidecar import AdapterServices, UpstreamConfig
from sidecar.testing import make_exchange, make_route_context


async def test_an_attempt_is_a_span_named_by_operation_type_and_name(
    graphql_server: ServedInThread,
) -> None:
    """``query Hi`` for a named query; ``query`` alone for an anonymous one; an errors-only
    answer ends its span with an error status."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    adapter = GraphQLAdapter(
        AdapterServices(make_route_context().metrics, logging.getLogger("test"))
    )
    upstream = UpstreamConfig.model_validate({"adapter": "graphql", "url": graphql_server.url})
    handler = adapter.handler("gql", upstream)
    state = UpstreamState(GraphQLOptions())
    graphql_server.script.fail[:] = ["INTERNAL_SERVER_ERROR"]
    try:
        for query in ("query Hi { hello }", "{ hello }", "query F { flaky }"):
            exchange = make_exchange("POST", "/graphql", {}, json.dumps({"query": query}).encode())
            _, op, body = await state.admit(exchange)
            exchange.stash[GRAPHQL_CALL] = GraphQLCall(body, op, "other", tracer)
            assert (await handler(exchange)).status == 200
    finally:
        await adapter.aclose()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["query Hi", "query", "query F"]
    assert all(s.kind is SpanKind.CLIENT for s in spans)
    assert spans[0].attributes == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Hi",
        "http.response.status_code": 200,
    }
    assert spans[2].status.status_code is StatusCode.ERROR
    assert spans[2].attributes["error.type"] == "graphql-errors"
