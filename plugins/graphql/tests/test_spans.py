"""The adapter's side of a call: each attempt at the server is a CLIENT span named after the
operation (OpenTelemetry's GraphQL conventions), marked failed when the answer had errors and
no data; the request goes out through the sidecar's HTTP client as POST JSON, and an answer
is read whole up to its bound. No sockets: the sidecar's client is a stub handler here."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace import Tracer as OtelTracer
from sidecar_graphql.adapter import GraphQLAdapter
from sidecar_graphql.config import GraphQLOptions
from sidecar_graphql.gate import GRAPHQL_CALL, GraphQLCall, UpstreamState

from sidecar import (
    AdapterServices,
    Exchange,
    Handler,
    Headers,
    Response,
    UpstreamConfig,
    UpstreamProtocolError,
)
from sidecar.testing import make_exchange, make_route_context

OK = b'{"data": {"hello": "hi"}}'
FAILED = b'{"data": null, "errors": [{"message": "x", "extensions": {"code": "INTERNAL"}}]}'


class Server:
    """The sidecar's client toward the server, as a stub: records what it was sent."""

    def __init__(self, *answers: Response) -> None:
        self.answers = list(answers)
        self.sent: list[Exchange] = []

    async def __call__(self, exchange: Exchange) -> Response:
        self.sent.append(exchange)
        return self.answers.pop(0)


def adapter_handler(options: dict[str, object] | None = None) -> Handler:
    adapter = GraphQLAdapter(
        AdapterServices(make_route_context().metrics, logging.getLogger("test"))
    )
    upstream = UpstreamConfig.model_validate(
        {"adapter": "graphql", "url": "http://gql.internal", "options": options or {}}
    )
    return adapter.handler("gql", upstream)


async def call(
    handler: Handler,
    query: str,
    send: Handler,
    tracer: OtelTracer | None = None,
    path: str = "/graphql",
) -> Response:
    body = json.dumps({"query": query}).encode()
    exchange = make_exchange(
        "POST", path, {"accept-encoding": "gzip", "x-app": "1", "content-type": "a/b"}, body
    )
    _, op, sent = await UpstreamState(GraphQLOptions()).admit(exchange)
    exchange.stash[GRAPHQL_CALL] = GraphQLCall(sent, op, "other", tracer, send)
    return await handler(exchange)


async def test_an_attempt_is_a_span_named_by_operation_type_and_name() -> None:
    """``query Hi`` for a named query; ``query`` alone for an anonymous one; an errors-only
    answer ends its span with an error status."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    server = Server(Response(200, body=OK), Response(200, body=OK), Response(200, body=FAILED))
    handler = adapter_handler()
    for query in ("query Hi { hello }", "{ hello }", "query F { flaky }"):
        assert (await call(handler, query, server, tracer)).status == 200
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["query Hi", "query", "query F"]
    assert all(s.kind is SpanKind.CLIENT for s in spans)
    assert spans[0].attributes == {
        "graphql.operation.type": "query",
        "graphql.operation.name": "Hi",
        "http.response.status_code": 200,
    }
    assert spans[2].status.status_code is StatusCode.ERROR
    assert spans[2].attributes is not None
    assert spans[2].attributes["error.type"] == "graphql-errors"


async def test_the_server_gets_post_json_at_its_endpoint_through_the_sidecars_client() -> None:
    """One request shape reaches the server: POST JSON at the endpoint, the app's headers but
    its encoding wish and body type."""
    server = Server(Response(200, body=OK))
    await call(adapter_handler({"endpoint": "/api/gql"}), "{ hello }", server, path="/api/gql")
    (sent,) = server.sent
    assert (sent.method, sent.path, sent.query) == ("POST", "/api/gql", "")
    assert sent.headers.get("content-type") == "application/json"
    assert sent.headers.get("x-app") == "1" and "accept-encoding" not in sent.headers
    assert json.loads(sent.body) == {"query": "{ hello }"}  # type: ignore[arg-type]


async def test_a_streamed_answer_is_read_whole_up_to_its_bound() -> None:
    """A JSON answer that came in pieces is read whole (to be classified); one over
    max_response_bytes is the sidecar's 502 upstream_protocol, its stream closed."""
    closed: list[bool] = []

    class Pieces:
        def __init__(self, *pieces: bytes) -> None:
            self.pieces = list(pieces)

        def __aiter__(self) -> AsyncIterator[bytes]:
            return self

        async def __anext__(self) -> bytes:
            if not self.pieces:
                raise StopAsyncIteration
            return self.pieces.pop(0)

        async def aclose(self) -> None:
            closed.append(True)

    json_head = Headers([("content-type", "application/json")])
    whole = Server(Response(200, json_head, Pieces(OK[:5], OK[5:]), None))
    answer = await call(adapter_handler(), "{ hello }", whole)
    assert answer.body == OK and answer.length == len(OK)
    big = Server(Response(200, json_head, Pieces(b"x" * 800, b"x" * 800), None))
    with pytest.raises(UpstreamProtocolError):
        await call(adapter_handler({"max_response_bytes": 1024}), "{ hello }", big)
    assert closed == [True]
