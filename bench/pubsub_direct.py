#!/usr/bin/env python3
"""The pub/sub bench's peer: each broker's own Python client, publishing with the confirmation
the sidecar waits for, and the counts that check what reached each broker.

=========  ============================================  =====================================
backend    client and confirmation                       count of a topic
=========  ============================================  =====================================
redis      redis-py ``XADD`` (its reply), field ``event`` ``XLEN``
rabbitmq   aio-pika, publisher confirms, ``mandatory``   a durable queue bound to the topic
mqtt       aiomqtt, QoS 1 (the PUBACK)                   a QoS 1 subscriber counting
kafka      aiokafka, ``acks=all`` (``send_and_wait``)    the partition's end offset
=========  ============================================  =====================================

Each message is the structured CloudEvent (JSON) the sidecar would store for the same data, with
a fresh id, as an app publishing directly would build it. Run as a script it is the direct
publisher process of one measurement (pinned by the bench to the sidecar's core): it connects,
publishes for ``--warmup`` seconds, then for ``--seconds`` with ``--concurrency`` publishers, and
prints one JSON line (messages, seconds, its own CPU, p50/p99 of one publish). Not here: the
sidecar, the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

EXCHANGE = "bench"  # the RabbitMQ exchange of every publish, the sidecar's too
STRUCTURED = "application/cloudevents+json"
DATA = {"order": 42, "customer": "c-1001", "items": [{"sku": "A-1", "qty": 2}], "total": 19.9}


def event_bytes() -> bytes:
    """One structured CloudEvent with a new id (what the sidecar stores for ``DATA``)."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "/bench",
            "type": "bench.order",
            "time": "2026-12-06T21:00:00Z",
            "datacontenttype": "application/json",
            "data": DATA,
        }
    ).encode()


