"""The ``graphql`` filter: every request to a ``graphql`` upstream is read, checked and named
here, before retries and before the server sees a byte.

On a route to an ``adapter: graphql`` upstream (other routes do not get the filter), a call to
the endpoint (``/<upstream>/graphql``) is read once (POST JSON or GET parameters), its persisted
query resolved (:mod:`.persisted`, :mod:`.allow_list`), its document parsed and measured
(:mod:`.document`, analyses of recent documents kept per upstream), and refused with a
GraphQL-shaped answer when it breaks a rule. What passes is handed to the adapter in the call's
stash (:class:`GraphQLCall`), and counted by operation when its answer is back.

Retries are decided per operation and told to the sidecar's retry with ``allow_retry``: a
query, or a mutation named in ``idempotent_mutations``, may be sent again; any other mutation
and a subscription never (whatever ``retry.non_idempotent`` says, and with the app's
``Idempotency-Key`` untouched, sent on to the server). The operation is named on the call's
access-log line (``graphql_operation``, ``graphql_type``; a refusal's code as
``graphql_refused``) and on its SERVER span (``query GetUser``). This filter sits in the
``EXTEND`` phase: after the admission decisions, outside the timeout and the retries.
"""

from __future__ import annotations

__all__ = ["GRAPHQL_CALL", "GraphQLCall", "UpstreamState", "make_filter"]

from collections import OrderedDict
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING

from sidecar import (
    AuthConfigProblem,
    Exchange,
    Filter,
    Handler,
    Response,
    RouteContext,
    SharedKey,
    SidecarError,
    StashKey,
    allow_retry,
    log_field,
    name_span,
    plugin_tracer,
    read_body,
)

from .allow_list import AllowList, load_allow_list
from .answers import Refusal, error_response
from .classify import outcome_of
from .config import GraphQLOptions
from .metrics import GraphQLMetrics
from .persisted import STORES, QueryStore, Stores, make_store, sha256_hex
from .request import GraphQLRequest, from_get, from_post

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from .document import Operation

#: the instrumentation scope of the plugin's spans
SCOPE = "sidecar-graphql"
#: documents analysed per upstream, and the largest one kept (bounded memory: 512 × 8 KiB)
ANALYSES, ANALYSED_BYTES = 512, 8192


@dataclass
class GraphQLCall:
    """What the adapter sends and names: the body for the server (the whole document), the
    operation, its metric label, the tracer, and the sidecar's HTTP client toward the route's
    upstream (``None`` without a running sidecar)."""

    body: bytes
    operation: Operation
    label: str
    tracer: Tracer | None
    send: Handler | None = None


GRAPHQL_CALL: StashKey[GraphQLCall] = StashKey("graphql.call")


class UpstreamState:
    """One upstream's persisted-query store, allow-list and recent analyses, shared by its
    routes and kept across reloads while its options stay equal."""

    def __init__(
        self, options: GraphQLOptions, stores: Stores | None = None, upstream: str = ""
    ) -> None:
        # graphql-core comes in with the first graphql upstream, never with the plugin
        from .document import analyze

        self._analyze = analyze
        self.options = options
        pq = options.persisted_queries
        self.allow: AllowList | None = None
        if pq.allow_list is not None:
            try:
                self.allow = load_allow_list(pq.allow_list)
            except ValueError as e:
                raise AuthConfigProblem("options.persisted_queries.allow_list", str(e)) from None
        # with an allow-list only listed documents pass: registering others would be pointless
        self.store: QueryStore | None = None
        if pq.automatic and self.allow is None:
            # a running sidecar's stores are closed when it stops; without one (sidecar check,
            # unit tests) the store is this state's own
            self.store = make_store(pq.cache) if stores is None else stores.get(upstream, pq.cache)
        names = set(options.operations)
        if self.allow is not None:
            names |= self.allow.names
        self.labels = frozenset(names)
        self.idempotent = frozenset(options.idempotent_mutations)
        self._analyses: OrderedDict[tuple[str, str | None], Operation | Refusal] = OrderedDict()

    def analyze(self, query: str, name: str | None) -> Operation:
        key = (query, name)
        have = self._analyses.get(key)
        if have is None:
            try:
                have = self._analyze(query, name, self.options.limits)
            except Refusal as r:
                have = r
            if len(query) <= ANALYSED_BYTES:
                self._analyses[key] = have
                if len(self._analyses) > ANALYSES:
                    self._analyses.popitem(last=False)
        else:
            self._analyses.move_to_end(key)
        if isinstance(have, Refusal):
            raise have
        return have

    async def admit(self, exchange: Exchange) -> tuple[GraphQLRequest, Operation, bytes]:
        """The request, its operation and the body for the server; a :class:`Refusal` for
        anything the server must not see."""
        limits = self.options.limits
        raw: bytes | None = None
        if exchange.method == "POST":
            try:
                raw = await read_body(exchange, limits.max_request_bytes)
            except SidecarError:
                raise Refusal(
                    413,
                    "REQUEST_TOO_LARGE",
                    f"the request body is over {limits.max_request_bytes} bytes",
                ) from None
            request = from_post(raw)
        elif exchange.method == "GET":
            if len(exchange.query) > limits.max_request_bytes:
                raise Refusal(413, "REQUEST_TOO_LARGE", "the query string is too long")
            request = from_get(exchange.query)
        else:
            raise Refusal(405, "METHOD_NOT_ALLOWED", "GraphQL is served by POST and GET")
        digest = request.persisted_hash()
        register = False
        if digest is not None:
            register = await self._persisted(request, digest)
        if request.query is None:
            raise Refusal(400, "BAD_REQUEST", "the request has no query")
        listed = True
        if self.allow is not None:
            listed = (digest or sha256_hex(request.query)) in self.allow.documents
        operation = self.analyze(request.query, request.operation_name)
        if not listed and (self.allow is None or operation.name not in self.allow.names_only):
            raise Refusal(
                400, "PERSISTED_QUERY_NOT_IN_LIST", "the operation is not in the allow-list"
            )
        if operation.kind == "subscription" and not self.options.subscriptions:
            raise Refusal(
                400,
                "SUBSCRIPTIONS_NOT_ALLOWED",
                "subscriptions are not enabled for this upstream (options.subscriptions)",
            )
        if operation.kind != "query" and exchange.method == "GET":
            raise Refusal(405, "METHOD_NOT_ALLOWED", f"a {operation.kind} is sent by POST")
        if register and self.store is not None:
            await self.store.put(digest or "", request.query)
        body = raw if raw is not None and digest is None else request.upstream_body()
        return request, operation, body

    async def _persisted(self, request: GraphQLRequest, digest: str) -> bool:
        """Fill in the document of a hash-only request, or check the hash of one sent whole;
        whether the document is to be registered once it passed every check."""
        if self.store is None and self.allow is None:
            raise Refusal(400, "PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported")
        if request.query is not None:
            if sha256_hex(request.query) != digest:
                raise Refusal(
                    400, "PERSISTED_QUERY_HASH_MISMATCH", "provided sha does not match query"
                )
            return self.store is not None
        query = self.allow.documents.get(digest) if self.allow is not None else None
        if query is None and self.store is not None:
            query = await self.store.get(digest)
        if query is None:
            # APQ's answer to a hash it does not know: the app sends hash and document next
            code = (
                "PERSISTED_QUERY_NOT_FOUND"
                if self.store is not None
                else ("PERSISTED_QUERY_NOT_IN_LIST")
            )
            message = (
                "PersistedQueryNotFound"
                if self.store is not None
                else ("the operation is not in the allow-list")
            )
            raise Refusal(200 if self.store is not None else 400, code, message)
        request.query = query
        return False


