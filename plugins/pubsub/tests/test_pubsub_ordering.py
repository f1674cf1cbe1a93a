"""Ordering by key (Redis Streams): messages of one key reach the app one at a time, in order,
while messages of other keys are delivered meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import sidecar_pubsub
from aiohttp import web
from pubsub_app import prefix, subscribed_config, until
from pubsub_brokers import RedisBroker

from sidecar.testing import FakeUpstream


async def test_one_keys_messages_wait_for_each_other_and_other_keys_do_not(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """While the app holds a1, a2 waits, but b1 and b2 are delivered."""
    p = prefix()
    seen: list[str] = []
    release_a1 = asyncio.Event()

    async def app_handler(request: web.Request) -> web.Response:
        name = request.headers["ce-subject"]
        seen.append(name)
        if name == "a1":
            await asyncio.wait_for(release_a1.wait(), 15)
        return web.Response(status=200)

    async with FakeUpstream(app_handler) as app:
        config = subscribed_config(
            redis_broker.url, app.url, p, concurrency=8, ordered_by="partitionkey"
        )
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                for name in ("a1", "b1", "a2", "b2", "a3"):
                    r = await client.post(
                        f"http://127.0.0.1:{s.http_port}/events/orders",
                        content=b"x",
                        headers={"ce-partitionkey": name[0], "ce-subject": name},
                    )
                    assert r.status_code == 204
            await until(lambda: {"a1", "b1", "b2"} <= set(seen), "b's delivered while a1 waits")
            assert "a2" not in seen and "a3" not in seen  # behind a1, whatever the batch
            release_a1.set()
            await until(lambda: len(seen) == 5, "every message delivered")
    assert [n for n in seen if n.startswith("a")] == ["a1", "a2", "a3"]
    assert len(app.requests) == 5
