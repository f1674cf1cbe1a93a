from __future__ import annotations

import sidecar_graphql
from gql import gql
from sidecars import client, sidecar_config

from sidecar.testing import running_sidecar


async def test_a_query_through_the_sidecar(graphql_server) -> None:
    """A gql client pointed at the sidecar gets the server's answer."""
    async with running_sidecar(sidecar_config(graphql_server.url), plugins=[sidecar_graphql]) as s:
        async with client(s.http_port) as session:
            result = await session.execute(gql('query Hi { hello(name: "x") }'))
    assert result == {"hello": "hello x"}
