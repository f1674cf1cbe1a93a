"""Fixtures of the graphql plugin's tests: the GraphQL server, started once a session.

``graphql_server`` is ariadne on uvicorn (:mod:`graphql_server`) with an empty script; Redis
(``redis_url``) is started only by the tests that use the Redis persisted-query store.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from graphql_server import ServedInThread


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server of the tests' own on 127.0.0.1 (a missing one fails the test)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is needed by the Redis store's tests (apt redis-server)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "redis.conf"
        conf.write_text(f'port {port}\nbind 127.0.0.1\nsave ""\ndaemonize no\ndir {tmp}\n')
        proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL)  # noqa: S603
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)
