"""Kafka (against Tansu, a Kafka-compatible broker) through a real sidecar: publishes
acknowledged with acks=all, deliveries committed only once settled, dead letters, and a dead
group member's uncommitted message delivered."""

from __future__ import annotations

import json
from typing import Any

import httpx
import sidecar_pubsub
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pubsub_app import until, until_async
from pubsub_brokers import TansuBroker
from pubsub_kafka import a_topic, group_of, kafka_config, read_all

from sidecar.testing import FakeUpstream


async def test_publish_is_204_once_the_broker_acknowledged_it(
    kafka_broker: TansuBroker, sidecar_factory: Any
) -> None:
    """A 204 means the record is in the topic, structured, keyed by `partitionkey`."""
    topic = a_topic()
    async with sidecar_factory(kafka_config(kafka_broker, topic), plugins=[sidecar_pubsub]) as s:
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"http://127.0.0.1:{s.http_port}/events/{topic}",
                content=b'{"n":4}',
                headers={"content-type": "application/json", "ce-partitionkey": "cust-1"},
            )
    assert r.status_code == 204, r.text
    [record] = await read_all(kafka_broker, topic)
    assert record.key == b"cust-1"
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    event = json.loads(record.value)
    assert event["id"] == r.headers["ce-id"] and event["data"] == {"n": 4}


async def test_deliveries_are_committed_once_settled_and_poison_is_dead_lettered(
    kafka_broker: TansuBroker, sidecar_factory: Any
) -> None:
    """A 200 and a dead-lettered poison message both end committed; the DLQ holds the poison."""
    topic = a_topic()

    async def decide(request: web.Request) -> web.Response:
        return web.Response(status=500 if request.headers["ce-type"] == "poison" else 200)

    async def dead_letters() -> bool:
        return len(await read_all(kafka_broker, f"{topic}.dlq")) == 1

    async with FakeUpstream(decide) as app:
        config = kafka_config(kafka_broker, topic, app.url)
        async with sidecar_factory(config, plugins=[sidecar_pubsub]) as s:
            async with httpx.AsyncClient() as client:
                base = f"http://127.0.0.1:{s.http_port}/events/{topic}"
                await client.post(base, content=b"a", headers={"ce-type": "fine"})
                bad = await client.post(base, content=b"b", headers={"ce-type": "poison"})
            await until(lambda: len(app.requests) == 3, "three deliveries", 30)
            await until_async(dead_letters, "the dead letter", 30)
            admin = AIOKafkaConsumer(
                bootstrap_servers=kafka_broker.bootstrap, group_id=group_of(topic)
            )
            tp = TopicPartition(topic, 0)

            async def committed() -> bool:
                return await admin.committed(tp) == 2

            await admin.start()
            try:
                await until_async(committed, "both offsets committed")
            finally:
                await admin.stop()
    [dead] = await read_all(kafka_broker, f"{topic}.dlq")
    event = json.loads(dead.value)
    assert event["id"] == bad.headers["ce-id"]
    assert event["deadletterreason"] == "the app answered 500 (2 deliveries)"


async def test_a_message_a_dead_member_left_uncommitted_is_delivered(
    kafka_broker: TansuBroker, sidecar_factory: Any
) -> None:
    """A group member that read a message and died before committing leaves it to the sidecar."""
    topic = a_topic()
    event = {"specversion": "1.0", "id": "held-1", "source": "/s", "type": "t"}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(event).encode())
    finally:
        await producer.stop()
    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_broker.bootstrap,
        group_id=group_of(topic),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,  # Tansu takes less than Kafka's 6 s minimum: a faster test
        heartbeat_interval_ms=600,
    )
    await member.start()
    taken = await member.getmany(timeout_ms=15_000, max_records=1)
    assert sum(len(r) for r in taken.values()) == 1
    await member.stop()  # gone without committing
    async with FakeUpstream() as app:
        config = kafka_config(kafka_broker, topic, app.url)
        async with sidecar_factory(config, plugins=[sidecar_pubsub]):
            await until(lambda: len(app.requests) == 1, "the uncommitted message delivered", 30)
    assert app.requests[0].headers["ce-id"] == "held-1"
