"""Nothing lost when the sidecar is SIGKILLed (Redis Streams): every publish it confirmed is
in the stream, and every message reaches the app at least once after a restart, with exactly
the poison messages in the dead-letter topic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from aiohttp import web
from pubsub_app import Stream, prefix, subscribed_config, until
from pubsub_brokers import RedisBroker

from sidecar.testing import FakeUpstream, SidecarProcess

#: messages in the delivery test, and which of them the app always fails
MESSAGES = 40
POISON = frozenset({5, 17, 23, 38})


async def started(config: dict[str, Any]) -> SidecarProcess:
    """``sidecar run`` as a child, started without blocking the app served by this loop."""
    return await asyncio.to_thread(SidecarProcess(config, ready_timeout=30).start)


async def test_every_confirmed_publish_is_in_the_stream_after_a_sigkill(
    redis_broker: RedisBroker,
) -> None:
    """Publishers racing a SIGKILL: each 204 they got is in the stream; a restart publishes on."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    config = subscribed_config(redis_broker.url, "http://127.0.0.1:9", p)
    del config["upstreams"]["events"]["options"]["subscriptions"]
    proc = await started(config)
    confirmed: list[str] = []
    failed = 0

    async def publisher(client: httpx.AsyncClient, worker: int) -> None:
        nonlocal failed
        for n in range(10_000):
            try:
                r = await client.post(
                    f"{proc.http_url}/events/orders", content=f"{worker}-{n}".encode()
                )
            except httpx.TransportError:
                failed += 1
                return  # the sidecar is gone
            assert r.status_code == 204, r.text
            confirmed.append(r.headers["ce-id"])

    try:
        async with httpx.AsyncClient(timeout=10) as client:
            workers = [asyncio.create_task(publisher(client, w)) for w in range(8)]
            await until(lambda: len(confirmed) >= 200, "200 confirmed publishes")
            await asyncio.to_thread(proc.kill)  # SIGKILL, with publishes in flight
            await asyncio.wait_for(asyncio.gather(*workers), 15)
        stored = {e["id"] for e in orders.events()}
        assert failed == 8  # every publisher saw the sidecar die mid-stream
        assert set(confirmed) <= stored
        proc = await started(config)
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(f"{proc.http_url}/events/orders", content=b"after")
        assert r.status_code == 204
        assert r.headers["ce-id"] in {e["id"] for e in orders.events()}
    finally:
        proc.kill()
        orders.close()


async def test_every_message_reaches_the_app_after_a_sigkill_mid_batch(
    redis_broker: RedisBroker,
) -> None:
    """Killed with deliveries in flight and restarted, the sidecar delivers every message at
    least once, and the dead-letter topic holds the poison messages and nothing else."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    dlq = Stream(redis_broker.url, f"{p}orders.dlq")
    for n in range(MESSAGES):
        event = {
            "specversion": "1.0",
            "id": f"m{n}",
            "source": "/test",
            "type": "poison" if n in POISON else "ok",
        }
        orders.client.xadd(orders.key, {"event": json.dumps(event)})
    delivered: list[str] = []
    first_run = True
    held = asyncio.Event()  # answers held while the first sidecar is killed

    async def app_handler(request: web.Request) -> web.Response:
        delivered.append(request.headers["ce-id"])
        if first_run and len(delivered) > 10:
            await asyncio.wait_for(held.wait(), 15)  # in flight when the SIGKILL comes
        if request.headers["ce-type"] == "poison":
            return web.Response(status=500)
        return web.Response(status=200)

    async with FakeUpstream(app_handler) as app:
        config = subscribed_config(redis_broker.url, app.url, p, concurrency=4)
        proc = await started(config)
        try:
            await until(lambda: len(delivered) > 10, "a delivery held in flight")
            in_flight = orders.pending()
            await asyncio.to_thread(proc.kill)
            first_run = False
            held.set()
            assert in_flight > 0  # the kill left unacknowledged messages behind
            proc = await started(config)  # the same consumer name: reads its pending first
            wanted = {f"m{n}" for n in range(MESSAGES)}
            await until(lambda: wanted <= set(delivered), "every message delivered", 30)
            await until(lambda: orders.pending() == 0, "every message acknowledged", 30)
        finally:
            proc.kill()
    dead = [e["id"] for e in dlq.events()]
    assert set(dead) == {f"m{n}" for n in POISON}
    orders.close()
    dlq.close()
