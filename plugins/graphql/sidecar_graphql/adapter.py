"""The ``graphql`` adapter: an upstream that is a GraphQL server, called at its endpoint.

Apps call ``POST /<upstream>/graphql`` (or ``GET`` for a query) as they would the server; the
``graphql`` filter (:mod:`.gate`) has checked the request and left a :class:`~.gate.GraphQLCall`
in the stash, and this adapter sends it to ``<url><endpoint>`` as ``POST`` JSON (the whole
document; a GET's query too, so one request shape reaches the server). The answer is read whole
(up to ``max_response_bytes``), so the classifier (:mod:`.classify`) can see ``errors``; a
subscription's answer (``text/event-stream``, ``multipart/mixed``) streams through as it comes.
Any other path under the upstream is a GraphQL-shaped 404.

The server is called through the sidecar's own HTTP/1.1 client, which the filter took from
``RouteContext.http_client()`` and hands over in the call: the upstream's pool, ``tls``
section, ``connect_timeout`` and ``response_header_timeout`` apply as to any ``http`` upstream,
and its errors are already the sidecar's typed upstream errors (``connect-failure``, ``reset``,
``timeout`` for retry and the breaker).
"""

from __future__ import annotations

__all__ = ["GraphQLAdapter", "UnusableSetting"]

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from sidecar import (
    Adapter,
    AdapterServices,
    Classifier,
    Exchange,
    Handler,
    Headers,
    Response,
    UpstreamConfig,
    UpstreamConnectError,
    UpstreamProtocolError,
)

from .answers import Refusal, error_response
from .classify import make_classifier
from .config import GraphQLOptions

if TYPE_CHECKING:
    from .gate import GraphQLCall

#: request headers not sent on: framing and the body's type are the adapter's, the encoding
#: is left to the server's default so the answer can be read (and classified)
DROPPED = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "content-type",
        "accept-encoding",
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "expect",
    }
)
STREAMED = ("text/event-stream", "multipart/mixed")


class UnusableSetting(ValueError):
    """A setting the upstream cannot be built with; ``key`` is its path under the upstream."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


class GraphQLAdapter(Adapter):
    options_model = GraphQLOptions

    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        #: each live upstream's endpoint URL, for ``/upstreams``
        self._endpoints: dict[str, str] = {}

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        options = GraphQLOptions.model_validate(upstream.options)
        if not upstream.url or not upstream.url.startswith(("http://", "https://")):
            raise UnusableSetting("url", "a graphql upstream's url is http:// or https://")
        # graphql-core is loaded by a sidecar with a graphql upstream only (see .document)
        from . import document  # noqa: F401

        self._endpoints[name] = upstream.url.rstrip("/") + options.endpoint
        limit = options.max_response_bytes
        endpoint = options.endpoint
        from .gate import GRAPHQL_CALL

        async def graphql(exchange: Exchange) -> Response:
            call = exchange.peek(GRAPHQL_CALL)
            if call is None or exchange.path != endpoint:
                return error_response(
                    Refusal(404, "NOT_FOUND", f"this upstream serves GraphQL at {endpoint}")
                )
            span = None
            if call.tracer is not None:
                from .spans import attempt_span

                span = attempt_span(call.tracer, exchange, call)
            try:
                response = await _send(exchange, call, endpoint, limit)
            except BaseException as e:
                if span is not None:
                    from .spans import end_span

                    end_span(span, None, type(e).__name__)
                raise
            if span is not None:
                from .classify import outcome_of
                from .spans import end_span

                failure = None
                if response.status >= 400:
                    failure = str(response.status)
                elif isinstance(response.body, bytes) and outcome_of(response.body).failed:
                    failure = "graphql-errors"
                end_span(span, response.status, failure)
            return response

        return graphql

    def classifier(self, name: str, upstream: UpstreamConfig) -> Classifier:
        return make_classifier(GraphQLOptions.model_validate(upstream.options))

    def describe(self, name: str) -> dict[str, Any]:
        endpoint = self._endpoints.get(name)
        return {} if endpoint is None else {"endpoint": endpoint}

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        # the connections are the sidecar's client's, closed by it
        self._endpoints = {n: e for n, e in self._endpoints.items() if n in live}


async def _send(exchange: Exchange, call: GraphQLCall, endpoint: str, limit: int) -> Response:
    """One attempt: the call as ``POST`` JSON to the server's endpoint, through the sidecar's
    client; a JSON answer read whole (up to ``limit`` bytes), a streamed one passed on."""
    if call.send is None:
        # only without a running sidecar, or with the built-in http adapter plugin disabled
        raise UpstreamConnectError("the sidecar's HTTP client is not available")
    headers = Headers([(k, v) for k, v in exchange.headers if k not in DROPPED])
    headers.add("content-type", "application/json")
    # a new exchange per attempt: the app's stays as it came (a retry sends this again)
    out = Exchange(
        "POST",
        endpoint,
        headers,
        body=call.body,
        body_length=len(call.body),
        client=exchange.client,
        listener=exchange.listener,
        start=exchange.start,
    )
    out.deadline = exchange.deadline
    out.upstream, out.route = exchange.upstream, exchange.route
    response = await call.send(out)
    body = response.body
    kind = response.headers.get("content-type") or ""
    if isinstance(body, bytes) or kind.startswith(STREAMED):
        return response
    response.body = await _read(body, limit)
    response.length = len(response.body)
    return response


async def _read(body: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole answer, or :class:`UpstreamProtocolError` past ``limit`` bytes (the rest of
    it is not read: its connection is closed, never reused mid-body)."""
    parts: list[bytes] = []
    size = 0
    try:
        async for piece in body:
            size += len(piece)
            if size > limit:
                raise UpstreamProtocolError(f"the GraphQL server's answer is over {limit} bytes")
            parts.append(piece)
    except BaseException:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
        raise
    return b"".join(parts)
