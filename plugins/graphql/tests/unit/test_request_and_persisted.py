"""Requests read, persisted queries resolved and registered, the allow-list enforced, retries
decided per operation: the gate driven with make_exchange (no sockets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sidecar_graphql.answers import Refusal
from sidecar_graphql.config import GraphQLOptions
from sidecar_graphql.gate import UpstreamState, make_filter
from sidecar_graphql.persisted import MemoryStore, sha256_hex

from sidecar import LOG_FIELDS, RETRY_PERMIT, SPAN_NAME, Exchange
from sidecar.testing import make_exchange, make_route_context, responder

QUERY = "query Hi { hello }"
HASH = sha256_hex(QUERY)


def post(body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return make_exchange("POST", "/graphql", headers or {}, raw)


def apq(query: str | None = None, digest: str = HASH) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    if query is not None:
        body["query"] = query
    return body


async def refused(state: UpstreamState, exchange: Any) -> Refusal:
    with pytest.raises(Refusal) as caught:
        await state.admit(exchange)
    return caught.value


async def test_a_plain_post_is_sent_on_byte_for_byte() -> None:
    """A request without persisted query reaches the server as the app wrote it."""
    raw = json.dumps({"query": QUERY, "variables": {"a": 1}}).encode()
    _, op, body = await UpstreamState(GraphQLOptions()).admit(post(raw))
    assert (op.name, body) == ("Hi", raw)


async def test_a_get_query_is_read_from_the_parameters() -> None:
    """GET carries query, operationName and JSON variables in the query string."""
    exchange = make_exchange(
        "GET", "/graphql", query="query=%7Bhello%7D&variables=%7B%22a%22%3A1%7D"
    )
    request, op, body = await UpstreamState(GraphQLOptions()).admit(exchange)
    assert op.kind == "query"
    assert json.loads(body) == {"query": "{hello}", "variables": {"a": 1}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "BAD_REQUEST"),
        ([{"query": QUERY}], "BATCHING_NOT_SUPPORTED"),
        ({"query": 3}, "BAD_REQUEST"),
        ({"query": QUERY, "variables": []}, "BAD_REQUEST"),
        ({}, "BAD_REQUEST"),
    ],
)
async def test_a_malformed_envelope_is_400(body: Any, code: str) -> None:
    """What is not one GraphQL request is refused as the app's mistake."""
    r = await refused(UpstreamState(GraphQLOptions()), post(body))
    assert (r.status, r.code) == (400, code)


async def test_a_body_over_max_request_bytes_is_413() -> None:
    """The whole body (variables included) is bounded before it is parsed."""
    options = GraphQLOptions(limits={"max_request_bytes": 100})
    r = await refused(UpstreamState(options), post({"query": QUERY, "variables": {"x": "y" * 200}}))
    assert (r.status, r.code) == (413, "REQUEST_TOO_LARGE")


async def test_apq_unknown_hash_then_registration_then_hash_alone() -> None:
    """Apollo APQ: PersistedQueryNotFound, the app registers with the document, then the hash
    alone is enough and the server gets the whole document without the extension."""
    state = UpstreamState(GraphQLOptions())
    r = await refused(state, post(apq()))
    assert (r.status, r.code, r.message) == (
        200,
        "PERSISTED_QUERY_NOT_FOUND",
        "PersistedQueryNotFound",
    )
    await state.admit(post(apq(QUERY)))
    _, op, body = await state.admit(post(apq()))
    assert op.name == "Hi"
    assert json.loads(body) == {"query": QUERY}


async def test_apq_a_hash_that_is_not_the_documents_is_refused_and_not_registered() -> None:
    """A registration whose hash does not match its document is refused (no cache poisoning)."""
    state = UpstreamState(GraphQLOptions())
    r = await refused(state, post(apq(QUERY, digest="0" * 64)))
    assert (r.status, r.code) == (400, "PERSISTED_QUERY_HASH_MISMATCH")
    assert (await refused(state, post(apq(digest="0" * 64)))).code == "PERSISTED_QUERY_NOT_FOUND"


async def test_apq_a_document_over_a_limit_is_never_registered() -> None:
    """Only documents that pass every limit are kept."""
    deep = "{ a { b { c } } }"
    state = UpstreamState(GraphQLOptions(limits={"max_depth": 2}))
    await refused(state, post(apq(deep, sha256_hex(deep))))
    r = await refused(state, post(apq(digest=sha256_hex(deep))))
    assert r.code == "PERSISTED_QUERY_NOT_FOUND"


async def test_apq_off_says_not_supported() -> None:
    """With automatic persisted queries off, a hash is answered PersistedQueryNotSupported."""
    state = UpstreamState(GraphQLOptions(persisted_queries={"automatic": False}))
    r = await refused(state, post(apq()))
    assert (r.code, r.message) == ("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported")


async def test_the_memory_store_drops_the_least_recently_used() -> None:
    """The in-memory APQ cache is bounded: past max_entries the oldest unused entry goes."""
    store = MemoryStore(2)
    await store.put("a", "A")
    await store.put("b", "B")
    assert await store.get("a") == "A"  # a is now the most recently used
    await store.put("c", "C")
    assert (await store.get("b"), await store.get("a"), len(store)) == (None, "A", 2)