class Publisher:
    """One broker client: ``await open()``, ``await publish(topic, payload)``, ``await close()``."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self.client: Any = None
        self.exchange: Any = None
        self.properties: Any = None

    async def open(self) -> Publisher:
        if self.backend == "redis":
            import redis.asyncio as aioredis

            self.client = aioredis.Redis.from_url(self.url, max_connections=1024)
        elif self.backend == "rabbitmq":
            import aio_pika

            self.client = await aio_pika.connect(amqp_url(self.url), timeout=10)
            channel = await self.client.channel(publisher_confirms=True, on_return_raises=True)
            self.exchange = await channel.declare_exchange(
                EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
            )
        elif self.backend == "mqtt":
            import aiomqtt
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            host, port = self.url.split("://", 1)[1].split(":")
            self.client = aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5)
            # many publishes in flight are the point here, not a warning ("There are N pending")
            self.client.pending_calls_threshold = 1 << 30
            await self.client.__aenter__()
            self.properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            self.properties.ContentType = STRUCTURED
        else:
            from aiokafka import AIOKafkaProducer

            self.client = AIOKafkaProducer(bootstrap_servers=bootstrap(self.url), acks="all")
            await self.client.start()
        return self

    async def publish(self, topic: str, payload: bytes) -> None:
        if self.backend == "redis":
            await self.client.xadd(topic, {b"event": payload}, maxlen=1_000_000, approximate=True)
        elif self.backend == "rabbitmq":
            import aio_pika

            message = aio_pika.Message(
                payload, content_type=STRUCTURED, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await self.exchange.publish(message, routing_key=topic, mandatory=True)
        elif self.backend == "mqtt":
            await self.client.publish(topic, payload, qos=1, properties=self.properties)
        else:
            headers = [("content-type", STRUCTURED.encode())]
            await self.client.send_and_wait(topic, payload, headers=headers)

    async def close(self) -> None:
        if self.backend == "redis":
            await self.client.aclose()
        elif self.backend == "rabbitmq":
            await self.client.close()
        elif self.backend == "mqtt":
            await self.client.__aexit__(None, None, None)
        else:
            await self.client.stop()


def amqp_url(url: str) -> str:
    return url.replace("amqp://", "amqp://guest:guest@", 1)


def bootstrap(url: str) -> str:
    return url.split("://", 1)[1].strip("/")


async def publish_many(publisher: Publisher, topic: str, count: int, concurrency: int) -> None:
    """``count`` messages on ``topic`` from ``concurrency`` publishers (the preload)."""
    left = iter(range(count))

    async def one_publisher() -> None:
        for _ in left:
            await publisher.publish(topic, event_bytes())

    await asyncio.gather(*(one_publisher() for _ in range(concurrency)))


class Counter:
    """What is on a topic, read by a second client: ``await prepare(topic)`` before anything is
    published to it, ``await count(topic)`` any time after."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        self.client: Any = None
        self.channel: Any = None
        self.received: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> Counter:
        if self.backend == "redis":
            import redis.asyncio as aioredis

            self.client = aioredis.Redis.from_url(self.url)
        elif self.backend == "rabbitmq":
            import aio_pika

            self.client = await aio_pika.connect(amqp_url(self.url), timeout=10)
            self.channel = await self.client.channel()
            await self.channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
        elif self.backend == "mqtt":
            import aiomqtt

            host, port = self.url.split("://", 1)[1].split(":")
            self.client = aiomqtt.Client(host, int(port), protocol=aiomqtt.ProtocolVersion.V5)
            await self.client.__aenter__()
            self._task = asyncio.create_task(self._listen())
        else:
            from aiokafka.admin import AIOKafkaAdminClient

            self.client = AIOKafkaAdminClient(bootstrap_servers=bootstrap(self.url))
            await self.client.start()
        return self

    async def _listen(self) -> None:
        async for message in self.client.messages:
            topic = str(message.topic)
            self.received[topic] = self.received.get(topic, 0) + 1

    async def prepare(self, topic: str) -> None:
        """Make the topic countable (and, for RabbitMQ, routable: publishes are mandatory)."""
        if self.backend == "rabbitmq":
            queue = await self.channel.declare_queue(f"{topic}.count", durable=True)
            await queue.bind(EXCHANGE, routing_key=topic)
        elif self.backend == "mqtt":
            await self.client.subscribe(topic, qos=1)
        elif self.backend == "kafka":
            from aiokafka.admin import NewTopic
            from aiokafka.errors import TopicAlreadyExistsError

            try:
                await self.client.create_topics([NewTopic(topic, 1, 1)])
            except TopicAlreadyExistsError:
                pass

    async def count(self, topic: str) -> int:
        if self.backend == "redis":
            return int(await self.client.xlen(topic))
        if self.backend == "rabbitmq":
            queue = await self.channel.declare_queue(f"{topic}.count", passive=True)
            return int(queue.declaration_result.message_count)
        if self.backend == "mqtt":
            return self.received.get(topic, 0)
        from aiokafka import AIOKafkaConsumer, TopicPartition

        # Tansu's reported end offset can trail the records it holds by a few after concurrent
        # produces (every record is readable): read the tail and count up to the last offset
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap(self.url))
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            end = int((await consumer.end_offsets([tp]))[tp])
            consumer.seek(tp, max(0, end - 1000))
            while batch := await consumer.getmany(tp, timeout_ms=300):
                end = max(end, batch[tp][-1].offset + 1)
            return end
        finally:
            await consumer.stop()

    async def settled_count(self, topic: str, at_least: int, within: float = 10.0) -> int:
        """The count once it reached ``at_least`` and stopped moving (an MQTT subscriber
        receives after the PUBACK), or what it is after ``within`` seconds."""
        deadline = time.monotonic() + within
        last = await self.count(topic)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            now = await self.count(topic)
            if now >= at_least and now == last:
                return now
            last = now
        return last

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.backend == "redis":
            await self.client.aclose()
        elif self.backend in ("rabbitmq",):
            await self.client.close()
        elif self.backend == "mqtt":
            await self.client.__aexit__(None, None, None)
        else:
            await self.client.close()


async def timed_run(
    publish: Callable[[], Awaitable[None]], concurrency: int, seconds: float
) -> tuple[int, float, list[float]]:
    """Publishers in a loop for ``seconds``: (messages, elapsed, latencies in µs of each)."""
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def one_publisher() -> None:
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            await publish()
            latencies.append((time.perf_counter() - t) * 1e6)

    start = time.monotonic()
    await asyncio.gather(*(one_publisher() for _ in range(concurrency)))
    return len(latencies), time.monotonic() - start, latencies


async def direct_run(args: argparse.Namespace) -> dict[str, Any]:
    publisher = await Publisher(args.backend, args.url).open()
    try:

        async def publish() -> None:
            await publisher.publish(args.topic, event_bytes())

        warm, _, _ = await timed_run(publish, args.concurrency, args.warmup)
        cpu = time.process_time()
        count, elapsed, latencies = await timed_run(publish, args.concurrency, args.seconds)
        cpu = time.process_time() - cpu
    finally:
        await publisher.close()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"published": warm + count, "measured": count, "seconds": elapsed,
            "cpu_s": cpu, "p50_us": q[49], "p99_us": q[98]}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description="Publish directly with a broker's own client.")
    p.add_argument("backend", choices=["redis", "rabbitmq", "mqtt", "kafka"])
    p.add_argument("url")
    p.add_argument("topic")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    args = p.parse_args()
    try:
        import uvloop

        uvloop.install()  # as the sidecar runs on it
    except ImportError:
        pass
    print(json.dumps(asyncio.run(direct_run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
