"""The ``graphql`` adapter: an upstream that is a GraphQL server, called at its endpoint.

Apps call ``POST /<upstream>/graphql`` (or ``GET`` for a query) as they would the server; the
``graphql`` filter (:mod:`.gate`) has checked the request and left a :class:`~.gate.GraphQLCall`
in the stash, and this adapter sends it to ``<url><endpoint>`` as ``POST`` JSON (the whole
document; a GET's query too, so one request shape reaches the server). The answer is read whole
(up to ``max_response_bytes``), so the classifier (:mod:`.classify`) can see ``errors``; a
subscription's answer (``text/event-stream``, ``multipart/mixed``) streams through as it comes.
Any other path under the upstream is a GraphQL-shaped 404.

The server is called with aiohttp, one connection pool per upstream (opened on its first call,
closed when a reload drops the upstream or the sidecar stops): the sidecar's own HTTP upstream
machinery is not part of the plugin API. aiohttp's errors become the sidecar's typed upstream
errors here, so retry and the breaker see ``connect-failure``, ``reset``, ``timeout``.
"""

from __future__ import annotations

__all__ = ["GraphQLAdapter", "UnusableSetting"]

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

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
    UpstreamReset,
    UpstreamTimeout,
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
#: answer headers the listener frames itself
DROPPED_BACK = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)
STREAMED = ("text/event-stream", "multipart/mixed")


class UnusableSetting(ValueError):
    """A setting the upstream cannot be built with; ``key`` is its path under the upstream."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


class _Upstream:
    """One upstream's address and connection pool."""

    def __init__(self, url: str, options: GraphQLOptions, connect_timeout: float) -> None:
        self.url = url
        self.options = options
        self.connect_timeout = connect_timeout
        self.session: aiohttp.ClientSession | None = None

    def client(self) -> aiohttp.ClientSession:
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.options.max_connections),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
                auto_decompress=False,
                skip_auto_headers=("user-agent",),
            )
        return self.session

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


class GraphQLAdapter(Adapter):
    options_model = GraphQLOptions

    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        self._live: dict[str, _Upstream] = {}
        self._retired: list[_Upstream] = []

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        options = GraphQLOptions.model_validate(upstream.options)
        if not upstream.url or not upstream.url.startswith(("http://", "https://")):
            raise UnusableSetting("url", "a graphql upstream's url is http:// or https://")
        # graphql-core is loaded by a sidecar with a graphql upstream only (see .document)
        from . import document  # noqa: F401

        url = upstream.url.rstrip("/") + options.endpoint
        have = self._live.get(name)
        if have is None or have.url != url or have.options != options:
            if have is not None:
                self._retired.append(have)
            have = self._live[name] = _Upstream(url, options, upstream.connect_timeout)
        up = have
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
                response = await _send(up, exchange, call, limit)
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
        up = self._live.get(name)
        return {} if up is None else {"endpoint": up.url}

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        for name in [n for n in self._live if n not in live]:
            self._retired.append(self._live.pop(name))
        retired, self._retired = self._retired, []
        for up in retired:
            await up.aclose()

    async def aclose(self) -> None:
        for up in [*self._live.values(), *self._retired]:
            await up.aclose()
        self._live.clear()
        self._retired.clear()


def _headers(exchange: Exchange, call: GraphQLCall) -> list[tuple[str, str]]:
    out = [(k, v) for k, v in exchange.headers if k not in DROPPED]
    if call.marked:  # the filter's own key is for the sidecar's retry only
        out = [(k, v) for k, v in out if k != "idempotency-key"]
    if call.app_key is not None:
        out.append(("idempotency-key", call.app_key))
    out.append(("content-type", "application/json"))
    return out


async def _send(up: _Upstream, exchange: Exchange, call: GraphQLCall, limit: int) -> Response:
    try:
        resp = await up.client().post(up.url, data=call.body, headers=_headers(exchange, call))
    except aiohttp.ClientConnectorError as e:
        raise UpstreamConnectError(f"cannot connect to the GraphQL server: {e.os_error}") from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
        raise UpstreamReset(f"the GraphQL server closed the connection: {e}") from None
    except TimeoutError:
        raise UpstreamTimeout("the GraphQL server did not answer in time") from None
    except aiohttp.ClientError as e:
        raise UpstreamProtocolError(f"the GraphQL server's answer: {type(e).__name__}") from None
    headers = Headers(
        [(k.lower(), v) for k, v in resp.headers.items() if k.lower() not in DROPPED_BACK]
    )
    kind = resp.headers.get("content-type", "")
    if kind.startswith(STREAMED):
        return Response(resp.status, headers, _stream(resp), None)
    try:
        body = await _read(resp, limit)
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ConnectionError):
        raise UpstreamReset("the GraphQL server closed the connection mid-answer") from None
    except TimeoutError:
        raise UpstreamTimeout("the GraphQL server's answer did not finish in time") from None
    finally:
        resp.release()
    return Response(resp.status, headers, body)


async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    raw = bytearray()
    async for piece in resp.content.iter_any():
        raw += piece
        if len(raw) > limit:
            resp.close()
            raise UpstreamProtocolError(f"the GraphQL server's answer is over {limit} bytes")
    return bytes(raw)


async def _stream(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for piece in resp.content.iter_any():
            yield piece
    except (aiohttp.ClientError, ConnectionError, asyncio.CancelledError):
        resp.close()
        raise
    finally:
        resp.release()
