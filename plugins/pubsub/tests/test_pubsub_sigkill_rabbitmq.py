"""Nothing lost when the sidecar is SIGKILLed (RabbitMQ): every publish it confirmed is in the
queue, and every message reaches the app at least once after a restart, with exactly the
poison messages dead-lettered."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import httpx
from aiohttp import web
from pubsub_app import until, until_async
from pubsub_brokers import RabbitMQBroker
from pubsub_rabbit import Queues, rabbit_config

from sidecar.testing import FakeUpstream, SidecarProcess

MESSAGES = 40
POISON = frozenset({3, 19, 31})


async def started(config: dict[str, Any]) -> SidecarProcess:
    """``sidecar run`` as a child, started without blocking the app served by this loop."""
    return await asyncio.to_thread(SidecarProcess(config, ready_timeout=30).start)


async def test_every_confirmed_publish_is_in_the_queue_after_a_sigkill(
    rabbitmq_broker: RabbitMQBroker,
) -> None:
    """Publishers racing a SIGKILL: each 204 they got is in the bound queue."""
    exchange = f"x{uuid.uuid4().hex[:8]}"
    confirmed: list[str] = []
    async with Queues(rabbitmq_broker, exchange) as q:
        queue = await q.bound("orders", "audit")
        proc = await started(rabbit_config(rabbitmq_broker, exchange))
        try:

            async def publisher(client: httpx.AsyncClient) -> None:
                while True:
                    try:
                        r = await client.post(f"{proc.http_url}/events/orders", content=b"x")
                    except httpx.TransportError:
                        return  # the sidecar is gone
                    assert r.status_code == 204, r.text
                    confirmed.append(r.headers["ce-id"])

            async with httpx.AsyncClient(timeout=10) as client:
                workers = [asyncio.create_task(publisher(client)) for _ in range(8)]
                await until(lambda: len(confirmed) >= 100, "100 confirmed publishes")
                await asyncio.to_thread(proc.kill)  # SIGKILL, with publishes in flight
                await asyncio.wait_for(asyncio.gather(*workers), 15)
        finally:
            proc.kill()
        stored = {e["id"] for e in await q.drain(queue)}
    assert set(confirmed) <= stored


async def test_every_message_reaches_the_app_after_a_sigkill_mid_batch(
    rabbitmq_broker: RabbitMQBroker,
) -> None:
    """Killed with deliveries in flight and restarted, the sidecar delivers every message at
    least once (those in flight again), and only the poison messages are dead-lettered."""
    exchange = f"x{uuid.uuid4().hex[:8]}"
    delivered: list[str] = []
    first_run = True
    held = asyncio.Event()  # answers held while the first sidecar is killed

    async def app_handler(request: web.Request) -> web.Response:
        delivered.append(request.headers["ce-id"])
        if first_run and len(delivered) > 10:
            await asyncio.wait_for(held.wait(), 15)  # in flight when the SIGKILL comes
        return web.Response(status=500 if request.headers["ce-type"] == "poison" else 200)

    async with Queues(rabbitmq_broker, exchange) as q, FakeUpstream(app_handler) as app:
        await q.bound("orders", "shop")
        dead_letters = await q.bound("orders.dlq", "ops")
        for n in range(MESSAGES):
            kind = "poison" if n in POISON else "ok"
            event = {"specversion": "1.0", "id": f"m{n}", "source": "/t", "type": kind}
            await q.exchange.publish(aio_pika.Message(json.dumps(event).encode()), "orders")
        config = rabbit_config(rabbitmq_broker, exchange, app.url, concurrency=4)
        proc = await started(config)
        try:
            await until(lambda: len(delivered) > 10, "a delivery held in flight")
            held_ids = set(delivered[10:])
            await asyncio.to_thread(proc.kill)
            first_run = False
            held.set()
            proc = await started(config)
            wanted = {f"m{n}" for n in range(MESSAGES)}
            await until(lambda: wanted <= set(delivered), "every message delivered", 30)
            dead: list[str] = []

            async def all_dead_lettered() -> bool:
                dead.extend(e["id"] for e in await q.drain(dead_letters))
                return {f"m{n}" for n in POISON} <= set(dead)

            await until_async(all_dead_lettered, "the poison messages dead-lettered", 30)
        finally:
            proc.kill()
    # what was in flight at the kill was delivered again by the restarted sidecar
    assert all(delivered.count(i) >= 2 for i in held_ids)
    assert set(dead) == {f"m{n}" for n in POISON}