STATE: SharedKey[UpstreamState] = SharedKey("graphql")


def make_filter(ctx: RouteContext) -> Filter | None:
    """The ``graphql`` filter of a route to a ``graphql`` upstream, else ``None``."""
    upstream = ctx.upstream
    if upstream.adapter != "graphql":
        return None
    options = GraphQLOptions.model_validate(upstream.options)
    stores = ctx.resources.get(STORES)
    name = ctx.upstream_name
    state = ctx.shared(STATE, options, lambda: UpstreamState(options, stores, name))
    metrics = GraphQLMetrics.of(ctx.metrics.registry)
    tracer = plugin_tracer(ctx.resources, SCOPE)
    endpoint = options.endpoint
    refused = metrics.refused
    counted = metrics.operations
    errors = metrics.errors
    duration = metrics.duration
    known_codes = frozenset(options.statuses())
    send = ctx.http_client()  # the sidecar's own client: the upstream's pool, tls, timeouts

    async def graphql(exchange: Exchange, call_next: Handler) -> Response:
        if exchange.path != endpoint:
            return await call_next(exchange)  # the adapter answers it (404)
        started = perf_counter()
        try:
            request, operation, body = await state.admit(exchange)
        except Refusal as r:
            refused.labels(name, r.code).inc()
            log_field(exchange, "graphql_refused", r.code)
            return error_response(r)
        label = operation.name if operation.name in state.labels else "other"
        kind = operation.kind
        _name_call(exchange, kind, operation.name)
        allow_retry(
            exchange,
            kind == "query" or (kind == "mutation" and operation.name in state.idempotent),
        )
        exchange.stash[GRAPHQL_CALL] = GraphQLCall(body, operation, label, tracer, send)
        try:
            response = await call_next(exchange)
        except BaseException:
            counted.labels(name, label, kind, "error").inc()
            raise
        duration.labels(name, label, kind).observe(perf_counter() - started)
        status = response.status
        if status == 200 and isinstance(response.body, bytes):
            outcome = outcome_of(response.body)
            if outcome.failed:
                counted.labels(name, label, kind, "failed").inc()
                for code in outcome.codes or ("other",):
                    errors.labels(name, label, code if code in known_codes else "other").inc()
            else:
                counted.labels(name, label, kind, "partial" if outcome.errors else "ok").inc()
        elif status >= 400:
            counted.labels(name, label, kind, f"http_{min(status // 100, 5)}xx").inc()
        else:
            counted.labels(name, label, kind, "ok").inc()
        return response

    return graphql


def _name_call(exchange: Exchange, kind: str, operation: str | None) -> None:
    """The operation on the call's access-log line and SERVER span (OpenTelemetry's GraphQL
    convention: ``<type> <name>``, the type alone for an anonymous operation)."""
    log_field(exchange, "graphql_type", kind)
    if operation is None:
        name_span(exchange, kind)
        return
    log_field(exchange, "graphql_operation", operation)
    name_span(exchange, f"{kind} {operation}")
