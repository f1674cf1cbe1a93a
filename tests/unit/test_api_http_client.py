"""``RouteContext.http_client()``: a plugin's adapter sends through the sidecar's own HTTP/1.1
client (the ``http`` adapter's pools, TLS and timeouts), whose pools live as long as a route
table borrows them. No sockets: pools connect only on a call."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

import pytest

from sidecar.adapters.http_adapter import HttpAdapter
from sidecar.api import AdapterServices, UpstreamConfig
from sidecar.api.http_client import HTTP_CLIENT
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_route_context


@pytest.fixture
async def client() -> AsyncIterator[HttpAdapter]:
    adapter = HttpAdapter(AdapterServices(Metrics(), logging.getLogger("test")))
    yield adapter
    await adapter.aclose()


def graphql_upstream(url: str = "https://gql.internal:8443/api") -> UpstreamConfig:
    ctx = make_route_context({"url": url, "adapter": "graphql"}, name="gql")
    return ctx.upstream


async def test_a_route_context_lends_the_sidecars_client_for_its_upstream(
    client: HttpAdapter,
) -> None:
    """With the client published, a plugin gets a handler toward the route's upstream, through
    a pool built from the upstream's own settings (TLS for https)."""
    ctx = make_route_context({"url": "https://gql.internal:8443/api"}, name="gql")
    ctx = dataclasses.replace(ctx, resources={HTTP_CLIENT: client})
    assert ctx.http_client() is not None
    pool = client.pools["gql"][1]
    assert (pool.host, pool.port, pool.ssl is not None) == ("gql.internal", 8443, True)
    assert client.describe("gql")["address"] == "gql.internal:8443"


def test_without_a_running_sidecar_there_is_no_client() -> None:
    """In a unit test (nothing published) ``http_client()`` is None, never a half client."""
    assert make_route_context({"url": "http://127.0.0.1:9"}).http_client() is None


async def test_a_borrowed_pool_lives_while_a_live_table_borrows_it(client: HttpAdapter) -> None:
    """A reload that borrows again keeps the warm pool; one that no longer borrows (or drops
    the upstream) closes it, as for an ``http`` upstream."""
    up = graphql_upstream()
    client.lend("gql", up)
    pool = client.pools["gql"][1]
    await client.retire({"gql": up})
    assert client.pools["gql"][1] is pool and not pool.closed  # borrowed by the live table
    client.lend("gql", up)  # the next composition borrows it again
    await client.retire({"gql": up})
    assert client.pools["gql"][1] is pool and not pool.closed
    await client.retire({"gql": up})  # a table that did not borrow it
    assert "gql" not in client.pools and pool.closed