def allow_list(tmp_path: Path, data: Any) -> GraphQLOptions:
    path = tmp_path / "ops.json"
    path.write_text(json.dumps(data))
    return GraphQLOptions(persisted_queries={"allow_list": str(path)})


async def test_the_allow_list_lets_only_listed_documents_and_names_through(tmp_path: Path) -> None:
    """Listed documents (by hash, also sent by hash alone) and name-only entries pass."""
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": HASH, "name": "Hi", "type": "query", "body": QUERY},
            {"name": "Free"},
        ],
    }
    state = UpstreamState(allow_list(tmp_path, manifest))
    await state.admit(post({"query": QUERY}))
    _, op, _ = await state.admit(post(apq()))
    assert op.name == "Hi"
    await state.admit(post({"query": "query Free { anything }"}))
    r = await refused(state, post({"query": "query Other { hello }"}))
    assert (r.status, r.code) == (400, "PERSISTED_QUERY_NOT_IN_LIST")
    assert (await refused(state, post(apq(digest="1" * 64)))).code == "PERSISTED_QUERY_NOT_IN_LIST"
    assert state.labels == {"Hi", "Free"}


async def test_a_relay_map_is_an_allow_list_too(tmp_path: Path) -> None:
    """A flat {sha256: document} file is read as the list of allowed documents."""
    state = UpstreamState(allow_list(tmp_path, {HASH: QUERY}))
    _, op, _ = await state.admit(post(apq()))
    assert op.name == "Hi"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"operations": [{"id": "0" * 64, "body": QUERY}]}, "is not the SHA-256"),
        ({"operations": [{}]}, "neither a body nor a name"),
        ([1], "expected"),
    ],
)
def test_a_bad_allow_list_is_a_config_problem_at_its_key(
    tmp_path: Path, data: Any, reason: str
) -> None:
    """A wrong list stops start-up at options.persisted_queries.allow_list with the reason."""
    from sidecar import AuthConfigProblem

    with pytest.raises(AuthConfigProblem) as caught:
        UpstreamState(allow_list(tmp_path, data))
    assert caught.value.key_path == "options.persisted_queries.allow_list"
    assert reason in str(caught.value)


async def test_subscriptions_are_refused_unless_enabled() -> None:
    """A subscription is refused with a clear error unless options.subscriptions is on."""
    sub = {"query": "subscription S { ticks(n: 1) }"}
    r = await refused(UpstreamState(GraphQLOptions()), post(sub))
    assert (r.status, r.code) == (400, "SUBSCRIPTIONS_NOT_ALLOWED")
    _, op, _ = await UpstreamState(GraphQLOptions(subscriptions=True)).admit(post(sub))
    assert op.kind == "subscription"


async def test_a_mutation_by_get_is_405() -> None:
    """GraphQL over HTTP: mutations are never sent by GET."""
    exchange = make_exchange("GET", "/graphql", query="query=mutation%7Ba%7D")
    assert (await refused(UpstreamState(GraphQLOptions()), exchange)).status == 405


async def passed(
    query: str | None, headers: dict[str, str] | None = None, **options: Any
) -> Exchange:
    """The exchange as the ``graphql`` filter hands it on (or answers it, for a refusal)."""
    ctx = make_route_context(
        {"adapter": "graphql", "url": "http://127.0.0.1:9", "options": options}, name="gql"
    )
    gate = make_filter(ctx)
    assert gate is not None
    exchange = post({"query": query} if query is not None else {}, headers)
    await gate(exchange, responder(200, b'{"data": {}}'))
    return exchange


async def test_queries_may_be_retried_mutations_only_when_marked_idempotent() -> None:
    """The sidecar's retry is told per call: a query yes, a mutation no unless listed in
    idempotent_mutations, and the app's own Idempotency-Key is left for the server."""
    assert (await passed("query Q { a }")).peek(RETRY_PERMIT) is True
    assert (await passed("mutation M { a }")).peek(RETRY_PERMIT) is False
    listed = await passed("mutation M { a }", idempotent_mutations=["M"])
    assert listed.peek(RETRY_PERMIT) is True
    keyed = await passed("mutation M { a }", {"idempotency-key": "k1"})
    assert keyed.peek(RETRY_PERMIT) is False and keyed.headers.get("idempotency-key") == "k1"


async def test_the_operation_names_the_access_log_line_and_the_server_span() -> None:
    """``graphql_operation``/``graphql_type`` on the line and ``query GetUser`` as the span's
    name (the type alone for an anonymous operation); a refusal's code on the line."""
    named = await passed("query GetUser { a }")
    assert named.peek(LOG_FIELDS) == {"graphql_type": "query", "graphql_operation": "GetUser"}
    assert named.peek(SPAN_NAME) == "query GetUser"
    anonymous = await passed("{ a }")
    assert anonymous.peek(LOG_FIELDS) == {"graphql_type": "query"}
    assert anonymous.peek(SPAN_NAME) == "query"
    refused = await passed(None)
    assert refused.peek(LOG_FIELDS) == {"graphql_refused": "BAD_REQUEST"}
