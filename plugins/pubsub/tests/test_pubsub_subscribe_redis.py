"""Deliveries from Redis Streams to the app through a real sidecar: the app's answer decides,
and the broker hears the acknowledgement only after it."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import sidecar_pubsub
from aiohttp import web
from pubsub_app import Stream, prefix, subscribed_config, until
from pubsub_brokers import RedisBroker

from sidecar.testing import FakeUpstream


async def publish(client: httpx.AsyncClient, port: int, body: bytes, **headers: str) -> str:
    r = await client.post(f"http://127.0.0.1:{port}/events/orders", content=body, headers=headers)
    assert r.status_code == 204, r.text
    return r.headers["ce-id"]


async def test_a_published_event_reaches_the_app_as_a_cloudevent_and_is_acked(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """The app gets the event in binary mode; after its 2xx the group has nothing pending."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    async with FakeUpstream() as app:
        config = subscribed_config(redis_broker.url, app.url, p)
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                ce_id = await publish(
                    client, s.http_port, b'{"n":1}', **{"content-type": "application/json"}
                )
            await until(lambda: len(app.requests) == 1, "one delivery")
            await until(lambda: orders.pending() == 0, "the delivery acknowledged")
    delivered = app.requests[0]
    assert delivered.method == "POST" and delivered.path_qs == "/in"
    headers = {k.lower(): v for k, v in delivered.headers.items()}
    assert headers["ce-id"] == ce_id and headers["ce-specversion"] == "1.0"
    assert headers["ce-correlationid"] == ce_id
    assert headers["content-type"] == "application/json"
    assert json.loads(delivered.body) == {"n": 1}
    orders.close()


async def test_the_broker_is_acked_only_after_the_app_answered(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """While the app holds a delivery the message stays pending; its answer acknowledges it."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 15)
        return web.Response(status=200)

    async with FakeUpstream(slow) as app:
        async with sidecar_factory(
            subscribed_config(redis_broker.url, app.url, p), plugins=[sidecar_pubsub]
        ) as s:
            async with httpx.AsyncClient() as client:
                await publish(client, s.http_port, b"x")
            await until(lambda: len(app.requests) == 1, "the delivery started")
            assert orders.pending() == 1
            release.set()
            await until(lambda: orders.pending() == 0, "the delivery acknowledged")
    orders.close()


async def test_retry_answers_are_delivered_again_until_the_app_takes_it(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """503, then {"status": "RETRY"}, then 200: three deliveries, no dead letter."""
    p = prefix()
    orders, dlq = Stream(redis_broker.url, f"{p}orders"), Stream(redis_broker.url, f"{p}orders.dlq")
    answers = [web.Response(status=503), web.json_response({"status": "RETRY"})]

    async def script(request: web.Request) -> web.Response:
        return answers.pop(0) if answers else web.Response(status=204)

    async with FakeUpstream(script) as app:
        async with sidecar_factory(
            subscribed_config(redis_broker.url, app.url, p), plugins=[sidecar_pubsub]
        ) as s:
            async with httpx.AsyncClient() as client:
                await publish(client, s.http_port, b"x")
            await until(lambda: orders.pending() == 0 and len(app.requests) == 3, "3 deliveries")
    attempts = [r.headers.get("x-sidecar-delivery-attempt") for r in app.requests]
    assert attempts == ["1", "2", "3"]
    assert dlq.events() == []
    orders.close()
    dlq.close()


async def test_exhausted_retries_go_to_the_dead_letter_topic_with_the_reason(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """An app that keeps failing gets `attempts` deliveries, then the dead-letter topic has it."""
    p = prefix()
    orders, dlq = Stream(redis_broker.url, f"{p}orders"), Stream(redis_broker.url, f"{p}orders.dlq")

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async with FakeUpstream(failing) as app:
        async with sidecar_factory(
            subscribed_config(redis_broker.url, app.url, p), plugins=[sidecar_pubsub]
        ) as s:
            async with httpx.AsyncClient() as client:
                ce_id = await publish(client, s.http_port, b"poison")
            await until(lambda: len(dlq.events()) == 1, "the dead letter")
            await until(lambda: orders.pending() == 0, "the original acknowledged")
    [dead] = dlq.events()
    assert len(app.requests) == 3
    assert dead["id"] == ce_id
    assert base64.b64decode(dead["data_base64"]) == b"poison"  # no content type: bytes
    assert dead["deadletterreason"] == "the app answered 500 (3 deliveries)"
    assert dead["deadlettertopic"] == "orders" and dead["deadlettergroup"] == "shop"
    orders.close()
    dlq.close()


async def test_deadletter_and_drop_answers_are_final(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """DEADLETTER sends the message to the dead-letter topic at once; DROP drops it, counted."""
    p = prefix()
    orders, dlq = Stream(redis_broker.url, f"{p}orders"), Stream(redis_broker.url, f"{p}orders.dlq")

    async def decide(request: web.Request) -> web.Response:
        return web.json_response({"status": request.headers["ce-type"].upper()})

    async with FakeUpstream(decide) as app:
        async with sidecar_factory(
            subscribed_config(redis_broker.url, app.url, p), plugins=[sidecar_pubsub]
        ) as s:
            async with httpx.AsyncClient() as client:
                poison = await publish(client, s.http_port, b"a", **{"ce-type": "deadletter"})
                await publish(client, s.http_port, b"b", **{"ce-type": "drop"})
                await until(lambda: len(app.requests) == 2, "two deliveries")
                await until(lambda: orders.pending() == 0, "both acknowledged")
                metrics = (await client.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    assert [e["id"] for e in dlq.events()] == [poison]
    assert dlq.events()[0]["deadletterreason"] == "the app answered DEADLETTER"
    assert len(app.requests) == 2  # neither was delivered again
    labels = 'group="shop",outcome="drop",topic="orders",upstream="events"'
    assert f"sidecar_pubsub_deliveries_total{{{labels}}} 1.0" in metrics
    labels = 'group="shop",reason="app",topic="orders",upstream="events"'
    assert f"sidecar_pubsub_dead_lettered_total{{{labels}}} 1.0" in metrics
    orders.close()
    dlq.close()


async def test_a_dead_consumers_pending_message_is_claimed_and_delivered(
    redis_broker: RedisBroker, sidecar_factory: Any
) -> None:
    """A message another group member read and never acknowledged (it died) reaches the app."""
    p = prefix()
    orders = Stream(redis_broker.url, f"{p}orders")
    event = {"specversion": "1.0", "id": "lost-1", "source": "/s", "type": "t", "data": "x"}
    orders.client.xgroup_create(orders.key, "shop", id="0", mkstream=True)
    orders.client.xadd(orders.key, {"event": json.dumps(event)})
    taken = orders.client.xreadgroup("shop", "dead-consumer", {orders.key: ">"}, count=1)
    assert taken and orders.pending() == 1
    async with FakeUpstream() as app:
        config = subscribed_config(redis_broker.url, app.url, p, claim_after="200ms")
        async with sidecar_factory(config, plugins=[sidecar_pubsub]):
            await until(lambda: len(app.requests) == 1, "the claimed delivery")
            await until(lambda: orders.pending() == 0, "the claimed message acknowledged")
    assert app.requests[0].headers["ce-id"] == "lost-1"
    orders.close()
