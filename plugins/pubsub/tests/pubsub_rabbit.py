"""What the RabbitMQ tests share: the config of an upstream on a test's own exchange, and a
second AMQP client that declares and reads queues."""

from __future__ import annotations

import json
from typing import Any

import aio_pika
from pubsub_brokers import RabbitMQBroker


def rabbit_config(
    broker: RabbitMQBroker, exchange: str, app_url: str | None = None, **subscription: Any
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "topics": ["orders", "orders.dlq"],
        "backend": {"exchange": exchange},
    }
    config: dict[str, Any] = {
        "upstreams": {"events": {"adapter": "pubsub", "url": broker.url, "options": options}}
    }
    if app_url is not None:
        options["subscriptions"] = [
            {
                "topic": "orders",
                "group": "shop",
                "path": "/in",
                "dead_letter": "orders.dlq",
                "retry": {"attempts": 2, "backoff": "10ms", "max_backoff": "20ms"},
                **subscription,
            }
        ]
        config["plugins"] = {"pubsub": {"app": app_url, "consumer": "sidecar-1"}}
    return config


class Queues:
    """A second AMQP client: declares and reads queues bound to the test's exchange."""

    def __init__(self, broker: RabbitMQBroker, exchange: str) -> None:
        self.url = f"amqp://guest:guest@127.0.0.1:{broker.port}/"
        self.exchange_name = exchange

    async def __aenter__(self) -> Queues:
        self.connection = await aio_pika.connect(self.url, timeout=10)
        self.channel = await self.connection.channel()
        self.exchange = await self.channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connection.close()

    async def bound(self, topic: str, group: str) -> aio_pika.abc.AbstractQueue:
        queue = await self.channel.declare_queue(f"{topic}.{group}", durable=True)
        await queue.bind(self.exchange, routing_key=topic)
        return queue

    async def drain(self, queue: aio_pika.abc.AbstractQueue) -> list[dict[str, Any]]:
        got = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            got.append(json.loads(message.body))
        return got
