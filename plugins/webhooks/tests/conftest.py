"""Fixtures of the webhooks plugin's tests: fresh secrets in the environment and a receiver
factory that closes what it started."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from webhooks_receiver import Answer, Receiver
from webhooks_support import new_secret


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
