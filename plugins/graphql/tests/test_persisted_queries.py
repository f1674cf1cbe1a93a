"""Automatic persisted queries (Apollo APQ) and the allow-list through a real sidecar, with the
cache in memory and in Redis (shared by two sidecars, as by replicas)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio
import sidecar_graphql
from graphql_server import ServedInThread
from sidecars import endpoint, sidecar_config

from sidecar.testing import running_sidecar

QUERY = "query Hi { hello }"
HASH = hashlib.sha256(QUERY.encode()).hexdigest()


def apq(query: str | None = None, digest: str = HASH) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    if query is not None:
        body["query"] = query
    return body


async def post(port: int, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(endpoint(port), json=body)


async def test_apq_registers_on_the_second_call_and_serves_by_hash(
    graphql_server: ServedInThread,
) -> None:
    """Hash alone: PersistedQueryNotFound; hash and document: answered and registered; hash
    alone again: answered. The server always gets the whole document and never the extension."""
    async with running_sidecar(sidecar_config(graphql_server.url), plugins=[sidecar_graphql]) as s:
        first = await post(s.http_port, apq())
        assert first.status_code == 200
        assert first.json()["errors"][0]["message"] == "PersistedQueryNotFound"
        assert first.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert graphql_server.script.calls["hello"] == 0
        assert (await post(s.http_port, apq(QUERY))).json() == {"data": {"hello": "hello world"}}
        graphql_server.script.headers.clear()
        by_hash = await post(s.http_port, apq())
        assert by_hash.json() == {"data": {"hello": "hello world"}}
        mismatch = await post(s.http_port, apq("{ hello }"))
    assert mismatch.status_code == 400
    assert mismatch.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
    assert graphql_server.script.calls["hello"] == 2


async def test_a_redis_cache_is_shared_by_sidecars(
    graphql_server: ServedInThread, redis_url: str
) -> None:
    """A document registered through one sidecar is served by hash through another; each
    sidecar closes its Redis connections when it stops."""
    digest = hashlib.sha256(b"query Shared { hello }").hexdigest()
    options = {"persisted_queries": {"cache": {"type": "redis", "url": redis_url}}}
    config = sidecar_config(graphql_server.url, **options)
    probe = redis.asyncio.Redis.from_url(redis_url)
    try:
        async with running_sidecar(config, plugins=[sidecar_graphql]) as a:
            async with running_sidecar(config, plugins=[sidecar_graphql]) as b:
                miss = await post(b.http_port, apq(digest=digest))
                assert miss.json()["errors"][0]["message"] == "PersistedQueryNotFound"
                await post(a.http_port, apq("query Shared { hello }", digest))
                hit = await post(b.http_port, apq(digest=digest))
                assert len(await probe.client_list()) >= 3  # the two sidecars' and the probe's
        assert hit.json() == {"data": {"hello": "hello world"}}
        async with asyncio.timeout(5):  # the server sees the closes a moment later
            # the probe's own connection only; polled: Redis has no event to wait on
            while len(await probe.client_list()) > 1:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        await probe.aclose()


async def test_only_allow_listed_operations_reach_the_server(
    graphql_server: ServedInThread, tmp_path: Path
) -> None:
    """With an allow-list, listed documents pass (also by hash alone, with no registration),
    and any other is refused before the server sees it."""
    ops = tmp_path / "operations.json"
    ops.write_text(json.dumps({"operations": [{"name": "Hi", "body": QUERY}]}))
    config = sidecar_config(graphql_server.url, persisted_queries={"allow_list": str(ops)})
    async with running_sidecar(config, plugins=[sidecar_graphql]) as s:
        assert (await post(s.http_port, apq())).json() == {"data": {"hello": "hello world"}}
        assert (await post(s.http_port, {"query": QUERY})).status_code == 200
        refused = await post(s.http_port, {"query": "query Other { hello }"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
    assert graphql_server.script.calls["hello"] == 2
