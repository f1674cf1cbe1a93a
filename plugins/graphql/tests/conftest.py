"""Fixtures of the graphql plugin's tests: the GraphQL server, started once a session.

``graphql_server`` is ariadne on uvicorn (:mod:`graphql_server`) with an empty script; Redis
(``redis_url``) is started only by the tests that use the Redis persisted-query store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from graphql_server import ServedInThread

from sidecar.testing import RedisServer


@pytest.fixture(scope="session")
def graphql_server_session() -> Iterator[ServedInThread]:
    with ServedInThread() as served:
        yield served


@pytest.fixture
def graphql_server(graphql_server_session: ServedInThread) -> Iterator[ServedInThread]:
    """The session's GraphQL server, with an empty script."""
    graphql_server_session.script.reset()
    yield graphql_server_session
    graphql_server_session.script.reset()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server of the tests' own on 127.0.0.1 (a missing one fails the test)."""
    with RedisServer() as server:
        yield server.url
