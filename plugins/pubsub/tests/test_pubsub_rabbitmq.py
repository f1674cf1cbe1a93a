"""RabbitMQ through a real sidecar and a real rabbitmq-server: publisher confirms, deliveries
acknowledged after the app's answer, dead letters, and a dead consumer's message given out
again."""

from __future__ import annotations

import json
import uuid
from typing import Any

import aio_pika
import httpx
import sidecar_pubsub
from aiohttp import web
from pubsub_app import until, until_async
from pubsub_brokers import RabbitMQBroker
from pubsub_rabbit import Queues, rabbit_config

from sidecar.testing import FakeUpstream


async def test_publish_is_204_once_the_broker_confirmed(
    rabbitmq_broker: RabbitMQBroker, sidecar_factory: Any
) -> None:
    """A 204 means the bound queue holds the event, persistent, in structured mode."""
    exchange = f"x{uuid.uuid4().hex[:8]}"
    async with Queues(rabbitmq_broker, exchange) as q:
        queue = await q.bound("orders", "audit")
        async with sidecar_factory(
            rabbit_config(rabbitmq_broker, exchange), plugins=[sidecar_pubsub]
        ) as s:
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    f"http://127.0.0.1:{s.http_port}/events/orders",
                    content=b'{"n":2}',
                    headers={"content-type": "application/json", "ce-type": "t"},
                )
        assert r.status_code == 204, r.text
        message = await queue.get(no_ack=True, timeout=5)
        assert message.content_type == "application/cloudevents+json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        event = json.loads(message.body)
        assert event["id"] == r.headers["ce-id"] and event["data"] == {"n": 2}


async def test_a_message_no_queue_takes_is_503_not_a_silent_loss(
    rabbitmq_broker: RabbitMQBroker, sidecar_factory: Any
) -> None:
    """With no queue bound for the topic the broker returns the message: the app gets 503."""
    exchange = f"x{uuid.uuid4().hex[:8]}"
    async with sidecar_factory(
        rabbit_config(rabbitmq_broker, exchange), plugins=[sidecar_pubsub]
    ) as s:
        async with httpx.AsyncClient() as client:
            r = await client.post(f"http://127.0.0.1:{s.http_port}/events/orders", content=b"x")
    assert r.status_code == 503
    assert r.headers["x-sidecar-error"] == "publish_failed"
    assert "no queue is bound" in r.text


async def test_deliveries_are_acked_after_the_app_and_poison_goes_to_the_dead_letter_queue(
    rabbitmq_broker: RabbitMQBroker, sidecar_factory: Any
) -> None:
    """A 200 is acknowledged; a message the app keeps failing lands in the dead-letter queue."""
    exchange = f"x{uuid.uuid4().hex[:8]}"

    async def decide(request: web.Request) -> web.Response:
        return web.Response(status=500 if request.headers["ce-type"] == "poison" else 200)

    async with Queues(rabbitmq_broker, exchange) as q, FakeUpstream(decide) as app:
        dead_letters = await q.bound("orders.dlq", "ops")
        got: list[dict[str, Any]] = []

        async def dead_lettered() -> bool:
            got.extend(await q.drain(dead_letters))
            return bool(got)

        config = rabbit_config(rabbitmq_broker, exchange, app.url)
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                base = f"http://127.0.0.1:{s.http_port}/events/orders"
                ok = await client.post(base, content=b"a", headers={"ce-type": "fine"})
                bad = await client.post(base, content=b"b", headers={"ce-type": "poison"})
            assert (ok.status_code, bad.status_code) == (204, 204)
            await until_async(dead_lettered, "the poison message dead-lettered")
            await until(lambda: len(app.requests) == 3, "three deliveries")
        left = await q.drain(await q.bound("orders", "shop"))
    assert [e["id"] for e in got] == [bad.headers["ce-id"]]
    assert got[0]["deadletterreason"] == "the app answered 500 (2 deliveries)"
    assert left == []  # both acknowledged: nothing waits in the group's queue
    assert len(app.requests) == 3  # one for the good message, two for the poison one


async def test_a_message_a_dead_consumer_held_is_delivered_again(
    rabbitmq_broker: RabbitMQBroker, sidecar_factory: Any
) -> None:
    """A group member that took a message and died without acking leaves it to the sidecar."""
    exchange = f"x{uuid.uuid4().hex[:8]}"
    event = {"specversion": "1.0", "id": "held-1", "source": "/s", "type": "t", "data": "x"}
    async with Queues(rabbitmq_broker, exchange) as q:
        queue = await q.bound("orders", "shop")
        await q.exchange.publish(aio_pika.Message(json.dumps(event).encode()), "orders")
        taken = await queue.get(no_ack=False, timeout=5)
        assert taken is not None
    # the connection closed without an ack: the broker gives the message out again
    async with FakeUpstream() as app:
        config = rabbit_config(rabbitmq_broker, exchange, app.url)
        async with sidecar_factory(config, plugins=[sidecar_pubsub]):
            await until(lambda: len(app.requests) == 1, "the held message delivered")
    assert app.requests[0].headers["ce-id"] == "held-1"
