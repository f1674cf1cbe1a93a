"""Nothing lost when the sidecar is SIGKILLed (RabbitMQ): every publish it confirmed is in the
queue, and every message reaches the app at least once after a restart, with exactly the
poison messages dead-lettered."""

from __future__ import annotations

import json
import uuid

import aio_pika
from pubsub_brokers import RabbitMQBroker
from pubsub_rabbit import Queues, rabbit_config
from pubsub_sigkill import MidBatchKill, batch, confirmed_before_sigkill, sentinel


async def test_every_confirmed_publish_is_in_the_queue_after_a_sigkill(
    rabbitmq_broker: RabbitMQBroker,
) -> None:
    """Publishers racing a SIGKILL: each 204 they got is in the bound queue."""
    exchange = f"x{uuid.uuid4().hex[:8]}"
    async with Queues(rabbitmq_broker, exchange) as q:
        queue = await q.bound("orders", "audit")
        confirmed = await confirmed_before_sigkill(
            rabbit_config(rabbitmq_broker, exchange), "orders"
        )
        stored = {e["id"] for e in await q.drain(queue)}
    assert set(confirmed) <= stored


async def test_every_message_reaches_the_app_after_a_sigkill_mid_batch(
    rabbitmq_broker: RabbitMQBroker,
) -> None:
    """Killed with deliveries in flight and restarted, the sidecar delivers every message at
    least once (those in flight again), leaves nothing unacknowledged, and only the poison
    messages are dead-lettered."""
    exchange = f"x{uuid.uuid4().hex[:8]}"
    async with Queues(rabbitmq_broker, exchange) as q, MidBatchKill() as run:
        orders = await q.bound("orders", "shop")
        dead_letters = await q.bound("orders.dlq", "ops")
        for event in batch():
            await q.exchange.publish(aio_pika.Message(json.dumps(event).encode()), "orders")
        await run.start(rabbit_config(rabbitmq_broker, exchange, run.app_url, concurrency=4))
        await run.kill_while_held()
        await run.start(rabbit_config(rabbitmq_broker, exchange, run.app_url, concurrency=1))
        await q.exchange.publish(aio_pika.Message(json.dumps(sentinel("s1")).encode()), "orders")
        await run.until_every_message_delivered(extra=frozenset({"s1"}))

        async def dead_lettered() -> set[str]:
            return {e["id"] for e in await q.drain(dead_letters)}

        await run.check_dead_letters(dead_lettered)
        await run.stop()  # its channel closes: what it left unacknowledged is ready again
        left = {e["id"] for e in await q.drain(orders)}
    assert left <= {"s1"}  # nothing of the batch was left unacknowledged
    run.check_held_delivered_again()
