"""Fixtures of the webhooks plugin's tests: fresh secrets in the environment, a receiver
factory that closes what it started, one persistent redis-server for the session, and
``queue``: the options of either queue kind, for the tests that run on both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from webhooks_receiver import Answer, Receiver
from webhooks_redis import RedisServer
from webhooks_support import new_secret, redis_queue


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """``secret_env("NAME")`` puts a new secret in ``$NAME`` and returns its value."""

    def put(name: str) -> str:
        value = new_secret()
        monkeypatch.setenv(name, value)
        return value

    return put


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """``await receivers(script, ...)`` starts a Receiver, closed after the test."""
    started: list[Receiver] = []

    async def start(script: list[Answer] | None = None, **kw: Any) -> Receiver:
        receiver = await Receiver(script, **kw).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server with an append-only file fsynced at every write, for the whole run
    (each test keeps its keys under its own prefix)."""
    server = RedisServer(persistent=True).start()
    yield server
    server.stop()


@pytest.fixture(params=["file", "redis"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The queue options of one kind: a directory, or Redis Streams on the session's server."""
    if request.param == "file":
        return {"store_dir": str(tmp_path / "queue")}
    server: RedisServer = request.getfixturevalue("redis_server")
    return redis_queue(server)
