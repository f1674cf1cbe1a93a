"""What the subscription tests share: a bounded wait, the config, and a look into a stream."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis

#: bound on every wait for a delivery or an acknowledgement (seconds)
WAIT = 15.0


async def until(predicate: Callable[[], bool], what: str, limit: float = WAIT) -> None:
    """Poll ``predicate`` (cheap, local state) until it holds; fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit}s: {what}")
        await asyncio.sleep(0.01)


async def until_async(probe: Callable[[], Awaitable[bool]], what: str, limit: float = WAIT) -> None:
    """Like :func:`until` for a probe that asks a broker (each probe bounded by its client)."""
    deadline = time.monotonic() + limit
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit}s: {what}")
        await asyncio.sleep(0.02)


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


def subscribed_config(
    broker_url: str, app_url: str, key_prefix: str, **subscription: Any
) -> dict[str, Any]:
    """One redis upstream ``events`` with topics ``orders``/``orders.dlq`` and one subscription
    of ``orders`` delivered to ``<app>/in``, with fast retries."""
    sub = {
        "topic": "orders",
        "group": "shop",
        "path": "/in",
        "dead_letter": "orders.dlq",
        "retry": {"attempts": 3, "backoff": "10ms", "max_backoff": "50ms"},
        **subscription,
    }
    return {
        "upstreams": {
            "events": {
                "adapter": "pubsub",
                "url": broker_url,
                "options": {
                    "topics": ["orders", "orders.dlq"],
                    "backend": {"key_prefix": key_prefix, "claim_interval": "100ms"},
                    "subscriptions": [sub],
                },
            }
        },
        "plugins": {"pubsub": {"app": app_url, "consumer": "sidecar-1"}},
    }


class Stream:
    """A synchronous look at one stream and its ``shop`` group, as a second client sees it."""

    def __init__(self, url: str, key: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.key = key

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(f[b"event"]) for _, f in self.client.xrange(self.key)]

    def pending(self) -> int:
        try:
            return int(self.client.xpending(self.key, "shop")["pending"])
        except redis.ResponseError:  # no group yet
            return -1

    def close(self) -> None:
        self.client.close()
