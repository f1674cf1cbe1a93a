"""Apps call the sidecar exactly as they would the GraphQL server: a real server (ariadne on
uvicorn), a real sidecar, real clients (gql over aiohttp, httpx for the raw answers)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sidecar_graphql
from gql import gql
from gql.transport.exceptions import TransportQueryError
from graphql_server import ServedInThread
from sidecars import client, endpoint, sidecar_config

from sidecar.testing import running_sidecar


async def post(port: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(endpoint(port), json=body, headers=headers)


async def test_queries_and_mutations_reach_the_server_as_the_app_sent_them(
    graphql_server: ServedInThread,
) -> None:
    """A query with variables, a query by GET and a mutation are answered by the server."""
    async with running_sidecar(sidecar_config(graphql_server.url), plugins=[sidecar_graphql]) as s:
        async with client(s.http_port) as session:
            q = gql("query User($id: ID!) { user(id: $id) { id name friend { name } } }")
            q.variable_values = {"id": "7"}
            got = await session.execute(q)
            assert got == {"user": {"id": "7", "name": "user 7", "friend": {"name": "friend"}}}
            assert await session.execute(gql('mutation Add { addItem(name: "abc") }')) == {
                "addItem": 3
            }
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(endpoint(s.http_port), params={"query": "{ hello }"})
    assert r.status_code == 200 and r.json() == {"data": {"hello": "hello world"}}


LIMITED = {
    "limits": {
        "max_depth": 3,
        "max_aliases": 2,
        "max_root_fields": 3,
        "max_tokens": 60,
        "max_document_bytes": 400,
        "max_request_bytes": 2000,
    }
}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"query": "{ user(id: 1) { friend { friend { name } } } }"}, 400, "DEPTH_LIMIT_EXCEEDED"),
        ({"query": "{ a: hello b: hello c: hello }"}, 400, "TOO_MANY_ALIASES"),
        (
            {"query": "{ hello flaky partial { ok } user(id: 1) { id } }"},
            400,
            "TOO_MANY_ROOT_FIELDS",
        ),
        ({"query": "{ " + "a " * 70 + "}"}, 400, "TOO_MANY_TOKENS"),
        ({"query": "{ hello }" + " " * 500}, 413, "DOCUMENT_TOO_LARGE"),
        ({"query": "{ hello }", "variables": {"pad": "x" * 3000}}, 413, "REQUEST_TOO_LARGE"),
        ({"query": "{ hello "}, 400, "GRAPHQL_PARSE_FAILED"),
        ({"query": "subscription { ticks(n: 1) }"}, 400, "SUBSCRIPTIONS_NOT_ALLOWED"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_each_limit_is_answered_before_the_server_sees_a_byte(
    graphql_server: ServedInThread, body: dict[str, Any], status: int, code: str
) -> None:
    """Over a limit the app gets a GraphQL-shaped error with the limit's code and status, and
    the server is never called."""
    async with running_sidecar(
        sidecar_config(graphql_server.url, **LIMITED), plugins=[sidecar_graphql]
    ) as s:
        r = await post(s.http_port, body)
    assert r.status_code == status
    error = r.json()["errors"][0]
    assert error["extensions"]["code"] == code and error["message"]
    assert graphql_server.script.headers == {}


async def test_an_errors_only_answer_is_retried_by_its_code_and_opens_the_breaker(
    graphql_server: ServedInThread,
) -> None:
    """A 200 with errors and no data counts as a failure: a query answered SERVICE_UNAVAILABLE
    is retried (by the default retry.on), INTERNAL_SERVER_ERROR answers open the breaker."""
    config = sidecar_config(
        graphql_server.url, upstream={"circuit_breaker": {"consecutive_failures": 2}}
    )
    script = graphql_server.script
    async with running_sidecar(config, plugins=[sidecar_graphql]) as s:
        script.fail[:] = ["SERVICE_UNAVAILABLE"]
        async with client(s.http_port) as session:
            assert await session.execute(gql("query F { flaky }")) == {"flaky": "fine"}
        assert script.calls["flaky"] == 2
        # a partial answer (data and errors) is no failure: not retried, breaker untouched
        r = await post(s.http_port, {"query": "{ partial { ok broken } }"})
        assert r.json()["data"] == {"partial": {"ok": "yes", "broken": None}}
        script.calls.clear()
        script.fail[:] = ["INTERNAL_SERVER_ERROR"] * 2
        for _ in range(2):
            r = await post(s.http_port, {"query": "query F { flaky }"})
            assert r.status_code == 200 and r.json()["data"] is None
        r = await post(s.http_port, {"query": "query F { flaky }"})
    assert r.status_code == 503 and r.headers["x-sidecar-error"] == "circuit_open"
    assert script.calls["flaky"] == 2  # the third call never reached the server


async def test_mutations_are_retried_only_when_marked_idempotent(
    graphql_server: ServedInThread,
) -> None:
    """A failed mutation is never sent twice, even with the app's Idempotency-Key (which still
    reaches the server) and ``retry.non_idempotent: true``; one named in idempotent_mutations
    is retried like a query."""
    config = sidecar_config(
        graphql_server.url,
        idempotent_mutations=["SetFlag"],
        upstream={"retry": {"non_idempotent": True, "backoff": {"base": "1ms", "max": "2ms"}}},
    )
    script = graphql_server.script
    async with running_sidecar(config, plugins=[sidecar_graphql]) as s:
        script.fail[:] = ["SERVICE_UNAVAILABLE"]
        r = await post(
            s.http_port,
            {"query": 'mutation Add { addItem(name: "x") }'},
            {"idempotency-key": "app-key-1"},
        )
        assert r.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert script.calls["addItem"] == 1
        assert script.headers.get("idempotency-key") == "app-key-1"
        script.fail[:] = ["SERVICE_UNAVAILABLE"]
        async with client(s.http_port) as session:
            got = await session.execute(gql("mutation SetFlag { setFlag(on: true) }"))
        assert got == {"setFlag": 1} and script.calls["setFlag"] == 2
        assert "idempotency-key" not in script.headers  # the sidecar adds none of its own


async def test_operations_are_counted_by_bounded_labels(graphql_server: ServedInThread) -> None:
    """Metrics name configured operations, count every other as other, and count failed
    answers' codes and the sidecar's refusals."""
    config = sidecar_config(graphql_server.url, operations=["Hi"], limits={"max_depth": 2})
    graphql_server.script.fail[:] = ["FORBIDDEN"]
    async with running_sidecar(config, plugins=[sidecar_graphql]) as s:
        async with client(s.http_port) as session:
            await session.execute(gql("query Hi { hello }"))
            await session.execute(gql("query SomethingElse { hello }"))
            with pytest.raises(TransportQueryError):
                await session.execute(gql("query Hi { flaky }"))
        await post(s.http_port, {"query": "{ user(id: 1) { friend { name } } }"})
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    lines = [line for line in text.splitlines() if line.startswith("sidecar_graphql_")]
    hi = 'operation="Hi",outcome="ok",type="query",upstream="gql"'
    assert f"sidecar_graphql_operations_total{{{hi}}} 1.0" in lines
    assert any('operation="other",outcome="ok"' in line for line in lines)
    assert not any("SomethingElse" in line for line in lines)
    assert (
        'sidecar_graphql_errors_total{code="FORBIDDEN",operation="Hi",upstream="gql"} 1.0' in lines
    )
    assert (
        'sidecar_graphql_refused_total{reason="DEPTH_LIMIT_EXCEEDED",upstream="gql"} 1.0' in lines
    )


async def test_subscriptions_pass_on_their_transport_when_enabled(
    graphql_server: ServedInThread,
) -> None:
    """With subscriptions on, a GraphQL-SSE subscription streams through the sidecar."""
    config = sidecar_config(graphql_server.url, subscriptions=True)
    body = {"query": "subscription T { ticks(n: 3) }"}
    async with running_sidecar(config, plugins=[sidecar_graphql]) as s:
        async with httpx.AsyncClient(timeout=10) as http:
            headers = {"accept": "text/event-stream"}
            async with http.stream("POST", endpoint(s.http_port), json=body, headers=headers) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                text = "".join([chunk async for chunk in r.aiter_text()])
    data = [
        json.loads(line[5:])
        for line in text.splitlines()
        if line.startswith("data:") and line[5:].strip()
    ]
    assert [d["data"]["ticks"] for d in data if "data" in d] == [0, 1, 2]
    assert "event: complete" in text


async def test_a_server_that_cannot_be_reached_and_another_path_are_clear_answers(
    graphql_server: ServedInThread,
) -> None:
    """A refused connection is the sidecar's 502 upstream_connect (retried, as any upstream's);
    a path other than the endpoint is a GraphQL-shaped 404 that reaches no server."""
    async with running_sidecar(
        sidecar_config("http://127.0.0.1:9"), plugins=[sidecar_graphql]
    ) as s:
        r = await post(s.http_port, {"query": "{ hello }"})
        async with httpx.AsyncClient(timeout=10) as http:
            other = await http.post(f"http://127.0.0.1:{s.http_port}/gql/other", json={})
    assert r.status_code == 502 and r.headers["x-sidecar-error"] == "upstream_connect"
    assert other.status_code == 404
    assert other.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
